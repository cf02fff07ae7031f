using Colo.Tests.EndToEnd.QemuIo;

namespace Colo.Tests.EndToEnd.QemuNbd;

/// <summary>
/// Colo's qemu-nbd against real clients (libnbd's nbdinfo/nbdcopy, QEMU 7.2's qemu-img and
/// qemu-io), compared with the real qemu-nbd serving a copy of the same image; and Colo's qemu-io
/// as a client of the real qemu-nbd.
/// </summary>
[TestFixture]
[Category("Interop")]
[CancelAfter(180_000)]
public sealed class QemuNbdInteropTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "qemunbd-interop-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        Tool(ToolRunner.RealQemuImg, "create", "-q", "-f", "qcow2", "t.qcow2", "4M");
        Assert.That(ToolRunner.Io(ToolRunner.RealQemuIo, _dir, "t.qcow2", ["write -P 0x5a 0 64k", "write -P 0x11 1M 12k", "write -z 2M 64k"]).ExitCode, Is.Zero);
        File.Copy(P("t.qcow2"), P("colo.qcow2"));
        File.Copy(P("t.qcow2"), P("real.qcow2"));
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private ToolResult Tool(string exe, params string[] args)
    {
        ToolResult r = ToolRunner.Run(exe, _dir, args);
        Assert.That(r.ExitCode, Is.Zero, $"{exe} {string.Join(' ', args)}: {r.Stderr}");
        return r;
    }

    private NbdServerProcess Colo(params string[] args) => NbdServerProcess.Start(ToolRunner.ColoQemuNbd, _dir, "colo.qcow2", args);

    private NbdServerProcess Real(params string[] args) => NbdServerProcess.Start(ToolRunner.RealQemuNbd, _dir, "real.qcow2", args);

    /// <summary>nbdinfo's "key: value" lines that describe the export itself (not the server's extras).</summary>
    private static string Describe(string nbdinfo, int port) => string.Join('\n', nbdinfo.Split('\n')
        .Select(l => l.Trim())
        .Where(l => l.StartsWith("export", StringComparison.Ordinal) || l.StartsWith("description:", StringComparison.Ordinal)
            || l.StartsWith("is_read_only:", StringComparison.Ordinal) || l.StartsWith("can_flush:", StringComparison.Ordinal)
            || l.StartsWith("can_trim:", StringComparison.Ordinal) || l.StartsWith("can_zero:", StringComparison.Ordinal)
            || l.StartsWith("can_fua:", StringComparison.Ordinal) || l.StartsWith("block_size", StringComparison.Ordinal)
            || l.StartsWith("uri:", StringComparison.Ordinal) || l == "base:allocation")
        .Select(l => l.Replace($":{port}/", ":PORT/", StringComparison.Ordinal)));

    [TestCase("")]
    [TestCase("-r")]
    [TestCase("-x disk0 -D first-disk")]
    public void Nbdinfo_SeesTheSameExportAsFromRealQemuNbd(string options)
    {
        string[] args = options.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        using NbdServerProcess colo = Colo(["-t", .. args]);
        using NbdServerProcess real = Real(["-t", .. args]);
        string export = args.Length > 1 && args[0] == "-x" ? args[1] : "";
        string c = Describe(Tool("nbdinfo", colo.Uri(export)).Stdout, colo.Port);
        string r = Describe(Tool("nbdinfo", real.Uri(export)).Stdout, real.Port);
        Assert.That(c, Is.EqualTo(r));
        Assert.That(Describe(Tool("nbdinfo", "--list", colo.Uri()).Stdout, colo.Port), Is.EqualTo(Describe(Tool("nbdinfo", "--list", real.Uri()).Stdout, real.Port)));
    }

    [Test]
    public void Nbdcopy_OutAndIn_RoundTripsTheImage()
    {
        using NbdServerProcess colo = Colo("-t");
        Tool("nbdcopy", colo.Uri(), P("out.raw"));
        Tool(ToolRunner.RealQemuImg, "compare", "-f", "qcow2", "-F", "raw", "t.qcow2", "out.raw");

        var data = new byte[4 << 20];
        new Random(7).NextBytes(data.AsSpan(0, 1 << 20));
        new Random(8).NextBytes(data.AsSpan(3 << 20, 4096));
        File.WriteAllBytes(P("in.raw"), data);
        Tool("nbdcopy", P("in.raw"), colo.Uri());
        colo.Dispose();
        Tool(ToolRunner.RealQemuImg, "compare", "-f", "raw", "-F", "qcow2", "in.raw", "colo.qcow2");
        Tool(ToolRunner.RealQemuImg, "check", "colo.qcow2");
    }

    [Test]
    public void QemuImgInfo_OverNbd_SameAsRealServer()
    {
        using NbdServerProcess colo = Colo("-t", "-x", "e");
        using NbdServerProcess real = Real("-t", "-x", "e");
        string c = Tool(ToolRunner.RealQemuImg, "info", colo.Uri("e")).Stdout.Replace($":{colo.Port}/", ":PORT/", StringComparison.Ordinal);
        string r = Tool(ToolRunner.RealQemuImg, "info", real.Uri("e")).Stdout.Replace($":{real.Port}/", ":PORT/", StringComparison.Ordinal);
        Assert.That(c, Is.EqualTo(r));
    }

    private static readonly string[] s_script =
    [
        "read -P 0x5a 0 64k", "read -P 0x11 1M 12k", "read -P 0 2M 64k", "read -v 1M 20", "write -P 0x22 3M 4k", "read -P 0x22 3M 4k",
        "write -z 1M 4k", "read -P 0 1M 4k", "discard 3M 64k", "flush", "length", "read 0 8M", "aio_write -P 3 200k 4k", "aio_flush", "aio_read -P 3 200k 4k", "aio_flush",
    ];

    [Test]
    public void RealQemuIo_OverColoServer_SameAsOverRealServer()
    {
        using NbdServerProcess colo = Colo("-t");
        using NbdServerProcess real = Real("-t");
        ToolResult c = ToolRunner.Io(ToolRunner.RealQemuIo, _dir, colo.Uri(), s_script, "-f", "raw");
        ToolResult r = ToolRunner.Io(ToolRunner.RealQemuIo, _dir, real.Uri(), s_script, "-f", "raw");
        Assert.Multiple(() =>
        {
            Assert.That(c.StableStdout, Is.EqualTo(r.StableStdout));
            Assert.That(c.ExitCode, Is.EqualTo(r.ExitCode));
        });
        colo.Dispose();
        real.Dispose();
        Tool(ToolRunner.RealQemuImg, "compare", "colo.qcow2", "real.qcow2");
    }

    [Test]
    public void ColoQemuIo_OverRealServer_SameAsRealQemuIo()
    {
        using NbdServerProcess forColo = Real("-t");
        using NbdServerProcess forReal = NbdServerProcess.Start(ToolRunner.RealQemuNbd, _dir, "colo.qcow2", "-t");
        ToolResult c = ToolRunner.Io(ToolRunner.ColoQemuIo, _dir, forColo.Uri(), s_script, "-f", "raw");
        ToolResult r = ToolRunner.Io(ToolRunner.RealQemuIo, _dir, forReal.Uri(), s_script, "-f", "raw");
        Assert.Multiple(() =>
        {
            Assert.That(c.StableStdout, Is.EqualTo(r.StableStdout));
            Assert.That(c.ExitCode, Is.EqualTo(r.ExitCode));
        });
    }

    [Test]
    public void WithoutPersistent_ListingDoesNotEndTheServer_ButAServedClientDoes()
    {
        using NbdServerProcess colo = Colo();
        Tool("nbdinfo", "--list", colo.Uri());
        Assert.That(colo.HasExited, Is.False);
        Tool("nbdinfo", colo.Uri());
        colo.WaitForExit();
    }
}
