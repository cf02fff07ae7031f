namespace Colo.Tests.EndToEnd.QemuIo;

/// <summary>
/// Colo's published qemu-io on its own: the output lines, error texts and exit statuses QEMU 7.2's
/// qemu-io gives for the same input (recorded from Debian's qemu-utils 7.2).
/// </summary>
[TestFixture]
public sealed class QemuIoTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "qemuio-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        Assert.That(ToolRunner.Run(ToolRunner.ColoQemuImg, _dir, ["create", "-q", "-f", "qcow2", "t.qcow2", "1M"]).ExitCode, Is.Zero);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private ToolResult Io(params string[] commands) => ToolRunner.Io(ToolRunner.ColoQemuIo, _dir, "t.qcow2", commands);

    [Test]
    public void WriteRead_PrintsQemuLinesAndTimingShape()
    {
        ToolResult r = Io("write -P 0xab 0 64k", "read -P 0xab 0 64k");
        string[] lines = r.Stdout.Split('\n');
        Assert.Multiple(() =>
        {
            Assert.That(r.ExitCode, Is.Zero, r.Stderr);
            Assert.That(lines[0], Is.EqualTo("wrote 65536/65536 bytes at offset 0"));
            Assert.That(lines[1], Does.Match(@"^64 KiB, 1 ops; \d\d\.\d\d sec \([0-9.]+ (bytes|KiB|MiB|GiB|TiB)/sec and [0-9]+\.\d{4} ops/sec\)$"));
            Assert.That(lines[2], Is.EqualTo("read 65536/65536 bytes at offset 0"));
        });
    }

    [Test]
    public void PatternMismatch_PrintsVerificationLineAndExitsOne()
    {
        ToolResult r = Io("write -P 1 0 4k", "read -P 2 0 4k");
        Assert.Multiple(() =>
        {
            Assert.That(r.StableStdout, Is.EqualTo("wrote 4096/4096 bytes at offset 0\nPattern verification failed at offset 0, 4096 bytes\nread 4096/4096 bytes at offset 0"));
            Assert.That(r.ExitCode, Is.EqualTo(1));
        });
    }

    [Test]
    public void PatternRange_SAndL_VerifyOnlyThatPart()
    {
        ToolResult r = Io("write -P 5 0 2", "read -q -P 5 -s 0 -l 2 0 4", "read -q -P 5 -s 1 -l 2 0 4");
        Assert.That(r.StableStdout, Is.EqualTo("wrote 2/2 bytes at offset 0\nPattern verification failed at offset 1, 2 bytes"));
    }

    [Test]
    public void ExitStatus_IsOneOnceAnyCommandFailed_EvenIfLaterOnesSucceed()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Io("read 0 2M", "read 0 4k").ExitCode, Is.EqualTo(1));
            Assert.That(Io("read 0 4k", "length").ExitCode, Is.Zero);
            Assert.That(Io("foo", "length").ExitCode, Is.EqualTo(1));
        });
    }

    [Test]
    public void AioErrors_AreReportedButDoNotChangeTheExitStatus()
    {
        ToolResult r = Io("aio_read 0 2M", "aio_flush");
        Assert.Multiple(() =>
        {
            Assert.That(r.StableStdout, Is.EqualTo("readv failed: Input/output error"));
            Assert.That(r.ExitCode, Is.Zero);
        });
    }

    [Test]
    public void Errors_UseQemuTextsAndStreams()
    {
        ToolResult r = Io("read 0 2M", "foo", "read", "read 0 abc", "read 0 3G", "write -z -P 1 0 1", "write -u 0 1", "write -P 300 0 1", "read 0 1.5", "read 0 0x100000000000000000");
        Assert.Multiple(() =>
        {
            Assert.That(r.StableStdout, Is.EqualTo(
                "read failed: Input/output error\n" +
                "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- abc\n" +
                "length cannot exceed 2147483136, given 3G\n" +
                "Only one of -z, -P, and -s can be specified at the same time\n" +
                "-u requires -z to be specified\n" +
                "300 is not a valid pattern byte\n" +
                "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- 1.5\n" +
                "Parsing error: argument too large -- 0x100000000000000000"));
            Assert.That(r.Stderr, Is.EqualTo("command \"foo\" not found\nbad argument count 0 to read, expected at least 2 arguments\n"));
        });
    }

    [Test]
    public void UnsupportedQemuCommand_IsRefusedByName()
    {
        ToolResult r = Io("reopen -r");
        Assert.Multiple(() =>
        {
            Assert.That(r.Stderr, Is.EqualTo("reopen: command not supported by Colo's qemu-io\n"));
            Assert.That(r.ExitCode, Is.EqualTo(1));
        });
    }

    [Test]
    public void InvalidCommandOption_GetoptMessageOnStderrAndUsageLineOnStdout()
    {
        ToolResult r = Io("read -x 0 1");
        Assert.Multiple(() =>
        {
            Assert.That(r.Stderr, Is.EqualTo("read: invalid option -- 'x'\n"));
            Assert.That(r.Stdout, Does.StartWith("read [-abCqv] [-P pattern [-s off] [-l len]] off len -- "));
            Assert.That(r.ExitCode, Is.EqualTo(1));
        });
    }

    [Test]
    public void HexDump_SixteenBytesPerLine_ShortLastLine()
    {
        ToolResult r = Io("write -P 0x41 0 3", "read -v 0 20");
        Assert.That(r.StableStdout, Is.EqualTo(
            "wrote 3/3 bytes at offset 0\n" +
            "00000000:  41 41 41 00 00 00 00 00 00 00 00 00 00 00 00 00  AAA.............\n" +
            "00000010:  00 00 00 00  ....\n" +
            "read 20/20 bytes at offset 0"));
    }

    [Test]
    public void SizeSuffixesAndHex_AreAccepted()
    {
        ToolResult r = Io("read -q 0x1000 1.5k", "read 1k 1b", "read -q 0 1M");
        Assert.Multiple(() =>
        {
            Assert.That(r.StableStdout, Is.EqualTo("read 1/1 bytes at offset 1024"));
            Assert.That(r.ExitCode, Is.Zero);
        });
    }

    [Test]
    public void MapLengthInfo_OnFreshAndWrittenQcow2()
    {
        ToolResult r = Io("map", "write -q 0 64k", "write -q -z 64k 64k", "map", "length", "info", "alloc 0 128k", "alloc 128k 64k");
        Assert.That(r.StableStdout, Is.EqualTo(
            "1 MiB (0x100000) bytes not allocated at offset 0 bytes (0x0)\n" +
            "128 KiB (0x20000) bytes     allocated at offset 0 bytes (0x0)\n" +
            "896 KiB (0xe0000) bytes not allocated at offset 128 KiB (0x20000)\n" +
            "1 MiB\n" +
            "format name: qcow2\n" +
            "cluster size: 64 KiB\n" +
            "vm state offset: 512 MiB\n" +
            "Format specific information:\n" +
            "    compat: 1.1\n" +
            "    compression type: zlib\n" +
            "    lazy refcounts: false\n" +
            "    refcount bits: 16\n" +
            "    corrupt: false\n" +
            "    extended l2: false\n" +
            "131072/131072 bytes allocated at offset 0 bytes\n" +
            "0/65536 bytes allocated at offset 128 KiB"));
    }

    [Test]
    public void Quit_StopsProcessingAndAliasesWork()
    {
        ToolResult r = Io("w -q 0 1", "r -q 0 1", "q", "length");
        Assert.Multiple(() =>
        {
            Assert.That(r.Stdout, Is.Empty);
            Assert.That(r.ExitCode, Is.Zero);
        });
    }

    [Test]
    public void Interactive_ReadsStdinBehindPrompt()
    {
        ToolResult r = ToolRunner.Run(ToolRunner.ColoQemuIo, _dir, ["t.qcow2"], "read -q 0 1\n\n  \nfoo\nlength\n");
        Assert.Multiple(() =>
        {
            Assert.That(r.Stdout, Is.EqualTo("qemu-io> qemu-io> qemu-io> qemu-io> qemu-io> 1 MiB\nqemu-io> "));
            Assert.That(r.Stderr, Is.EqualTo("command \"foo\" not found\n"));
            Assert.That(r.ExitCode, Is.EqualTo(1));
        });
    }

    [Test]
    public void ReadOnly_RefusesWritesWithPermissionError()
    {
        ToolResult r = ToolRunner.Io(ToolRunner.ColoQemuIo, _dir, "t.qcow2", ["write 0 1", "read -q 0 1"], "-r");
        Assert.Multiple(() =>
        {
            Assert.That(r.Stderr, Is.EqualTo("qemu-io: Block node is read-only\n"));
            Assert.That(r.ExitCode, Is.EqualTo(1));
        });
    }

    [Test]
    public void OpenClose_WithoutFile_AndDoubleOpen()
    {
        ToolResult r = ToolRunner.Run(ToolRunner.ColoQemuIo, _dir, ["-c", "length", "-c", "open -r t.qcow2", "-c", "length", "-c", "open t.qcow2", "-c", "close", "-c", "length"]);
        Assert.Multiple(() =>
        {
            Assert.That(r.Stdout, Is.EqualTo("1 MiB\n"));
            Assert.That(r.Stderr, Is.EqualTo("no file open, try 'help open'\nqemu-io: file open already, try 'help close'\nno file open, try 'help open'\n"));
            Assert.That(r.ExitCode, Is.EqualTo(1));
        });
    }

    [TestCase(new[] { "-c", "length", "missing.qcow2" }, "qemu-io: can't open device missing.qcow2: Could not open 'missing.qcow2': No such file or directory\n")]
    [TestCase(new[] { "-f", "bogus", "-c", "length", "t.qcow2" }, "qemu-io: can't open device t.qcow2: Unknown driver 'bogus'\n")]
    [TestCase(new[] { "-t", "bogus", "-c", "length", "t.qcow2" }, "qemu-io: Invalid cache option: bogus\n")]
    [TestCase(new[] { "--image-opts", "-f", "qcow2", "-c", "length", "driver=qcow2,file.filename=t.qcow2" }, "qemu-io: --image-opts and -f are mutually exclusive\n")]
    [TestCase(new[] { "-x", "t.qcow2" }, "qemu-io: invalid option -- 'x'\n")]
    [TestCase(new[] { "-s", "t.qcow2" }, "qemu-io: option '-s' is not supported by Colo\n")]
    public void CommandLineErrors_ExitOneWithQemuText(string[] args, string stderr)
    {
        ToolResult r = ToolRunner.Run(ToolRunner.ColoQemuIo, _dir, args);
        Assert.Multiple(() =>
        {
            Assert.That(r.Stderr, Is.EqualTo(stderr));
            Assert.That(r.ExitCode, Is.EqualTo(1));
        });
    }

    [Test]
    public void ImageOpts_OpensTheNamedDriverAndFile()
    {
        ToolResult r = ToolRunner.Run(ToolRunner.ColoQemuIo, _dir, ["--image-opts", "-c", "length", "-c", "info", "driver=qcow2,file.filename=t.qcow2"]);
        Assert.That(r.Stdout, Does.StartWith("1 MiB\nformat name: qcow2\n"));
    }

    [Test]
    public void MachineReadableReport_IsOneCommaSeparatedLine()
    {
        ToolResult r = Io("read -C 0 4k");
        Assert.That(r.Stdout, Does.Match(@"^4096,1,0:00:\d\d\.\d\d,[0-9]+\.\d{3},[0-9]+\.\d{3}\n$"));
    }

    [Test]
    public void CompressedWrite_ReadsBackAndChecksClean()
    {
        ToolResult r = Io("write -q -c -P 7 0 128k", "read -q -P 7 0 128k");
        Assert.Multiple(() =>
        {
            Assert.That(r.ExitCode, Is.Zero, r.Stdout + r.Stderr);
            Assert.That(ToolRunner.Run(ToolRunner.ColoQemuImg, _dir, ["check", "t.qcow2"]).ExitCode, Is.Zero);
        });
    }
}
