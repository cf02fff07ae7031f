using System.Text.RegularExpressions;

namespace Colo.Tests.EndToEnd.QemuImg;

/// <summary>qemu-img bench: QEMU's messages and checks, and writes that really land (checked by real qemu-io).</summary>
[TestFixture]
public sealed partial class QemuImgBenchTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "colo-bench-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        Assume.That(File.Exists(QemuImgRunner.RealQemuImg), "qemu-utils not installed");
        Assert.That(QemuImgRunner.Real(_dir, "create", "-q", "-f", "qcow2", "b.qcow2", "8M").ExitCode, Is.Zero);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    [GeneratedRegex(@"Run completed in \d+\.\d{3} seconds\.")]
    private static partial Regex Timing();

    [TestCase("bench", "-w", "-c", "300", "-f", "qcow2", "--pattern=0xab", "b.qcow2")]
    [TestCase("bench", "-c", "100", "-S", "1M", "-s", "4096", "b.qcow2")]
    [TestCase("bench", "-c", "8", "-s", "1M", "-d", "4", "-w", "-t", "none", "-n", "--flush-interval=2", "b.qcow2")]
    [TestCase("bench", "-c", "8", "-s", "1M", "-d", "2", "-w", "--flush-interval=2", "b.qcow2")]
    [TestCase("bench", "-q", "-c", "10", "b.qcow2")]
    [TestCase("bench", "--pattern=0x1ff", "-w", "b.qcow2")]
    [TestCase("bench", "--flush-interval=5", "b.qcow2")]
    [TestCase("bench", "-t", "bogus", "b.qcow2")]
    [TestCase("bench", "-c", "x", "b.qcow2")]
    [TestCase("bench", "-i", "bogus", "-c", "1", "b.qcow2")]
    [TestCase("bench", "nonexist.qcow2")]
    public void Bench_SameOutputAndExitCodeAsQemu(params string[] args)
    {
        var real = QemuImgRunner.Real(_dir, args);
        var colo = QemuImgRunner.Colo(_dir, args);
        Assert.That(colo.ExitCode, Is.EqualTo(real.ExitCode), colo.Stderr);
        Assert.That(Timing().Replace(colo.Stdout, "T"), Is.EqualTo(Timing().Replace(real.Stdout, "T")));
        Assert.That(colo.Stderr, Is.EqualTo(real.Stderr));
    }

    [Test]
    public void Bench_Write_PatternLandsAndImageChecksClean()
    {
        var colo = QemuImgRunner.Colo(_dir, "bench", "-w", "-c", "64", "-s", "64k", "-S", "128k", "-o", "64k", "--pattern=0x5c", "b.qcow2");
        Assert.That(colo.ExitCode, Is.Zero, colo.Stderr);
        var read = QemuImgRunner.Run(QemuImgRunner.RealQemuIo, _dir, "-f", "qcow2", "-c", "read -P 0x5c 64k 64k", "-c", "read -P 0 0 64k", "-c", "read -P 0x5c 8128k 64k", "b.qcow2");
        Assert.That(read.Stdout, Does.Not.Contain("Pattern verification failed"), read.Stdout);
        Assert.That(read.ExitCode, Is.Zero);
        Assert.That(QemuImgRunner.Real(_dir, "check", "b.qcow2").ExitCode, Is.Zero);
    }
}
