using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Net;

/// <summary>
/// <c>-netdev socket</c>: frames to and from another emulator over a socket. Stream sockets (<c>listen=</c>,
/// <c>connect=</c>, an inherited stream <c>fd=</c>) carry each frame behind a 4-byte big-endian length
/// (<see cref="StreamFrameReader"/>); datagram sockets (<c>udp=</c>+<c>localaddr=</c>, an inherited datagram
/// <c>fd=</c>) carry one frame per datagram. For <c>fd=</c> the socket's SO_TYPE decides, as in QEMU.
/// <para>
/// One thread per netdev accepts/connects and reads. While no peer is connected the link is down and frames from
/// the peer client are dropped, as QEMU does. A garbled length prefix closes the connection; a listener then waits
/// for the next client.
/// </para>
/// </summary>
public sealed class SocketNetdev : NetClient
{
    private readonly StreamFrameReader _reader = new();
    private readonly byte[] _readBuffer = new byte[StreamFrameReader.MaxFrame];
    private readonly byte[] _sendBuffer = new byte[StreamFrameWriter.HeaderSize + StreamFrameReader.MaxFrame];
    private Socket? _listener;
    private Socket? _connection;
    private IPEndPoint? _connectTo;
    private bool _datagram;
    private Thread? _thread;
    private volatile bool _disposed;

    internal SocketNetdev(ObjectTypeInfo type, PropertyValues values, string id, NetClients net)
        : base(type, values, id, net)
    {
    }

    /// <summary>The bound address in listen mode (the real port when 0 was asked), else null.</summary>
    public EndPoint? ListenEndPoint => _listener?.LocalEndPoint;

    /// <summary>Whether a connection (or datagram socket) is up.</summary>
    public bool IsConnected => Volatile.Read(ref _connection) is not null;

    /// <inheritdoc/>
    public override void Complete()
    {
        string? fd = Values.GetString("fd");
        string? listen = Values.GetString("listen");
        string? connect = Values.GetString("connect");
        string? mcast = Values.GetString("mcast");
        string? udp = Values.GetString("udp");
        string? localaddr = Values.GetString("localaddr");
        int modes = (fd is null ? 0 : 1) + (listen is null ? 0 : 1) + (connect is null ? 0 : 1) + (mcast is null ? 0 : 1) + (udp is null ? 0 : 1);
        if (modes != 1)
        {
            throw new QmpException("exactly one of listen=, connect=, mcast= or udp= is required");
        }
        if (localaddr is not null && mcast is null && udp is null)
        {
            throw new QmpException("localaddr= is only valid with mcast= or udp=");
        }
        if (fd is not null)
        {
            AdoptFd(NetdevFd.Parse(fd));
        }
        else if (listen is not null)
        {
            Listen(NetdevFd.ParseHostPort(listen));
        }
        else if (connect is not null)
        {
            _connectTo = NetdevFd.ParseHostPort(connect);
            InfoString = $"socket: connect to {_connectTo.Address}:{_connectTo.Port}";
        }
        else if (mcast is not null)
        {
            throw new QmpException("-netdev socket,mcast= (multicast) is not supported yet in Colo");
        }
        else
        {
            OpenUdp(udp!, localaddr ?? throw new QmpException("localaddr= is mandatory with udp="));
        }
        _thread = new Thread(Run) { IsBackground = true, Name = "netdev-" + Id };
        _thread.Start();
    }

    /// <inheritdoc/>
    public override int Receive(ReadOnlySpan<byte> frame)
    {
        Socket? connection = Volatile.Read(ref _connection);
        if (connection is null)
        {
            return frame.Length; // link down: dropped, as QEMU
        }
        try
        {
            if (_datagram)
            {
                connection.Send(frame);
            }
            else
            {
                // Header and frame in one send, so a frame is never split by another writer's.
                StreamFrameWriter.WriteHeader(_sendBuffer, frame.Length);
                frame.CopyTo(_sendBuffer.AsSpan(StreamFrameWriter.HeaderSize));
                ReadOnlySpan<byte> rest = _sendBuffer.AsSpan(0, StreamFrameWriter.HeaderSize + frame.Length);
                while (!rest.IsEmpty)
                {
                    rest = rest[connection.Send(rest)..];
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            if (!_datagram)
            {
                DropConnection(connection);
            }
        }
        return frame.Length;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            // shutdown(2) first: it wakes the reader thread blocked in accept/recv, which a close alone does not
            // reliably do for a descriptor adopted from the parent.
            ShutdownQuietly(_listener);
            Socket? connection = Interlocked.Exchange(ref _connection, null);
            ShutdownQuietly(connection);
            _thread?.Join(TimeSpan.FromSeconds(5));
            _listener?.Dispose();
            connection?.Dispose();
        }
        base.Dispose(disposing);
    }

    private void AdoptFd(int fd)
    {
        NetdevFd.CheckOpen(Id, fd, setNonBlocking: false);
        var handle = new SafeSocketHandle(fd, ownsHandle: true);
        Socket socket;
        try
        {
            socket = new Socket(handle);
        }
        catch (SocketException)
        {
            handle.SetHandleAsInvalid(); // not a socket: not ours to close
            throw new QmpException("can't get socket option SO_TYPE");
        }
        switch (socket.SocketType)
        {
            case SocketType.Stream:
                InfoString = $"socket: fd={fd}";
                break;
            case SocketType.Dgram:
                _datagram = true;
                InfoString = $"socket: fd={fd} {(socket.AddressFamily == AddressFamily.Unix ? "unix" : "inet")}";
                break;
            default:
                socket.Dispose();
                throw new QmpException($"socket type={(int)socket.SocketType} for fd={fd} must be either SOCK_DGRAM or SOCK_STREAM");
        }
        socket.Blocking = true;
        _connection = socket;
    }

    private void Listen(IPEndPoint endPoint)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Bind(endPoint);
            listener.Listen(1);
        }
        catch (SocketException e)
        {
            listener.Dispose();
            throw new QmpException($"can't bind ip={endPoint.Address} to socket: {e.Message}");
        }
        _listener = listener;
    }

    private void OpenUdp(string remote, string local)
    {
        IPEndPoint destination = NetdevFd.ParseHostPort(remote);
        IPEndPoint bind = NetdevFd.ParseHostPort(local);
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(bind);
            socket.Connect(destination); // frames go only there; the kernel filters other senders' datagrams too
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new QmpException($"can't bind ip={bind.Address} to socket: {e.Message}");
        }
        _datagram = true;
        InfoString = $"socket: udp={destination.Address}:{destination.Port}";
        _connection = socket;
    }

    private void Run()
    {
        try
        {
            if (_listener is not null)
            {
                while (!_disposed)
                {
                    Socket client = _listener.Accept();
                    var from = (IPEndPoint)client.RemoteEndPoint!;
                    InfoString = $"socket: connection from {from.Address}:{from.Port.ToString(CultureInfo.InvariantCulture)}";
                    Volatile.Write(ref _connection, client);
                    ReadStream(client);
                }
            }
            else if (_connectTo is not null)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    socket.Connect(_connectTo);
                }
                catch (SocketException e)
                {
                    socket.Dispose();
                    Net.Report($"netdev {Id}: connect to {_connectTo} failed: {e.Message}");
                    return;
                }
                Volatile.Write(ref _connection, socket);
                if (_disposed)
                {
                    DropConnection(socket);
                    return;
                }
                ReadStream(socket);
            }
            else if (_connection is { } adopted)
            {
                if (_datagram)
                {
                    ReadDatagrams(adopted);
                }
                else
                {
                    ReadStream(adopted);
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The netdev was deleted (its sockets closed under the blocked call) or the listener failed.
        }
    }

    private void ReadStream(Socket connection)
    {
        _reader.Reset();
        try
        {
            while (true)
            {
                int n = connection.Receive(_readBuffer);
                if (n == 0)
                {
                    return; // the peer closed
                }
                ReadOnlySpan<byte> input = _readBuffer.AsSpan(0, n);
                while (true)
                {
                    FrameStatus status = _reader.Next(ref input, out ReadOnlySpan<byte> frame);
                    if (status == FrameStatus.NeedMore)
                    {
                        break;
                    }
                    if (status == FrameStatus.Invalid)
                    {
                        Net.Report($"netdev {Id}: frame length prefix exceeds {StreamFrameReader.MaxFrame} bytes; closing the connection");
                        return;
                    }
                    lock (Net.Lock)
                    {
                        Send(frame);
                    }
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The connection broke or the netdev is going away.
        }
        finally
        {
            DropConnection(connection);
        }
    }

    private void ReadDatagrams(Socket socket)
    {
        while (!_disposed)
        {
            int n = socket.Receive(_readBuffer);
            if (n == 0)
            {
                return; // a stream-less end: QEMU also stops reading on a zero-length read
            }
            lock (Net.Lock)
            {
                Send(_readBuffer.AsSpan(0, n));
            }
        }
    }

    private static void ShutdownQuietly(Socket? socket)
    {
        try
        {
            socket?.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Not connected (a listener, or a datagram socket): closing below is enough.
        }
    }

    private void DropConnection(Socket connection)
    {
        Interlocked.CompareExchange(ref _connection, null, connection);
        connection.Dispose();
    }
}
