using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Colo.Core.Chardev;
using Colo.Core.Qmp;
using static Colo.Tests.Unit.Chardev.ChardevTestHarness;

namespace Colo.Tests.Unit.Chardev;

[TestFixture]
public sealed partial class SocketChardevTests
{
    private ChardevTestHarness _h = null!;

    [SetUp]
    public void SetUp() => _h = new ChardevTestHarness();

    [TearDown]
    public void TearDown() => _h.Dispose();

    [Test]
    public void TcpServer_ClientConnects_BytesFlowBothWays()
    {
        var server = (SocketChardev)_h.Create("socket,id=s0,host=127.0.0.1,port=0,server=on,wait=off");
        RecordingFrontend frontend = _h.Attach(server);
        int port = PortOf(server);
        Assert.That(server.Filename, Is.EqualTo($"disconnected:tcp:127.0.0.1:{port},server=on"));

        using Socket client = ConnectTcp(port);
        Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Opened));
        Send(client, "hello");
        Assert.That(frontend.WaitForText("hello"), Is.True);
        Assert.That(Write(server, "world"), Is.EqualTo(5));
        Assert.That(ReadText(client, "world"), Is.EqualTo("world"));
        var local = (IPEndPoint)client.LocalEndPoint!;
        Assert.That(server.Filename, Is.EqualTo($"tcp:127.0.0.1:{port},server=on <-> 127.0.0.1:{local.Port}"));

        client.Shutdown(SocketShutdown.Both);
        Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Closed));
        Assert.That(server.IsConnected, Is.False);
        Assert.That(Write(server, "lost"), Is.Zero);
    }

    [Test]
    public void UnixServerAndClientChardevs_ExchangeBothWays()
    {
        string dir = Directory.CreateTempSubdirectory("colo-chardev-").FullName;
        try
        {
            string path = Path.Combine(dir, "s.sock");
            var server = (SocketChardev)_h.Create($"socket,id=us,path={path},server=on,wait=off");
            RecordingFrontend serverSide = _h.Attach(server);
            Assert.That(server.Filename, Is.EqualTo($"disconnected:unix:{path},server=on"));

            var client = (SocketChardev)_h.Create($"socket,id=uc,path={path}");
            RecordingFrontend clientSide = _h.Attach(client);
            Assert.That(serverSide.NextEvent(), Is.EqualTo(CharEvent.Opened));
            Assert.That(clientSide.NextEvent(), Is.EqualTo(CharEvent.Opened));
            Assert.That(Write(client, "ping"), Is.EqualTo(4));
            Assert.That(serverSide.WaitForText("ping"), Is.True);
            Assert.That(Write(server, "pong"), Is.EqualTo(4));
            Assert.That(clientSide.WaitForText("pong"), Is.True);
            Assert.That(server.Filename, Is.EqualTo($"unix:{path},server=on"));
            Assert.That(client.Filename, Is.EqualTo("unix:"));

            ChardevFactory.RemoveAll(_h.Tree);
            Assert.That(File.Exists(path), Is.False, "the server removes the socket file it created");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void TcpClient_ConnectsAtCreation_BytesFlowBothWays()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var client = (SocketChardev)_h.Create($"socket,id=c0,host=127.0.0.1,port={port},nodelay=on");
        RecordingFrontend frontend = _h.Attach(client);
        using Socket peer = listener.AcceptSocket();
        Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Opened));
        Assert.That(client.IsConnected, Is.True);
        Send(peer, "abc");
        Assert.That(frontend.WaitForText("abc"), Is.True);
        Assert.That(Write(client, "xyz"), Is.EqualTo(3));
        Assert.That(ReadText(peer, "xyz"), Is.EqualTo("xyz"));
        Assert.That(client.Filename, Does.StartWith("tcp:127.0.0.1:").And.EndWith($" <-> 127.0.0.1:{port}"));
    }

    [Test]
    public void TcpClient_NoPeerNoReconnect_FailsWithQemuText()
    {
        int port = FreePort();
        QmpException e = Assert.Throws<QmpException>(() => _h.Create($"socket,id=c0,host=127.0.0.1,port={port}"))!;
        Assert.That(e.Message, Is.EqualTo($"Failed to connect to '127.0.0.1:{port}': Connection refused"));
        Assert.That(ChardevFactory.Find(_h.Tree, "c0"), Is.Null);
    }

    [Test]
    public void UnixClient_NoSocketFile_FailsWithQemuText()
    {
        string path = Path.Combine(Path.GetTempPath(), "colo-no-such-dir-" + Guid.NewGuid().ToString("N"), "x.sock");
        QmpException e = Assert.Throws<QmpException>(() => _h.Create($"socket,id=c0,path={path}"))!;
        Assert.That(e.Message, Is.EqualTo($"Failed to connect to '{path}': No such file or directory"));
    }

    [Test]
    public void WaitOn_BlocksCreationUntilAClientConnects()
    {
        Task<Colo.Core.Chardev.Chardev> creating = Task.Run(() => _h.Create("socket,id=w0,host=127.0.0.1,port=0,server=on"));
        Assert.That(_h.Reports.TryTake(out string? line, 5000), Is.True, "the waiting line is reported");
        Match m = WaitingLine().Match(line!);
        Assert.That(m.Success, Is.True, line);
        Assert.That(creating.IsCompleted, Is.False, "creation blocks until a client connects");

        using Socket client = ConnectTcp(int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.That(creating.Wait(5000), Is.True);
        Colo.Core.Chardev.Chardev server = creating.Result;
        RecordingFrontend frontend = _h.Attach(server);
        Assert.That(server.IsConnected, Is.True);
        Send(client, "early");
        Assert.That(frontend.WaitForText("early"), Is.True);
    }

    [Test]
    public void Server_SecondClientWaitsUntilFirstDisconnects()
    {
        Colo.Core.Chardev.Chardev server = _h.Create("socket,id=s0,host=127.0.0.1,port=0,server=on,wait=off");
        RecordingFrontend frontend = _h.Attach(server);
        int port = PortOf(server);
        using Socket first = ConnectTcp(port);
        Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Opened));
        using Socket second = ConnectTcp(port); // completes in the kernel backlog
        Send(second, "two");
        Send(first, "one");
        Assert.That(frontend.WaitForText("one"), Is.True);
        // A bounded negative check: the second client's bytes must not be served while the first is connected.
        Assert.That(frontend.WaitForText("two", timeoutMs: 300), Is.False);

        first.Shutdown(SocketShutdown.Both);
        Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Closed));
        Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Opened));
        Assert.That(frontend.WaitForText("onetwo"), Is.True);
        Assert.That(Write(server, "back"), Is.EqualTo(4));
        Assert.That(ReadText(second, "back"), Is.EqualTo("back"));
    }

    [Test]
    public void Reconnect_AfterServerRestarts_ConnectsAgain()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        try
        {
            Colo.Core.Chardev.Chardev client = _h.Create($"socket,id=r0,host=127.0.0.1,port={port},reconnect=1");
            RecordingFrontend frontend = _h.Attach(client);
            using (Socket peer = listener.AcceptSocket())
            {
                Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Opened));
                Send(peer, "first");
                Assert.That(frontend.WaitForText("first"), Is.True);
                listener.Stop();
            }
            Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Closed));
            Assert.That(client.IsConnected, Is.False);

            listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            using Socket again = listener.AcceptSocket(); // the client retries every second
            Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Opened));
            Send(again, "second");
            Assert.That(frontend.WaitForText("firstsecond"), Is.True);
            Assert.That(Write(client, "hi"), Is.EqualTo(2));
            Assert.That(ReadText(again, "hi"), Is.EqualTo("hi"));
        }
        finally
        {
            listener.Stop();
        }
    }

    [Test]
    public void Reconnect_PeerAbsentAtCreation_ReportsAndConnectsLater()
    {
        int port = FreePort();
        Colo.Core.Chardev.Chardev client = _h.Create($"socket,id=r1,host=127.0.0.1,port={port},reconnect=1");
        Assert.That(_h.Reports.TryTake(out string? line, 5000), Is.True);
        Assert.That(line, Is.EqualTo($"Unable to connect character device r1: Failed to connect to '127.0.0.1:{port}': Connection refused"));
        Assert.That(((SocketChardev)client).Filename, Is.EqualTo($"disconnected:tcp:127.0.0.1:{port}"));
        RecordingFrontend frontend = _h.Attach(client);

        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        try
        {
            using Socket peer = listener.AcceptSocket();
            Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Opened));
        }
        finally
        {
            listener.Stop();
        }
    }

    [Test]
    public void UnixWaitOn_ReportsQemuLine()
    {
        string dir = Directory.CreateTempSubdirectory("colo-chardev-").FullName;
        try
        {
            string path = Path.Combine(dir, "w.sock");
            Task<Colo.Core.Chardev.Chardev> creating = Task.Run(() => _h.Create($"socket,id=w1,path={path},server=on"));
            Assert.That(_h.Reports.TryTake(out string? line, 5000), Is.True);
            Assert.That(line, Is.EqualTo($"info: QEMU waiting for connection on: disconnected:unix:{path},server=on"));
            using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            client.Connect(new UnixDomainSocketEndPoint(path));
            Assert.That(creating.Wait(5000), Is.True);
            Assert.That(creating.Result.IsConnected, Is.True);
            ChardevFactory.RemoveAll(_h.Tree);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void ServerPortRange_SkipsBusyPort()
    {
        using var busy = new TcpListener(IPAddress.Loopback, 0);
        busy.Start();
        int port = ((IPEndPoint)busy.LocalEndpoint).Port;
        Assume.That(port, Is.LessThan(65535));
        Colo.Core.Chardev.Chardev server;
        try
        {
            server = _h.Create($"socket,id=s0,host=127.0.0.1,port={port},to={port + 1},server=on,wait=off");
        }
        catch (QmpException)
        {
            Assume.That(false, "the next port happens to be busy too");
            return;
        }
        Assert.That(PortOf(server), Is.EqualTo(port + 1));
    }

    [Test]
    public void ServerOnLocalhost_ShowsBoundNumericAddress()
    {
        Colo.Core.Chardev.Chardev server = _h.Create("socket,id=l0,host=localhost,port=0,server=on,wait=off");
        Assert.That(((SocketChardev)server).Filename, Is.EqualTo($"disconnected:tcp:127.0.0.1:{PortOf(server)},server=on"));
    }

    [Test]
    public void ServerPortInUse_FailsWithQemuText()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        QmpException e = Assert.Throws<QmpException>(() => _h.Create($"socket,id=s0,host=127.0.0.1,port={port},server=on,wait=off"))!;
        Assert.That(e.Message, Is.EqualTo("Failed to find an available port: Address already in use"));
    }

    [Test]
    public void QomProperties_ConnectedAndAddr()
    {
        Colo.Core.Chardev.Chardev server = _h.Create("socket,id=s0,host=127.0.0.1,port=0,server=on,wait=off");
        int port = PortOf(server);
        Assert.That(server.RuntimeProperties, Does.Contain(("connected", "bool")).And.Contain(("addr", "SocketAddress")));
        Assert.That(Json(w => server.WriteProperty("connected", w)), Is.EqualTo("false"));
        Assert.That(Json(w => server.WriteProperty("addr", w)), Is.EqualTo($"{{\"type\":\"inet\",\"host\":\"127.0.0.1\",\"port\":\"{port}\",\"ipv4\":true}}"));
        Assert.That(Json(w => server.WriteProperty("type", w)), Is.EqualTo("\"socket\""));
    }

    [Test]
    public void Ipv6Loopback_ServerAndClientChardevs_Exchange()
    {
        Assume.That(Socket.OSSupportsIPv6, Is.True);
        Colo.Core.Chardev.Chardev server;
        try
        {
            server = _h.Create("socket,id=s6,host=::1,port=0,server=on,wait=off");
        }
        catch (QmpException e)
        {
            Assume.That(false, "no IPv6 loopback here: " + e.Message);
            return;
        }
        RecordingFrontend serverSide = _h.Attach(server);
        int port = PortOf(server);
        Colo.Core.Chardev.Chardev client = _h.Create($"socket,id=c6,host=::1,port={port}");
        RecordingFrontend clientSide = _h.Attach(client);
        Assert.That(Write(client, "v6"), Is.EqualTo(2));
        Assert.That(serverSide.WaitForText("v6"), Is.True);
        Assert.That(Write(server, "ok"), Is.EqualTo(2));
        Assert.That(clientSide.WaitForText("ok"), Is.True);
        Assert.That(((SocketChardev)server).Filename, Does.StartWith($"tcp:::1:{port},server=on <-> ::1:"));
    }

    [Test]
    public void Remove_ConnectedServer_ClosesListenerAndPeerPromptly()
    {
        Colo.Core.Chardev.Chardev server = _h.Create("socket,id=s0,host=127.0.0.1,port=0,server=on,wait=off");
        RecordingFrontend frontend = _h.Attach(server);
        int port = PortOf(server);
        using Socket client = ConnectTcp(port);
        Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Opened));
        server.Detach();

        long start = Environment.TickCount64;
        ChardevFactory.Remove(_h.Tree, "s0");
        Assert.That(Environment.TickCount64 - start, Is.LessThan(2000), "dispose does not wait for timeouts");
        client.ReceiveTimeout = 5000;
        Assert.That(client.Receive(new byte[16]), Is.Zero, "the peer sees EOF");
        Assert.That(() => ConnectTcp(port).Dispose(), Throws.InstanceOf<SocketException>(), "the listener is closed");

        // The port is free again for a new server.
        Colo.Core.Chardev.Chardev again = _h.Create($"socket,id=s1,host=127.0.0.1,port={port},server=on,wait=off");
        Assert.That(PortOf(again), Is.EqualTo(port));
    }

    [Test]
    public void Remove_ReconnectingClient_StopsRetrying()
    {
        int port = FreePort();
        _h.Create($"socket,id=r0,host=127.0.0.1,port={port},reconnect=1");
        ChardevFactory.Remove(_h.Tree, "r0");
        using var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        // Bounded negative check: a disposed client must not connect any more.
        Assert.That(listener.Server.Poll(1500_000, SelectMode.SelectRead), Is.False);
    }

    private static string Json(Action<System.Text.Json.Utf8JsonWriter> write)
    {
        using var stream = new MemoryStream();
        using (var writer = new System.Text.Json.Utf8JsonWriter(stream))
        {
            write(writer);
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    [GeneratedRegex(@"^info: QEMU waiting for connection on: disconnected:tcp:127\.0\.0\.1:(\d+),server=on$")]
    private static partial Regex WaitingLine();

    /// <summary>A frontend that takes only the bytes it has room for, like a guest UART's FIFO.</summary>
    private sealed class BoundedFrontend : ICharFrontend
    {
        private readonly object _lock = new();
        private readonly List<byte> _received = [];
        private Action? _spaceHandler;
        private int _space;

        public int ReceiveSpace
        {
            get
            {
                lock (_lock)
                {
                    return _space;
                }
            }
        }

        public void SetReceiveSpaceHandler(Action? handler) => _spaceHandler = handler;

        public void Receive(ReadOnlySpan<byte> data)
        {
            lock (_lock)
            {
                Assert.That(data.Length, Is.LessThanOrEqualTo(_space), "never more than the frontend has room for");
                _space -= data.Length;
                _received.AddRange(data.ToArray());
                System.Threading.Monitor.PulseAll(_lock);
            }
        }

        public void OnEvent(CharEvent charEvent)
        {
        }

        public void Grant(int bytes)
        {
            lock (_lock)
            {
                _space += bytes;
            }
            _spaceHandler?.Invoke();
        }

        public string WaitFor(int count)
        {
            lock (_lock)
            {
                long deadline = Environment.TickCount64 + 5000;
                while (_received.Count < count && Environment.TickCount64 < deadline)
                {
                    System.Threading.Monitor.Wait(_lock, 100);
                }
                return System.Text.Encoding.ASCII.GetString([.. _received]);
            }
        }
    }

    [Test]
    public void SlowFrontend_GetsEveryByteInOrder_OnlyAsItMakesRoom()
    {
        var chardev = _h.Create("socket,id=s0,host=127.0.0.1,port=0,server=on,wait=off");
        var frontend = new BoundedFrontend();
        chardev.Attach(frontend, _h.Loop);
        using Socket client = ChardevTestHarness.ConnectTcp(ChardevTestHarness.PortOf(chardev));
        string text = string.Concat(Enumerable.Range(0, 40).Select(i => $"{i:D2}"));
        ChardevTestHarness.Send(client, text);
        Thread.Sleep(200);
        Assert.That(frontend.WaitFor(0), Is.Empty, "nothing delivered without room");
        frontend.Grant(16);
        Assert.That(frontend.WaitFor(16), Is.EqualTo(text[..16]));
        for (int i = 16; i < text.Length; i += 7)
        {
            frontend.Grant(7);
        }
        Assert.That(frontend.WaitFor(text.Length), Is.EqualTo(text));
    }
}
