namespace Colo.Tests.EndToEnd.QemuIo;

/// <summary>
/// Colo's qemu-io beside the real QEMU 7.2 one (Debian qemu-utils): the same commands on copies
/// of the same image give the same stdout (timing lines aside) and exit status, and each reads
/// what the other wrote.
/// </summary>
[TestFixture]
[Category("Interop")]
public sealed class QemuIoInteropTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "qemuio-interop-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private void Real(params string[] args) => Assert.That(ToolRunner.Run(ToolRunner.RealQemuImg, _dir, args).ExitCode, Is.Zero);

    /// <summary>Runs <paramref name="commands"/> with both tools on two copies of <paramref name="image"/>.</summary>
    private void AssertSameOutput(string image, string[] commands, params string[] options)
    {
        File.Copy(P(image), P("colo-" + image), overwrite: true);
        File.Copy(P(image), P("real-" + image), overwrite: true);
        ToolResult colo = ToolRunner.Io(ToolRunner.ColoQemuIo, _dir, "colo-" + image, commands, options);
        ToolResult real = ToolRunner.Io(ToolRunner.RealQemuIo, _dir, "real-" + image, commands, options);
        Assert.Multiple(() =>
        {
            Assert.That(colo.StableStdout, Is.EqualTo(real.StableStdout));
            Assert.That(colo.ExitCode, Is.EqualTo(real.ExitCode));
        });
        ToolResult cmp = ToolRunner.Run(ToolRunner.RealQemuImg, _dir, ["compare", "colo-" + image, "real-" + image]);
        Assert.That(cmp.ExitCode, Is.Zero, "images differ after the same commands: " + cmp.Stdout);
    }

    private static readonly string[] s_script =
    [
        "write -P 0xab 0 64k", "read -P 0xab 0 64k", "read -P 0xac 0 64k", "read -v 0 33", "map", "length", "info",
        "discard 0 4k", "flush", "write -z 64k 64k", "map", "read 0 2M", "read 0 abc", "alloc 0 128k", "alloc 64k 64k",
        "readv -P 0 64k 1k 1k", "writev -P 9 8k 1k 1k", "read -P 9 8k 2k", "read 0 3G", "write -u 0 1", "read 0 0x",
        "read -q 0x1000 1.5k", "write -P 300 0 1", "read -s 1 -l 2 -P 0xab 16k 4", "write -P 7 1000 3000", "read -P 7 1000 3000",
        "read 0 0", "write 1M 1", "write 1048575 1", "aio_write -P 3 200k 4k", "aio_flush", "aio_read -P 3 200k 4k", "aio_flush",
    ];

    [Test]
    public void FreshQcow2_SameScript_SameOutput()
    {
        Real("create", "-q", "-f", "qcow2", "t.qcow2", "1M");
        AssertSameOutput("t.qcow2", s_script);
    }

    [Test]
    public void Qcow2v2_SameScript_SameOutput()
    {
        Real("create", "-q", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4096", "t.qcow2", "1M");
        AssertSameOutput("t.qcow2", s_script);
    }

    [Test]
    public void Raw_SameScript_SameOutput()
    {
        Real("create", "-q", "-f", "raw", "t.raw", "1M");
        // Colo's file driver does not punch holes on discard (advisory, so both are valid), which
        // would leave different bytes behind on raw; the rest of the script is the same.
        AssertSameOutput("t.raw", [.. s_script.Where(c => !c.StartsWith("discard", StringComparison.Ordinal))], "-f", "raw");
    }

    [Test]
    public void OverlayWithBacking_MapShowsOnlyTheTopLayer()
    {
        Real("create", "-q", "-f", "qcow2", "base.qcow2", "1M");
        Assert.That(ToolRunner.Io(ToolRunner.RealQemuIo, _dir, "base.qcow2", ["write -P 5 0 256k"]).ExitCode, Is.Zero);
        Real("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "o.qcow2");
        AssertSameOutput(
            "o.qcow2",
            ["map", "read -P 5 0 256k", "write -P 7 192k 4k", "write -z 256k 64k", "map", "discard 192k 64k", "map", "read -P 0 192k 64k", "read -P 5 128k 64k", "alloc 0 1M"]);
    }

    [Test]
    public void ReadOnlyAndCommandErrors_SameStatus()
    {
        Real("create", "-q", "-f", "qcow2", "t.qcow2", "1M");
        AssertSameOutput("t.qcow2", ["write 0 1", "read 0 1"], "-r");
        AssertSameOutput("t.qcow2", ["read -P 5 0 4k", "read 0 4k"]);
        AssertSameOutput("t.qcow2", ["r 0 1", "w 0 1", "q", "length"]);
    }

    [Test]
    public void RealWrites_ColoReads_AndTheReverse()
    {
        Real("create", "-q", "-f", "qcow2", "t.qcow2", "4M");
        string[] writes = ["write -P 0x11 0 64k", "write -P 0x22 100k 12k", "write -z 1M 64k", "write -c -P 0x33 2M 128k", "write -P 0x44 4194303 1"];
        string[] reads = ["read -P 0x11 0 64k", "read -P 0x22 100k 12k", "read -P 0 1M 64k", "read -P 0x33 2M 128k", "read -P 0x44 4194303 1", "read -P 0 64k 36k", "map"];
        Assert.That(ToolRunner.Io(ToolRunner.RealQemuIo, _dir, "t.qcow2", writes).ExitCode, Is.Zero);
        ToolResult colo = ToolRunner.Io(ToolRunner.ColoQemuIo, _dir, "t.qcow2", reads);
        ToolResult real = ToolRunner.Io(ToolRunner.RealQemuIo, _dir, "t.qcow2", reads);
        Assert.Multiple(() =>
        {
            Assert.That(colo.ExitCode, Is.Zero, colo.Stdout);
            Assert.That(colo.StableStdout, Is.EqualTo(real.StableStdout));
        });

        Real("create", "-q", "-f", "qcow2", "c.qcow2", "4M");
        Assert.That(ToolRunner.Io(ToolRunner.ColoQemuIo, _dir, "c.qcow2", writes).ExitCode, Is.Zero);
        ToolResult back = ToolRunner.Io(ToolRunner.RealQemuIo, _dir, "c.qcow2", reads);
        Assert.Multiple(() =>
        {
            Assert.That(back.ExitCode, Is.Zero, back.Stdout);
            Assert.That(back.StableStdout, Is.EqualTo(real.StableStdout.Replace("t.qcow2", "c.qcow2", StringComparison.Ordinal)));
            Assert.That(ToolRunner.Run(ToolRunner.RealQemuImg, _dir, ["check", "c.qcow2"]).ExitCode, Is.Zero);
        });
    }

    [Test]
    public void Interactive_SameOutputAsReal()
    {
        Real("create", "-q", "-f", "qcow2", "t.qcow2", "1M");
        const string input = "write -q -P 1 0 4k\n\nread -P 1 0 4k\nlength\nread 0 2M\n";
        ToolResult colo = ToolRunner.Run(ToolRunner.ColoQemuIo, _dir, ["t.qcow2"], input);
        ToolResult real = ToolRunner.Run(ToolRunner.RealQemuIo, _dir, ["t.qcow2"], input);
        Assert.Multiple(() =>
        {
            Assert.That(colo.StableStdout, Is.EqualTo(real.StableStdout));
            Assert.That(colo.ExitCode, Is.EqualTo(real.ExitCode));
        });
    }
}
