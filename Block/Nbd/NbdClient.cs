using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using static Colo.Block.Nbd.NbdProtocol;

namespace Colo.Block.Nbd;

/// <summary>One extent of base:allocation block status.</summary>
public readonly record struct NbdExtent(long Length, bool Hole, bool Zero);

/// <summary>Where an NBD server listens: TCP (<see cref="Host"/>, <see cref="Port"/>) or a unix socket (<see cref="Path"/>).</summary>
/// <param name="Port">A decimal port, kept as QAPI's string.</param>
public sealed record NbdServerAddress(string? Host, string? Port, string? Path)
{
    public const string DefaultPort = "10809";

    public static NbdServerAddress Tcp(string host, string? port = null) => new(host, port ?? DefaultPort, null);

    public static NbdServerAddress Unix(string path) => new(null, null, path);

    /// <summary>The node's filename as QEMU prints it (nbd://host:port/export, nbd+unix:///export?socket=path).</summary>
    public string Describe(string export) => Path is not null
        ? $"nbd+unix:///{export}?socket={Path}"
        : $"nbd://{(Host!.Contains(':') ? $"[{Host}]" : Host)}:{Port}/{export}";
}

/// <summary>
/// The "nbd" protocol driver: a block node backed by an export on an NBD server (fixed newstyle,
/// NBD_OPT_GO, structured replies and base:allocation when the server offers them). One request is
/// in flight at a time, which matches the node's serialised contract.
/// </summary>
/// <remarks>
/// With a reconnect delay, a lost connection is re-established transparently: a request that meets the
/// loss retries connecting until the delay has passed since the loss, then fails; later requests each make
/// one more attempt (QEMU keeps reconnecting in the background; here the attempts ride on requests).
/// </remarks>
public sealed class NbdClient : BlockNode
{
    private readonly NbdServerAddress _address;
    private readonly string _description;
    private readonly byte[] _header = new byte[64];
    private readonly Lock _lock = new();
    private readonly TimeSpan _reconnectDelay;
    private Socket _socket;
    private bool _structured;
    private ulong _cookie;
    private bool _dead;
    private bool _disposed;
    private long _lostAt;

    private NbdClient(Socket socket, NbdServerAddress address, string exportName, Handshake h, bool readOnly, TimeSpan reconnectDelay, string? nodeName)
        : base(nodeName, readOnly || (h.Flags & FlagReadOnly) != 0)
    {
        _socket = socket;
        _address = address;
        _description = address.Describe(exportName);
        _reconnectDelay = reconnectDelay;
        ExportName = exportName;
        Size = (long)h.Size;
        Adopt(h);
    }

    public override string DriverName => "nbd";

    public override long Size { get; }

    public override string Filename => _description;

    public string ExportName { get; }

    public ushort TransmissionFlags { get; private set; }

    /// <summary>True when the server agreed to structured replies.</summary>
    public bool StructuredReplies => _structured;

    /// <summary>Context id of base:allocation, or null when the server did not offer it.</summary>
    public uint? MetaContextId { get; private set; }

    /// <summary>Largest single request sent; bigger node requests are split.</summary>
    public int MaxRequest { get; private set; }

    /// <summary>Times the connection was re-established after a loss.</summary>
    public int Reconnects { get; private set; }

    /// <summary>Connects to <c>nbd://host[:port]/export</c> or <c>nbd+unix:///export?socket=path</c>.</summary>
    public static NbdClient Open(string uri, string? nodeName = null)
    {
        (NbdServerAddress address, string export) = ParseFilename(uri);
        return Connect(address, export, false, TimeSpan.Zero, TimeSpan.Zero, nodeName);
    }

    /// <summary>
    /// Parses the filenames QEMU's nbd driver accepts: <c>nbd[+tcp]://host[:port][/export]</c>,
    /// <c>nbd+unix:///export?socket=PATH</c> and the legacy <c>nbd:host:port[:exportname=E]</c>,
    /// <c>nbd:unix:PATH[:exportname=E]</c>.
    /// </summary>
    public static (NbdServerAddress Address, string Export) ParseFilename(string filename)
    {
        if (filename.StartsWith("nbd:", StringComparison.Ordinal) && !filename.StartsWith("nbd://", StringComparison.Ordinal))
        {
            return ParseLegacy(filename);
        }
        if (!Uri.TryCreate(filename, UriKind.Absolute, out Uri? u) || u.Fragment.Length > 0)
        {
            throw new BlockException("No valid URL specified");
        }
        string export = Uri.UnescapeDataString(u.AbsolutePath.TrimStart('/'));
        string query = u.Query.TrimStart('?');
        switch (u.Scheme)
        {
            case "nbd":
            case "nbd+tcp":
                if (u.Host.Length == 0 || query.Length > 0)
                {
                    throw new BlockException("No valid URL specified");
                }
                return (NbdServerAddress.Tcp(u.Host.Trim('[', ']'), u.IsDefaultPort || u.Port < 0 ? null : u.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)), export);
            case "nbd+unix":
                if (u.Host.Length > 0 || !query.StartsWith("socket=", StringComparison.Ordinal) || query.Contains('&'))
                {
                    throw new BlockException("No valid URL specified");
                }
                return (NbdServerAddress.Unix(Uri.UnescapeDataString(query["socket=".Length..])), export);
            default:
                throw new BlockException("No valid URL specified");
        }
    }

    private static (NbdServerAddress, string) ParseLegacy(string filename)
    {
        string rest = filename["nbd:".Length..];
        string export = "";
        int at = rest.IndexOf(":exportname=", StringComparison.Ordinal);
        if (at >= 0)
        {
            export = rest[(at + ":exportname=".Length)..];
            rest = rest[..at];
        }
        if (rest.StartsWith("unix:", StringComparison.Ordinal))
        {
            return (NbdServerAddress.Unix(rest["unix:".Length..]), export);
        }
        int colon = rest.LastIndexOf(':');
        return colon < 0 ? (NbdServerAddress.Tcp(rest), export) : (NbdServerAddress.Tcp(rest[..colon].Trim('[', ']'), rest[(colon + 1)..]), export);
    }

    public static NbdClient ConnectTcp(string host, int port, string exportName, string? nodeName = null) =>
        Connect(NbdServerAddress.Tcp(host, port.ToString(System.Globalization.CultureInfo.InvariantCulture)), exportName, false, TimeSpan.Zero, TimeSpan.Zero, nodeName);

    public static NbdClient ConnectUnix(string path, string exportName, string? nodeName = null) =>
        Connect(NbdServerAddress.Unix(path), exportName, false, TimeSpan.Zero, TimeSpan.Zero, nodeName);

    /// <summary>
    /// Connects and negotiates. With <paramref name="openTimeout"/> a refused or failed connection is
    /// retried until that much time has passed (QEMU's open-timeout), then the last error is reported.
    /// </summary>
    public static NbdClient Connect(NbdServerAddress address, string exportName, bool readOnly, TimeSpan reconnectDelay, TimeSpan openTimeout, string? nodeName = null)
    {
        long deadline = Environment.TickCount64 + (long)openTimeout.TotalMilliseconds;
        while (true)
        {
            try
            {
                (Socket s, Handshake h) = ConnectAndNegotiate(address, exportName);
                return new NbdClient(s, address, exportName, h, readOnly, reconnectDelay, nodeName);
            }
            catch (BlockException) when (Environment.TickCount64 < deadline)
            {
                // The server may not be up yet (COLO starts both sides together): wait a little and retry.
                Thread.Sleep(RetryPause(deadline));
            }
        }
    }

    private static int RetryPause(long deadline) => (int)Math.Clamp(deadline - Environment.TickCount64, 0, 100);

    private static (Socket, Handshake) ConnectAndNegotiate(NbdServerAddress address, string exportName)
    {
        Socket s = Dial(address);
        return (s, Negotiate(s, address.Describe(exportName), exportName));
    }

    /// <summary>Opens the stream socket, with QEMU's "Failed to connect to '...'" texts.</summary>
    private static Socket Dial(NbdServerAddress address)
    {
        if (address.Path is { } path)
        {
            var u = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                u.Connect(new UnixDomainSocketEndPoint(path));
                return u;
            }
            catch (SocketException e)
            {
                u.Dispose();
                string reason = e.SocketErrorCode == SocketError.AddressNotAvailable || !System.IO.File.Exists(path) ? "No such file or directory" : e.Message;
                throw new BlockException($"Failed to connect to '{path}': {reason}", e);
            }
        }

        string host = address.Host!;
        string port = address.Port ?? NbdServerAddress.DefaultPort;
        if (!ushort.TryParse(port, System.Globalization.NumberStyles.None, null, out ushort portNumber))
        {
            throw new BlockException($"address resolution failed for {host}:{port}: Servname not supported for ai_socktype");
        }
        IPAddress[] addrs;
        try
        {
            addrs = IPAddress.TryParse(host, out IPAddress? a) ? [a] : Dns.GetHostAddresses(host);
        }
        catch (SocketException e)
        {
            throw new BlockException($"address resolution failed for {host}:{port}: Name or service not known", e);
        }
        SocketException? last = null;
        foreach (IPAddress addr in addrs)
        {
            var s = new Socket(addr.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                s.Connect(new IPEndPoint(addr, portNumber));
                return s;
            }
            catch (SocketException e)
            {
                s.Dispose();
                last = e;
            }
        }
        throw new BlockException($"Failed to connect to '{host}:{port}': {(last is null ? "Name or service not known" : StrError(last))}", last!);
    }

    /// <summary>The C library's wording (QEMU prints strerror); .NET's message appends the endpoint.</summary>
    private static string StrError(SocketException e) => e.SocketErrorCode switch
    {
        SocketError.ConnectionRefused => "Connection refused",
        SocketError.TimedOut => "Connection timed out",
        SocketError.HostUnreachable => "No route to host",
        SocketError.NetworkUnreachable => "Network is unreachable",
        SocketError.AddressNotAvailable => "Cannot assign requested address",
        _ => e.Message,
    };

    private void Adopt(Handshake h)
    {
        TransmissionFlags = h.Flags;
        _structured = h.Structured;
        MetaContextId = h.MetaContextId;
        MaxRequest = (int)Math.Clamp(h.MaxBlock, 512, MaxPayload);
    }

    private sealed class Handshake
    {
        public ulong Size;
        public ushort Flags;
        public bool Structured;
        public uint? MetaContextId;
        public uint MaxBlock = MaxPayload;
    }

    private static Handshake Negotiate(Socket s, string desc, string exportName)
    {
        try
        {
            s.ReceiveTimeout = 30_000;
            Handshake h = DoHandshake(s, exportName, desc);
            s.ReceiveTimeout = 0;
            return h;
        }
        catch (Exception e) when (e is SocketException or EndOfStreamException)
        {
            s.Dispose();
            throw new BlockException($"NBD handshake with {desc} failed: {e.Message}", e);
        }
        catch
        {
            s.Dispose();
            throw;
        }
    }

    private static Handshake DoHandshake(Socket s, string exportName, string desc)
    {
        Span<byte> b = stackalloc byte[18];
        ReceiveExact(s, b[..16]);
        if (BinaryPrimitives.ReadUInt64BigEndian(b) != NbdMagic)
        {
            throw new BlockException($"{desc}: not an NBD server (bad magic)");
        }

        ulong second = BinaryPrimitives.ReadUInt64BigEndian(b[8..]);
        if (second == OldstyleMagic)
        {
            throw new BlockException($"{desc}: oldstyle NBD servers are not supported");
        }

        if (second != IHaveOpt)
        {
            throw new BlockException($"{desc}: bad NBD handshake magic");
        }

        ReceiveExact(s, b[16..18]);
        ushort serverFlags = BinaryPrimitives.ReadUInt16BigEndian(b[16..]);
        if ((serverFlags & FlagFixedNewstyle) == 0)
        {
            throw new BlockException($"{desc}: server does not support fixed newstyle negotiation");
        }

        bool noZeroes = (serverFlags & FlagNoZeroes) != 0;
        Span<byte> cf = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(cf, FlagFixedNewstyle | (noZeroes ? FlagNoZeroes : 0u));
        SendAll(s, cf);

        var h = new Handshake();
        byte[] name = Encoding.UTF8.GetBytes(exportName);

        // Structured replies.
        SendOption(s, OptStructuredReply, []);
        (uint type, byte[] payload) = ReceiveOptionReply(s, OptStructuredReply, desc);
        h.Structured = type == RepAck;
        if (!h.Structured && (type & RepFlagError) == 0)
        {
            throw new BlockException($"{desc}: unexpected reply {type} to NBD_OPT_STRUCTURED_REPLY");
        }

        // base:allocation, if structured replies are on.
        if (h.Structured)
        {
            byte[] ctx = Encoding.UTF8.GetBytes(BaseAllocation);
            byte[] q = new byte[4 + name.Length + 4 + 4 + ctx.Length];
            BinaryPrimitives.WriteUInt32BigEndian(q, (uint)name.Length);
            name.CopyTo(q, 4);
            BinaryPrimitives.WriteUInt32BigEndian(q.AsSpan(4 + name.Length), 1);
            BinaryPrimitives.WriteUInt32BigEndian(q.AsSpan(8 + name.Length), (uint)ctx.Length);
            ctx.CopyTo(q, 12 + name.Length);
            SendOption(s, OptSetMetaContext, q);
            while (true)
            {
                (type, payload) = ReceiveOptionReply(s, OptSetMetaContext, desc);
                if (type == RepMetaContext && payload.Length >= 4
                    && Encoding.UTF8.GetString(payload, 4, payload.Length - 4) == BaseAllocation)
                {
                    h.MetaContextId = BinaryPrimitives.ReadUInt32BigEndian(payload);
                }
                else if (type == RepAck || (type & RepFlagError) != 0)
                {
                    if (type == RepErrUnknown)
                    {
                        throw RefusedExport(payload);
                    }

                    break;
                }
            }
        }

        // NBD_OPT_GO asking for block sizes.
        byte[] go = new byte[4 + name.Length + 2 + 2];
        BinaryPrimitives.WriteUInt32BigEndian(go, (uint)name.Length);
        name.CopyTo(go, 4);
        BinaryPrimitives.WriteUInt16BigEndian(go.AsSpan(4 + name.Length), 1);
        BinaryPrimitives.WriteUInt16BigEndian(go.AsSpan(6 + name.Length), InfoBlockSize);
        SendOption(s, OptGo, go);
        bool gotExport = false;
        while (true)
        {
            (type, payload) = ReceiveOptionReply(s, OptGo, desc);
            if (type == RepInfo && payload.Length >= 2)
            {
                ushort info = BinaryPrimitives.ReadUInt16BigEndian(payload);
                if (info == InfoExport && payload.Length == 12)
                {
                    h.Size = BinaryPrimitives.ReadUInt64BigEndian(payload.AsSpan(2));
                    h.Flags = BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(10));
                    gotExport = true;
                }
                else if (info == InfoBlockSize && payload.Length == 14)
                {
                    h.MaxBlock = BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(10));
                }
            }
            else if (type == RepAck)
            {
                if (!gotExport)
                {
                    throw new BlockException($"{desc}: server did not send NBD_INFO_EXPORT");
                }

                break;
            }
            else if (type == RepErrUnsup)
            {
                // A server without NBD_OPT_GO: fall back to NBD_OPT_EXPORT_NAME.
                SendOption(s, OptExportName, name);
                Span<byte> r = stackalloc byte[134];
                ReceiveExact(s, r[..(noZeroes ? 10 : 134)]);
                h.Size = BinaryPrimitives.ReadUInt64BigEndian(r);
                h.Flags = BinaryPrimitives.ReadUInt16BigEndian(r[8..]);
                h.Structured = false;
                h.MetaContextId = null;
                break;
            }
            else if ((type & RepFlagError) != 0)
            {
                throw RefusedExport(payload);
            }
        }

        if (h.Size > long.MaxValue)
        {
            throw new BlockException($"{desc}: export size {h.Size} too large");
        }

        return h;
    }

    private static BlockException RefusedExport(byte[] payload)
    {
        // QEMU's two-line text; the server's own message is its second line.
        return payload.Length > 0
            ? new BlockException($"Requested export not available\nserver reported: {Encoding.UTF8.GetString(payload)}")
            : new BlockException("Requested export not available");
    }

    private static void SendOption(Socket s, uint option, byte[] data)
    {
        byte[] b = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(b, IHaveOpt);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), (uint)data.Length);
        data.CopyTo(b, 16);
        SendAll(s, b);
    }

    private static (uint Type, byte[] Payload) ReceiveOptionReply(Socket s, uint option, string desc)
    {
        Span<byte> h = stackalloc byte[20];
        ReceiveExact(s, h);
        if (BinaryPrimitives.ReadUInt64BigEndian(h) != OptionReplyMagic || BinaryPrimitives.ReadUInt32BigEndian(h[8..]) != option)
        {
            throw new BlockException($"{desc}: malformed option reply");
        }

        uint type = BinaryPrimitives.ReadUInt32BigEndian(h[12..]);
        uint len = BinaryPrimitives.ReadUInt32BigEndian(h[16..]);
        if (len > MaxOptionLength)
        {
            throw new BlockException($"{desc}: option reply too long ({len} bytes)");
        }

        byte[] p = new byte[len];
        ReceiveExact(s, p);
        return (type, p);
    }

    private static void SendAll(Socket s, ReadOnlySpan<byte> data)
    {
        while (data.Length > 0)
        {
            data = data[s.Send(data)..];
        }
    }

    private static void ReceiveExact(Socket s, Span<byte> data)
    {
        while (data.Length > 0)
        {
            int n = s.Receive(data);
            if (n == 0)
            {
                throw new EndOfStreamException("connection closed by the server");
            }

            data = data[n..];
        }
    }

    // ---- transmission ------------------------------------------------------------------------------

    public override void Read(long offset, Span<byte> buffer)
    {
        CheckRequest(offset, buffer.Length);
        while (buffer.Length > 0)
        {
            int n = Math.Min(buffer.Length, MaxRequest);
            Transact(CmdRead, 0, offset, buffer[..n], default);
            offset += n;
            buffer = buffer[n..];
        }
    }

    public override void Write(long offset, ReadOnlySpan<byte> buffer)
    {
        CheckWritable();
        CheckRequest(offset, buffer.Length);
        while (buffer.Length > 0)
        {
            int n = Math.Min(buffer.Length, MaxRequest);
            Transact(CmdWrite, 0, offset, default, buffer[..n]);
            offset += n;
            buffer = buffer[n..];
        }
    }

    public override void Flush()
    {
        if ((TransmissionFlags & FlagSendFlush) != 0)
        {
            Transact(CmdFlush, 0, 0, default, default);
        }
    }

    public override void Discard(long offset, long length)
    {
        CheckWritable();
        CheckRequest(offset, length);
        if ((TransmissionFlags & FlagSendTrim) == 0)
        {
            return;
        }

        ForEachSlice(offset, length, (o, l) => Transact(CmdTrim, 0, o, default, default, (uint)l));
    }

    public override void WriteZeroes(long offset, long length)
    {
        CheckWritable();
        CheckRequest(offset, length);
        if ((TransmissionFlags & FlagSendWriteZeroes) == 0)
        {
            base.WriteZeroes(offset, length);
            return;
        }

        ForEachSlice(offset, length, (o, l) => Transact(CmdWriteZeroes, 0, o, default, default, (uint)l));
    }

    /// <summary>base:allocation extents starting at <paramref name="offset"/> (the server may cover less than asked).</summary>
    public IReadOnlyList<NbdExtent> BlockStatus(long offset, long length)
    {
        CheckRequest(offset, length);
        if (MetaContextId == null)
        {
            return [new NbdExtent(length, false, false)];
        }

        var extents = new List<NbdExtent>();
        Transact(CmdBlockStatus, 0, offset, default, default, (uint)Math.Min(length, uint.MaxValue), extents);
        return extents;
    }

    private void ForEachSlice(long offset, long length, Action<long, long> action)
    {
        const long Slice = 1L << 30;
        while (length > 0)
        {
            long n = Math.Min(length, Slice);
            action(offset, n);
            offset += n;
            length -= n;
        }
    }

    private void Transact(ushort type, ushort flags, long offset, Span<byte> readInto, ReadOnlySpan<byte> writeFrom,
        uint length = 0, List<NbdExtent>? extents = null)
    {
        lock (_lock)
        {
            // The window in which this request may wait for a reconnection: from the loss it met or, when
            // the connection was already down, at least one attempt now.
            long deadline = Math.Max(_lostAt + (long)_reconnectDelay.TotalMilliseconds, Environment.TickCount64);
            while (true)
            {
                if (_dead && !TryReconnect(deadline))
                {
                    throw new BlockException($"NBD connection to {_description} is closed");
                }

                try
                {
                    TransactLocked(type, flags, offset, readInto, writeFrom, length, extents);
                    return;
                }
                catch (Exception e) when (e is SocketException or EndOfStreamException or ObjectDisposedException)
                {
                    _dead = true;
                    _socket.Dispose();
                    _lostAt = Environment.TickCount64;
                    if (_reconnectDelay <= TimeSpan.Zero || _disposed)
                    {
                        throw new BlockException($"NBD connection to {_description} lost: {e.Message}", e);
                    }
                    deadline = _lostAt + (long)_reconnectDelay.TotalMilliseconds;
                }
            }
        }
    }

    /// <summary>Re-establishes a lost connection, retrying until <paramref name="deadline"/>; false when it could not.</summary>
    private bool TryReconnect(long deadline)
    {
        if (_reconnectDelay <= TimeSpan.Zero || _disposed)
        {
            return false;
        }
        while (true)
        {
            try
            {
                (Socket s, Handshake h) = ConnectAndNegotiate(_address, ExportName);
                if ((long)h.Size != Size)
                {
                    // A different image behind the same name: requests must not land on it.
                    s.Dispose();
                    return false;
                }
                _socket = s;
                Adopt(h);
                _dead = false;
                Reconnects++;
                return true;
            }
            catch (BlockException)
            {
                if (Environment.TickCount64 >= deadline)
                {
                    return false;
                }
                Thread.Sleep(RetryPause(deadline));
            }
        }
    }

    private void TransactLocked(ushort type, ushort flags, long offset, Span<byte> readInto, ReadOnlySpan<byte> writeFrom,
        uint length, List<NbdExtent>? extents)
    {
        ulong cookie = ++_cookie;
        if (type == CmdRead)
        {
            length = (uint)readInto.Length;
        }
        else if (type == CmdWrite)
        {
            length = (uint)writeFrom.Length;
        }

        Span<byte> h = _header;
        BinaryPrimitives.WriteUInt32BigEndian(h, RequestMagic);
        BinaryPrimitives.WriteUInt16BigEndian(h[4..], flags);
        BinaryPrimitives.WriteUInt16BigEndian(h[6..], type);
        BinaryPrimitives.WriteUInt64BigEndian(h[8..], cookie);
        BinaryPrimitives.WriteUInt64BigEndian(h[16..], (ulong)offset);
        BinaryPrimitives.WriteUInt32BigEndian(h[24..], length);
        SendAll(_socket, h[..RequestHeaderSize]);
        if (type == CmdWrite)
        {
            SendAll(_socket, writeFrom);
        }

        ReceiveExact(_socket, h[..4]);
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(h);
        if (magic == SimpleReplyMagic)
        {
            ReceiveExact(_socket, h[4..16]);
            CheckCookie(cookie, BinaryPrimitives.ReadUInt64BigEndian(h[8..]));
            uint error = BinaryPrimitives.ReadUInt32BigEndian(h[4..]);
            if (error != 0)
            {
                throw ServerError(type, error, null);
            }

            if (type == CmdRead)
            {
                ReceiveExact(_socket, readInto);
            }

            return;
        }

        if (magic != StructuredReplyMagic || !_structured)
        {
            throw Protocol("bad reply magic");
        }

        ReceiveChunks(type, cookie, offset, readInto, length, extents);
    }

    private void ReceiveChunks(ushort type, ulong cookie, long offset, Span<byte> readInto, uint length, List<NbdExtent>? extents)
    {
        Span<byte> h = _header;
        uint? error = null;
        string? message = null;
        bool first = true;
        while (true)
        {
            if (!first)
            {
                ReceiveExact(_socket, h[..4]);
                if (BinaryPrimitives.ReadUInt32BigEndian(h) != StructuredReplyMagic)
                {
                    throw Protocol("bad structured reply magic");
                }
            }

            first = false;
            ReceiveExact(_socket, h[4..20]);
            ushort cflags = BinaryPrimitives.ReadUInt16BigEndian(h[4..]);
            ushort ctype = BinaryPrimitives.ReadUInt16BigEndian(h[6..]);
            CheckCookie(cookie, BinaryPrimitives.ReadUInt64BigEndian(h[8..]));
            uint clen = BinaryPrimitives.ReadUInt32BigEndian(h[16..]);

            switch (ctype)
            {
                case ReplyTypeNone:
                    if (clen != 0)
                    {
                        throw Protocol("NONE chunk with payload");
                    }

                    break;
                case ReplyTypeOffsetData when type == CmdRead:
                {
                    if (clen < 8)
                    {
                        throw Protocol("short OFFSET_DATA chunk");
                    }

                    ReceiveExact(_socket, h[20..28]);
                    long rel = (long)BinaryPrimitives.ReadUInt64BigEndian(h[20..]) - offset;
                    long n = clen - 8;
                    if (rel < 0 || rel > readInto.Length || n > readInto.Length - rel)
                    {
                        throw Protocol("OFFSET_DATA chunk outside the request");
                    }

                    ReceiveExact(_socket, readInto.Slice((int)rel, (int)n));
                    break;
                }

                case ReplyTypeOffsetHole when type == CmdRead:
                {
                    if (clen != 12)
                    {
                        throw Protocol("bad OFFSET_HOLE chunk");
                    }

                    ReceiveExact(_socket, h[20..32]);
                    long rel = (long)BinaryPrimitives.ReadUInt64BigEndian(h[20..]) - offset;
                    uint n = BinaryPrimitives.ReadUInt32BigEndian(h[28..]);
                    if (rel < 0 || rel > readInto.Length || n > readInto.Length - rel)
                    {
                        throw Protocol("OFFSET_HOLE chunk outside the request");
                    }

                    readInto.Slice((int)rel, (int)n).Clear();
                    break;
                }

                case ReplyTypeBlockStatus when type == CmdBlockStatus:
                {
                    if (clen < 12 || (clen - 4) % 8 != 0 || clen > MaxOptionLength * 16)
                    {
                        throw Protocol("bad BLOCK_STATUS chunk");
                    }

                    byte[] p = new byte[clen];
                    ReceiveExact(_socket, p);
                    uint id = BinaryPrimitives.ReadUInt32BigEndian(p);
                    if (id == MetaContextId && extents != null)
                    {
                        for (int i = 4; i < p.Length; i += 8)
                        {
                            uint st = BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(i + 4));
                            extents.Add(new NbdExtent(BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(i)),
                                (st & StateHole) != 0, (st & StateZero) != 0));
                        }
                    }

                    break;
                }

                case ReplyTypeError:
                case ReplyTypeErrorOffset:
                {
                    if (clen < 6 || clen > MaxOptionLength)
                    {
                        throw Protocol("bad error chunk");
                    }

                    byte[] p = new byte[clen];
                    ReceiveExact(_socket, p);
                    error = BinaryPrimitives.ReadUInt32BigEndian(p);
                    int mlen = BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(4));
                    if (mlen > 0 && 6 + mlen <= p.Length)
                    {
                        message = Encoding.UTF8.GetString(p, 6, mlen);
                    }

                    break;
                }

                default:
                    throw Protocol($"unexpected reply chunk type {ctype}");
            }

            if ((cflags & ReplyFlagDone) != 0)
            {
                break;
            }
        }

        if (error != null)
        {
            throw ServerError(type, error.Value, message);
        }
    }

    private void CheckCookie(ulong expected, ulong got)
    {
        if (expected != got)
        {
            throw Protocol($"reply for unknown request {got}");
        }
    }

    private BlockException Protocol(string what)
    {
        _dead = true;
        _socket.Dispose();
        return new BlockException($"NBD protocol error from {_description}: {what}");
    }

    private BlockException ServerError(ushort type, uint error, string? message)
    {
        string cmd = type switch
        {
            CmdRead => "read",
            CmdWrite => "write",
            CmdFlush => "flush",
            CmdTrim => "trim",
            CmdWriteZeroes => "write-zeroes",
            CmdBlockStatus => "block-status",
            _ => $"command {type}",
        };
        return new BlockException($"NBD {cmd} on {_description} failed: {ErrorName(error)}{(message != null ? $" ({message})" : "")}");
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            lock (_lock)
            {
                _disposed = true;
                if (!_dead)
                {
                    try
                    {
                        Span<byte> h = stackalloc byte[RequestHeaderSize];
                        h.Clear();
                        BinaryPrimitives.WriteUInt32BigEndian(h, RequestMagic);
                        BinaryPrimitives.WriteUInt16BigEndian(h[6..], CmdDisc);
                        SendAll(_socket, h);
                        _socket.Shutdown(SocketShutdown.Send);
                    }
                    catch (Exception e) when (e is SocketException or ObjectDisposedException)
                    {
                    }

                    _dead = true;
                }

                _socket.Dispose();
            }
        }

        base.Dispose(disposing);
    }
}
