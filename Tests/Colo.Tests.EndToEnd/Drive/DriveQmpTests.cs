using System.Text.RegularExpressions;
using Colo.Block.Qcow2;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Drive;

/// <summary>
/// <c>-drive</c> through the built qemu-system-x86_64: the block graph as query-block,
/// query-named-block-nodes and <c>info block</c> show it, side by side with real QEMU when installed.
/// </summary>
[TestFixture]
public sealed partial class DriveQmpTests
{
    private string _dir = null!;

    [GeneratedRegex("#block[0-9]+")]
    private static partial Regex AutoNodeName();

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "colo-drive-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private string Qcow2(string name, string? backing = null)
    {
        string path = Path.Combine(_dir, name);
        Qcow2Creator.Create(path, new Qcow2CreateOptions { Size = 1 << 20, BackingFile = backing, BackingFormat = backing is null ? null : "qcow2" });
        return path;
    }

    private static async Task<string[]> Transcript(string binary, string[] drives, params string[] commands)
    {
        var args = new List<string> { "-M", "none", "-S", "-display", "none", "-qmp", "stdio" };
        foreach (string d in drives)
        {
            args.Add("-drive");
            args.Add(d);
        }
        using QemuProcess qemu = QemuProcess.Start(binary, args);
        using QmpClient qmp = QmpClient.OverStdio(qemu);
        await qmp.HandshakeAsync();
        var replies = new List<string>();
        foreach (string c in commands)
        {
            replies.Add(AutoNodeName().Replace(await qmp.ExecuteAsync(c), "#blockN"));
        }
        await qmp.ExecuteAsync("""{"execute": "quit"}""");
        Assert.That(qemu.WaitForExit(), Is.Zero);
        return [.. replies];
    }

    private static readonly string[] s_queries =
    [
        """{"execute": "query-block"}""",
        """{"execute": "query-named-block-nodes", "arguments": {"flat": true}}""",
        """{"execute": "query-named-block-nodes"}""",
        """{"execute": "human-monitor-command", "arguments": {"command-line": "info block"}}""",
    ];

    [Test]
    public async Task ColoParent0AndBackingChain_MatchRealQemu()
    {
        string primary = Qcow2("primary.qcow2");
        string overlay = Qcow2("overlay.qcow2", backing: Qcow2("base.qcow2"));
        string raw = Path.Combine(_dir, "disk.raw");
        await File.WriteAllBytesAsync(raw, new byte[65536]);
        string[] drives =
        [
            $"if=none,id=parent0,file.filename={primary},driver=qcow2",
            $"if=none,id=d1,driver=qcow2,file.filename={overlay},node-name=ov,detect-zeroes=on,cache.direct=off",
            $"if=none,id=d2,file={raw},format=raw,read-only=on,node-name=rn",
        ];
        string[] ours = await Transcript(ColoBinaries.QemuSystem, drives, s_queries);
        Assert.Multiple(() =>
        {
            Assert.That(ours[0], Does.StartWith("""{"return": [{"device": "parent0", "locked": false, "removable": true, "inserted": {"""));
            Assert.That(ours[0], Does.Contain("\"backing_file_depth\": 1"));
            Assert.That(ours[3], Does.StartWith("{\"return\": \"parent0 (#blockN): " + primary + " (qcow2)\\r\\n    Removable device: not locked, tray closed\\r\\n    Cache mode:       writeback\\r\\n\\r\\nd1 (ov): "));
            Assert.That(ours[3], Does.Contain("d2 (rn): " + raw + " (raw, read-only)"));
        });
        if (!File.Exists("/usr/bin/qemu-system-x86_64"))
        {
            Assert.Ignore("real QEMU is not installed for the side-by-side check");
        }
        string[] theirs = await Transcript("/usr/bin/qemu-system-x86_64", drives, s_queries);
        Assert.Multiple(() =>
        {
            for (int i = 0; i < s_queries.Length; i++)
            {
                Assert.That(ours[i], Is.EqualTo(theirs[i]), s_queries[i]);
            }
        });
    }

    [Test]
    public async Task DriveAddAndDriveDel_ThroughHumanMonitorCommand()
    {
        string primary = Qcow2("primary.qcow2");
        string[] replies = await Transcript(
            ColoBinaries.QemuSystem,
            [],
            """{"execute": "human-monitor-command", "arguments": {"command-line": "drive_add buddy if=none,id=z,file=""" + primary + """,format=qcow2"}}""",
            """{"execute": "human-monitor-command", "arguments": {"command-line": "drive_add -n buddy driver=replication,mode=secondary,top-id=colo-disk0,node-name=rep,file=z"}}""",
            """{"execute": "human-monitor-command", "arguments": {"command-line": "drive_del z"}}""",
            """{"execute": "human-monitor-command", "arguments": {"command-line": "drive_del z"}}""",
            """{"execute": "query-block"}""");
        Assert.That(replies, Is.EqualTo(new[]
        {
            """{"return": "OK\r\n"}""",
            """{"return": ""}""",
            """{"return": ""}""",
            """{"return": "Device 'z' not found\r\n"}""",
            """{"return": []}""",
        }));
    }

    [TestCase("if=none,id=d0,file=/nonexistent/x.img,format=raw", "Could not open '/nonexistent/x.img': No such file or directory")]
    [TestCase("if=none,id=d0,file.filename=/tmp/x,driver=foo", "Unknown driver 'foo'")]
    [TestCase("if=ide,id=d0,file=/tmp/x,format=raw", "machine type does not support if=ide,bus=0,unit=0")]
    [TestCase("if=none,id=childs0,driver=replication,mode=secondary,top-id=colo-disk0,file.driver=qcow2,file.file.filename=/x", "Could not open '/x': No such file or directory")]
    [TestCase("if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0=childs0", "Cannot find device='childs0' nor node-name='childs0'")]
    public void BadDrive_OneQemuStyleLine_ExitOne(string drive, string reason)
    {
        (int code, string stdout, string stderr) = QemuProcess.Run("-M", "none", "-S", "-display", "none", "-drive", drive);
        Assert.Multiple(() =>
        {
            Assert.That(code, Is.EqualTo(1));
            Assert.That(stderr, Is.EqualTo($"qemu-system-x86_64: -drive {drive}: {reason}\n"));
            Assert.That(stdout, Is.Empty);
        });
    }
}
