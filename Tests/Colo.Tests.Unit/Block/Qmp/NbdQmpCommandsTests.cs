using System.Text.Json;
using Colo.Block;
using Colo.Block.Graph;
using Colo.Block.Nbd;
using Colo.Block.Qcow2;
using Colo.Block.Qmp;
using Colo.Core.Options;
using Colo.Core.Qmp;

namespace Colo.Tests.Unit.Block.Qmp;

[TestFixture]
[CancelAfter(60_000)]
public sealed class NbdQmpCommandsTests
{
    private string _dir = null!;
    private BlockGraph _graph = null!;
    private QmpCommandRegistry _registry = null!;
    private readonly List<QmpEventMessage> _events = [];

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "nbdqmp-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        foreach (string name in new[] { "parent.qcow2", "hidden.qcow2", "ro.qcow2" })
        {
            Qcow2Creator.Create(Path.Combine(_dir, name), new Qcow2CreateOptions { Size = 1 << 20 });
        }
        _events.Clear();
        _graph = new BlockGraph();
        // The COLO secondary's shape: parent0 is a drive and also the backing node of another one.
        Drive($"if=none,id=parent0,driver=qcow2,file.filename={Path.Combine(_dir, "parent.qcow2")}");
        Drive($"if=none,id=hidden0,driver=qcow2,file.filename={Path.Combine(_dir, "hidden.qcow2")},backing=parent0");
        Drive($"if=none,id=ro0,driver=qcow2,read-only=on,file.filename={Path.Combine(_dir, "ro.qcow2")}");
        _registry = new QmpCommandRegistry();
        var bus = new QmpEventBus();
        bus.Subscribe(_events.Add);
        BlockQmpCommands.Register(_registry, _graph, bus);
        _registry.Freeze();
    }

    [TearDown]
    public void TearDown()
    {
        _graph.Dispose();
        Directory.Delete(_dir, true);
    }

    private void Drive(string spec) => _graph.AddDrive([.. KeyValParser.Parse(spec, null).Pairs]);

    private string Run(string name, string? args = null)
    {
        Assert.That(_registry.TryGet(name, out QmpCommand command), Is.True, name);
        return command.Invoke(args is null ? null : JsonDocument.Parse(args).RootElement, new QmpContext(null));
    }

    private QmpException Fails(string name, string? args = null) => Assert.Throws(Is.InstanceOf<QmpException>(), () => Run(name, args)) as QmpException ?? throw new AssertionException("no exception");

    private void StartOnFreePort() => Run("nbd-server-start", """{"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": "0"}}}""");

    private int Port => _graph.Nbd.Server!.Port;

    [Test]
    public void CommandsBeforeStart_FailWithQemuTexts()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Fails("nbd-server-add", """{"device": "parent0"}""").Message, Is.EqualTo("NBD server not running"));
            Assert.That(Fails("nbd-server-stop").Message, Is.EqualTo("NBD server not running"));
            Assert.That(Fails("nbd-server-remove", """{"name": "x"}""").Message, Is.EqualTo("Export 'x' is not found"));
        });
    }

    [TestCase("""{"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": 9999}}}""", "Invalid parameter type for 'addr.data.port', expected: string")]
    [TestCase("""{"addr": {"type": "inet", "data": {"host": "127.0.0.1"}}}""", "Parameter 'addr.data.port' is missing")]
    [TestCase("""{"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": "1", "x": 1}}}""", "Parameter 'addr.data.x' is unexpected")]
    [TestCase("""{"addr": {"type": "inet"}}""", "Parameter 'addr.data' is missing")]
    [TestCase("""{"addr": {"type": "bogus", "data": {}}}""", "Parameter 'type' does not accept value 'bogus'")]
    [TestCase("""{}""", "Parameter 'addr' is missing")]
    [TestCase("""{"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": "0"}}, "max-connections": -1}""", "Parameter 'max-connections' expects uint32_t")]
    [TestCase("""{"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": "abc"}}}""", "address resolution failed for 127.0.0.1:abc: Servname not supported for ai_socktype")]
    [TestCase("""{"addr": {"type": "unix", "data": {"path": "/nonexistent-colo-dir/x.sock"}}}""", "Failed to bind socket to /nonexistent-colo-dir/x.sock: No such file or directory")]
    public void Start_BadArguments_QemuText(string args, string expected)
    {
        Assert.That(Fails("nbd-server-start", args).Message, Is.EqualTo(expected));
        Assert.That(_graph.Nbd.Running, Is.False);
    }

    [Test]
    public void Start_TlsCreds_RefusedNamingTls()
    {
        string message = Fails("nbd-server-start", """{"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": "0"}}, "tls-creds": "tls0"}""").Message;
        Assert.That(message, Does.Contain("TLS").And.Contain("tls-creds 'tls0'"));
        Assert.That(_graph.Nbd.Running, Is.False);
    }

    [Test]
    public void Start_Twice_AlreadyRunning_StopThenStartAgainWorks()
    {
        StartOnFreePort();
        Assert.That(Fails("nbd-server-start", """{"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": "0"}}}""").Message, Is.EqualTo("NBD server already running"));
        Run("nbd-server-stop");
        StartOnFreePort();
        Assert.That(_graph.Nbd.Running, Is.True);
    }

    [Test]
    public void Start_PortInUse_QemuText()
    {
        StartOnFreePort();
        int port = Port;
        using var other = new BlockGraph();
        var registry = new QmpCommandRegistry();
        BlockQmpCommands.Register(registry, other, new QmpEventBus());
        registry.Freeze();
        registry.TryGet("nbd-server-start", out QmpCommand start);
        var e = Assert.Throws<BlockException>(() => start.Invoke(JsonDocument.Parse("{\"addr\": {\"type\": \"inet\", \"data\": {\"host\": \"127.0.0.1\", \"port\": \"" + port + "\"}}}").RootElement, new QmpContext(null)));
        Assert.That(e!.Message, Is.EqualTo("Failed to find an available port: Address already in use"));
    }

    [Test]
    public void Add_Errors_QemuTexts()
    {
        StartOnFreePort();
        Run("nbd-server-add", """{"device": "parent0"}""");
        QmpException notFound = Fails("nbd-server-add", """{"device": "nope"}""");
        Assert.Multiple(() =>
        {
            Assert.That(notFound.Message, Is.EqualTo("Cannot find device='nope' nor node-name='nope'"));
            Assert.That(notFound.ErrorClass, Is.EqualTo(QmpErrorClass.GenericError), "QEMU 7.2 reports this one as GenericError");
            Assert.That(Fails("nbd-server-add", """{"device": "parent0"}""").Message, Is.EqualTo("Block export id 'parent0' is already in use"));
            Assert.That(Fails("nbd-server-add", """{"device": "parent0", "name": "a b"}""").Message, Is.EqualTo("Invalid block export id"));
            Assert.That(Fails("nbd-server-add", """{"device": "parent0", "name": ""}""").Message, Is.EqualTo("Invalid block export id"));
            Assert.That(Fails("nbd-server-add", """{"device": "parent0", "name": "b", "bitmap": "bm"}""").Message, Is.EqualTo("Bitmap 'bm' is not found"));
            Assert.That(Fails("nbd-server-add", """{"device": "parent0", "writable": "yes"}""").Message, Is.EqualTo("Invalid parameter type for 'writable', expected: boolean"));
            Assert.That(Fails("nbd-server-add", """{}""").Message, Is.EqualTo("Parameter 'device' is missing"));
        });
    }

    [Test]
    public void Add_ColoParentBackingNode_WritableAndWritesReachTheNode()
    {
        Run("nbd-server-start", """{"addr":{"type":"inet","data":{"host":"127.0.0.1","port":"0"}}}""");
        Run("nbd-server-add", """{"device":"parent0","writable":true}""");
        using (NbdClient c = NbdClient.ConnectTcp("127.0.0.1", Port, "parent0"))
        {
            Assert.That(c.ReadOnly, Is.False);
            c.Write(4096, "colo"u8);
            c.Flush();
        }
        byte[] back = new byte[4];
        _graph.FindNodeOrDevice("parent0")!.Read(4096, back);
        Assert.That(back, Is.EqualTo("colo"u8.ToArray()));
        // The secondary's hidden disk sees the write through its backing edge.
        _graph.FindNodeOrDevice("hidden0")!.Read(4096, back);
        Assert.That(back, Is.EqualTo("colo"u8.ToArray()));
    }

    [Test]
    public void Add_ReadOnlyNodeAsWritable_ExportedReadOnly_WritesRefused()
    {
        StartOnFreePort();
        Run("nbd-server-add", """{"device": "ro0", "writable": true, "description": "ro disk"}""");
        using NbdClient c = NbdClient.ConnectTcp("127.0.0.1", Port, "ro0");
        Assert.That(c.ReadOnly, Is.True);
        Assert.Throws<BlockException>(() => c.Write(0, "x"u8));
    }

    [Test]
    public void Remove_ModesAndEvents_QueryBlockExports()
    {
        StartOnFreePort();
        Run("nbd-server-add", """{"device": "parent0"}""");
        Run("nbd-server-add", """{"device": "hidden0", "name": "h"}""");
        Run("nbd-server-add", """{"device": "ro0", "name": "r"}""");
        JsonElement list = JsonDocument.Parse(Run("query-block-exports")).RootElement;
        Assert.That(list.GetArrayLength(), Is.EqualTo(3));
        Assert.That(list[0].GetProperty("id").GetString(), Is.EqualTo("r"), "newest first");
        Assert.That(list[2].GetProperty("node-name").GetString(), Is.EqualTo(_graph.FindNodeOrDevice("parent0")!.NodeName));
        Assert.That(list[2].GetProperty("type").GetString(), Is.EqualTo("nbd"));

        Assert.That(Fails("nbd-server-remove", """{"name": "h", "mode": "bogus"}""").Message, Is.EqualTo("Parameter 'mode' does not accept value 'bogus'"));
        using NbdClient c = NbdClient.ConnectTcp("127.0.0.1", Port, "h");
        byte[] one = new byte[1];
        c.Read(0, one);
        Run("nbd-server-remove", """{"name": "h", "mode": "hard"}""");
        Assert.Throws<BlockException>(() => c.Read(0, one), "hard removal drops connected clients");
        Assert.That(() => NbdClient.ConnectTcp("127.0.0.1", Port, "h"), Throws.InstanceOf<BlockException>());
        Run("nbd-server-remove", """{"name": "parent0", "mode": "safe"}""");
        Run("nbd-server-stop");
        Assert.That(Fails("nbd-server-stop").Message, Is.EqualTo("NBD server not running"));
        string[] deleted = [.. _events.Select(e => e.Name + " " + e.DataJson)];
        Assert.That(deleted, Is.EqualTo(new[]
        {
            """BLOCK_EXPORT_DELETED {"id":"h"}""",
            """BLOCK_EXPORT_DELETED {"id":"parent0"}""",
            """BLOCK_EXPORT_DELETED {"id":"r"}""",
        }));
    }

    [Test]
    public void Start_Unix_ExportsOverTheSocket_MaxConnectionsLimits()
    {
        string path = Path.Combine(_dir, "nbd.sock");
        Run("nbd-server-start", "{\"addr\": {\"type\": \"unix\", \"data\": {\"path\": \"" + path + "\"}}, \"max-connections\": 1}");
        Run("nbd-server-add", """{"device": "parent0"}""");
        NbdClient c = NbdClient.ConnectUnix(path, "parent0");
        Assert.That(c.Size, Is.EqualTo(1 << 20));
        // Over the limit a client waits in the listen backlog, as with QEMU, until a slot frees.
        Task<NbdClient> second = Task.Run(() => NbdClient.ConnectUnix(path, "parent0"));
        Assert.That(second.Wait(TimeSpan.FromMilliseconds(300)), Is.False, "a second client is held back by max-connections");
        c.Dispose();
        Assert.That(second.Wait(TimeSpan.FromSeconds(20)), Is.True, "served once the first client left");
        second.Result.Dispose();
    }

    [Test]
    public void DriveDel_OfExportedDrive_DropsTheExport()
    {
        StartOnFreePort();
        Run("nbd-server-add", """{"device": "ro0"}""");
        _graph.DeleteDrive("ro0");
        Assert.That(JsonDocument.Parse(Run("query-block-exports")).RootElement.GetArrayLength(), Is.Zero);
    }
}
