namespace Colo.Tests.EndToEnd.QemuImg;

/// <summary>
/// Cross-checks with the real QEMU 7.2 qemu-img/qemu-io (Debian qemu-utils, installed by CI):
/// what Colo writes checks clean and reads the same in QEMU, and the reverse.
/// </summary>
[TestFixture]
[Category("Interop")]
public sealed class QemuImgInteropTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "interop-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private void WriteRandomRaw(string name, int seed)
    {
        var data = new byte[6 << 20];
        var rng = new Random(seed);
        rng.NextBytes(data.AsSpan(0, 1 << 20));
        rng.NextBytes(data.AsSpan(3 << 20, 12345));
        rng.NextBytes(data.AsSpan((6 << 20) - 700, 700));
        File.WriteAllBytes(P(name), data);
    }

    [TestCase("")]
    [TestCase("compat=0.10")]
    [TestCase("cluster_size=4096,lazy_refcounts=on")]
    [TestCase("cluster_size=512")]
    [TestCase("cluster_size=2M")]
    [TestCase("refcount_bits=1")]
    [TestCase("refcount_bits=64")]
    [TestCase("compression_type=zstd")]
    public void Create_SameBytesAsQemu(string opts)
    {
        string[] o = opts.Length > 0 ? ["-o", opts] : [];
        var colo = QemuImgRunner.Colo(_dir, ["create", "-f", "qcow2", .. o, "c.qcow2", "100M"]);
        var real = QemuImgRunner.Real(_dir, ["create", "-f", "qcow2", .. o, "q.qcow2", "100M"]);
        Assert.Multiple(() =>
        {
            Assert.That(colo.ExitCode, Is.EqualTo(real.ExitCode));
            Assert.That(colo.Stdout.Replace("c.qcow2", "q.qcow2"), Is.EqualTo(real.Stdout));
            Assert.That(File.ReadAllBytes(P("c.qcow2")), Is.EqualTo(File.ReadAllBytes(P("q.qcow2"))));
        });
    }

    [Test]
    public void Create_WithBacking_SameBytesAndInfoAsQemu()
    {
        QemuImgRunner.Real(_dir, "create", "-q", "-f", "qcow2", "base.qcow2", "1G");
        QemuImgRunner.Colo(_dir, "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "c.qcow2");
        QemuImgRunner.Real(_dir, "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "q.qcow2");
        Assert.That(File.ReadAllBytes(P("c.qcow2")), Is.EqualTo(File.ReadAllBytes(P("q.qcow2"))));
        foreach (string[] args in new[] { new[] { "info" }, ["info", "--output=json"], ["info", "--backing-chain"], ["info", "--backing-chain", "--output=json"] })
        {
            var colo = QemuImgRunner.Colo(_dir, [.. args, "c.qcow2"]);
            var real = QemuImgRunner.Real(_dir, [.. args, "c.qcow2"]);
            Assert.That(colo.Stdout, Is.EqualTo(real.Stdout), string.Join(' ', args));
        }
    }

    [TestCase("")]
    [TestCase("compat=0.10")]
    [TestCase("cluster_size=512")]
    [TestCase("cluster_size=4096,refcount_bits=1")]
    [TestCase("refcount_bits=64")]
    public void ColoWritten_ChecksCleanAndComparesEqualInQemu(string opts)
    {
        WriteRandomRaw("in.raw", opts.Length);
        string[] o = opts.Length > 0 ? ["-o", opts] : [];
        Assert.That(QemuImgRunner.Colo(_dir, ["convert", "-O", "qcow2", .. o, "in.raw", "c.qcow2"]).ExitCode, Is.Zero);
        var check = QemuImgRunner.Real(_dir, "check", "c.qcow2");
        Assert.That(check.ExitCode, Is.Zero, check.Stdout + check.Stderr);
        var cmp = QemuImgRunner.Real(_dir, "compare", "in.raw", "c.qcow2");
        Assert.That(cmp.Stdout, Is.EqualTo("Images are identical.\n"));
        Assert.That(QemuImgRunner.Colo(_dir, "info", "--output=json", "c.qcow2").Stdout.Replace("\"actual-size\"", ""),
            Is.EqualTo(QemuImgRunner.Real(_dir, "info", "--output=json", "c.qcow2").Stdout.Replace("\"actual-size\"", "")));
    }

    [TestCase("65536")]
    [TestCase("512")]
    [TestCase("2M")]
    public void ColoCompressed_ChecksCleanAndComparesEqualInQemu(string clusterSize)
    {
        // Half compressible text, half random: exercises packed compressed clusters and the
        // uncompressed fallback; QEMU inflates with a 4 KiB window, which Colo's encoder respects.
        var text = System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 40000).Select(i => $"line {i} colo qcow2\n")));
        var data = new byte[3 << 20];
        text.AsSpan(0, Math.Min(text.Length, 1 << 20)).CopyTo(data);
        new Random(1).NextBytes(data.AsSpan(2 << 20, 500_000));
        File.WriteAllBytes(P("in.raw"), data);
        Assert.That(QemuImgRunner.Colo(_dir, "convert", "-c", "-O", "qcow2", "-o", $"cluster_size={clusterSize}", "in.raw", "c.qcow2").ExitCode, Is.Zero);
        var check = QemuImgRunner.Real(_dir, "check", "c.qcow2");
        Assert.That(check.ExitCode, Is.Zero, check.Stdout + check.Stderr);
        Assert.That(check.Stdout, Does.Contain("compressed clusters"));
        Assert.That(QemuImgRunner.Real(_dir, "compare", "in.raw", "c.qcow2").Stdout, Is.EqualTo("Images are identical.\n"));
    }

    [Test]
    public void ColoOverlayWrites_OnQemuBase_ReadBackInQemu()
    {
        WriteRandomRaw("in.raw", 9);
        QemuImgRunner.Real(_dir, "convert", "-O", "qcow2", "in.raw", "base.qcow2");
        QemuImgRunner.Colo(_dir, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2");
        var patch = new byte[6 << 20];
        new Random(10).NextBytes(patch.AsSpan(65000, 3000));
        File.WriteAllBytes(P("patch.raw"), patch);
        // Colo writes only the non-zero 4 KiB blocks of patch.raw into the overlay: partial clusters COW from base.
        Assert.That(QemuImgRunner.Colo(_dir, "convert", "-n", "-O", "qcow2", "patch.raw", "top.qcow2").ExitCode, Is.Zero);
        Assert.That(QemuImgRunner.Real(_dir, "check", "top.qcow2").ExitCode, Is.Zero);
        QemuImgRunner.Real(_dir, "convert", "-O", "raw", "top.qcow2", "q.raw");
        QemuImgRunner.Colo(_dir, "convert", "-O", "raw", "top.qcow2", "c.raw");
        Assert.That(File.ReadAllBytes(P("c.raw")), Is.EqualTo(File.ReadAllBytes(P("q.raw"))));
    }

    [TestCase("-c -O qcow2")]
    [TestCase("-c -O qcow2 -o compression_type=zstd")]
    [TestCase("-O qcow2 -o compat=0.10")]
    [TestCase("-O qcow2 -o cluster_size=1024")]
    public void QemuWritten_ReadIdenticallyByColo(string convertArgs)
    {
        WriteRandomRaw("in.raw", 4);
        Assert.That(QemuImgRunner.Real(_dir, ["convert", .. convertArgs.Split(' '), "in.raw", "q.qcow2"]).ExitCode, Is.Zero);
        var cmp = QemuImgRunner.Colo(_dir, "compare", "in.raw", "q.qcow2");
        Assert.That((cmp.ExitCode, cmp.Stdout), Is.EqualTo((0, "Images are identical.\n")));
        Assert.That(QemuImgRunner.Colo(_dir, "check", "q.qcow2").ExitCode, Is.Zero);
        foreach (string[] args in new[] { new[] { "check" }, ["check", "--output=json"], ["info"], ["info", "--output=json"] })
        {
            Assert.That(QemuImgRunner.Colo(_dir, [.. args, "q.qcow2"]).Stdout, Is.EqualTo(QemuImgRunner.Real(_dir, [.. args, "q.qcow2"]).Stdout), string.Join(' ', args));
        }
    }

    [Test]
    public void QemuIoZeroAndDataWrites_OnChain_ReadIdenticallyByColo()
    {
        WriteRandomRaw("in.raw", 5);
        QemuImgRunner.Real(_dir, "convert", "-c", "-O", "qcow2", "in.raw", "base.qcow2");
        QemuImgRunner.Real(_dir, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2");
        var io = QemuImgRunner.Run(QemuImgRunner.RealQemuIo, _dir, "-c", "write -P 0x55 100k 300k", "-c", "write -z 1M 1M", "-c", "discard 3M 64k", "top.qcow2");
        Assert.That(io.ExitCode, Is.Zero, io.Stderr);
        QemuImgRunner.Real(_dir, "convert", "-O", "raw", "top.qcow2", "q.raw");
        QemuImgRunner.Colo(_dir, "convert", "-O", "raw", "top.qcow2", "c.raw");
        Assert.That(File.ReadAllBytes(P("c.raw")), Is.EqualTo(File.ReadAllBytes(P("q.raw"))));
    }

    [Test]
    public void CheckOutput_OnLeakyImage_MatchesQemu()
    {
        QemuImgRunner.Real(_dir, "create", "-q", "-f", "qcow2", "a.qcow2", "1G");
        QemuImgRunner.Run(QemuImgRunner.RealQemuIo, _dir, "-c", "write -P 1 0 64k", "a.qcow2");
        using (FileStream f = File.OpenWrite(P("a.qcow2")))
        {
            f.SetLength(7 * 65536);
            f.Seek(0x20000 + 12, SeekOrigin.Begin);
            f.Write([0, 1]);
        }

        foreach (string[] args in new[] { new[] { "check" }, ["check", "--output=json"], ["check", "-r", "leaks"] })
        {
            File.Copy(P("a.qcow2"), P("c.qcow2"), overwrite: true);
            File.Copy(P("a.qcow2"), P("q.qcow2"), overwrite: true);
            var colo = QemuImgRunner.Colo(_dir, [.. args, "c.qcow2"]);
            var real = QemuImgRunner.Real(_dir, [.. args, "q.qcow2"]);
            Assert.Multiple(() =>
            {
                Assert.That(colo.ExitCode, Is.EqualTo(real.ExitCode), string.Join(' ', args));
                Assert.That(colo.Stdout.Replace("c.qcow2", "q.qcow2"), Is.EqualTo(real.Stdout), string.Join(' ', args));
                Assert.That(colo.Stderr, Is.EqualTo(real.Stderr), string.Join(' ', args));
            });
            Assert.That(File.ReadAllBytes(P("c.qcow2")), Is.EqualTo(File.ReadAllBytes(P("q.qcow2"))), "repaired bytes " + string.Join(' ', args));
        }
    }

    [Test]
    public void QemuInternalSnapshots_InfoCheckAndRead_MatchQemu_WritesRefused()
    {
        QemuImgRunner.Real(_dir, "create", "-q", "-f", "qcow2", "s.qcow2", "16M");
        QemuImgRunner.Run(QemuImgRunner.RealQemuIo, _dir, "-c", "write -P 1 0 1M", "s.qcow2");
        QemuImgRunner.Real(_dir, "snapshot", "-c", "snap1", "s.qcow2");
        QemuImgRunner.Run(QemuImgRunner.RealQemuIo, _dir, "-c", "write -P 2 512k 1M", "s.qcow2");
        foreach (string[] args in new[] { new[] { "info" }, ["info", "--output=json"], ["check"], ["check", "--output=json"] })
        {
            var colo = QemuImgRunner.Colo(_dir, [.. args, "s.qcow2"]);
            var real = QemuImgRunner.Real(_dir, [.. args, "s.qcow2"]);
            Assert.That((colo.ExitCode, colo.Stdout), Is.EqualTo((real.ExitCode, real.Stdout)), string.Join(' ', args));
        }

        QemuImgRunner.Real(_dir, "convert", "-O", "raw", "s.qcow2", "q.raw");
        QemuImgRunner.Colo(_dir, "convert", "-O", "raw", "s.qcow2", "c.raw");
        Assert.That(File.ReadAllBytes(P("c.raw")), Is.EqualTo(File.ReadAllBytes(P("q.raw"))));
        var write = QemuImgRunner.Colo(_dir, "convert", "-n", "-O", "qcow2", "q.raw", "s.qcow2");
        Assert.That(write.ExitCode, Is.EqualTo(1));
        Assert.That(write.Stderr, Does.Contain("internal snapshots is not supported by Colo"));
    }
}
