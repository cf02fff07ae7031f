using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using static Colo.Block.Nbd.NbdProtocol;

namespace Colo.Block.Nbd;

/// <summary>One named export: a block node, writable or not. Requests from all clients are serialised on it.</summary>
public sealed class NbdExport
{
    internal NbdExport(string name, BlockNode node, bool writable, string? description)
    {
        Name = name;
        Node = node;
        Origin = node;
        Writable = writable && !node.ReadOnly;
        Description = description;
    }

    public string Name { get; }

    /// <summary>The node requests go to: <see cref="Origin"/>, or a filter the graph put in front of it.</summary>
    public BlockNode Node { get; internal set; }

    /// <summary>The node the export was created for.</summary>
    public BlockNode Origin { get; }

    public bool Writable { get; }

    public string? Description { get; }

    /// <summary>Serialises requests from every connection onto the (not thread-safe) node.</summary>
    internal Lock Gate { get; } = new();

    private int _inFlight;

    /// <summary>
    /// Starts a request that runs outside <see cref="Gate"/> (concurrent reads and writes) and returns the
    /// node it goes to; <see cref="Leave"/> ends it. <see cref="SwitchNode"/> waits for such requests, so
    /// none straddles a switch.
    /// </summary>
    internal BlockNode Enter()
    {
        lock (Gate)
        {
            Interlocked.Increment(ref _inFlight);
            return Node;
        }
    }

    internal void Leave() => Interlocked.Decrement(ref _inFlight);

    /// <summary>Sends further requests to <paramref name="node"/> once every request in flight has ended.</summary>
    internal void SwitchNode(BlockNode node)
    {
        lock (Gate)
        {
            // Holding the gate keeps new concurrent requests out; the ones in flight need no lock to end.
            var spin = new SpinWait();
            while (Volatile.Read(ref _inFlight) != 0)
            {
                spin.SpinOnce();
            }

            Node = node;
        }
    }

    internal ushort TransmissionFlags
    {
        get
        {
            ushort f = FlagHasFlags | FlagSendFlush | FlagSendFua | FlagSendDf;
            f |= Writable ? (ushort)(FlagSendTrim | FlagSendWriteZeroes) : FlagReadOnly;
            return f;
        }
    }
}

/// <summary>
/// An NBD server (fixed newstyle only) over TCP or a unix socket, exporting block nodes by name.
/// Each connection is one task handling requests in order; a hostile or malformed peer gets an NBD
/// error or a closed connection, never an exception out of the server.
/// </summary>
public sealed class NbdServer : IAsyncDisposable, IDisposable
{
    private const int SolSocket = 1;
    private const int SoReuseAddr = 2;

    private readonly Socket _listener;
    private readonly Dictionary<string, NbdExport> _exports = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly HashSet<NbdConnection> _connections = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly string? _unixPath;
    private readonly SemaphoreSlim _slotFreed = new(0);
    private Task _acceptLoop = Task.CompletedTask;
    private bool _stopped;

    private NbdServer(Socket listener, string? unixPath)
    {
        _listener = listener;
        _unixPath = unixPath;
    }

    /// <summary>The bound endpoint (the actual port when started on port 0).</summary>
    public EndPoint LocalEndPoint => _listener.LocalEndPoint!;

    /// <summary>TCP port when listening on TCP, else 0.</summary>
    public int Port => LocalEndPoint is IPEndPoint ip ? ip.Port : 0;

    /// <summary>Starts listening on a TCP endpoint (port 0 picks an ephemeral port).</summary>
    public static NbdServer StartTcp(IPEndPoint endpoint)
    {
        var s = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // SO_REUSEADDR alone (rebinding over TIME_WAIT, as QEMU does). .NET's ReuseAddress also sets
            // SO_REUSEPORT on Linux, which would let a second server bind the same port silently.
            if (!OperatingSystem.IsWindows())
            {
                s.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
            }
            s.Bind(endpoint);
            s.Listen(16);
        }
        catch (SocketException e)
        {
            s.Dispose();
            // QEMU's inet_listen wording: it tries the port and reports why none was usable.
            throw new BlockException($"Failed to find an available port: {e.Message}", e);
        }

        var server = new NbdServer(s, null);
        server._acceptLoop = server.AcceptLoopAsync();
        return server;
    }

    /// <summary>Starts listening on a unix socket path (an existing socket file is replaced).</summary>
    public static NbdServer StartUnix(string path)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            if (System.IO.File.Exists(path))
            {
                System.IO.File.Delete(path);
            }

            s.Bind(new UnixDomainSocketEndPoint(path));
            s.Listen(16);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            s.Dispose();
            throw new BlockException($"Failed to bind socket to {path}: {e.Message}", e);
        }

        var server = new NbdServer(s, path);
        server._acceptLoop = server.AcceptLoopAsync();
        return server;
    }

    public NbdExport AddExport(string name, BlockNode node, bool writable, string? description = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(node);
        if (Encoding.UTF8.GetByteCount(name) > MaxNameLength)
        {
            throw new BlockException($"export name '{name[..16]}...' too long");
        }

        lock (_lock)
        {
            if (_exports.ContainsKey(name))
            {
                throw new BlockException($"NBD server already has export named '{name}'");
            }

            var e = new NbdExport(name, node, writable, description);
            _exports.Add(name, e);
            return e;
        }
    }

    /// <summary>
    /// Removes an export: new clients no longer see it. With <paramref name="hard"/> the connections
    /// using it are closed at once; otherwise they keep working until they disconnect.
    /// </summary>
    public void RemoveExport(string name, bool hard = false)
    {
        NbdConnection[] victims;
        lock (_lock)
        {
            if (!_exports.Remove(name, out NbdExport? e))
            {
                throw new BlockException($"Export '{name}' is not found");
            }

            victims = hard ? [.. _connections.Where(c => c.Export == e)] : [];
        }

        foreach (NbdConnection c in victims)
        {
            c.Abort();
        }
    }

    public IReadOnlyList<string> ExportNames
    {
        get
        {
            lock (_lock)
            {
                return [.. _exports.Keys];
            }
        }
    }

    /// <summary>
    /// At most this many clients at once; 0 means no limit. Further clients wait in the listen
    /// backlog until one leaves (qemu-nbd's <c>--shared</c>).
    /// </summary>
    public int MaxConnections { get; set; }

    /// <summary>
    /// Raised after a client connection has ended, with whether it had reached the transmission
    /// phase (a client that only listed exports did not). qemu-nbd without <c>--persistent</c>
    /// exits when the last such client leaves.
    /// </summary>
    public event Action<bool>? ClientDisconnected;

    /// <summary>Number of connected clients.</summary>
    public int ConnectionCount
    {
        get
        {
            lock (_lock)
            {
                return _connections.Count;
            }
        }
    }

    internal NbdExport? FindExport(string name)
    {
        lock (_lock)
        {
            return _exports.GetValueOrDefault(name);
        }
    }

    internal NbdExport[] AllExports()
    {
        lock (_lock)
        {
            return [.. _exports.Values];
        }
    }

    /// <summary>Stops listening, closes every connection and waits for their tasks to end.</summary>
    public async Task StopAsync()
    {
        Task[] tasks;
        lock (_lock)
        {
            if (_stopped)
            {
                return;
            }

            _stopped = true;
            tasks = [.. _connections.Select(c => c.Task)];
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        lock (_lock)
        {
            foreach (NbdConnection c in _connections)
            {
                c.Abort();
            }
        }

        try
        {
            await _acceptLoop.ConfigureAwait(false);
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Connection tasks swallow their own errors; nothing useful to report on stop.
        }

        if (_unixPath != null)
        {
            try
            {
                System.IO.File.Delete(_unixPath);
            }
            catch (IOException)
            {
            }
        }

        _stop.Dispose();
        _slotFreed.Dispose();
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    public void Dispose() => StopAsync().GetAwaiter().GetResult();

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                while (MaxConnections > 0 && ConnectionCount >= MaxConnections)
                {
                    await _slotFreed.WaitAsync(_stop.Token).ConfigureAwait(false);
                }

                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            if (client.AddressFamily != AddressFamily.Unix)
            {
                client.NoDelay = true;
            }

            var conn = new NbdConnection(this, client);
            lock (_lock)
            {
                if (_stopped)
                {
                    client.Dispose();
                    return;
                }

                _connections.Add(conn);
                conn.Task = RunConnectionAsync(conn);
            }
        }
    }

    private async Task RunConnectionAsync(NbdConnection conn)
    {
        await Task.Yield();
        try
        {
            await conn.RunAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // A peer that misbehaves or vanishes only loses its own connection.
        }
        finally
        {
            conn.Abort();
            conn.Dispose();
            lock (_lock)
            {
                _connections.Remove(conn);
            }

            _slotFreed.Release();
            ClientDisconnected?.Invoke(conn.Export != null);
        }
    }
}
