using Colo.Tests.Shared;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd;

/// <summary>What a user sees from the executable for informational options and bad command lines.</summary>
[TestFixture]
public sealed class CommandLineTests
{
    [Test]
    public void Version_PrintsQemu72LineWithColoVersion()
    {
        (int code, string stdout, _) = QemuProcess.Run("-version");
        Assert.That(code, Is.Zero);
        Assert.That(stdout, Does.Match(@"^QEMU emulator version 7\.2\.0 \(Colo \d+\.\d+\.\d+\)\n"));
    }

    [Test]
    public void Help_ListsTheDocumentsOptions()
    {
        (int code, string stdout, _) = QemuProcess.Run("-h");
        Assert.That(code, Is.Zero);
        foreach (string option in new[] { "-enable-kvm", "-cpu", "-qmp", "-netdev", "-chardev", "-object", "-drive", "-incoming", "-S" })
        {
            Assert.That(stdout, Does.Contain("\n" + option + " ").Or.Contain("\n" + option + "\n"), option);
        }
    }

    [TestCase(new[] { "-foo" }, "qemu-system-x86_64: -foo: invalid option\n")]
    [TestCase(new[] { "-m" }, "qemu-system-x86_64: -m: requires an argument\n")]
    [TestCase(new[] { "-M", "none", "-object", "iothread,id=a,bar=1" }, "qemu-system-x86_64: -object iothread,id=a,bar=1: Invalid parameter 'bar'\n")]
    [TestCase(new[] { "-M", "none", "-object", "iothread,id=a", "-object", "iothread,id=a" }, "qemu-system-x86_64: -object iothread,id=a: Duplicate ID 'a' for object\n")]
    [TestCase(new[] { "-device", "foo" }, "qemu-system-x86_64: -device foo: 'foo' is not a valid device model name\n")]
    [TestCase(new[] { "-netdev", "foo,id=x" }, "qemu-system-x86_64: -netdev foo,id=x: Parameter 'type' does not accept value 'foo'\n")]
    [TestCase(new[] { "-M", "foo" }, "qemu-system-x86_64: unsupported machine type\nUse -machine help to list supported machines\n")]
    public void BadCommandLine_OneQemuStyleMessage_ExitOne(string[] args, string stderr)
    {
        (int code, _, string actual) = QemuProcess.Run(args);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(actual, Is.EqualTo(stderr));
    }

    [Test]
    public void ColoDocumentLines_ExitOneNamingTheFirstMissingPart()
    {
        string images = Path.GetTempPath();
        foreach (string[] args in new[] { ColoDocument.Primary(images), ColoDocument.Secondary(images, "127.0.0.1") })
        {
            (int code, string stdout, string stderr) = QemuProcess.Run(args);
            Assert.Multiple(() =>
            {
                Assert.That(code, Is.EqualTo(1));
                Assert.That(stderr, Does.StartWith("qemu-system-x86_64: ").And.Contain("is not implemented yet in Colo"));
                Assert.That(stderr.TrimEnd('\n'), Does.Not.Contain("\n"), "one line");
                Assert.That(stdout, Is.Empty, "no greeting before the error");
            });
        }
    }

    [Test]
    public void PidFile_HoldsPid_AndSecondInstanceIsRefused()
    {
        string pidFile = Path.Combine(Path.GetTempPath(), $"colo-{Guid.NewGuid():N}.pid");
        using QemuProcess first = QemuProcess.Start("-M", "none", "-S", "-display", "none", "-pidfile", pidFile);
        DateTime deadline = DateTime.UtcNow + QemuProcess.Timeout;
        while (!File.Exists(pidFile) && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(20);
        }
        (int code, _, string stderr) = QemuProcess.Run("-M", "none", "-S", "-display", "none", "-pidfile", pidFile);
        Assert.Multiple(() =>
        {
            Assert.That(code, Is.EqualTo(1));
            Assert.That(stderr, Does.StartWith("qemu-system-x86_64: cannot create PID file: "));
        });
        first.Terminate();
        Assert.That(first.WaitForExit(), Is.Zero);
        Assert.That(File.Exists(pidFile), Is.False, "removed at exit");
    }

    [Test]
    public async Task Daemonize_LauncherExitsZero_DaemonAnswersQmpAndQuits()
    {
        string dir = Directory.CreateTempSubdirectory("colo-e2e-").FullName;
        try
        {
            string pidFile = Path.Combine(dir, "vm.pid");
            string socket = Path.Combine(dir, "qmp.sock");
            (int code, _, string stderr) = QemuProcess.Run("-M", "none", "-S", "-display", "none", "-daemonize", "-pidfile", pidFile, "-qmp", $"unix:{socket},server=on,wait=off");
            Assert.That(code, Is.Zero, stderr);
            int pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            using (QmpClient qmp = await QmpClient.ConnectUnixAsync(socket))
            {
                await qmp.HandshakeAsync();
                Assert.That(await qmp.ExecuteAsync("""{"execute": "quit"}"""), Is.EqualTo("""{"return": {}}"""));
            }
            using var daemon = System.Diagnostics.Process.GetProcessById(pid);
            Assert.That(daemon.WaitForExit(QemuProcess.Timeout), Is.True);
            Assert.That(File.Exists(pidFile), Is.False);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Daemonize_WithStdioMonitor_IsRefusedLikeQemu()
    {
        (int code, _, string stderr) = QemuProcess.Run("-M", "none", "-daemonize", "-qmp", "stdio");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Is.EqualTo("qemu-system-x86_64: -qmp stdio: cannot use stdio with -daemonize\n"));
    }
}
