using Colo.Block;
using Colo.Block.Graph;
using Colo.Block.Qcow2;
using Colo.Core.Options;
using Colo.Machine.Hmp;
using Colo.Monitor.Hmp;

namespace Colo.Tests.Unit.Machine.Hmp;

/// <summary>HMP qemu-io: QEMU 7.2's argument handling and texts; qemu-io's lines go to the given stdout.</summary>
[TestFixture]
public sealed class HmpQemuIoTests
{
    private string _dir = null!;
    private BlockGraph _graph = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "hmpqemuio-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        string image = Path.Combine(_dir, "d0.qcow2");
        Qcow2Creator.Create(image, new Qcow2CreateOptions { Size = 1 << 20 });
        _graph = new BlockGraph();
        _graph.AddDrive([.. KeyValParser.Parse($"if=none,id=d0,driver=qcow2,file.filename={image},node-name=n0", null).Pairs]);
    }

    [TearDown]
    public void TearDown()
    {
        _graph.Dispose();
        Directory.Delete(_dir, true);
    }

    private (string Reply, string Out, string Err) Run(string args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        string reply = HmpQemuIo.Run(_graph, args, output, error);
        return (reply, output.ToString(), error.ToString());
    }

    [Test]
    public void WriteThenReadPattern_ByDriveAndByNodeName()
    {
        (string reply, string output, _) = Run("d0 \"write -P 0xab 0 64k\"");
        Assert.That(reply, Is.Empty);
        Assert.That(output, Does.StartWith("wrote 65536/65536 bytes at offset 0\n64 KiB, 1 ops; "));
        (_, output, _) = Run("n0 \"read -P 0xab 0 64k\"");
        Assert.That(output, Does.StartWith("read 65536/65536 bytes at offset 0\n"));
        (_, output, _) = Run("n0 \"read -P 0xcd 0 512\"");
        Assert.That(output, Does.Contain("Pattern verification failed at offset 0, 512 bytes"));
        Assert.That(_graph.FindNode("n0"), Is.Not.Null, "the session leaves the drive open");
    }

    [Test]
    public void UnknownCommand_OnStderr()
    {
        Assert.That(Run("d0 \"bogus\"").Err, Is.EqualTo("command \"bogus\" not found" + Environment.NewLine));
    }

    [Test]
    public void UnknownDevice_MonitorError()
    {
        Assert.That(() => Run("nosuch \"read 0 512\""), Throws.TypeOf<BlockException>().With.Message.EqualTo("Cannot find device='' nor node-name='nosuch'"));
    }

    [TestCase("d0")]
    [TestCase("")]
    public void MissingArgument_StringExpected(string args)
    {
        Assert.That(() => Run(args), Throws.TypeOf<HmpUsageException>().With.Message.EqualTo("string expected"));
    }
}
