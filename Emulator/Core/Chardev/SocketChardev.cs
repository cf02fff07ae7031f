using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Core.Chardev;

/// <summary>
/// The <c>socket</c> backend over TCP (<c>host</c>/<c>port</c>) or a unix socket (<c>path</c>).
/// <para>
/// Server mode listens and serves one client at a time, like QEMU: while a client is connected the
/// listener is not polled, so a second client's connection completes in the kernel backlog and is only
/// served after the first goes away. <c>wait=on</c> blocks <see cref="Complete"/> until the first client.
/// Client mode connects during <see cref="Complete"/>; with <c>reconnect=N</c> a failure is reported
/// and retried every N seconds, also after the peer goes away.
/// </para>
/// <para>
/// One background loop per chardev accepts or connects, then reads; like QEMU it only reads while a
/// frontend is attached, so early bytes stay in the kernel buffer instead of being dropped.
/// </para>
/// </summary>
public sealed class SocketChardev : Chardev, IChardevInfo
{
    private const int ReadBufferSize = 4096;

    private readonly string _id;
    private readonly ChardevEnvironment _env;
    private readonly Lock _stateLock = new();
    private readonly Lock _writeLock = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _attached = new(0);
    private Socket? _listener;
    private Socket? _connection;
    private Task? _loop;
    private string _filename = "";
    private bool _server;
    private bool _unix;
    private bool _abstract;
    private bool _nodelay;
    private bool? _ipv4;
    private bool? _ipv6;
    private long _reconnect;
    private string _host = "";
    private string _port = "";
    private string _path = "";
    private bool _createdSocketFile;
    private int? _fd;
    private ChardevLog? _log;
    private volatile bool _disposed;

    internal SocketChardev(ObjectTypeInfo type, string id, PropertyValues values, ChardevEnvironment env)
        : base(type, values)
    {
        _id = id;
        _env = env;
    }

    /// <inheritdoc/>
    public override bool IsConnected => Volatile.Read(ref _connection) is not null;

    /// <inheritdoc/>
    public string Filename
    {
        get
        {
            lock (_stateLock)
            {
                return _filename;
            }
        }
    }

    /// <summary>True in server (listening) mode.</summary>
    public bool IsServer => _server;

    /// <summary>The bound address of a server (its actual port when <c>port=0</c> was asked), else null.</summary>
    public EndPoint? ListenEndPoint => _listener?.LocalEndPoint;

    /// <inheritdoc/>
    public override IEnumerable<(string Name, string Type)> RuntimeProperties => [("connected", "bool"), ("addr", "SocketAddress")];

    /// <inheritdoc/>
    public override void WriteProperty(string name, Utf8JsonWriter writer)
    {
        switch (name)
        {
            case "connected":
                writer.WriteBooleanValue(IsConnected);
                break;
            case "addr":
                WriteAddress(writer);
                break;
            default:
                base.WriteProperty(name, writer);
                break;
        }
    }

    /// <inheritdoc/>
    public override void Complete()
    {
        Configure();
        _log = ChardevLog.Open(Values);
        if (_server)
        {
            _listener = _fd is int fd ? AdoptListener(fd) : _unix ? ListenUnix() : ListenTcp();
            SetFilename(connected: null);
            Socket? first = null;
            if (Values.GetBool("wait"))
            {
                _env.Report($"info: QEMU waiting for connection on: {Filename}");
                try
                {
                    first = _listener.Accept();
                }
                catch (SocketException e)
                {
                    throw new QmpException($"Failed to accept connection: {e.Message}", e);
                }
                Publish(first);
            }
            _loop = Task.Run(() => ServeAsync(first, _stop.Token));
        }
        else
        {
            SetFilename(connected: null);
            Socket? connection = null;
            try
            {
                connection = _fd is int fd ? Adopt(fd) : ConnectAsync(CancellationToken.None).GetAwaiter().GetResult();
            }
            catch (QmpException e) when (_reconnect > 0)
            {
                _env.Report($"Unable to connect character device {_id}: {e.Message}");
            }
            if (connection is not null)
            {
                Publish(connection); // connected when creation returns, as in QEMU
            }
            _loop = Task.Run(() => ConnectLoopAsync(connection, _stop.Token));
        }
    }

    /// <summary>Sends all of <paramref name="data"/>; returns 0 when no peer is connected or the send fails.</summary>
    public override int Write(ReadOnlySpan<byte> data)
    {
        lock (_writeLock)
        {
            Socket? connection = Volatile.Read(ref _connection);
            if (connection is null)
            {
                return 0;
            }
            try
            {
                int sent = 0;
                while (sent < data.Length)
                {
                    sent += connection.Send(data[sent..]);
                }
                _log?.Append(data);
                return data.Length;
            }
            catch (SocketException)
            {
                return 0;
            }
            catch (ObjectDisposedException)
            {
                return 0;
            }
        }
    }

    /// <summary>Wakes the connection loop, which reports <see cref="CharEvent.Opened"/> to the new frontend.</summary>
    protected override void OnAttached() => _attached.Release();

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            _stop.Cancel();
            _listener?.Dispose();
            Socket? connection = Interlocked.Exchange(ref _connection, null);
            CloseQuietly(connection);
            ChardevTypes.WaitQuietly(_loop);
            _log?.Dispose();
            if (_createdSocketFile)
            {
                // The socket file is ours (QEMU removes it too); anything else at the path is left alone.
                try
                {
                    File.Delete(_path);
                }
                catch (IOException)
                {
                }
                catch (UnauthorizedAccessException)
                {
                }
            }
            _stop.Dispose();
        }
        base.Dispose(disposing);
    }

    private void Configure()
    {
        ChardevTypes.RefuseUnimplemented(this);
        PropertyValues v = Values;
        _server = v.GetBool("server");
        _reconnect = v.GetInt("reconnect");
        _nodelay = v.GetBool("nodelay") || !v.GetBool("delay");
        _ipv4 = v.Contains("ipv4") ? v.GetBool("ipv4") : null;
        _ipv6 = v.Contains("ipv6") ? v.GetBool("ipv6") : null;
        _abstract = v.GetBool("abstract");
        string? path = v.GetString("path");
        string? host = v.GetString("host");
        string? fd = v.GetString("fd");
        if (fd is not null)
        {
            if (path is not null || host is not null)
            {
                throw new QmpException("None or one of 'path', 'fd' or 'host' option required.");
            }
            _fd = int.TryParse(fd, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : throw new QmpException($"Unable to parse FD number {fd}");
        }
        else if (path is not null)
        {
            _unix = true;
            _path = path;
            if (_abstract && !v.GetBool("tight"))
            {
                throw new QmpException(ChardevTypes.NotImplementedText("socket", "tight=off"));
            }
        }
        else if (host is not null)
        {
            _host = host;
            _port = v.GetString("port") ?? "";
            if (_port.Length == 0)
            {
                throw new QmpException("chardev: socket: no port given");
            }
        }
        else
        {
            // QEMU would fall back to an inherited fd here; Colo asks for an address instead.
            throw new QmpException("chardev: socket: no host given");
        }
        if (_server)
        {
            if (_reconnect > 0)
            {
                throw new QmpException("'reconnect' option is incompatible with socket in server listen mode");
            }
        }
        else
        {
            if (v.Contains("wait"))
            {
                throw new QmpException("'wait' option is incompatible with socket in client connect mode");
            }
            if (_reconnect < 0)
            {
                throw new QmpException("Parameter 'reconnect' expects an uint64 value");
            }
        }
    }

    /// <summary>
    /// Takes over an inherited socket (<c>fd=N</c>, as libvirt and test harnesses pass them): its family decides
    /// unix or TCP, and its address what query-chardev shows.
    /// </summary>
    private Socket Adopt(int fd)
    {
        var handle = new SafeSocketHandle(fd, ownsHandle: true);
        Socket socket;
        try
        {
            socket = new Socket(handle);
            // The constructor accepts any descriptor; SO_TYPE fails with ENOTSOCK on a file or pipe.
            _ = socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Type);
        }
        catch (SocketException e)
        {
            // Not ours to close: the number names no socket (or nothing at all).
            handle.SetHandleAsInvalid();
            throw new QmpException($"File descriptor '{fd}' is not a socket", e);
        }
        _unix = socket.AddressFamily == AddressFamily.Unix;
        if (_unix)
        {
            _path = (socket.LocalEndPoint as UnixDomainSocketEndPoint)?.ToString() ?? "";
        }
        else if (socket.LocalEndPoint is IPEndPoint local)
        {
            _host = Numeric(local.Address);
            _port = local.Port.ToString(CultureInfo.InvariantCulture);
        }
        return socket;
    }

    /// <summary>An inherited socket in server mode: QEMU listens on it (harmless if it already listens).</summary>
    private Socket AdoptListener(int fd)
    {
        Socket socket = Adopt(fd);
        try
        {
            socket.Listen(4);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new QmpException($"Failed to listen on fd socket: {e.Message}", e);
        }
        return socket;
    }

    private Socket ListenTcp()
    {
        int first = ParsePort(_port);
        int last = Values.Contains("to") ? (int)Values.GetUInt("to") : first;
        IPAddress[] addresses = _host.Length == 0 ? [WildcardAddress()] : Resolve();
        SocketException? lastError = null;
        foreach (IPAddress address in addresses)
        {
            for (int port = first; port <= Math.Max(first, last); port++)
            {
                var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    SetReuseAddress(socket);
                    if (address.AddressFamily == AddressFamily.InterNetworkV6)
                    {
                        socket.DualMode = _ipv6 != true && address.Equals(IPAddress.IPv6Any);
                    }
                    socket.Bind(new IPEndPoint(address, port));
                    socket.Listen(4);
                    return socket;
                }
                catch (SocketException e)
                {
                    socket.Dispose();
                    lastError = e;
                    if (e.SocketErrorCode != SocketError.AddressAlreadyInUse)
                    {
                        break;
                    }
                }
            }
        }
        throw new QmpException(lastError?.SocketErrorCode == SocketError.AddressAlreadyInUse
            ? "Failed to find an available port: Address already in use"
            : $"Failed to bind socket: {lastError?.Message ?? "no usable address"}", lastError!);
    }

    private Socket ListenUnix()
    {
        var endPoint = new UnixDomainSocketEndPoint(_abstract ? "\0" + _path : _path);
        for (int attempt = 0; ; attempt++)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                socket.Bind(endPoint);
                socket.Listen(4);
                _createdSocketFile = !_abstract;
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                if (attempt == 0 && !_abstract && e.SocketErrorCode == SocketError.AddressAlreadyInUse && IsStaleSocket(endPoint))
                {
                    File.Delete(_path); // a socket left by a dead process, as QEMU removes it
                    continue;
                }
                throw new QmpException($"Failed to bind socket to {_path}: {UnixReason(e)}", e);
            }
        }
    }

    /// <summary>True when something empty sits at the path and nobody accepts on it (a leftover socket file).</summary>
    private bool IsStaleSocket(UnixDomainSocketEndPoint endPoint)
    {
        try
        {
            if (new FileInfo(_path) is not { Exists: true, Length: 0 })
            {
                return false;
            }
            using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            probe.Connect(endPoint);
            return false;
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode == SocketError.ConnectionRefused;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private async Task ServeAsync(Socket? first, CancellationToken token)
    {
        Socket? next = first;
        try
        {
            while (!token.IsCancellationRequested)
            {
                next ??= await _listener!.AcceptAsync(token).ConfigureAwait(false);
                await RunConnectionAsync(next, token).ConfigureAwait(false);
                next = null;
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        catch (SocketException)
        {
            // The listener was closed by Dispose.
        }
        finally
        {
            if (next is not null && !ReferenceEquals(next, Volatile.Read(ref _connection)))
            {
                CloseQuietly(next);
            }
        }
    }

    private async Task ConnectLoopAsync(Socket? first, CancellationToken token)
    {
        Socket? connection = first;
        try
        {
            while (!token.IsCancellationRequested)
            {
                if (connection is null)
                {
                    if (_reconnect <= 0)
                    {
                        return; // without reconnect a client stays disconnected, as in QEMU
                    }
                    await Task.Delay(TimeSpan.FromSeconds(_reconnect), token).ConfigureAwait(false);
                    try
                    {
                        connection = await ConnectAsync(token).ConfigureAwait(false);
                    }
                    catch (QmpException)
                    {
                        continue; // QEMU reports only the first failure; later retries are quiet
                    }
                }
                await RunConnectionAsync(connection, token).ConfigureAwait(false);
                connection = null;
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>Makes <paramref name="connection"/> the one writes go to.</summary>
    private void Publish(Socket connection)
    {
        if (_nodelay && !_unix)
        {
            connection.NoDelay = true;
        }
        lock (_writeLock)
        {
            lock (_stateLock)
            {
                Volatile.Write(ref _connection, connection);
                SetFilenameLocked(connection);
            }
        }
    }

    /// <summary>
    /// Pumps a connection's input to the frontend until EOF, then retracts it. Only this loop reports
    /// <see cref="CharEvent.Opened"/> (once a frontend is there) and the matching <see cref="CharEvent.Closed"/>,
    /// so an attach racing with a connect cannot produce a duplicate.
    /// </summary>
    private async Task RunConnectionAsync(Socket connection, CancellationToken token)
    {
        if (!ReferenceEquals(Volatile.Read(ref _connection), connection))
        {
            Publish(connection);
        }
        bool opened = false;
        byte[] buffer = new byte[ReadBufferSize];
        try
        {
            while (true)
            {
                while (!HasFrontend)
                {
                    await _attached.WaitAsync(250, token).ConfigureAwait(false);
                }
                if (!opened)
                {
                    opened = true;
                    DeliverEvent(CharEvent.Opened);
                }
                int n = await connection.ReceiveAsync(buffer, SocketFlags.None, token).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }
                DeliverReceived(buffer.AsSpan(0, n));
            }
        }
        catch (SocketException)
        {
            // Reset by the peer: handled like EOF.
        }
        finally
        {
            bool wasCurrent;
            lock (_writeLock)
            {
                lock (_stateLock)
                {
                    wasCurrent = Interlocked.CompareExchange(ref _connection, null, connection) == connection;
                    SetFilenameLocked(null);
                }
            }
            CloseQuietly(connection);
            if (wasCurrent && opened && !_disposed)
            {
                DeliverEvent(CharEvent.Closed);
            }
        }
    }

    private async Task<Socket> ConnectAsync(CancellationToken token)
    {
        if (_unix)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(_abstract ? "\0" + _path : _path), token).ConfigureAwait(false);
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                throw new QmpException($"Failed to connect to '{_path}': {UnixReason(e)}", e);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        int port = ParsePort(_port);
        IPAddress[] addresses = _host.Length == 0 ? [IPAddress.Loopback] : Resolve();
        SocketException? lastError = null;
        foreach (IPAddress address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, port), token).ConfigureAwait(false);
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                lastError = e;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw new QmpException($"Failed to connect to '{_host}:{_port}': {lastError?.Message ?? "no usable address"}", lastError!);
    }

    private IPAddress[] Resolve()
    {
        IPAddress[] all;
        if (IPAddress.TryParse(_host, out IPAddress? literal))
        {
            all = [literal];
        }
        else
        {
            try
            {
                all = Dns.GetHostAddresses(_host);
            }
            catch (SocketException e)
            {
                throw new QmpException($"address resolution failed for {_host}:{_port}: {e.Message}", e);
            }
        }
        IPAddress[] usable = Array.FindAll(all, a =>
            (a.AddressFamily == AddressFamily.InterNetwork && _ipv6 != true && _ipv4 != false)
            || (a.AddressFamily == AddressFamily.InterNetworkV6 && _ipv4 != true && _ipv6 != false));
        // IPv4 first (stable), the order QEMU's resolver gives for names such as localhost.
        usable = [.. usable.OrderBy(a => a.AddressFamily == AddressFamily.InterNetwork ? 0 : 1)];
        if (usable.Length == 0)
        {
            throw new QmpException($"address resolution failed for {_host}:{_port}: Address family for hostname not supported");
        }
        return usable;
    }

    /// <summary>An empty host listens on IPv4's wildcard first, as QEMU's getaddrinfo order gives it.</summary>
    private IPAddress WildcardAddress() => _ipv6 == true ? IPAddress.IPv6Any : IPAddress.Any;

    private int ParsePort(string port)
    {
        if (int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value <= ushort.MaxValue)
        {
            return value;
        }
        throw new QmpException($"address resolution failed for {_host}:{port}: Servname not supported for ai_socktype");
    }

    private void SetFilename(Socket? connected)
    {
        lock (_stateLock)
        {
            SetFilenameLocked(connected);
        }
    }

    /// <summary>QEMU's query-chardev text: <c>disconnected:tcp:H:P,server=on</c> or <c>tcp:L:P,server=on &lt;-&gt; R:P</c>.</summary>
    private void SetFilenameLocked(Socket? connected)
    {
        string listen = _server ? ",server=on" : "";
        if (connected is null)
        {
            _filename = _unix
                ? $"disconnected:unix:{_path}{listen}"
                : $"disconnected:tcp:{ListenHost()}:{ListenPort()}{listen}";
            return;
        }
        if (_unix)
        {
            _filename = _server ? $"unix:{_path}{listen}" : "unix:";
            return;
        }
        var local = (IPEndPoint)connected.LocalEndPoint!;
        var remote = (IPEndPoint)connected.RemoteEndPoint!;
        _filename = $"tcp:{Numeric(local.Address)}:{local.Port}{listen} <-> {Numeric(remote.Address)}:{remote.Port}";
    }

    /// <summary>A listener shows the numeric address it bound (<c>localhost</c> → <c>127.0.0.1</c>), as QEMU does.</summary>
    private string ListenHost() => _server && _listener?.LocalEndPoint is IPEndPoint bound ? Numeric(bound.Address) : _host;

    private string ListenPort() => _server && _listener?.LocalEndPoint is IPEndPoint bound ? bound.Port.ToString(CultureInfo.InvariantCulture) : _port;

    private static string Numeric(IPAddress address) =>
        (address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address).ToString();

    private void WriteAddress(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        if (_unix)
        {
            writer.WriteString("type", "unix");
            writer.WriteString("path", _path);
            if (_abstract)
            {
                writer.WriteBoolean("abstract", true);
                writer.WriteBoolean("tight", true);
            }
        }
        else
        {
            writer.WriteString("type", "inet");
            if (_server && _listener?.LocalEndPoint is IPEndPoint bound)
            {
                // Like QEMU, a listener reports the address it actually bound.
                writer.WriteString("host", Numeric(bound.Address));
                writer.WriteString("port", bound.Port.ToString(CultureInfo.InvariantCulture));
                writer.WriteBoolean(bound.AddressFamily == AddressFamily.InterNetworkV6 ? "ipv6" : "ipv4", true);
            }
            else
            {
                writer.WriteString("host", _host);
                writer.WriteString("port", _port);
            }
        }
        writer.WriteEndObject();
    }

    /// <summary>
    /// SO_REUSEADDR alone, so a restarted server can rebind a port in TIME_WAIT as QEMU can. .NET's
    /// ReuseAddress option also sets SO_REUSEPORT on Linux, which would let two listeners share a port.
    /// </summary>
    private static void SetReuseAddress(Socket socket)
    {
        if (OperatingSystem.IsLinux())
        {
            const int SolSocket = 1;
            const int SoReuseAddr = 2;
            socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
        }
    }

    /// <summary>strerror text for unix socket errors; .NET reports a missing path (ENOENT) as AddressNotAvailable.</summary>
    private static string UnixReason(SocketException e) =>
        e.SocketErrorCode == SocketError.AddressNotAvailable || (OperatingSystem.IsLinux() && e.NativeErrorCode == 2)
            ? "No such file or directory"
            : e.Message;

    private static void CloseQuietly(Socket? socket)
    {
        if (socket is null)
        {
            return;
        }
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        socket.Dispose();
    }
}
