using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Colo.Core.Chardev;
using Colo.Core.Loop;
using Colo.Core.Objects;

namespace Colo.Tests.Unit.Chardev;

/// <summary>A frontend that records what its chardev delivers, for waiting on in tests.</summary>
internal sealed class RecordingFrontend : ICharFrontend
{
    private readonly object _lock = new(); // Monitor.Wait needs an object lock, not System.Threading.Lock
    private readonly List<byte> _received = [];
    private readonly BlockingCollection<CharEvent> _events = [];

    public void Receive(ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            _received.AddRange(data.ToArray());
            System.Threading.Monitor.PulseAll(_lock);
        }
    }

    public void OnEvent(CharEvent charEvent) => _events.Add(charEvent);

    public string Text
    {
        get
        {
            lock (_lock)
            {
                return Encoding.ASCII.GetString([.. _received]);
            }
        }
    }

    /// <summary>Waits until the received text contains <paramref name="expected"/>; false on timeout.</summary>
    public bool WaitForText(string expected, int timeoutMs = 5000)
    {
        long deadline = Environment.TickCount64 + timeoutMs;
        lock (_lock)
        {
            while (!Encoding.ASCII.GetString([.. _received]).Contains(expected, StringComparison.Ordinal))
            {
                long left = deadline - Environment.TickCount64;
                if (left <= 0)
                {
                    return false;
                }
                System.Threading.Monitor.Wait(_lock, (int)left);
            }
            return true;
        }
    }

    /// <summary>The next event, or null after the timeout.</summary>
    public CharEvent? NextEvent(int timeoutMs = 5000) => _events.TryTake(out CharEvent e, timeoutMs) ? e : null;
}

/// <summary>A type registry, object tree and event loop per test; disposes every chardev afterwards.</summary>
internal sealed class ChardevTestHarness : IDisposable
{
    public ChardevTestHarness()
    {
        Types = new TypeRegistry();
        Env = new ChardevEnvironment { Report = Reports.Add };
        ChardevTypes.Register(Types, Env);
        Tree = new ObjectTree();
        Loop = new EventLoop("chardev-test");
        Loop.StartThread();
    }

    public TypeRegistry Types { get; }

    public ObjectTree Tree { get; }

    public EventLoop Loop { get; }

    public ChardevEnvironment Env { get; }

    public BlockingCollection<string> Reports { get; } = [];

    public Colo.Core.Chardev.Chardev Create(string option) => ChardevFactory.CreateFromOption(Types, Tree, option);

    public RecordingFrontend Attach(Colo.Core.Chardev.Chardev chardev)
    {
        var frontend = new RecordingFrontend();
        chardev.Attach(frontend, Loop);
        return frontend;
    }

    public void Dispose()
    {
        ChardevFactory.RemoveAll(Tree);
        Loop.Dispose();
        Reports.Dispose();
    }

    /// <summary>A loopback port nobody listens on right now.</summary>
    public static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    public static int PortOf(Colo.Core.Chardev.Chardev chardev) => ((IPEndPoint)((SocketChardev)chardev).ListenEndPoint!).Port;

    public static void Send(Socket socket, string text) => socket.Send(Encoding.ASCII.GetBytes(text));

    /// <summary>Reads until <paramref name="expected"/> arrived (bounded by the socket's receive timeout).</summary>
    public static string ReadText(Socket socket, string expected)
    {
        socket.ReceiveTimeout = 5000;
        var sb = new StringBuilder();
        byte[] buffer = new byte[256];
        while (!sb.ToString().Contains(expected, StringComparison.Ordinal))
        {
            int n = socket.Receive(buffer);
            if (n == 0)
            {
                break;
            }
            sb.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
        return sb.ToString();
    }

    public static Socket ConnectTcp(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Connect(IPAddress.Loopback, port);
        return socket;
    }

    public static int Write(Colo.Core.Chardev.Chardev chardev, string text) => chardev.Write(Encoding.ASCII.GetBytes(text));
}
