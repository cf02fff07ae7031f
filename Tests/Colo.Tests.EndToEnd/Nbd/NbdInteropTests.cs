using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Colo.Block;
using Colo.Block.File;
using Colo.Block.Nbd;
using Colo.Block.Raw;
using Colo.Tests.EndToEnd.Infrastructure;
using Colo.Tests.EndToEnd.QemuImg;

namespace Colo.Tests.EndToEnd.Nbd;

/// <summary>
/// Colo's NBD server against Debian's real peers (libnbd's nbdinfo/nbdcopy, QEMU 7.2's qemu-img)
/// and Colo's NBD client against real qemu-nbd. Loopback and ephemeral ports only.
/// </summary>
[TestFixture]
[Category("Interop")]
[CancelAfter(120_000)]
public sealed class NbdInteropTests
{
    private const int ImageSize = 6 << 20;
    private string _dir = "";
    private byte[] _data = [];
    private NbdServer _server = null!;
    private BlockNode _node = null!;
    private BlockNode _roNode = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "nbd-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        _data = new byte[ImageSize];
        var rng = new Random(5);
        rng.NextBytes(_data.AsSpan(0, 1 << 20));
        rng.NextBytes(_data.AsSpan(3 << 20, 12345));
        rng.NextBytes(_data.AsSpan(ImageSize - 700, 700));
        File.WriteAllBytes(P("disk.raw"), _data);
        File.WriteAllBytes(P("ro.raw"), _data);
        _node = Open("disk.raw", readOnly: false);
        _roNode = Open("ro.raw", readOnly: true);
        _server = NbdServer.StartTcp(new IPEndPoint(IPAddress.Loopback, 0));
        _server.AddExport("disk", _node, writable: true);
        _server.AddExport("ro", _roNode, writable: false);
    }

    [TearDown]
    public async Task TearDown()
    {
        await _server.DisposeAsync();
        _node.Dispose();
        _roNode.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private string P(string name) => Path.Combine(_dir, name);

    private BlockNode Open(string name, bool readOnly) => BlockImage.Open(P(name), "raw", readOnly);

    private string Uri(string export) => $"nbd://127.0.0.1:{_server.Port}/{export}";

    private (int ExitCode, string Stdout, string Stderr) Run(string exe, params string[] args)
    {
        var r = QemuImgRunner.Run(exe, _dir, args);
        TestContext.Out.WriteLine($"{exe} {string.Join(' ', args)} -> {r.ExitCode}\n{r.Stdout}{r.Stderr}");
        return r;
    }

    // ---- real clients against Colo's server ----

    [Test]
    public void Nbdinfo_ShowsSizeAndWritability()
    {
        var r = Run("nbdinfo", Uri("disk"));
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        Assert.That(r.Stdout, Does.Contain($"export-size: {ImageSize}"));
        Assert.That(r.Stdout, Does.Contain("is_read_only: false"));
        Assert.That(r.Stdout, Does.Contain("base:allocation"));

        r = Run("nbdinfo", Uri("ro"));
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        Assert.That(r.Stdout, Does.Contain("is_read_only: true"));
    }

    [Test]
    public void NbdinfoList_NamesBothExports()
    {
        var r = Run("nbdinfo", "--list", $"nbd://127.0.0.1:{_server.Port}");
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        Assert.That(r.Stdout, Does.Contain("export=\"disk\":"));
        Assert.That(r.Stdout, Does.Contain("export=\"ro\":"));
        Assert.That(r.Stdout, Does.Contain("using structured packets"));
    }

    [Test]
    public void NbdinfoMap_ShowsDataAndZeroExtents()
    {
        var r = Run("nbdinfo", "--map", Uri("disk"));
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        Assert.That(r.Stdout, Does.Match(@"^\s*0\s+1048576\s+0\s+data"));
        Assert.That(r.Stdout, Does.Match(@"1048576\s+2097152\s+2\s+zero"));
    }

    [Test]
    public void Nbdcopy_FromAndToTheExport()
    {
        var r = Run("nbdcopy", Uri("ro"), P("out.raw"));
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        Assert.That(File.ReadAllBytes(P("out.raw")), Is.EqualTo(_data));

        var other = new byte[ImageSize];
        new Random(9).NextBytes(other.AsSpan(2 << 20, 1 << 20));
        File.WriteAllBytes(P("in.raw"), other);
        r = Run("nbdcopy", P("in.raw"), Uri("disk"));
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        _node.Flush();
        Assert.That(File.ReadAllBytes(P("disk.raw")), Is.EqualTo(other));
    }

    [Test]
    public void Nbdcopy_ToReadOnlyExport_Fails()
    {
        var r = Run("nbdcopy", P("ro.raw"), Uri("ro"));
        Assert.That(r.ExitCode, Is.Not.Zero);
        Assert.That(File.ReadAllBytes(P("ro.raw")), Is.EqualTo(_data));
    }

    [Test]
    public void QemuImg_InfoConvertCompare()
    {
        var r = Run(QemuImgRunner.RealQemuImg, "info", Uri("ro"));
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        Assert.That(r.Stdout, Does.Contain("virtual size: 6 MiB (6291456 bytes)"));

        r = Run(QemuImgRunner.RealQemuImg, "convert", "-f", "raw", "-O", "qcow2", Uri("ro"), P("copy.qcow2"));
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        r = Run(QemuImgRunner.RealQemuImg, "compare", "-f", "raw", "-F", "qcow2", Uri("ro"), P("copy.qcow2"));
        Assert.That(r.ExitCode, Is.Zero, r.Stdout + r.Stderr);

        r = Run(QemuImgRunner.RealQemuImg, "compare", "-f", "raw", "-F", "raw", P("ro.raw"), Uri("ro"));
        Assert.That(r.ExitCode, Is.Zero, r.Stdout + r.Stderr);
    }

    [Test]
    public void QemuImg_ConvertIntoTheExport()
    {
        var src = new byte[ImageSize];
        new Random(11).NextBytes(src.AsSpan(1 << 20, 70000));
        File.WriteAllBytes(P("src.raw"), src);
        var r = Run(QemuImgRunner.RealQemuImg, "convert", "-n", "-f", "raw", "-O", "raw", P("src.raw"), Uri("disk"));
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        _node.Flush();
        Assert.That(File.ReadAllBytes(P("disk.raw")), Is.EqualTo(src));
    }

    [Test]
    public void QemuImg_UnknownExport_Fails()
    {
        var r = Run(QemuImgRunner.RealQemuImg, "info", Uri("nope"));
        Assert.That(r.ExitCode, Is.Not.Zero);
    }

    // ---- Colo's client against real qemu-nbd ----

    [Test]
    public void ColoClient_AgainstQemuNbd_ReadsWritesFlushesTrims()
    {
        Run(QemuImgRunner.RealQemuImg, "convert", "-f", "raw", "-O", "qcow2", P("ro.raw"), P("img.qcow2"));
        int port = FreePort.Next();
        using Process qnbd = StartQemuNbd("-f", "qcow2", "-x", "name", "-p", port.ToString(), "-b", "127.0.0.1", "-t", P("img.qcow2"));
        try
        {
            using (NbdClient c = ConnectWithRetry(port, "name"))
            {
                Assert.That(c.Size, Is.EqualTo(ImageSize));
                Assert.That(c.StructuredReplies, Is.True);
                var back = new byte[ImageSize];
                c.Read(0, back);
                Assert.That(back, Is.EqualTo(_data));

                IReadOnlyList<NbdExtent> ext = c.BlockStatus(0, ImageSize);
                Assert.That(ext, Is.Not.Empty);
                Assert.That(ext.Sum(e => e.Length), Is.LessThanOrEqualTo(ImageSize));

                var patch = new byte[100_000];
                new Random(3).NextBytes(patch);
                c.Write(4 << 20, patch);
                c.WriteZeroes(0, 65536);
                c.Discard(65536, 65536);
                c.Flush();
                patch.CopyTo(_data, 4 << 20);
                Array.Clear(_data, 0, 65536);
                var chunk = new byte[65536];
                c.Read(65536, chunk);
                Array.Copy(chunk, 0, _data, 65536, 65536); // trimmed range: whatever the server reads back
            }

            var e2 = Assert.Throws<BlockException>(() => NbdClient.ConnectTcp("127.0.0.1", port, "wrong"));
            Assert.That(e2!.Message, Is.EqualTo("Requested export not available\nserver reported: export 'wrong' not present"));
        }
        finally
        {
            qnbd.Kill();
            qnbd.WaitForExit();
        }

        var r = Run(QemuImgRunner.RealQemuImg, "convert", "-f", "qcow2", "-O", "raw", P("img.qcow2"), P("after.raw"));
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        Assert.That(File.ReadAllBytes(P("after.raw")), Is.EqualTo(_data));
    }

    [Test]
    public void ColoClient_AgainstQemuNbd_DroppedConnection_IsBlockException()
    {
        int port = FreePort.Next();
        using Process qnbd = StartQemuNbd("-f", "raw", "-x", "name", "-p", port.ToString(), "-b", "127.0.0.1", "-t", P("ro.raw"));
        using NbdClient c = ConnectWithRetry(port, "name");
        c.Read(0, new byte[4096]);
        qnbd.Kill();
        qnbd.WaitForExit();
        Assert.Throws<BlockException>(() => c.Read(0, new byte[4096]));
    }

    private Process StartQemuNbd(params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/qemu-nbd") { UseShellExecute = false, RedirectStandardError = true, WorkingDirectory = _dir };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        return Process.Start(psi)!;
    }

    private static NbdClient ConnectWithRetry(int port, string export)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return NbdClient.ConnectTcp("127.0.0.1", port, export);
            }
            catch (BlockException e) when (e.InnerException is SocketException && sw.Elapsed < TimeSpan.FromSeconds(15))
            {
                Thread.Sleep(50);
            }
        }
    }
}
