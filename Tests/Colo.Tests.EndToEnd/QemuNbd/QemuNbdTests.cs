using System.Globalization;
using Colo.Block.Nbd;
using Colo.Tests.EndToEnd.Infrastructure;
using Colo.Tests.EndToEnd.QemuIo;

namespace Colo.Tests.EndToEnd.QemuNbd;

/// <summary>
/// Colo's published qemu-nbd with Colo's own clients (qemu-io over nbd://, the Block library's
/// NbdClient): serving, the exit-after-last-client rule, --shared, read-only, unix sockets and
/// the startup errors QEMU 7.2's qemu-nbd prints.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class QemuNbdTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "qemunbd-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        Assert.That(ToolRunner.Run(ToolRunner.ColoQemuImg, _dir, ["create", "-q", "-f", "qcow2", "t.qcow2", "1M"]).ExitCode, Is.Zero);
        Assert.That(ToolRunner.Io(ToolRunner.ColoQemuIo, _dir, "t.qcow2", ["write -q -P 0x5a 0 64k"]).ExitCode, Is.Zero);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private NbdServerProcess Start(params string[] args) => NbdServerProcess.Start(ToolRunner.ColoQemuNbd, _dir, "t.qcow2", args);

    private ToolResult IoOver(string uri, params string[] commands) => ToolRunner.Io(ToolRunner.ColoQemuIo, _dir, uri, commands, "-f", "raw");

    [Test]
    public void Serves_TheImageContents_AndWritesReachTheFile()
    {
        using (NbdServerProcess s = Start("-t"))
        {
            ToolResult r = IoOver(s.Uri(), "read -q -P 0x5a 0 64k", "write -q -P 0x77 512k 4k", "length");
            Assert.That(r.ExitCode, Is.Zero, r.Stdout + r.Stderr);
            Assert.That(r.Stdout, Is.EqualTo("1 MiB\n"));
        }

        Assert.That(ToolRunner.Io(ToolRunner.ColoQemuIo, _dir, "t.qcow2", ["read -q -P 0x77 512k 4k"]).ExitCode, Is.Zero);
    }

    [TestCase(new string[0], "0x5a")]
    [TestCase(new[] { "--discard=unmap" }, "0")]
    public void Discard_IgnoredByDefault_PassedDownWithUnmap(string[] args, string pattern)
    {
        using (NbdServerProcess s = Start(["-t", .. args]))
        {
            Assert.That(IoOver(s.Uri(), "discard -q 0 64k").ExitCode, Is.Zero);
        }

        ToolResult r = ToolRunner.Io(ToolRunner.ColoQemuIo, _dir, "t.qcow2", [$"read -q -P {pattern} 0 64k"]);
        Assert.That(r.ExitCode, Is.Zero, r.Stdout);
    }

    [Test]
    public void WithoutPersistent_ExitsAfterTheClientLeaves()
    {
        using NbdServerProcess s = Start();
        Assert.That(IoOver(s.Uri(), "read -q 0 1").ExitCode, Is.Zero);
        s.WaitForExit();
        Assert.That(s.HasExited, Is.True);
    }

    [Test]
    public void WithPersistent_ServesOneClientAfterAnother()
    {
        using NbdServerProcess s = Start("-t");
        Assert.That(IoOver(s.Uri(), "read -q 0 1").ExitCode, Is.Zero);
        Assert.That(IoOver(s.Uri(), "read -q 0 1").ExitCode, Is.Zero);
        Assert.That(s.HasExited, Is.False);
    }

    [Test]
    public void ExportNameAndDescription_AreListed()
    {
        using NbdServerProcess s = Start("-t", "-x", "disk0", "-D", "first disk");
        Assert.Multiple(() =>
        {
            Assert.That(IoOver(s.Uri("disk0"), "length").Stdout, Is.EqualTo("1 MiB\n"));
            ToolResult wrong = IoOver(s.Uri("nope"), "length");
            Assert.That(wrong.ExitCode, Is.EqualTo(1));
            Assert.That(wrong.Stderr, Does.StartWith($"qemu-io: can't open device {s.Uri("nope")}: "));
        });
    }

    [Test]
    public void ReadOnly_RefusesReadWriteOpensAndWrites()
    {
        using NbdServerProcess s = Start("-t", "-r");
        ToolResult rw = IoOver(s.Uri(), "read -q 0 1");
        ToolResult ro = ToolRunner.Io(ToolRunner.ColoQemuIo, _dir, s.Uri(), ["read -q -P 0x5a 0 1", "write 0 1"], "-r", "-f", "raw");
        Assert.Multiple(() =>
        {
            Assert.That(rw.Stderr, Is.EqualTo($"qemu-io: can't open device {s.Uri()}: Could not open image: Permission denied\n"));
            Assert.That(rw.ExitCode, Is.EqualTo(1));
            Assert.That(ro.Stderr, Is.EqualTo("qemu-io: Block node is read-only\n"));
            Assert.That(ro.ExitCode, Is.EqualTo(1));
        });
    }

    [Test]
    public void UnixSocket_ServesAndIsRemovedAtExit()
    {
        // sun_path holds 108 bytes; the test work directory is deeper than that allows.
        string sock = Path.Combine(Path.GetTempPath(), $"colo-nbd-{Guid.NewGuid():N}.sock");
        string pid = Path.Combine(_dir, "unix.pid");
        ToolResult start = ToolRunner.Run(ToolRunner.ColoQemuNbd, _dir, ["--fork", "--pid-file", pid, "-k", sock, "t.qcow2"]);
        Assert.That(start.ExitCode, Is.Zero, start.Stderr);
        ToolResult r = IoOver($"nbd+unix:///?socket={sock}", "read -q -P 0x5a 0 64k");
        Assert.That(r.ExitCode, Is.Zero, r.Stdout + r.Stderr);
        ToolRunner.WaitFor(() => !File.Exists(pid) && !File.Exists(sock), "the non-persistent server to exit and remove its socket");
    }

    [Test]
    public void SharedOne_SecondClientWaitsForTheFirst_SharedTwo_BothAtOnce()
    {
        using (NbdServerProcess one = Start("-t"))
        {
            using NbdClient first = NbdClient.ConnectTcp("127.0.0.1", one.Port, "");
            Task<NbdClient> second = Task.Run(() => NbdClient.ConnectTcp("127.0.0.1", one.Port, ""));
            Assert.That(second.IsCompleted, Is.False, "a second client got in past --shared=1");
            first.Dispose();
            Assert.That(second.Wait(20_000), Is.True, "the second client was not served after the first left");
            second.Result.Dispose();
        }

        using NbdServerProcess two = Start("-t", "-e", "2");
        using NbdClient a = NbdClient.ConnectTcp("127.0.0.1", two.Port, "");
        using NbdClient b = NbdClient.ConnectTcp("127.0.0.1", two.Port, "");
        Assert.That(a.Size, Is.EqualTo(b.Size));
    }

    [Test]
    public void PortInUse_FailsWithQemuText()
    {
        using NbdServerProcess s = Start("-t");
        ToolResult r = ToolRunner.Run(ToolRunner.ColoQemuNbd, _dir, ["-b", "127.0.0.1", "-p", s.Port.ToString(CultureInfo.InvariantCulture), "t.qcow2"]);
        Assert.Multiple(() =>
        {
            Assert.That(r.Stderr, Is.EqualTo("qemu-nbd: Failed to find an available port: Address already in use\n"));
            Assert.That(r.ExitCode, Is.EqualTo(1));
        });
    }

    [TestCase(new string[0], "qemu-nbd: Invalid number of arguments\nTry `qemu-nbd --help' for more information.\n")]
    [TestCase(new[] { "a.qcow2", "b.qcow2" }, "qemu-nbd: Invalid number of arguments\nTry `qemu-nbd --help' for more information.\n")]
    [TestCase(new[] { "missing.qcow2" }, "qemu-nbd: Failed to blk_new_open 'missing.qcow2': Could not open 'missing.qcow2': No such file or directory\n")]
    [TestCase(new[] { "-f", "bogus", "t.qcow2" }, "qemu-nbd: Failed to blk_new_open 't.qcow2': Unknown driver 'bogus'\n")]
    [TestCase(new[] { "-e", "abc", "t.qcow2" }, "qemu-nbd: Invalid shared device number 'abc'\n")]
    [TestCase(new[] { "-p", "abc", "t.qcow2" }, "qemu-nbd: address resolution failed for 0.0.0.0:abc: Servname not supported for ai_socktype\n")]
    [TestCase(new[] { "-k", "/nonexistent-dir/s", "t.qcow2" }, "qemu-nbd: Failed to bind socket to /nonexistent-dir/s: No such file or directory\n")]
    [TestCase(new[] { "-z", "t.qcow2" }, "qemu-nbd: invalid option -- 'z'\nqemu-nbd: Try `qemu-nbd --help' for more information.\n")]
    [TestCase(new[] { "--bogus", "t.qcow2" }, "qemu-nbd: unrecognized option '--bogus'\nqemu-nbd: Try `qemu-nbd --help' for more information.\n")]
    [TestCase(new[] { "-c", "/dev/nbd0", "t.qcow2" }, "qemu-nbd: option '-c' is not supported by Colo\n")]
    [TestCase(new[] { "--image-opts", "-f", "qcow2", "driver=qcow2,file.filename=t.qcow2" }, "qemu-nbd: --image-opts and -f are mutually exclusive\n")]
    [TestCase(new[] { "--discard=foo", "t.qcow2" }, "qemu-nbd: Invalid discard mode `foo'\n")]
    public void StartupErrors_ExitOneWithQemuText(string[] args, string stderr)
    {
        ToolResult r = ToolRunner.Run(ToolRunner.ColoQemuNbd, _dir, args);
        Assert.Multiple(() =>
        {
            Assert.That(r.Stderr, Is.EqualTo(stderr));
            Assert.That(r.ExitCode, Is.EqualTo(1));
        });
    }

    [Test]
    public void Fork_ReportsStartupFailureWithTheChildsStatus()
    {
        using NbdServerProcess s = Start("-t");
        string pidFile = Path.Combine(_dir, "second.pid");
        ToolResult r = ToolRunner.Run(ToolRunner.ColoQemuNbd, _dir, ["--fork", "--pid-file", pidFile, "-b", "127.0.0.1", "-p", s.Port.ToString(CultureInfo.InvariantCulture), "t.qcow2"]);
        if (File.Exists(pidFile))
        {
            // A regression started a second server: stop it rather than leak it.
            System.Diagnostics.Process.GetProcessById(int.Parse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture)).Kill();
        }

        Assert.Multiple(() =>
        {
            Assert.That(r.ExitCode, Is.EqualTo(1));
            Assert.That(r.Stderr, Is.EqualTo("qemu-nbd: Failed to find an available port: Address already in use\n"));
        });
    }
}
