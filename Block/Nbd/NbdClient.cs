using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using static Colo.Block.Nbd.NbdProtocol;

namespace Colo.Block.Nbd;

/// <summary>One extent of base:allocation block status.</summary>
public readonly record struct NbdExtent(long Length, bool Hole, bool Zero);

/// <summary>
/// The "nbd" protocol driver: a block node backed by an export on an NBD server (fixed newstyle,
/// NBD_OPT_GO, structured replies and base:allocation when the server offers them). One request is
/// in flight at a time, which matches the node's serialised contract.
/// </summary>
public sealed class NbdClient : BlockNode
{
    private readonly Socket _socket;
    private readonly string _description;
    private readonly bool _structured;
    private readonly byte[] _header = new byte[64];
    private readonly Lock _lock = new();
    private ulong _cookie;
    private bool _dead;

    private NbdClient(Socket socket, string description, string exportName, Handshake h, string? nodeName)
        : base(nodeName, (h.Flags & FlagReadOnly) != 0)
    {
        _socket = socket;
        _description = description;
        ExportName = exportName;
        Size = (long)h.Size;
        TransmissionFlags = h.Flags;
        _structured = h.Structured;
        MetaContextId = h.MetaContextId;
        MaxRequest = (int)Math.Clamp(h.MaxBlock, 512, MaxPayload);
    }

    public override string DriverName => "nbd";

    public override long Size { get; }

    public override string Filename => _description;

    public string ExportName { get; }

    public ushort TransmissionFlags { get; }

    /// <summary>True when the server agreed to structured replies.</summary>
    public bool StructuredReplies => _structured;

    /// <summary>Context id of base:allocation, or null when the server did not offer it.</summary>
    public uint? MetaContextId { get; }

    /// <summary>Largest single request sent; bigger node requests are split.</summary>
    public int MaxRequest { get; }

    /// <summary>Connects to <c>nbd://host[:port]/export</c> or <c>nbd+unix:///export?socket=path</c>.</summary>
    public static NbdClient Open(string uri, string? nodeName = null)
    {
        if (!Uri.TryCreate(uri, UriKind.Absolute, out Uri? u))
        {
            throw new BlockException($"Invalid NBD URI '{uri}'");
        }

        string export = Uri.UnescapeDataString(u.AbsolutePath.TrimStart('/'));
        switch (u.Scheme)
        {
            case "nbd":
            case "nbd+tcp":
                return ConnectTcp(u.Host, u.Port > 0 ? u.Port : 10809, export, nodeName);
            case "nbd+unix":
                string q = u.Query.TrimStart('?');
                string? socket = q.Split('&').Where(p => p.StartsWith("socket=", StringComparison.Ordinal))
                    .Select(p => Uri.UnescapeDataString(p["socket=".Length..])).FirstOrDefault();
                if (socket == null)
                {
                    throw new BlockException($"NBD URI '{uri}' needs a socket= parameter");
                }

                return ConnectUnix(socket, export, nodeName);
            default:
                throw new BlockException($"Unsupported NBD URI scheme '{u.Scheme}'");
        }
    }

    public static NbdClient ConnectTcp(string host, int port, string exportName, string? nodeName = null)
    {
        string desc = $"nbd://{(host.Contains(':') ? $"[{host}]" : host)}:{port}/{exportName}";
        Socket? s = null;
        try
        {
            IPAddress[] addrs = IPAddress.TryParse(host, out IPAddress? a) ? [a] : Dns.GetHostAddresses(host);
            s = new Socket(addrs[0].AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            s.Connect(new IPEndPoint(addrs[0], port));
        }
        catch (SocketException e)
        {
            s?.Dispose();
            throw new BlockException($"Failed to connect to '{host}:{port}': {e.Message}", e);
        }

        return Negotiate(s, desc, exportName, nodeName);
    }

    public static NbdClient ConnectUnix(string path, string exportName, string? nodeName = null)
    {
        string desc = $"nbd+unix:///{exportName}?socket={path}";
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            s.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e)
        {
            s.Dispose();
            throw new BlockException($"Failed to connect to '{path}': {e.Message}", e);
        }

        return Negotiate(s, desc, exportName, nodeName);
    }

    private sealed class Handshake
    {
        public ulong Size;
        public ushort Flags;
        public bool Structured;
        public uint? MetaContextId;
        public uint MaxBlock = MaxPayload;
    }

    private static NbdClient Negotiate(Socket s, string desc, string exportName, string? nodeName)
    {
        try
        {
            s.ReceiveTimeout = 30_000;
            Handshake h = DoHandshake(s, exportName, desc);
            s.ReceiveTimeout = 0;
            return new NbdClient(s, desc, exportName, h, nodeName);
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
                        throw RefusedExport(desc, exportName, payload);
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
                throw RefusedExport(desc, exportName, payload);
            }
        }

        if (h.Size > long.MaxValue)
        {
            throw new BlockException($"{desc}: export size {h.Size} too large");
        }

        return h;
    }

    private static BlockException RefusedExport(string desc, string exportName, byte[] payload)
    {
        string msg = payload.Length > 0 ? Encoding.UTF8.GetString(payload) : "export not available";
        return new BlockException($"Requested export '{exportName}' not available from {desc}: server reported: {msg}");
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
            if (_dead)
            {
                throw new BlockException($"NBD connection to {_description} is closed");
            }

            try
            {
                TransactLocked(type, flags, offset, readInto, writeFrom, length, extents);
            }
            catch (Exception e) when (e is SocketException or EndOfStreamException or ObjectDisposedException)
            {
                _dead = true;
                _socket.Dispose();
                throw new BlockException($"NBD connection to {_description} lost: {e.Message}", e);
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
