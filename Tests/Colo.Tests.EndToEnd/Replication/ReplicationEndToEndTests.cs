using System.Diagnostics;
using System.Text.Json;
using Colo.Tests.EndToEnd.Infrastructure;
using Colo.Tests.Shared;

namespace Colo.Tests.EndToEnd.Replication;

/// <summary>
/// The COLO document's block flow without a guest: two built qemu-system-x86_64 processes with the
/// document's -drive lines, the secondary exporting its disk, the primary adding its replication child
/// (HMP drive_add + x-blockdev-change), writes through HMP qemu-io, replication driven by QEMU's
/// xen-set-replication/xen-colo-do-checkpoint, images checked with real qemu-img.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class ReplicationEndToEndTests
{
    private const string Size = "64M";
    private string _dir = null!;
    private string _primaryDir = null!;
    private string _secondaryDir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "colo-replication-" + Guid.NewGuid().ToString("N"));
        _primaryDir = Path.Combine(_dir, "primary");
        _secondaryDir = Path.Combine(_dir, "secondary");
        Directory.CreateDirectory(_primaryDir);
        Directory.CreateDirectory(_secondaryDir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

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

    private static string[] DriveArgs(string[] documentLine)
    {
        var drives = new List<string>();
        for (int i = 0; i < documentLine.Length - 1; i++)
        {
            if (documentLine[i] == "-drive")
            {
                drives.Add("-drive");
                drives.Add(documentLine[i + 1]);
            }
        }
        return [.. drives];
    }

    private static async Task<string> Qmp(QmpClient qmp, string json) => await qmp.ExecuteAsync(json);

    /// <summary>An HMP command through QMP: the reply, and what it printed on stdout before it (qemu-io's lines).</summary>
    private static async Task<(string Reply, string Output)> Hmp(QmpClient qmp, string commandLine)
    {
        string quoted = System.Text.Encoding.UTF8.GetString(JsonEncodedText.Encode(commandLine, System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping).EncodedUtf8Bytes);
        await qmp.SendAsync("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"" + quoted + "\"}}\n");
        var output = new System.Text.StringBuilder();
        while (true)
        {
            string line = await qmp.NextLineAsync();
            if (!line.StartsWith('{'))
            {
                output.Append(line).Append('\n');
                continue;
            }
            if (!line.Contains("\"event\":", StringComparison.Ordinal))
            {
                return (JsonDocument.Parse(line).RootElement.GetProperty("return").GetString()!, output.ToString());
            }
        }
    }

    private static async Task<string> QemuIo(QmpClient qmp, string device, string command)
    {
        (string reply, string output) = await Hmp(qmp, $"qemu-io {device} \"{command}\"");
        Assert.That(reply, Is.Empty);
        return output;
    }

    /// <summary>query-xen-replication-status as (error, desc); member order on the wire is the monitor's business.</summary>
    private static async Task<(bool Error, string? Desc)> Status(QmpClient qmp)
    {
        JsonElement r = JsonDocument.Parse(await Qmp(qmp, """{"execute":"query-xen-replication-status"}""")).RootElement.GetProperty("return");
        return (r.GetProperty("error").GetBoolean(), r.TryGetProperty("desc", out JsonElement d) ? d.GetString() : null);
    }

    private static async Task<string> NodeNameOf(QmpClient qmp, string filename)
    {
        JsonElement nodes = JsonDocument.Parse(await Qmp(qmp, """{"execute":"query-named-block-nodes","arguments":{"flat":true}}""")).RootElement.GetProperty("return");
        foreach (JsonElement n in nodes.EnumerateArray())
        {
            if (n.GetProperty("drv").GetString() == "qcow2" && n.GetProperty("file").GetString() == filename)
            {
                return n.GetProperty("node-name").GetString()!;
            }
        }
        Assert.Fail($"no qcow2 node on {filename}");
        return "";
    }

    private static void AssertUnallocated(string image)
    {
        var map = Tool("/usr/bin/qemu-img", "map", "-U", "--output=json", "-f", "qcow2", image);
        Assert.That(map.ExitCode, Is.Zero, map.Stderr);
        foreach (JsonElement e in JsonDocument.Parse(map.Stdout).RootElement.EnumerateArray())
        {
            Assert.That(e.GetProperty("data").GetBoolean(), Is.False, $"{image}: {map.Stdout}");
        }
    }

    private static void AssertPattern(string image, string command)
    {
        var io = Tool("/usr/bin/qemu-io", "-U", "-r", "-f", "qcow2", "-c", command, image);
        Assert.That(io.Stdout, Does.Not.Contain("Pattern verification failed"), $"{image}: {command}");
        Assert.That(io.ExitCode, Is.Zero, io.Stderr);
    }

    [Test]
    [Category("Interop")]
    public async Task DocumentBlockFlow_ReplicatesCheckpointsAndFailsOver()
    {
        Assume.That(File.Exists("/usr/bin/qemu-img") && File.Exists("/usr/bin/qemu-io"), "qemu-utils not installed");
        string primaryImage = Path.Combine(_primaryDir, "primary.qcow2");
        string secondaryImage = Path.Combine(_secondaryDir, "primary.qcow2");
        string active = Path.Combine(_secondaryDir, "secondary-active.qcow2");
        string hidden = Path.Combine(_secondaryDir, "secondary-hidden.qcow2");
        // The document's preparation: one image, copied to the secondary; empty active and hidden disks.
        Assert.That(Tool(ColoBinaries.QemuImg, "create", "-f", "qcow2", primaryImage, Size).ExitCode, Is.Zero);
        Assert.That(Tool("/usr/bin/qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", primaryImage).ExitCode, Is.Zero);
        File.Copy(primaryImage, secondaryImage);
        Assert.That(Tool(ColoBinaries.QemuImg, "create", "-f", "qcow2", active, Size).ExitCode, Is.Zero);
        Assert.That(Tool(ColoBinaries.QemuImg, "create", "-f", "qcow2", hidden, Size).ExitCode, Is.Zero);

        int nbdPort = FreePort.Next();
        using QemuProcess secondary = QemuProcess.Start(["-M", "pc", "-nodefaults", "-display", "none", "-qmp", "stdio",
            "-incoming", $"tcp:127.0.0.1:{FreePort.Next()}", .. DriveArgs(ColoDocument.Secondary(_secondaryDir, "127.0.0.1"))]);
        using QmpClient s = QmpClient.OverStdio(secondary);
        await s.HandshakeAsync();
        using QemuProcess primary = QemuProcess.Start(["-M", "pc", "-nodefaults", "-display", "none", "-qmp", "stdio", "-S",
            .. DriveArgs(ColoDocument.Primary(_primaryDir))]);
        using QmpClient p = QmpClient.OverStdio(primary);
        await p.HandshakeAsync();

        // Secondary: export the secondary disk, writable, as the document does on the waiting secondary.
        const string ok = "{\"return\": {}}";
        Assert.That(await Qmp(s, "{\"execute\":\"nbd-server-start\",\"arguments\":{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"127.0.0.1\",\"port\":\"" + nbdPort + "\"}}}}"), Is.EqualTo(ok));
        Assert.That(await Qmp(s, """{"execute":"nbd-server-add","arguments":{"device":"parent0","writable":true}}"""), Is.EqualTo(ok));

        // Primary: the document's drive_add, exactly, then the quorum gets it as children.1.
        (string reply, _) = await Hmp(p, $"drive_add -n buddy driver=replication,mode=primary,file.driver=nbd,file.host=127.0.0.1,file.port={nbdPort},file.export=parent0,node-name=replication0");
        Assert.That(reply, Is.Empty);
        Assert.That(await Qmp(p, """{"execute":"x-blockdev-change","arguments":{"parent":"colo-disk0","node":"replication0"}}"""), Is.EqualTo(ok));

        Assert.That(await Status(s), Is.EqualTo((true, "Block replication is not running")));
        Assert.That(await Qmp(s, """{"execute":"xen-set-replication","arguments":{"enable":true,"primary":false}}"""), Is.EqualTo(ok));
        Assert.That(await Qmp(p, """{"execute":"xen-set-replication","arguments":{"enable":true,"primary":true}}"""), Is.EqualTo(ok));
        Assert.That(await Status(s), Is.EqualTo((false, (string?)null)));

        // The primary writes; it appears on the secondary disk, the hidden disk holds the old contents,
        // the secondary VM's view is still the checkpoint's.
        Assert.That(await QemuIo(p, "colo-disk0", "write -P 0xab 0 64k"), Does.StartWith("wrote 65536/65536 bytes at offset 0\n64 KiB, 1 ops; "));
        Assert.That(await QemuIo(s, "parent0", "read -P 0xab 0 64k"), Does.StartWith("read 65536/65536 bytes at offset 0"));
        string hiddenNode = await NodeNameOf(s, hidden);
        Assert.That(await QemuIo(s, hiddenNode, "read -P 0x11 0 64k"), Does.StartWith("read 65536/65536 bytes at offset 0"));
        Assert.That(await QemuIo(s, "colo-disk0", "read -P 0x11 0 64k"), Does.StartWith("read 65536/65536 bytes at offset 0"));
        // The secondary VM's own write stays in its active disk.
        Assert.That(await QemuIo(s, "colo-disk0", "write -P 0xcd 64k 64k"), Does.StartWith("wrote 65536/65536 bytes at offset 65536"));
        Assert.That(await QemuIo(s, "parent0", "read -P 0x11 64k 64k"), Does.StartWith("read 65536/65536 bytes"));

        // Checkpoint: active and hidden are empty, the two disks are identical.
        Assert.That(await Qmp(s, """{"execute":"xen-colo-do-checkpoint"}"""), Is.EqualTo(ok));
        AssertUnallocated(active);
        AssertUnallocated(hidden);
        var compare = Tool("/usr/bin/qemu-img", "compare", "-U", "-f", "qcow2", "-F", "qcow2", primaryImage, secondaryImage);
        Assert.That(compare.ExitCode, Is.Zero, compare.Stdout + compare.Stderr);
        Assert.That(await QemuIo(s, "colo-disk0", "read -P 0xab 0 64k"), Does.StartWith("read 65536/65536 bytes"));

        // Another interval, then the primary is lost: failover commits active and hidden into the secondary disk.
        await QemuIo(p, "colo-disk0", "write -P 0xef 0 64k");
        await QemuIo(s, "colo-disk0", "write -P 0x77 128k 64k");
        Assert.That(await Qmp(s, """{"execute":"xen-set-replication","arguments":{"enable":false,"primary":false,"failover":true}}"""), Is.EqualTo(ok));
        Assert.That(await Status(s), Is.EqualTo((false, (string?)null)));
        Assert.That(await QemuIo(s, "colo-disk0", "write -P 0x99 192k 64k"), Does.StartWith("wrote 65536/65536 bytes"));
        Assert.That(await Qmp(p, """{"execute":"xen-set-replication","arguments":{"enable":false,"primary":true}}"""), Is.EqualTo(ok));

        await s.SendAsync("{\"execute\":\"quit\"}\n");
        await p.SendAsync("{\"execute\":\"quit\"}\n");
        Assert.That(secondary.WaitForExit(), Is.Zero, secondary.Stderr);
        Assert.That(primary.WaitForExit(), Is.Zero, primary.Stderr);

        foreach (string image in new[] { primaryImage, secondaryImage, active, hidden })
        {
            var check = Tool("/usr/bin/qemu-img", "check", "-f", "qcow2", image);
            Assert.That(check.ExitCode, Is.Zero, $"{image}: {check.Stdout}{check.Stderr}");
        }
        // The secondary disk holds the secondary VM's view: the checkpoint's data where the primary wrote
        // after it, the secondary's own writes, and what it wrote after failover.
        AssertPattern(secondaryImage, "read -P 0xab 0 64k");
        AssertPattern(secondaryImage, "read -P 0x11 64k 64k");
        AssertPattern(secondaryImage, "read -P 0x77 128k 64k");
        AssertPattern(secondaryImage, "read -P 0x99 192k 64k");
        AssertPattern(primaryImage, "read -P 0xef 0 64k");
    }
}
