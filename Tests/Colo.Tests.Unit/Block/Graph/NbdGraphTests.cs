using System.Net;
using Colo.Block;
using Colo.Block.Graph;
using Colo.Block.Nbd;
using Colo.Core.Options;
using Colo.Tests.Unit.Block.Nbd;

namespace Colo.Tests.Unit.Block.Graph;

/// <summary>The nbd protocol node in the graph, against Colo's own server on loopback.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class NbdGraphTests
{
    private MemoryNode _disk = null!;
    private NbdServer _server = null!;
    private BlockGraph _graph = null!;
    private readonly List<string> _warnings = [];

    [SetUp]
    public void SetUp()
    {
        _warnings.Clear();
        _disk = new MemoryNode(1 << 20);
        new Random(3).NextBytes(_disk.Data.AsSpan(512, 4096));
        _server = NbdServer.StartTcp(new IPEndPoint(IPAddress.Loopback, 0));
        _server.AddExport("exp", _disk, writable: true);
        _graph = new BlockGraph { Warning = _warnings.Add };
    }

    [TearDown]
    public void TearDown()
    {
        _graph.Dispose();
        _server.Dispose();
        _disk.Dispose();
    }

    private BlockBackend Drive(string spec) => _graph.AddDrive([.. KeyValParser.Parse("if=none,id=d0," + spec, null).Pairs]);

    private string Fails(string spec) => Assert.Throws<BlockException>(() => Drive(spec))!.Message;

    private int Port => _server.Port;

    [TestCase("driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={0},export=exp")]
    [TestCase("driver=nbd,host=127.0.0.1,port={0},export=exp")]
    [TestCase("driver=nbd,host=127.0.0.1,port={0},export=exp,reconnect-delay=5,open-timeout=3")]
    public void DriverNbd_OneNode_ReadsAndWritesTheExport(string spec)
    {
        BlockBackend d = Drive(string.Format(System.Globalization.CultureInfo.InvariantCulture, spec, Port));
        Assert.Multiple(() =>
        {
            Assert.That(d.Root.DriverName, Is.EqualTo("nbd"));
            Assert.That(d.Root.Filename, Is.EqualTo($"nbd://127.0.0.1:{Port}/exp"));
            Assert.That(d.Root.Size, Is.EqualTo(1 << 20));
            Assert.That(_graph.Nodes, Has.Count.EqualTo(1));
        });
        byte[] buf = new byte[4096];
        d.Root.Read(512, buf);
        Assert.That(buf, Is.EqualTo(_disk.Data.AsSpan(512, 4096).ToArray()));
        d.Root.Write(0, "hello"u8);
        d.Root.Flush();
        Assert.That(_disk.Data.AsSpan(0, 5).ToArray(), Is.EqualTo("hello"u8.ToArray()));
    }

    [TestCase("file=nbd://127.0.0.1:{0}/exp,format=raw")]
    [TestCase("file=nbd:127.0.0.1:{0}:exportname=exp,format=raw")]
    [TestCase("driver=raw,file.driver=nbd,file.host=127.0.0.1,file.port={0},file.export=exp")]
    [TestCase("driver=raw,file.driver=nbd,file.server.type=inet,file.server.host=127.0.0.1,file.server.port={0},file.export=exp")]
    public void RawOverNbd_TwoNodes(string spec)
    {
        BlockBackend d = Drive(string.Format(System.Globalization.CultureInfo.InvariantCulture, spec, Port));
        Assert.That(d.Root.DriverName, Is.EqualTo("raw"));
        Assert.That(_graph.ChildrenOf(d.Root)[0].Node.DriverName, Is.EqualTo("nbd"));
        Assert.That(_warnings, Is.Empty);
    }

    [Test]
    public void FileNbdUri_NoFormat_ProbesRawOverOneConnection()
    {
        BlockBackend d = Drive($"file=nbd://127.0.0.1:{Port}/exp");
        Assert.That(d.Root.DriverName, Is.EqualTo("raw"));
        Assert.That(_warnings.Single(), Does.StartWith($"WARNING: Image format was not specified for 'nbd://127.0.0.1:{Port}/exp' and probing guessed raw."));
        Assert.That(_server.ConnectionCount, Is.EqualTo(1));
    }

    [Test]
    public void UnixSocket_ServerTypeUnixAndUri()
    {
        string path = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"nbdgraph-{Guid.NewGuid():N}.sock");
        using NbdServer unix = NbdServer.StartUnix(path);
        unix.AddExport("exp", _disk, writable: false);
        BlockBackend a = Drive($"driver=nbd,server.type=unix,server.path={path},export=exp");
        Assert.That(a.Root.Filename, Is.EqualTo($"nbd+unix:///exp?socket={path}"));
        Assert.That(a.Root.ReadOnly, Is.True, "the server exports it read-only");
        BlockBackend b = _graph.AddDrive([.. KeyValParser.Parse($"if=none,id=d1,format=raw,file=nbd+unix:///exp?socket={path}", null).Pairs]);
        Assert.That(b.Root.Size, Is.EqualTo(1 << 20));
    }

    [Test]
    public void Errors_QemuTexts()
    {
        int dead = Port;
        Assert.Multiple(() =>
        {
            Assert.That(Fails("driver=nbd"), Is.EqualTo("NBD server address missing"));
            Assert.That(Fails($"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={Port}"), Is.EqualTo("Requested export not available\nserver reported: export '' not present"));
            Assert.That(Fails($"driver=nbd,host=127.0.0.1,server.host=127.0.0.1,port={Port},export=exp"), Is.EqualTo("Cannot use 'server' and path/host/port at the same time"));
            Assert.That(Fails("driver=nbd,path=/tmp/x.sock,host=h"), Is.EqualTo("path and host may not be used at the same time"));
            Assert.That(Fails("driver=nbd,server.type=inet,server.host=127.0.0.1,export=exp"), Is.EqualTo("Parameter 'port' is missing"));
            Assert.That(Fails("driver=nbd,server.host=127.0.0.1,server.port=1,export=exp"), Is.EqualTo("Parameter 'type' is missing"));
            Assert.That(Fails($"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={Port},export=exp,server.bogus=1"), Is.EqualTo("Parameter 'bogus' is unexpected"));
            Assert.That(Fails($"driver=nbd,host=127.0.0.1,port={Port},export=exp,bogus=1"), Is.EqualTo("Block protocol 'nbd' doesn't support the option 'bogus'"));
            Assert.That(Fails($"driver=nbd,host=127.0.0.1,port={Port},export=exp,reconnect-delay=x"), Is.EqualTo("Parameter 'reconnect-delay' expects a number"));
            Assert.That(Fails($"file=nbd://127.0.0.1:{Port}/exp,format=raw,file.host=1"), Is.EqualTo("Option 'host' cannot be used with a file name"));
            Assert.That(Fails("driver=nbd,host=127.0.0.1,port=abc,export=exp"), Is.EqualTo("address resolution failed for 127.0.0.1:abc: Servname not supported for ai_socktype"));
            Assert.That(Fails("file=nbd+unix:///exp,format=raw"), Is.EqualTo("No valid URL specified"));
            Assert.That(Fails("driver=nbd,server.type=unix,server.path=/nonexistent-colo/x.sock"), Is.EqualTo("Failed to connect to '/nonexistent-colo/x.sock': No such file or directory"));
            Assert.That(Fails($"driver=nbd,host=127.0.0.1,port={Port},export=exp,tls-creds=x"), Does.Contain("TLS").And.Contain("'x'"));
        });
        _server.Dispose();
        Assert.That(Fails($"driver=nbd,host=127.0.0.1,port={dead},export=exp"), Is.EqualTo($"Failed to connect to '127.0.0.1:{dead}': Connection refused"));
        Assert.That(_graph.Nodes, Is.Empty);
    }

    [Test]
    public void ReconnectDelay_ServerRestarts_RequestsContinue()
    {
        BlockBackend d = Drive($"driver=nbd,host=127.0.0.1,port={Port},export=exp,reconnect-delay=10");
        byte[] one = new byte[1];
        d.Root.Read(0, one);
        int port = Port;
        _server.Dispose();
        _server = NbdServer.StartTcp(new IPEndPoint(IPAddress.Loopback, port));
        _server.AddExport("exp", _disk, writable: true);
        d.Root.Write(100, "x"u8);
        Assert.That(_disk.Data[100], Is.EqualTo((byte)'x'));
        Assert.That(((NbdClient)d.Root).Reconnects, Is.EqualTo(1));
    }

    [Test]
    public void NoReconnectDelay_ServerGone_RequestsFail()
    {
        BlockBackend d = Drive($"driver=nbd,host=127.0.0.1,port={Port},export=exp");
        _server.Dispose();
        byte[] one = new byte[1];
        Assert.Throws<BlockException>(() => d.Root.Read(0, one));
        Assert.Throws<BlockException>(() => d.Root.Read(0, one));
    }
}
