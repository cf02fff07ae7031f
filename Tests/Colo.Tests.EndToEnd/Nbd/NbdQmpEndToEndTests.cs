using System.Diagnostics;
using System.Text.Json;
using Colo.Block.Qcow2;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Nbd;

/// <summary>
/// The built qemu-system-x86_64's NBD server (QMP nbd-server-*) and nbd/quorum drives, with real
/// nbdinfo and qemu-nbd as peers. Loopback and free ports only.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class NbdQmpEndToEndTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "colo-nbdqmp-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private string Qcow2(string name)
    {
        string path = Path.Combine(_dir, name);
        Qcow2Creator.Create(path, new Qcow2CreateOptions { Size = 1 << 20 });
        return path;
    }

    private static async Task<(QemuProcess Qemu, QmpClient Qmp)> StartAsync(params string[] extra)
    {
        QemuProcess qemu = QemuProcess.Start(["-M", "none", "-S", "-display", "none", "-qmp", "stdio", .. extra]);
        QmpClient qmp = QmpClient.OverStdio(qemu);
        await qmp.HandshakeAsync();
        return (qemu, qmp);
    }

    private static (int ExitCode, string Stdout, string Stderr) Tool(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        string stderr = p.StandardError.ReadToEnd();
        Assert.That(p.WaitForExit(60_000), Is.True, exe);
        return (p.ExitCode, stdout.Result, stderr);
    }

    [Test]
    [Category("Interop")]
    public async Task ColoDocumentLines_NbdServerExportsParent0_NbdinfoSeesItWritable()
    {
        Assume.That(File.Exists("/usr/bin/nbdinfo"), "libnbd-bin not installed");
        int port = FreePort.Next();
        (QemuProcess qemu, QmpClient qmp) = await StartAsync("-drive", $"if=none,id=parent0,driver=qcow2,file.filename={Qcow2("primary.qcow2")}");
        using (qemu)
        using (qmp)
        {
            // The COLO documentation's lines on the secondary, port as a string.
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"nbd-server-start\", \"arguments\":{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"127.0.0.1\",\"port\":\"" + port + "\"}}}}"), Is.EqualTo("{\"return\": {}}"));
            Assert.That(await qmp.ExecuteAsync("""{"execute":"nbd-server-add", "arguments":{"device":"parent0","writable":true}}"""), Is.EqualTo("{\"return\": {}}"));
            Assert.That(await qmp.ExecuteAsync("""{"execute":"nbd-server-add", "arguments":{"device":"parent0","writable":true}}"""),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Block export id 'parent0' is already in use\"}}"));
            Assert.That(await qmp.ExecuteAsync("""{"execute":"nbd-server-add", "arguments":{"device":"nope"}}"""),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Cannot find device='nope' nor node-name='nope'\"}}"));

            var info = Tool("/usr/bin/nbdinfo", $"nbd://127.0.0.1:{port}/parent0");
            Assert.That(info.ExitCode, Is.Zero, info.Stderr);
            Assert.That(info.Stdout, Does.Contain("export-size: 1048576").And.Contain("is_read_only: false"));

            string exports = await qmp.ExecuteAsync("""{"execute":"query-block-exports"}""");
            Assert.That(JsonDocument.Parse(exports).RootElement.GetProperty("return")[0].GetProperty("id").GetString(), Is.EqualTo("parent0"));
            Assert.That(await qmp.ExecuteAsync("""{"execute":"nbd-server-stop"}"""), Is.EqualTo("{\"return\": {}}"));
            Assert.That(await qmp.ExecuteAsync("""{"execute":"nbd-server-stop"}"""),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"NBD server not running\"}}"));
            await qmp.ExecuteAsync("""{"execute":"quit"}""");
            Assert.That(qemu.WaitForExit(), Is.Zero);
        }
    }

    [Test]
    [Category("Interop")]
    public async Task NbdDrive_AgainstRealQemuNbd_UriAndServerOptions()
    {
        Assume.That(File.Exists("/usr/bin/qemu-nbd"), "qemu-utils not installed");
        string image = Qcow2("served.qcow2");
        int port = FreePort.Next();
        string pidFile = Path.Combine(_dir, "qemu-nbd.pid");
        // --fork returns once the socket listens, so no wait is needed; -t -e 2 serves both drives at once.
        var started = Tool("/usr/bin/qemu-nbd", "--fork", "--pid-file", pidFile, "-t", "-e", "2", "-b", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-x", "exp", "-f", "qcow2", image);
        Assert.That(started.ExitCode, Is.Zero, started.Stderr);
        int pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            (QemuProcess qemu, QmpClient qmp) = await StartAsync(
                "-drive", $"if=none,id=d0,file=nbd://127.0.0.1:{port}/exp,format=raw",
                "-drive", $"if=none,id=d1,driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={port},export=exp,reconnect-delay=5");
            using (qemu)
            using (qmp)
            {
                JsonElement nodes = JsonDocument.Parse(await qmp.ExecuteAsync("""{"execute":"query-named-block-nodes","arguments":{"flat":true}}""")).RootElement.GetProperty("return");
                string[] shapes = [.. nodes.EnumerateArray().Select(n => n.GetProperty("drv").GetString() + " " + n.GetProperty("file").GetString() + " " + n.GetProperty("image").GetProperty("virtual-size").GetInt64())];
                Assert.That(shapes, Is.EqualTo(new[]
                {
                    $"nbd nbd://127.0.0.1:{port}/exp 1048576",
                    $"raw nbd://127.0.0.1:{port}/exp 1048576",
                    $"nbd nbd://127.0.0.1:{port}/exp 1048576",
                }));
                await qmp.ExecuteAsync("""{"execute":"quit"}""");
                Assert.That(qemu.WaitForExit(), Is.Zero);
            }

            var missing = QemuProcess.Run("-M", "none", "-display", "none", "-drive", $"if=none,id=d0,file=nbd://127.0.0.1:{port}/nope,format=raw");
            Assert.That(missing.ExitCode, Is.EqualTo(1));
            Assert.That(missing.Stderr, Is.EqualTo($"qemu-system-x86_64: -drive if=none,id=d0,file=nbd://127.0.0.1:{port}/nope,format=raw: Requested export not available\nserver reported: export 'nope' not present\n"));
        }
        finally
        {
            Process.GetProcessById(pid).Kill();
        }
    }

    [Test]
    public async Task ColoPrimaryQuorumDrive_OpensAndValidationMatchesQemu()
    {
        string primary = Qcow2("primary.qcow2");
        (QemuProcess qemu, QmpClient qmp) = await StartAsync(
            "-drive", $"if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.file.filename={primary},children.0.driver=qcow2");
        using (qemu)
        using (qmp)
        {
            JsonElement block = JsonDocument.Parse(await qmp.ExecuteAsync("""{"execute":"query-block"}""")).RootElement.GetProperty("return")[0];
            Assert.That(block.GetProperty("inserted").GetProperty("drv").GetString(), Is.EqualTo("quorum"));
            Assert.That(await qmp.ExecuteAsync("""{"execute":"x-blockdev-change","arguments":{"parent":"colo-disk0","child":"children.0"}}"""),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"The number of children cannot be lower than the vote threshold 1\"}}"));
            await qmp.ExecuteAsync("""{"execute":"quit"}""");
            Assert.That(qemu.WaitForExit(), Is.Zero);
        }

        string bad = $"if=none,id=d0,driver=quorum,vote-threshold=2,children.0.file.filename={primary},children.0.driver=qcow2";
        var colo = QemuProcess.Run("-M", "none", "-display", "none", "-drive", bad);
        Assert.That(colo.Stderr, Is.EqualTo($"qemu-system-x86_64: -drive {bad}: threshold may not exceed children count\n"));
        if (File.Exists("/usr/bin/qemu-system-x86_64"))
        {
            // Side by side with real QEMU 7.2: the same line and exit status.
            using QemuProcess real = QemuProcess.Start("/usr/bin/qemu-system-x86_64", ["-M", "none", "-display", "none", "-drive", bad]);
            real.Stdin.Close();
            Assert.That(real.WaitForExit(), Is.EqualTo(colo.ExitCode));
            Assert.That(real.Stderr, Is.EqualTo(colo.Stderr));
        }
    }

    [Test]
    public async Task ColoPrimaryFlow_DriveAddNbdNode_XBlockdevChangeIntoQuorum()
    {
        int port = FreePort.Next();
        (QemuProcess qemu, QmpClient qmp) = await StartAsync(
            "-drive", $"if=none,id=parent0,driver=qcow2,file.filename={Qcow2("secondary.qcow2")}",
            "-drive", $"if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.file.filename={Qcow2("primary.qcow2")},children.0.driver=qcow2");
        using (qemu)
        using (qmp)
        {
            async Task<string> Hmp(string line) =>
                JsonDocument.Parse(await qmp.ExecuteAsync("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": " + "\"" + line + "\"}}"))
                    .RootElement.GetProperty("return").GetString()!;

            // The secondary's side, in the same process for the test: parent0 exported writable.
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"nbd-server-start\", \"arguments\":{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"127.0.0.1\",\"port\":\"" + port + "\"}}}}"), Is.EqualTo("{\"return\": {}}"));
            Assert.That(await qmp.ExecuteAsync("""{"execute":"nbd-server-add", "arguments":{"device":"parent0","writable":true}}"""), Is.EqualTo("{\"return\": {}}"));

            // The COLO document's primary line (Replication/ReplicationEndToEndTests drives the whole flow).
            Assert.That(await Hmp($"drive_add -n buddy driver=replication,mode=primary,file.driver=nbd,file.host=127.0.0.1,file.port={port},file.export=parent0,node-name=replicator0"), Is.Empty);

            // The same shape without replication: an nbd node added to the quorum.
            Assert.That(await Hmp($"drive_add -n buddy driver=raw,file.driver=nbd,file.host=127.0.0.1,file.port={port},file.export=parent0,node-name=nbd0"), Is.Empty);
            Assert.That(await qmp.ExecuteAsync("""{"execute":"x-blockdev-change","arguments":{"parent":"colo-disk0","node":"nbd0"}}"""), Is.EqualTo("{\"return\": {}}"));
            Assert.That(await qmp.ExecuteAsync("""{"execute":"x-blockdev-change","arguments":{"parent":"colo-disk0","node":"nbd0"}}"""),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"The node nbd0 already has a parent\"}}"));
            Assert.That(await qmp.ExecuteAsync("""{"execute":"x-blockdev-change","arguments":{"parent":"colo-disk0","child":"children.1"}}"""), Is.EqualTo("{\"return\": {}}"));
            JsonElement nodes = JsonDocument.Parse(await qmp.ExecuteAsync("""{"execute":"query-named-block-nodes","arguments":{"flat":true}}""")).RootElement.GetProperty("return");
            Assert.That(nodes.EnumerateArray().Count(n => n.GetProperty("drv").GetString() == "nbd"), Is.EqualTo(2), "the removed child stays a node of its own, beside replicator0's");
            await qmp.ExecuteAsync("""{"execute":"quit"}""");
            Assert.That(qemu.WaitForExit(), Is.Zero);
        }
    }
}
