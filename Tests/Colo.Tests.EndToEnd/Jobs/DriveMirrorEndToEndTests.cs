using System.Diagnostics;
using System.Text.Json;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Jobs;

/// <summary>
/// drive-mirror in the built qemu-system-x86_64, with real qemu-io writing through an NBD export of the
/// mirrored drive and real qemu-img judging the result. Loopback and free ports only.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class DriveMirrorEndToEndTests
{
    private const string Size = "8M";
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "colo-mirror-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
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

    private static async Task<(QemuProcess Qemu, QmpClient Qmp)> StartAsync(params string[] extra)
    {
        QemuProcess qemu = QemuProcess.Start(["-M", "none", "-display", "none", "-qmp", "stdio", .. extra]);
        QmpClient qmp = QmpClient.OverStdio(qemu);
        await qmp.HandshakeAsync();
        return (qemu, qmp);
    }

    /// <summary>Sends a command and returns its reply; events met on the way go to <paramref name="events"/>.</summary>
    private static async Task<string> ExecAsync(QmpClient qmp, string command, List<string> events)
    {
        await qmp.SendAsync(command + "\n");
        while (true)
        {
            string line = await qmp.NextLineAsync();
            if (!line.Contains("\"event\":", StringComparison.Ordinal))
            {
                return line;
            }
            events.Add(line);
        }
    }

    /// <summary>Reads events until <paramref name="name"/> arrives (or was already seen).</summary>
    private static async Task<JsonElement> WaitEventAsync(QmpClient qmp, string name, List<string> events)
    {
        string? seen = events.Find(e => EventName(e) == name);
        while (seen is null)
        {
            string line = await qmp.NextLineAsync();
            events.Add(line);
            if (EventName(line) == name)
            {
                seen = line;
            }
        }
        return QmpClient.Parse(seen).GetProperty("data");
    }

    private static string? EventName(string line) =>
        QmpClient.Parse(line).TryGetProperty("event", out JsonElement e) ? e.GetString() : null;

    /// <summary>The JOB_STATUS_CHANGE statuses and block-job events in order, timestamps left out.</summary>
    private static string Story(List<string> events) => string.Join(" ", events.Select(e =>
    {
        JsonElement root = QmpClient.Parse(e);
        string name = root.GetProperty("event").GetString()!;
        return name == "JOB_STATUS_CHANGE" ? root.GetProperty("data").GetProperty("status").GetString()! : name;
    }));

    private void QemuIo(int port, string export, string command)
    {
        var r = Tool("/usr/bin/qemu-io", "-f", "raw", "-c", command, $"nbd://127.0.0.1:{port}/{export}");
        Assert.That(r.ExitCode, Is.Zero, r.Stdout + r.Stderr);
        Assert.That(r.Stdout, Does.Contain("wrote"), r.Stdout + r.Stderr);
    }

    [Test]
    [Category("Interop")]
    public async Task DriveMirrorToNbd_WritesDuringJobThenCancelAfterReady_NewSecondaryIdentical()
    {
        Assume.That(File.Exists("/usr/bin/qemu-io") && File.Exists("/usr/bin/qemu-img"), "qemu-utils not installed");
        string primary = Path.Combine(_dir, "primary.qcow2");
        string secondary = Path.Combine(_dir, "secondary.qcow2");
        Assert.That(Tool("/usr/bin/qemu-img", "create", "-f", "qcow2", primary, Size).ExitCode, Is.Zero);
        Assert.That(Tool("/usr/bin/qemu-img", "create", "-f", "qcow2", secondary, Size).ExitCode, Is.Zero);
        Assert.That(Tool("/usr/bin/qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 3M", "-c", "write -P 0x22 5M 1M", primary).ExitCode, Is.Zero);
        int secondaryPort = FreePort.Next();
        int primaryPort = FreePort.Next();

        // The new secondary: a Colo process exporting its disk writable, as COLO's documentation has it.
        (QemuProcess sq, QmpClient sqmp) = await StartAsync("-drive", $"if=none,id=parent0,driver=qcow2,file.filename={secondary}");
        (QemuProcess pq, QmpClient pqmp) = await StartAsync("-drive", $"if=none,id=colo-disk0,driver=qcow2,file.filename={primary}");
        using (sq)
        using (sqmp)
        using (pq)
        using (pqmp)
        {
            var ignored = new List<string>();
            Assert.That(await ExecAsync(sqmp, "{\"execute\":\"nbd-server-start\",\"arguments\":{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"127.0.0.1\",\"port\":\"" + secondaryPort + "\"}}}}", ignored), Is.EqualTo("{\"return\": {}}"));
            Assert.That(await ExecAsync(sqmp, """{"execute":"nbd-server-add","arguments":{"device":"parent0","writable":true}}""", ignored), Is.EqualTo("{\"return\": {}}"));
            // The primary's own export of its drive stands in for the guest: qemu-io writes through it.
            Assert.That(await ExecAsync(pqmp, "{\"execute\":\"nbd-server-start\",\"arguments\":{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"127.0.0.1\",\"port\":\"" + primaryPort + "\"}}}}", ignored), Is.EqualTo("{\"return\": {}}"));
            Assert.That(await ExecAsync(pqmp, """{"execute":"nbd-server-add","arguments":{"device":"colo-disk0","writable":true}}""", ignored), Is.EqualTo("{\"return\": {}}"));

            var events = new List<string>();
            // 2 MiB/s over 8 MiB: the copy takes about four seconds, long enough for writes to land during it.
            string mirror = "{\"execute\":\"drive-mirror\",\"arguments\":{\"device\":\"colo-disk0\",\"job-id\":\"resync\",\"target\":\"nbd://127.0.0.1:"
                + secondaryPort + "/parent0\",\"mode\":\"existing\",\"sync\":\"full\",\"format\":\"raw\",\"speed\":2097152}}";
            Assert.That(await ExecAsync(pqmp, mirror, events), Is.EqualTo("{\"return\": {}}"));
            Assert.That(await ExecAsync(pqmp, mirror, events), Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Need a root block node\"}}"));

            QemuIo(primaryPort, "colo-disk0", "write -P 0x33 1M 64k");
            QemuIo(primaryPort, "colo-disk0", "write -P 0x44 7M 512k");
            string jobs = await ExecAsync(pqmp, """{"execute":"query-block-jobs"}""", events);
            JsonElement job = QmpClient.Parse(jobs).GetProperty("return")[0];
            Assert.That(job.GetProperty("device").GetString(), Is.EqualTo("resync"));
            Assert.That(job.GetProperty("type").GetString(), Is.EqualTo("mirror"));
            Assert.That(job.GetProperty("status").GetString(), Is.EqualTo("running"), jobs);
            Assert.That(job.GetProperty("ready").GetBoolean(), Is.False);
            Assert.That(job.GetProperty("speed").GetInt64(), Is.EqualTo(2097152));

            JsonElement ready = await WaitEventAsync(pqmp, "BLOCK_JOB_READY", events);
            Assert.That(ready.GetProperty("device").GetString(), Is.EqualTo("resync"));
            Assert.That(ready.GetProperty("offset").GetInt64(), Is.EqualTo(ready.GetProperty("len").GetInt64()));

            // Still mirrored after READY, then a cancel: the target must end equal to the source.
            QemuIo(primaryPort, "colo-disk0", "write -P 0x55 2M 4k");
            QemuIo(primaryPort, "colo-disk0", "write -z 5M 64k");
            Assert.That(await ExecAsync(pqmp, """{"execute":"block-job-complete","arguments":{"device":"nope"}}""", events),
                Is.EqualTo("{\"error\": {\"class\": \"DeviceNotActive\", \"desc\": \"Block job 'nope' not found\"}}"));
            Assert.That(await ExecAsync(pqmp, """{"execute":"block-job-cancel","arguments":{"device":"resync"}}""", events), Is.EqualTo("{\"return\": {}}"));
            JsonElement completed = await WaitEventAsync(pqmp, "BLOCK_JOB_COMPLETED", events);
            Assert.That(completed.TryGetProperty("error", out _), Is.False, completed.ToString());
            while (Story(events).Split(' ')[^1] != "null")
            {
                events.Add(await pqmp.NextLineAsync());
            }
            Assert.That(Story(events), Is.EqualTo("created running ready BLOCK_JOB_READY waiting pending BLOCK_JOB_COMPLETED concluded null"));
            Assert.That(await ExecAsync(pqmp, """{"execute":"query-block-jobs"}""", events), Is.EqualTo("{\"return\": []}"));

            // The drive stayed on the primary image after the cancel.
            string block = await ExecAsync(pqmp, """{"execute":"query-block"}""", events);
            Assert.That(QmpClient.Parse(block).GetProperty("return")[0].GetProperty("inserted").GetProperty("file").GetString(), Is.EqualTo(primary));

            Assert.That(await ExecAsync(pqmp, """{"execute":"quit"}""", events), Is.EqualTo("{\"return\": {}}"));
            Assert.That(await ExecAsync(sqmp, """{"execute":"quit"}""", ignored), Is.EqualTo("{\"return\": {}}"));
            pq.WaitForExit();
            sq.WaitForExit();
        }

        var compare = Tool("/usr/bin/qemu-img", "compare", primary, secondary);
        Assert.That(compare.ExitCode, Is.Zero, compare.Stdout + compare.Stderr);
        Assert.That(compare.Stdout, Does.Contain("Images are identical."));
        var check = Tool("/usr/bin/qemu-img", "check", secondary);
        Assert.That(check.ExitCode, Is.Zero, check.Stdout + check.Stderr);
        // The writes made during and after the copy are really there (not just equal because both stayed old).
        var read = Tool("/usr/bin/qemu-io", "-f", "qcow2", "-c", "read -P 0x33 1M 64k", "-c", "read -P 0x55 2M 4k", "-c", "read -P 0 5M 64k", "-c", "read -P 0x44 7M 512k", secondary);
        Assert.That(read.Stdout, Does.Not.Contain("Pattern verification failed"), read.Stdout);
    }

    [Test]
    public async Task DriveMirrorToFile_CompletePivots_QueryBlockShowsTarget()
    {
        Assume.That(File.Exists("/usr/bin/qemu-img"), "qemu-utils not installed");
        string source = Path.Combine(_dir, "src.qcow2");
        string target = Path.Combine(_dir, "dst.qcow2");
        Assert.That(Tool("/usr/bin/qemu-img", "create", "-f", "qcow2", source, "4M").ExitCode, Is.Zero);
        Assert.That(Tool("/usr/bin/qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 1M", source).ExitCode, Is.Zero);
        (QemuProcess q, QmpClient qmp) = await StartAsync("-drive", $"if=none,id=d0,file={source}");
        using (q)
        using (qmp)
        {
            var events = new List<string>();
            Assert.That(await ExecAsync(qmp, """{"execute":"drive-mirror","arguments":{"device":"nope","target":"/x","sync":"full"}}""", events),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Cannot find device='nope' nor node-name='nope'\"}}"));
            Assert.That(await ExecAsync(qmp, """{"execute":"drive-mirror","arguments":{"device":"d0","target":"/x","sync":"bogus"}}""", events),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'sync' does not accept value 'bogus'\"}}"));
            Assert.That(await ExecAsync(qmp, """{"execute":"drive-mirror","arguments":{"device":"d0","target":"/x"}}""", events),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'sync' is missing\"}}"));
            Assert.That(await ExecAsync(qmp, "{\"execute\":\"drive-mirror\",\"arguments\":{\"device\":\"d0\",\"target\":\"" + target + "\",\"sync\":\"full\"}}", events), Is.EqualTo("{\"return\": {}}"));
            await WaitEventAsync(qmp, "BLOCK_JOB_READY", events);
            Assert.That(await ExecAsync(qmp, """{"execute":"block-job-complete","arguments":{"device":"d0"}}""", events), Is.EqualTo("{\"return\": {}}"));
            await WaitEventAsync(qmp, "BLOCK_JOB_COMPLETED", events);
            while (Story(events).Split(' ')[^1] != "null")
            {
                events.Add(await qmp.NextLineAsync());
            }
            Assert.That(Story(events), Is.EqualTo("created running ready BLOCK_JOB_READY waiting pending BLOCK_JOB_COMPLETED concluded null"));
            string block = await ExecAsync(qmp, """{"execute":"query-block"}""", events);
            Assert.That(QmpClient.Parse(block).GetProperty("return")[0].GetProperty("inserted").GetProperty("file").GetString(), Is.EqualTo(target));
            Assert.That(await ExecAsync(qmp, """{"execute":"quit"}""", events), Is.EqualTo("{\"return\": {}}"));
            q.WaitForExit();
        }
        var compare = Tool("/usr/bin/qemu-img", "compare", source, target);
        Assert.That(compare.ExitCode, Is.Zero, compare.Stdout + compare.Stderr);
        var check = Tool("/usr/bin/qemu-img", "check", target);
        Assert.That(check.ExitCode, Is.Zero, check.Stdout);
        // Only the source's 1 MiB of data was written: the new target stays sparse, as QEMU's does.
        Assert.That(check.Stdout, Does.Contain("16/64 = 25.00% allocated"));
    }

    /// <summary>
    /// A job still running at quit ends as in QEMU 7.2 (checked against Debian's qemu-system-x86_64): SHUTDOWN, the
    /// drain's paused/running, then aborting, BLOCK_JOB_CANCELLED, concluded, null — all before the process exits.
    /// </summary>
    [Test]
    public async Task Quit_WithRunningMirror_JobCancelledWithQemuEvents()
    {
        Assume.That(File.Exists("/usr/bin/qemu-img"), "qemu-utils not installed");
        string source = Path.Combine(_dir, "a.qcow2");
        Assert.That(Tool("/usr/bin/qemu-img", "create", "-f", "qcow2", source, "8M").ExitCode, Is.Zero);
        Assert.That(Tool("/usr/bin/qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 4M", source).ExitCode, Is.Zero);
        (QemuProcess q, QmpClient qmp) = await StartAsync("-drive", $"if=none,id=d0,file={source}");
        using (q)
        using (qmp)
        {
            var lines = new List<string>();
            string mirror = "{\"execute\":\"drive-mirror\",\"arguments\":{\"device\":\"d0\",\"job-id\":\"j1\",\"target\":\""
                + Path.Combine(_dir, "t.qcow2") + "\",\"sync\":\"full\",\"speed\":1048576}}";
            Assert.That(await ExecAsync(qmp, mirror, lines), Is.EqualTo("{\"return\": {}}"));
            await qmp.SendAsync("{\"execute\":\"quit\"}\n");
            while (await q.Stdout.NextAsync(QemuProcess.Timeout) is { } line)
            {
                lines.Add(line);
            }
            Assert.That(q.WaitForExit(), Is.Zero);
            var seen = new List<string>();
            foreach (string line in lines)
            {
                JsonElement e = QmpClient.Parse(line);
                if (!e.TryGetProperty("event", out JsonElement name))
                {
                    continue;
                }
                seen.Add(name.GetString() == "JOB_STATUS_CHANGE" ? e.GetProperty("data").GetProperty("status").GetString()! : name.GetString()!);
            }
            Assert.That(seen, Is.EqualTo(new[]
            {
                "created", "running", "SHUTDOWN", "paused", "running", "aborting", "BLOCK_JOB_CANCELLED", "concluded", "null",
            }), string.Join("\n", lines));
        }
    }
}
