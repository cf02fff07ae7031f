namespace Colo.Tests.EndToEnd.QemuImg;

/// <summary>Colo's qemu-img on its own: output shapes and exit codes as QEMU 7.2's.</summary>
[TestFixture]
public sealed class QemuImgTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "qemu-img-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void Create_DocumentationCommand_PrintsQemuLine()
    {
        string path = Path.Combine(_dir, "secondary-active.qcow2");
        var (rc, stdout, _) = QemuImgRunner.Colo(_dir, "create", "-f", "qcow2", path, "10G");
        Assert.Multiple(() =>
        {
            Assert.That(rc, Is.Zero);
            Assert.That(stdout, Is.EqualTo($"Formatting '{path}', fmt=qcow2 cluster_size=65536 extended_l2=off compression_type=zlib size=10737418240 lazy_refcounts=off refcount_bits=16\n"));
            Assert.That(new FileInfo(path).Length, Is.EqualTo(196768));
        });
    }

    [TestCase(new[] { "create", "-f", "qcow2", "x.qcow2" }, "qemu-img: x.qcow2: Image creation needs a size parameter\n")]
    [TestCase(new[] { "create", "-f", "foo", "x.qcow2", "1M" }, "qemu-img: x.qcow2: Unknown file format 'foo'\n")]
    [TestCase(new[] { "create", "-f", "qcow2", "-o", "foo=1", "x.qcow2", "1M" }, "qemu-img: x.qcow2: Invalid parameter 'foo'\n")]
    [TestCase(new[] { "create", "-f", "qcow2", "-o", "cluster_size=3000", "x.qcow2", "1M" }, null)]
    [TestCase(new[] { "create", "-f", "qcow2", "-b", "base.qcow2", "x.qcow2" }, "qemu-img: x.qcow2: Backing file specified without backing format\n")]
    [TestCase(new[] { "info", "nonexist" }, "qemu-img: Could not open 'nonexist': Could not open 'nonexist': No such file or directory\n")]
    [TestCase(new[] { "foo" }, "qemu-img: Command not found: foo\nTry 'qemu-img --help' for more information\n")]
    public void BadInput_ExitsOneWithQemuMessage(string[] args, string? stderr)
    {
        var (rc, _, err) = QemuImgRunner.Colo(_dir, args);
        Assert.That(rc, Is.EqualTo(1));
        if (stderr != null)
        {
            Assert.That(err, Is.EqualTo(stderr));
        }
        else
        {
            Assert.That(err, Does.StartWith("qemu-img: "));
        }
    }

    [Test]
    public void Check_RawImage_Exits63()
    {
        QemuImgRunner.Colo(_dir, "create", "-f", "raw", "r.img", "1M");
        var (rc, _, err) = QemuImgRunner.Colo(_dir, "check", "r.img");
        Assert.That((rc, err), Is.EqualTo((63, "qemu-img: This image format does not support checks\n")));
    }

    [Test]
    public void Check_Leak_Exits3_ThenRepairExits0()
    {
        QemuImgRunner.Colo(_dir, "create", "-q", "-f", "qcow2", "l.qcow2", "1M");
        string path = Path.Combine(_dir, "l.qcow2");
        using (FileStream f = File.OpenWrite(path))
        {
            f.Seek(0x20000 + 8, SeekOrigin.Begin); // cluster 4's refcount: nothing references it
            f.Write([0, 1]);
            f.SetLength(5 * 65536);
        }

        var (rc, stdout, stderr) = QemuImgRunner.Colo(_dir, "check", "l.qcow2");
        Assert.Multiple(() =>
        {
            Assert.That(rc, Is.EqualTo(3));
            Assert.That(stderr, Is.EqualTo("Leaked cluster 4 refcount=1 reference=0\n"));
            Assert.That(stdout, Is.EqualTo("\n1 leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\nImage end offset: 327680\n"));
        });
        (rc, stdout, _) = QemuImgRunner.Colo(_dir, "check", "-r", "leaks", "l.qcow2");
        Assert.That(rc, Is.Zero);
        Assert.That(stdout, Does.Contain("    1 leaked clusters\n    0 corruptions\n\nDouble checking the fixed image now...\nNo errors were found on the image.\n"));
    }

    [Test]
    public void Convert_RawToQcow2AndBack_Compares_Identical()
    {
        var data = new byte[3 << 20];
        new Random(3).NextBytes(data.AsSpan(100_000, 1_000_000));
        File.WriteAllBytes(Path.Combine(_dir, "in.raw"), data);
        Assert.That(QemuImgRunner.Colo(_dir, "convert", "-O", "qcow2", "in.raw", "x.qcow2").ExitCode, Is.Zero);
        Assert.That(QemuImgRunner.Colo(_dir, "convert", "-f", "qcow2", "-O", "raw", "x.qcow2", "out.raw").ExitCode, Is.Zero);
        Assert.That(File.ReadAllBytes(Path.Combine(_dir, "out.raw")), Is.EqualTo(data));
        var (rc, stdout, _) = QemuImgRunner.Colo(_dir, "compare", "in.raw", "x.qcow2");
        Assert.That((rc, stdout), Is.EqualTo((0, "Images are identical.\n")));
        Assert.That(QemuImgRunner.Colo(_dir, "check", "x.qcow2").ExitCode, Is.Zero);
    }

    [Test]
    public void Commit_CopiesTopIntoBase_AndEmptiesTop()
    {
        QemuImgRunner.Colo(_dir, "create", "-q", "-f", "qcow2", "base.qcow2", "4M");
        QemuImgRunner.Colo(_dir, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2");
        var data = new byte[4 << 20];
        new Random(5).NextBytes(data.AsSpan(70_000, 200_000));
        File.WriteAllBytes(Path.Combine(_dir, "d.raw"), data);
        Assert.That(QemuImgRunner.Colo(_dir, "convert", "-n", "-O", "qcow2", "d.raw", "top.qcow2").ExitCode, Is.Zero);
        var (rc, stdout, _) = QemuImgRunner.Colo(_dir, "commit", "top.qcow2");
        Assert.That((rc, stdout), Is.EqualTo((0, "Image committed.\n")));
        Assert.That(QemuImgRunner.Colo(_dir, "compare", "base.qcow2", "d.raw").ExitCode, Is.Zero);
        Assert.That(QemuImgRunner.Colo(_dir, "check", "top.qcow2").ExitCode, Is.Zero);
        Assert.That(QemuImgRunner.Colo(_dir, "check", "base.qcow2").ExitCode, Is.Zero);
    }
}
