using System.Text.Json;
using Colo.Core.Chardev;
using Colo.Core.Chardev.Qmp;
using Colo.Core.Qmp;
using static Colo.Tests.Unit.Chardev.ChardevTestHarness;

namespace Colo.Tests.Unit.Chardev.Qmp;

[TestFixture]
public sealed class ChardevQmpCommandsTests
{
    /// <summary>The six chardev-add lines of the "Secondary Failover" section of QEMU's COLO documentation, verbatim.</summary>
    private static readonly string[] SecondaryFailoverLines =
    [
        "{'execute': 'chardev-add', 'arguments':{ 'id': 'mirror0', 'backend': {'type': 'socket', 'data': {'addr': { 'type': 'inet', 'data': { 'host': '0.0.0.0', 'port': '9003' } }, 'server': true } } } }",
        "{'execute': 'chardev-add', 'arguments':{ 'id': 'compare1', 'backend': {'type': 'socket', 'data': {'addr': { 'type': 'inet', 'data': { 'host': '0.0.0.0', 'port': '9004' } }, 'server': true } } } }",
        "{'execute': 'chardev-add', 'arguments':{ 'id': 'compare0', 'backend': {'type': 'socket', 'data': {'addr': { 'type': 'inet', 'data': { 'host': '127.0.0.1', 'port': '9001' } }, 'server': true } } } }",
        "{'execute': 'chardev-add', 'arguments':{ 'id': 'compare0-0', 'backend': {'type': 'socket', 'data': {'addr': { 'type': 'inet', 'data': { 'host': '127.0.0.1', 'port': '9001' } }, 'server': false } } } }",
        "{'execute': 'chardev-add', 'arguments':{ 'id': 'compare_out', 'backend': {'type': 'socket', 'data': {'addr': { 'type': 'inet', 'data': { 'host': '127.0.0.1', 'port': '9005' } }, 'server': true } } } }",
        "{'execute': 'chardev-add', 'arguments':{ 'id': 'compare_out0', 'backend': {'type': 'socket', 'data': {'addr': { 'type': 'inet', 'data': { 'host': '127.0.0.1', 'port': '9005' } }, 'server': false } } } }",
    ];

    private static readonly string[] FailoverIds = ["mirror0", "compare1", "compare0", "compare0-0", "compare_out", "compare_out0"];

    private ChardevTestHarness _h = null!;
    private QmpCommandRegistry _qmp = null!;

    [SetUp]
    public void SetUp()
    {
        _h = new ChardevTestHarness();
        _qmp = new QmpCommandRegistry();
        ChardevQmpCommands.Register(_qmp, _h.Types, _h.Tree);
        _qmp.Freeze();
    }

    [TearDown]
    public void TearDown() => _h.Dispose();

    [Test]
    public void SecondaryFailoverLines_AddAndRemove()
    {
        // Single quotes are QEMU's JSON extension (the Monitor accepts them); here they are swapped for the
        // test's standard parser. Loopback and free ports replace 0.0.0.0 and the fixed ports.
        var ports = new Dictionary<string, string>
        {
            ["9003"] = FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["9004"] = FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["9001"] = FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["9005"] = FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        foreach (string line in SecondaryFailoverLines)
        {
            string json = line.Replace('\'', '"').Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal);
            foreach (KeyValuePair<string, string> port in ports)
            {
                json = json.Replace($"\"{port.Key}\"", $"\"{port.Value}\"", StringComparison.Ordinal);
            }
            using var doc = JsonDocument.Parse(json);
            Assert.That(doc.RootElement.GetProperty("execute").GetString(), Is.EqualTo("chardev-add"));
            Assert.That(Run("chardev-add", doc.RootElement.GetProperty("arguments")), Is.EqualTo("{}"), line);
        }

        // QMP's defaults: server on, no wait, so every line returned at once; the clients connected to their servers.
        Assert.That(((SocketChardev)ChardevFactory.Find(_h.Tree, "compare0-0")!).IsConnected, Is.True);
        Assert.That(((SocketChardev)ChardevFactory.Find(_h.Tree, "compare_out0")!).IsConnected, Is.True);
        Assert.That(((SocketChardev)ChardevFactory.Find(_h.Tree, "mirror0")!).IsServer, Is.True);
        Assert.That(((SocketChardev)ChardevFactory.Find(_h.Tree, "mirror0")!).Filename,
            Is.EqualTo($"disconnected:tcp:127.0.0.1:{ports["9003"]},server=on"));

        // The server side accepts on its own loop; QEMU's query-chardev then shows both ends of the pair.
        var compare0 = (SocketChardev)ChardevFactory.Find(_h.Tree, "compare0")!;
        var compare00 = (SocketChardev)ChardevFactory.Find(_h.Tree, "compare0-0")!;
        Assert.That(SpinWait.SpinUntil(() => compare0.IsConnected, 5000), Is.True);
        string clientPort = compare00.Filename.Split(" <-> ")[0].Split(':')[^1];
        Assert.That(compare00.Filename, Is.EqualTo($"tcp:127.0.0.1:{clientPort} <-> 127.0.0.1:{ports["9001"]}"));
        Assert.That(compare0.Filename, Is.EqualTo($"tcp:127.0.0.1:{ports["9001"]},server=on <-> 127.0.0.1:{clientPort}"));

        using (var query = JsonDocument.Parse(Run("query-chardev", "{}")))
        {
            string[] labels = [.. query.RootElement.EnumerateArray().Select(e => e.GetProperty("label").GetString()!)];
            Assert.That(labels, Is.EqualTo(FailoverIds));
            JsonElement first = query.RootElement[0];
            Assert.That(first.GetProperty("frontend-open").GetBoolean(), Is.False);
        }

        foreach (string id in FailoverIds.Reverse())
        {
            Assert.That(Run("chardev-remove", $"{{\"id\": \"{id}\"}}"), Is.EqualTo("{}"));
        }
        Assert.That(ChardevFactory.All(_h.Tree), Is.Empty);
    }

    [Test]
    public void ChardevAdd_UnixServer_DefaultsToNoWait()
    {
        string dir = Directory.CreateTempSubdirectory("colo-chardev-").FullName;
        try
        {
            string path = Path.Combine(dir, "q.sock");
            Assert.That(Run("chardev-add", $"{{\"id\": \"u1\", \"backend\": {{\"type\": \"socket\", \"data\": {{\"addr\": {{\"type\": \"unix\", \"data\": {{\"path\": \"{path}\"}}}}}}}}}}"), Is.EqualTo("{}"));
            Assert.That(((IChardevInfo)ChardevFactory.Find(_h.Tree, "u1")!).Filename, Is.EqualTo($"disconnected:unix:{path},server=on"));
            Run("chardev-remove", "{\"id\": \"u1\"}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestCase("{\"id\": \"x\", \"backend\": {\"type\": \"null\"}}", "Parameter 'backend.data' is missing")]
    [TestCase("{\"id\": \"x\", \"backend\": {\"type\": \"foo\", \"data\": {}}}", "Parameter 'type' does not accept value 'foo'")]
    [TestCase("{\"id\": \"x\", \"backend\": {\"type\": \"socket\", \"data\": {}}}", "Parameter 'backend.data.addr' is missing")]
    [TestCase("{\"id\": \"x\", \"backend\": {\"type\": \"socket\", \"data\": {\"addr\": {\"type\": \"inet\", \"data\": {\"host\": \"127.0.0.1\", \"port\": 1}}}}}", "Invalid parameter type for 'backend.data.addr.data.port', expected: string")]
    [TestCase("{\"id\": \"x\", \"backend\": {\"type\": \"socket\", \"data\": {\"addr\": {\"type\": \"inet\", \"data\": {\"host\": \"127.0.0.1\", \"port\": \"1\"}}, \"server\": true, \"reconnect\": 1}}}", "Failed to add chardev 'x': 'reconnect' option is incompatible with socket in server listen mode")]
    [TestCase("{\"id\": \"x\", \"backend\": {\"type\": \"socket\", \"data\": {\"addr\": {\"type\": \"inet\", \"data\": {\"host\": \"127.0.0.1\", \"port\": \"1\"}}, \"bogus\": 1}}}", "Parameter 'backend.data.bogus' is unexpected")]
    [TestCase("{\"id\": \"x\", \"backend\": {\"type\": \"ringbuf\", \"data\": {\"size\": 3}}}", "Failed to add chardev 'x': size of ringbuf chardev must be power of two")]
    [TestCase("{\"id\": \"x\", \"backend\": {\"type\": \"pty\", \"data\": {}}}", "Failed to add chardev 'x': chardev backend 'pty' is not implemented yet in Colo (the pty backend)")]
    public void ChardevAdd_BadArguments_QemuText(string arguments, string expected)
    {
        QmpException e = Assert.Throws<QmpException>(() => Run("chardev-add", arguments))!;
        Assert.That(e.Message, Is.EqualTo(expected));
        Assert.That(ChardevFactory.All(_h.Tree), Is.Empty);
    }

    [Test]
    public void ChardevAdd_ClientWithoutPeer_FailsWithPrefix()
    {
        int port = FreePort();
        QmpException e = Assert.Throws<QmpException>(() => Run("chardev-add",
            $"{{\"id\": \"c1\", \"backend\": {{\"type\": \"socket\", \"data\": {{\"addr\": {{\"type\": \"inet\", \"data\": {{\"host\": \"127.0.0.1\", \"port\": \"{port}\"}}}}, \"server\": false}}}}}}"))!;
        Assert.That(e.Message, Is.EqualTo($"Failed to add chardev 'c1': Failed to connect to '127.0.0.1:{port}': Connection refused"));
    }

    [Test]
    public void ChardevAdd_ClientWithReconnect_SucceedsAndReports()
    {
        int port = FreePort();
        Assert.That(Run("chardev-add",
            $"{{\"id\": \"c2\", \"backend\": {{\"type\": \"socket\", \"data\": {{\"addr\": {{\"type\": \"inet\", \"data\": {{\"host\": \"127.0.0.1\", \"port\": \"{port}\"}}}}, \"server\": false, \"reconnect\": 1}}}}}}"),
            Is.EqualTo("{}"));
        Assert.That(_h.Reports.TryTake(out string? line, 5000), Is.True);
        Assert.That(line, Is.EqualTo($"Unable to connect character device c2: Failed to connect to '127.0.0.1:{port}': Connection refused"));
        Assert.That(Run("query-chardev", "{}"), Is.EqualTo($"[{{\"label\":\"c2\",\"filename\":\"disconnected:tcp:127.0.0.1:{port}\",\"frontend-open\":false}}]"));
    }

    [Test]
    public void ChardevAdd_DuplicateId_QemuText()
    {
        Run("chardev-add", "{\"id\": \"n\", \"backend\": {\"type\": \"null\", \"data\": {}}}");
        QmpException e = Assert.Throws<QmpException>(() => Run("chardev-add", "{\"id\": \"n\", \"backend\": {\"type\": \"null\", \"data\": {}}}"))!;
        Assert.That(e.Message, Is.EqualTo("Chardev with id 'n' already exists"));
    }

    [Test]
    public void ChardevRemove_NotFoundAndBusy_QemuText()
    {
        Assert.That(Assert.Throws<QmpException>(() => Run("chardev-remove", "{\"id\": \"nope\"}"))!.Message, Is.EqualTo("Chardev 'nope' not found"));
        Run("chardev-add", "{\"id\": \"mon\", \"backend\": {\"type\": \"null\", \"data\": {}}}");
        Colo.Core.Chardev.Chardev mon = ChardevFactory.Find(_h.Tree, "mon")!;
        _h.Attach(mon);
        Assert.That(Assert.Throws<QmpException>(() => Run("chardev-remove", "{\"id\": \"mon\"}"))!.Message, Is.EqualTo("Chardev 'mon' is busy"));
        Assert.That(Run("query-chardev", "{}"), Is.EqualTo("[{\"label\":\"mon\",\"filename\":\"null\",\"frontend-open\":true}]"));
        mon.Detach();
        Assert.That(Run("chardev-remove", "{\"id\": \"mon\"}"), Is.EqualTo("{}"));
    }

    [Test]
    public void Ringbuf_WriteThenRead_Utf8AndBase64()
    {
        Run("chardev-add", "{\"id\": \"r1\", \"backend\": {\"type\": \"ringbuf\", \"data\": {\"size\": 1024}}}");
        Assert.That(Run("ringbuf-write", "{\"device\": \"r1\", \"data\": \"hello\"}"), Is.EqualTo("{}"));
        Assert.That(Run("ringbuf-read", "{\"device\": \"r1\", \"size\": 3}"), Is.EqualTo("\"hel\""));
        Assert.That(Run("ringbuf-read", "{\"device\": \"r1\", \"size\": 10, \"format\": \"base64\"}"), Is.EqualTo("\"bG8=\""));
        Run("chardev-add", "{\"id\": \"n1\", \"backend\": {\"type\": \"null\", \"data\": {}}}");
        Assert.That(Assert.Throws<QmpException>(() => Run("ringbuf-read", "{\"device\": \"n1\", \"size\": 1}"))!.Message, Is.EqualTo("n1 is not a ringbuf device"));
        Assert.That(Assert.Throws<QmpException>(() => Run("ringbuf-read", "{\"device\": \"zz\", \"size\": 1}"))!.Message, Is.EqualTo("Device 'zz' not found"));
    }

    [Test]
    public void QueryChardevBackends_ListsAll()
    {
        using var doc = JsonDocument.Parse(Run("query-chardev-backends", "{}"));
        Assert.That(doc.RootElement.GetArrayLength(), Is.EqualTo(17));
        Assert.That(doc.RootElement.EnumerateArray().Select(e => e.GetProperty("name").GetString()), Does.Contain("socket"));
    }

    private string Run(string command, string arguments)
    {
        using var doc = JsonDocument.Parse(arguments);
        return Run(command, doc.RootElement);
    }

    private string Run(string command, JsonElement arguments)
    {
        Assert.That(_qmp.TryGet(command, out QmpCommand cmd), Is.True, command);
        return cmd.Invoke(arguments, new QmpContext(null));
    }
}
