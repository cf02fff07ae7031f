using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using static Colo.Block.Nbd.NbdProtocol;

namespace Colo.Block.Nbd;

/// <summary>One client of <see cref="NbdServer"/>: handshake, option haggling, then transmission.</summary>
internal sealed class NbdConnection : IDisposable
{
    private const int ReadPrefix = StructuredReplyHeaderSize + 8; // room for a chunk header + offset
    private const uint MetaContextId = 1;

    private readonly NbdServer _server;
    private readonly Socket _socket;
    private readonly byte[] _header = new byte[64];
    private readonly byte[] _reply = new byte[64];

    // Reads and writes of a node that allows it are served side by side (replies in order of completion,
    // which the protocol allows: the client matches them by cookie; the node orders overlapping ones); any
    // other request first waits for them, so a flush covers every write replied to before it.
    // Slot i holds the request started i, i + 16, ... requests ago: a new one first awaits the oldest one,
    // which bounds what is in flight and awaits every pooled ValueTask exactly once.
    private const int MaxReadsInFlight = 16;
    private readonly ValueTask[] _reads = new ValueTask[MaxReadsInFlight];
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private int _nextRead;
    private bool _noZeroes;
    private bool _structured;
    private string? _metaExport; // export name base:allocation was selected for

    public NbdConnection(NbdServer server, Socket socket)
    {
        _server = server;
        _socket = socket;
    }

    public Task Task { get; set; } = Task.CompletedTask;

    public NbdExport? Export { get; private set; }

    public void Abort()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }

        _socket.Dispose();
    }

    public async Task RunAsync()
    {
        NbdExport? export = await HandshakeAsync().ConfigureAwait(false);
        if (export != null)
        {
            Export = export;
            await TransmissionAsync(export).ConfigureAwait(false);
        }
    }

    // ---- handshake --------------------------------------------------------------------------------

    private async Task<NbdExport?> HandshakeAsync()
    {
        BinaryPrimitives.WriteUInt64BigEndian(_reply, NbdMagic);
        BinaryPrimitives.WriteUInt64BigEndian(_reply.AsSpan(8), IHaveOpt);
        BinaryPrimitives.WriteUInt16BigEndian(_reply.AsSpan(16), FlagFixedNewstyle | FlagNoZeroes);
        await SendAsync(_reply.AsMemory(0, 18)).ConfigureAwait(false);

        if (!await ReceiveAsync(_header.AsMemory(0, 4)).ConfigureAwait(false))
        {
            return null;
        }

        uint clientFlags = BinaryPrimitives.ReadUInt32BigEndian(_header);
        if ((clientFlags & ~(uint)(FlagFixedNewstyle | FlagNoZeroes)) != 0)
        {
            return null; // unknown client flags: the protocol says close
        }

        _noZeroes = (clientFlags & FlagNoZeroes) != 0;

        while (true)
        {
            if (!await ReceiveAsync(_header.AsMemory(0, 16)).ConfigureAwait(false))
            {
                return null;
            }

            if (BinaryPrimitives.ReadUInt64BigEndian(_header) != IHaveOpt)
            {
                return null;
            }

            uint option = BinaryPrimitives.ReadUInt32BigEndian(_header.AsSpan(8));
            uint length = BinaryPrimitives.ReadUInt32BigEndian(_header.AsSpan(12));
            if (length > MaxOptionLength)
            {
                return null; // cannot resynchronise without reading it all; drop the hostile peer
            }

            byte[] data = new byte[length];
            if (!await ReceiveAsync(data).ConfigureAwait(false))
            {
                return null;
            }

            switch (option)
            {
                case OptExportName:
                {
                    NbdExport? e = _server.FindExport(Encoding.UTF8.GetString(data));
                    if (e == null)
                    {
                        return null; // no way to report an error for this option: close
                    }

                    byte[] r = new byte[_noZeroes ? 10 : 134];
                    BinaryPrimitives.WriteUInt64BigEndian(r, (ulong)e.Node.Size);
                    BinaryPrimitives.WriteUInt16BigEndian(r.AsSpan(8), e.TransmissionFlags);
                    await SendAsync(r).ConfigureAwait(false);
                    return e;
                }

                case OptAbort:
                    await OptionReplyAsync(option, RepAck, []).ConfigureAwait(false);
                    return null;

                case OptList:
                    if (length != 0)
                    {
                        await OptionErrorAsync(option, RepErrInvalid, "NBD_OPT_LIST takes no data").ConfigureAwait(false);
                        break;
                    }

                    foreach (NbdExport e in _server.AllExports())
                    {
                        byte[] name = Encoding.UTF8.GetBytes(e.Name);
                        byte[] desc = Encoding.UTF8.GetBytes(e.Description ?? "");
                        byte[] p = new byte[4 + name.Length + desc.Length];
                        BinaryPrimitives.WriteUInt32BigEndian(p, (uint)name.Length);
                        name.CopyTo(p, 4);
                        desc.CopyTo(p, 4 + name.Length);
                        await OptionReplyAsync(option, RepServer, p).ConfigureAwait(false);
                    }

                    await OptionReplyAsync(option, RepAck, []).ConfigureAwait(false);
                    break;

                case OptInfo:
                case OptGo:
                {
                    NbdExport? e = await InfoAsync(option, data).ConfigureAwait(false);
                    if (e != null && option == OptGo)
                    {
                        if (_metaExport != e.Name)
                        {
                            _metaExport = null;
                        }

                        return e;
                    }

                    break;
                }

                case OptStructuredReply:
                    if (length != 0)
                    {
                        await OptionErrorAsync(option, RepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data").ConfigureAwait(false);
                        break;
                    }

                    _structured = true;
                    await OptionReplyAsync(option, RepAck, []).ConfigureAwait(false);
                    break;

                case OptListMetaContext:
                case OptSetMetaContext:
                    await MetaContextAsync(option, data).ConfigureAwait(false);
                    break;

                default:
                    await OptionErrorAsync(option, RepErrUnsup, $"Unsupported option {option}").ConfigureAwait(false);
                    break;
            }
        }
    }

    private async Task<NbdExport?> InfoAsync(uint option, byte[] data)
    {
        // u32 name length, name, u16 count, count × u16 information requests.
        if (data.Length < 6)
        {
            await OptionErrorAsync(option, RepErrInvalid, "option payload too short").ConfigureAwait(false);
            return null;
        }

        uint nameLen = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLen > (uint)data.Length - 6)
        {
            await OptionErrorAsync(option, RepErrInvalid, "export name length runs past the option").ConfigureAwait(false);
            return null;
        }

        string name = Encoding.UTF8.GetString(data, 4, (int)nameLen);
        int count = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(4 + (int)nameLen));
        if (data.Length != 6 + (int)nameLen + (2 * count))
        {
            await OptionErrorAsync(option, RepErrInvalid, "information request count does not match the option length").ConfigureAwait(false);
            return null;
        }

        NbdExport? e = _server.FindExport(name);
        if (e == null)
        {
            await OptionErrorAsync(option, RepErrUnknown, $"export '{name}' not present").ConfigureAwait(false);
            return null;
        }

        bool wantName = false, wantDesc = false;
        for (int i = 0; i < count; i++)
        {
            ushort req = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(6 + (int)nameLen + (2 * i)));
            wantName |= req == InfoName;
            wantDesc |= req == InfoDescription;
        }

        byte[] info = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(info, InfoExport);
        BinaryPrimitives.WriteUInt64BigEndian(info.AsSpan(2), (ulong)e.Node.Size);
        BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(10), e.TransmissionFlags);
        await OptionReplyAsync(option, RepInfo, info).ConfigureAwait(false);

        byte[] bs = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(bs, InfoBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(bs.AsSpan(2), 1);
        BinaryPrimitives.WriteUInt32BigEndian(bs.AsSpan(6), 4096);
        BinaryPrimitives.WriteUInt32BigEndian(bs.AsSpan(10), MaxPayload);
        await OptionReplyAsync(option, RepInfo, bs).ConfigureAwait(false);

        if (wantName)
        {
            await OptionReplyAsync(option, RepInfo, InfoString(InfoName, e.Name)).ConfigureAwait(false);
        }

        if (wantDesc && e.Description != null)
        {
            await OptionReplyAsync(option, RepInfo, InfoString(InfoDescription, e.Description)).ConfigureAwait(false);
        }

        await OptionReplyAsync(option, RepAck, []).ConfigureAwait(false);
        return e;
    }

    private static byte[] InfoString(ushort type, string s)
    {
        byte[] text = Encoding.UTF8.GetBytes(s);
        byte[] p = new byte[2 + text.Length];
        BinaryPrimitives.WriteUInt16BigEndian(p, type);
        text.CopyTo(p, 2);
        return p;
    }

    private async Task MetaContextAsync(uint option, byte[] data)
    {
        bool set = option == OptSetMetaContext;
        if (set && !_structured)
        {
            await OptionErrorAsync(option, RepErrInvalid, "structured replies must be negotiated first").ConfigureAwait(false);
            return;
        }

        // u32 export name length, name, u32 query count, queries (u32 length, string).
        List<string>? queries = ParseMetaQueries(data, out string export);
        if (queries == null)
        {
            await OptionErrorAsync(option, RepErrInvalid, "malformed meta context request").ConfigureAwait(false);
            return;
        }

        if (_server.FindExport(export) == null)
        {
            await OptionErrorAsync(option, RepErrUnknown, $"export '{export}' not present").ConfigureAwait(false);
            return;
        }

        bool match = set
            ? queries.Contains(BaseAllocation)
            : queries.Count == 0 || queries.Any(q => q == BaseAllocation || q == "base:");
        if (set)
        {
            _metaExport = match ? export : null;
        }

        if (match)
        {
            byte[] name = Encoding.UTF8.GetBytes(BaseAllocation);
            byte[] p = new byte[4 + name.Length];
            BinaryPrimitives.WriteUInt32BigEndian(p, set ? MetaContextId : 0);
            name.CopyTo(p, 4);
            await OptionReplyAsync(option, RepMetaContext, p).ConfigureAwait(false);
        }

        await OptionReplyAsync(option, RepAck, []).ConfigureAwait(false);
    }

    private static List<string>? ParseMetaQueries(byte[] data, out string export)
    {
        export = "";
        var span = data.AsSpan();
        if (span.Length < 8)
        {
            return null;
        }

        uint nameLen = BinaryPrimitives.ReadUInt32BigEndian(span);
        if (nameLen > (uint)span.Length - 8)
        {
            return null;
        }

        export = Encoding.UTF8.GetString(span.Slice(4, (int)nameLen));
        span = span[(4 + (int)nameLen)..];
        uint count = BinaryPrimitives.ReadUInt32BigEndian(span);
        span = span[4..];
        var queries = new List<string>();
        for (uint i = 0; i < count; i++)
        {
            if (span.Length < 4)
            {
                return null;
            }

            uint len = BinaryPrimitives.ReadUInt32BigEndian(span);
            if (len > (uint)span.Length - 4)
            {
                return null;
            }

            queries.Add(Encoding.UTF8.GetString(span.Slice(4, (int)len)));
            span = span[(4 + (int)len)..];
        }

        return span.Length == 0 ? queries : null;
    }

    private async Task OptionReplyAsync(uint option, uint type, byte[] payload)
    {
        byte[] r = new byte[20 + payload.Length];
        BinaryPrimitives.WriteUInt64BigEndian(r, OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(r.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(r.AsSpan(12), type);
        BinaryPrimitives.WriteUInt32BigEndian(r.AsSpan(16), (uint)payload.Length);
        payload.CopyTo(r, 20);
        await SendAsync(r).ConfigureAwait(false);
    }

    private Task OptionErrorAsync(uint option, uint type, string message) =>
        OptionReplyAsync(option, type, Encoding.UTF8.GetBytes(message));

    // ---- transmission ----------------------------------------------------------------------------

    private async Task TransmissionAsync(NbdExport export)
    {
        try
        {
            await TransmissionLoopAsync(export).ConfigureAwait(false);
        }
        finally
        {
            await DrainReadsAsync().ConfigureAwait(false);
        }
    }

    private async Task TransmissionLoopAsync(NbdExport export)
    {
        while (true)
        {
            if (!await ReceiveAsync(_header.AsMemory(0, RequestHeaderSize)).ConfigureAwait(false))
            {
                return;
            }

            if (BinaryPrimitives.ReadUInt32BigEndian(_header) != RequestMagic)
            {
                return; // lost framing: nothing sane to reply to
            }

            ushort flags = BinaryPrimitives.ReadUInt16BigEndian(_header.AsSpan(4));
            ushort type = BinaryPrimitives.ReadUInt16BigEndian(_header.AsSpan(6));
            ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(_header.AsSpan(8));
            ulong offset = BinaryPrimitives.ReadUInt64BigEndian(_header.AsSpan(16));
            uint length = BinaryPrimitives.ReadUInt32BigEndian(_header.AsSpan(24));

            if (type == CmdRead && export.Node.ConcurrentReads && ReadIsValid(export, flags, offset, length))
            {
                int slot = _nextRead;
                _nextRead = (slot + 1) % MaxReadsInFlight;
                await _reads[slot].ConfigureAwait(false);
#pragma warning disable CA2012 // stored to be awaited exactly once: on the slot's reuse or by DrainReadsAsync
                _reads[slot] = ConcurrentReadAsync(export, cookie, offset, length);
#pragma warning restore CA2012
                continue;
            }

            if (type == CmdWrite && export.Node.ConcurrentWrites && WriteIsValid(export, flags, offset, length))
            {
                // The payload is read here, in order; the write itself then runs beside the others.
                byte[] payload = ArrayPool<byte>.Shared.Rent(Math.Max((int)length, 32)); // room for the reply too
                if (!await ReceiveAsync(payload.AsMemory(0, (int)length)).ConfigureAwait(false))
                {
                    ArrayPool<byte>.Shared.Return(payload);
                    return;
                }

                int slot = _nextRead;
                _nextRead = (slot + 1) % MaxReadsInFlight;
                await _reads[slot].ConfigureAwait(false);
#pragma warning disable CA2012 // stored to be awaited exactly once: on the slot's reuse or by DrainReadsAsync
                _reads[slot] = ConcurrentWriteAsync(export, flags, cookie, offset, payload, (int)length);
#pragma warning restore CA2012
                continue;
            }

            await DrainReadsAsync().ConfigureAwait(false);
            switch (type)
            {
                case CmdRead:
                    await ReadAsync(export, flags, cookie, offset, length).ConfigureAwait(false);
                    break;
                case CmdWrite:
                    if (!await WriteAsync(export, flags, cookie, offset, length).ConfigureAwait(false))
                    {
                        return;
                    }

                    break;
                case CmdDisc:
                    return;
                case CmdFlush:
                    await ReplyAsync(cookie, Run(export, static (n, _, _) => n.Flush(), 0, 0)).ConfigureAwait(false);
                    break;
                case CmdTrim:
                    await ReplyAsync(cookie, Modify(export, flags, offset, length, EInval, static (n, o, l) => n.Discard(o, l))).ConfigureAwait(false);
                    break;
                case CmdWriteZeroes:
                    await ReplyAsync(cookie, Modify(export, flags, offset, length, ENoSpc, static (n, o, l) => n.WriteZeroes(o, l))).ConfigureAwait(false);
                    break;
                case CmdBlockStatus:
                    await BlockStatusAsync(export, flags, cookie, offset, length).ConfigureAwait(false);
                    break;
                default:
                    await ReplyAsync(cookie, EInval).ConfigureAwait(false);
                    break;
            }
        }
    }

    private static bool InRange(NbdExport export, ulong offset, ulong length) =>
        offset <= (ulong)export.Node.Size && length <= (ulong)export.Node.Size - offset;

    private static uint Run(NbdExport export, Action<BlockNode, long, long> action, ulong offset, ulong length)
    {
        try
        {
            lock (export.Gate)
            {
                action(export.Node, (long)offset, (long)length);
            }

            return 0;
        }
        catch (Exception e) when (e is BlockException or IOException or UnauthorizedAccessException)
        {
            return EIo;
        }
    }

    private static uint Modify(NbdExport export, ushort flags, ulong offset, uint length, uint rangeError, Action<BlockNode, long, long> action)
    {
        if ((flags & ~(CmdFlagFua | CmdFlagNoHole | CmdFlagFastZero)) != 0)
        {
            return EInval;
        }

        if (!export.Writable)
        {
            return EPerm;
        }

        if (!InRange(export, offset, length))
        {
            return rangeError;
        }

        uint err = Run(export, action, offset, length);
        if (err == 0 && (flags & CmdFlagFua) != 0)
        {
            err = Run(export, static (n, _, _) => n.Flush(), 0, 0);
        }

        return err;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadAsync(NbdExport export, ushort flags, ulong cookie, ulong offset, uint length)
    {
        if ((flags & ~(CmdFlagFua | CmdFlagDf)) != 0 || length > MaxPayload)
        {
            await ReplyAsync(cookie, EInval).ConfigureAwait(false);
            return;
        }

        if (!InRange(export, offset, length))
        {
            await ReplyAsync(cookie, EInval).ConfigureAwait(false);
            return;
        }

        byte[] buf = ArrayPool<byte>.Shared.Rent(ReadPrefix + (int)length);
        try
        {
            Memory<byte> data = buf.AsMemory(ReadPrefix, (int)length);
            uint err = ReadNode(export, (long)offset, data.Span);
            if (err != 0)
            {
                await ReplyAsync(cookie, err).ConfigureAwait(false);
                return;
            }

            if (!_structured)
            {
                int start = ReadPrefix - SimpleReplyHeaderSize;
                WriteSimpleHeader(buf.AsSpan(start), cookie, 0);
                await SendAsync(buf.AsMemory(start, SimpleReplyHeaderSize + (int)length)).ConfigureAwait(false);
            }
            else if (length > 0 && !data.Span.ContainsAnyExcept((byte)0))
            {
                Span<byte> r = _reply;
                WriteChunkHeader(r, ReplyFlagDone, ReplyTypeOffsetHole, cookie, 12);
                BinaryPrimitives.WriteUInt64BigEndian(r[20..], offset);
                BinaryPrimitives.WriteUInt32BigEndian(r[28..], length);
                await SendAsync(_reply.AsMemory(0, 32)).ConfigureAwait(false);
            }
            else
            {
                WriteChunkHeader(buf, ReplyFlagDone, ReplyTypeOffsetData, cookie, 8 + length);
                BinaryPrimitives.WriteUInt64BigEndian(buf.AsSpan(20), offset);
                await SendAsync(buf.AsMemory(0, ReadPrefix + (int)length)).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    private static bool ReadIsValid(NbdExport export, ushort flags, ulong offset, uint length) =>
        (flags & ~(CmdFlagFua | CmdFlagDf)) == 0 && length <= MaxPayload && InRange(export, offset, length);

    private static bool WriteIsValid(NbdExport export, ushort flags, ulong offset, uint length) =>
        (flags & ~CmdFlagFua) == 0 && length <= MaxPayload && export.Writable && InRange(export, offset, length);

    /// <summary>
    /// A validated write served beside others: the node's asynchronous write (it orders overlapping
    /// requests), a flush for FUA, then the reply under the send lock. Owns <paramref name="payload"/>.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ConcurrentWriteAsync(NbdExport export, ushort flags, ulong cookie, ulong offset, byte[] payload, int length)
    {
        BlockNode node = export.Enter();
        try
        {
            uint err = 0;
            try
            {
                await node.WriteAsync((long)offset, payload.AsMemory(0, length)).ConfigureAwait(false);
                if ((flags & CmdFlagFua) != 0)
                {
                    await node.FlushAsync().ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is BlockException or IOException or UnauthorizedAccessException)
            {
                err = EIo;
            }
            finally
            {
                export.Leave();
            }

            await _sendLock.WaitAsync().ConfigureAwait(false);
            try
            {
                // The payload buffer is free now: the reply is built in it.
                int n = StructuredReplyHeaderSize;
                if (err == 0 && _structured)
                {
                    WriteChunkHeader(payload, ReplyFlagDone, ReplyTypeNone, cookie, 0);
                }
                else
                {
                    n = ErrorReply(payload, cookie, err);
                }

                await SendAsync(payload.AsMemory(0, n)).ConfigureAwait(false);
            }
            finally
            {
                _sendLock.Release();
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
            Abort();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(payload);
        }
    }

    /// <summary>Waits until no concurrent read is in flight.</summary>
    private async ValueTask DrainReadsAsync()
    {
        for (int i = 0; i < MaxReadsInFlight; i++)
        {
            ValueTask read = _reads[i];
            _reads[i] = default;
            await read.ConfigureAwait(false);
        }
    }

    public void Dispose() => _sendLock.Dispose();

    /// <summary>
    /// A validated read served beside others: the node's asynchronous read (no export lock: the node
    /// allows concurrent reads), then the reply built in the request's own pooled buffer and sent whole
    /// under the send lock, so replies never interleave on the socket.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ConcurrentReadAsync(NbdExport export, ulong cookie, ulong offset, uint length)
    {
        byte[] buf = ArrayPool<byte>.Shared.Rent(ReadPrefix + Math.Max((int)length, 16));
        try
        {
            Memory<byte> data = buf.AsMemory(ReadPrefix, (int)length);
            uint err = 0;
            BlockNode node = export.Enter();
            try
            {
                await node.ReadAsync((long)offset, data).ConfigureAwait(false);
            }
            catch (Exception e) when (e is BlockException or IOException or UnauthorizedAccessException)
            {
                err = EIo;
            }
            finally
            {
                export.Leave();
            }

            Memory<byte> reply;
            if (err != 0)
            {
                reply = buf.AsMemory(0, ErrorReply(buf, cookie, err));
            }
            else if (!_structured)
            {
                int start = ReadPrefix - SimpleReplyHeaderSize;
                WriteSimpleHeader(buf.AsSpan(start), cookie, 0);
                reply = buf.AsMemory(start, SimpleReplyHeaderSize + (int)length);
            }
            else if (length > 0 && !data.Span.ContainsAnyExcept((byte)0))
            {
                WriteChunkHeader(buf, ReplyFlagDone, ReplyTypeOffsetHole, cookie, 12);
                BinaryPrimitives.WriteUInt64BigEndian(buf.AsSpan(20), offset);
                BinaryPrimitives.WriteUInt32BigEndian(buf.AsSpan(28), length);
                reply = buf.AsMemory(0, 32);
            }
            else
            {
                WriteChunkHeader(buf, ReplyFlagDone, ReplyTypeOffsetData, cookie, 8 + length);
                BinaryPrimitives.WriteUInt64BigEndian(buf.AsSpan(20), offset);
                reply = buf.AsMemory(0, ReadPrefix + (int)length);
            }

            await _sendLock.WaitAsync().ConfigureAwait(false);
            try
            {
                await SendAsync(reply).ConfigureAwait(false);
            }
            finally
            {
                _sendLock.Release();
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
            Abort(); // the peer went away mid-reply; the receive loop sees the closed socket and ends
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    /// <summary>An error reply (simple, or a structured ERROR chunk) written into <paramref name="r"/>; returns its length.</summary>
    private int ErrorReply(Span<byte> r, ulong cookie, uint error)
    {
        if (!_structured)
        {
            WriteSimpleHeader(r, cookie, error);
            return SimpleReplyHeaderSize;
        }

        WriteChunkHeader(r, ReplyFlagDone, ReplyTypeError, cookie, 6);
        BinaryPrimitives.WriteUInt32BigEndian(r[20..], error);
        BinaryPrimitives.WriteUInt16BigEndian(r[24..], 0);
        return 26;
    }

    private static uint ReadNode(NbdExport export, long offset, Span<byte> data)
    {
        try
        {
            lock (export.Gate)
            {
                export.Node.Read(offset, data);
            }

            return 0;
        }
        catch (Exception e) when (e is BlockException or IOException or UnauthorizedAccessException)
        {
            return EIo;
        }
    }

    /// <summary>Returns false when the connection must close (payload too large to skip).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> WriteAsync(NbdExport export, ushort flags, ulong cookie, ulong offset, uint length)
    {
        if (length > MaxPayload)
        {
            await ReplyAsync(cookie, EOverflow).ConfigureAwait(false);
            return false;
        }

        byte[] buf = ArrayPool<byte>.Shared.Rent((int)length);
        try
        {
            if (!await ReceiveAsync(buf.AsMemory(0, (int)length)).ConfigureAwait(false))
            {
                return false;
            }

            uint err;
            if ((flags & ~(CmdFlagFua)) != 0)
            {
                err = EInval;
            }
            else if (!export.Writable)
            {
                err = EPerm;
            }
            else if (!InRange(export, offset, length))
            {
                err = ENoSpc;
            }
            else
            {
                try
                {
                    lock (export.Gate)
                    {
                        export.Node.Write((long)offset, buf.AsSpan(0, (int)length));
                        if ((flags & CmdFlagFua) != 0)
                        {
                            export.Node.Flush();
                        }
                    }

                    err = 0;
                }
                catch (Exception e) when (e is BlockException or IOException or UnauthorizedAccessException)
                {
                    err = EIo;
                }
            }

            await ReplyAsync(cookie, err).ConfigureAwait(false);
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    /// <summary>
    /// base:allocation from the data: the block layer has no allocation query yet, so extents of
    /// zeroes (64 KiB granularity) are reported as NBD_STATE_ZERO and everything else as data.
    /// </summary>
    private async Task BlockStatusAsync(NbdExport export, ushort flags, ulong cookie, ulong offset, uint length)
    {
        if (!_structured || _metaExport != export.Name || (flags & ~CmdFlagReqOne) != 0 || length == 0)
        {
            await ReplyAsync(cookie, EInval).ConfigureAwait(false);
            return;
        }

        if (!InRange(export, offset, length))
        {
            await ReplyAsync(cookie, EInval).ConfigureAwait(false);
            return;
        }

        const int Granule = 64 << 10;
        const int MaxScan = 8 << 20;
        const int MaxExtents = 256;
        long scan = Math.Min(length, MaxScan);
        var extents = new List<(uint Length, uint Flags)>();
        byte[] buf = ArrayPool<byte>.Shared.Rent(Granule);
        try
        {
            long pos = (long)offset;
            long end = pos + scan;
            while (pos < end && extents.Count <= MaxExtents)
            {
                int n = (int)Math.Min(Granule - (pos % Granule), end - pos);
                if (ReadNode(export, pos, buf.AsSpan(0, n)) != 0)
                {
                    await ReplyAsync(cookie, EIo).ConfigureAwait(false);
                    return;
                }

                uint state = buf.AsSpan(0, n).ContainsAnyExcept((byte)0) ? 0 : StateZero;
                if (extents.Count > 0 && extents[^1].Flags == state)
                {
                    extents[^1] = (extents[^1].Length + (uint)n, state);
                }
                else if (extents.Count == MaxExtents)
                {
                    break;
                }
                else
                {
                    extents.Add(((uint)n, state));
                }

                pos += n;
                if ((flags & CmdFlagReqOne) != 0 && extents.Count == 1 && pos < end)
                {
                    // keep merging while the state stays the same, stop at the first change
                    continue;
                }
            }

            if ((flags & CmdFlagReqOne) != 0)
            {
                extents.RemoveRange(1, extents.Count - 1);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }

        byte[] r = new byte[20 + 4 + (8 * extents.Count)];
        WriteChunkHeader(r, ReplyFlagDone, ReplyTypeBlockStatus, cookie, (uint)(r.Length - 20));
        BinaryPrimitives.WriteUInt32BigEndian(r.AsSpan(20), MetaContextId);
        for (int i = 0; i < extents.Count; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(r.AsSpan(24 + (8 * i)), extents[i].Length);
            BinaryPrimitives.WriteUInt32BigEndian(r.AsSpan(28 + (8 * i)), extents[i].Flags);
        }

        await SendAsync(r).ConfigureAwait(false);
    }

    private static void WriteSimpleHeader(Span<byte> r, ulong cookie, uint error)
    {
        BinaryPrimitives.WriteUInt32BigEndian(r, SimpleReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(r[4..], error);
        BinaryPrimitives.WriteUInt64BigEndian(r[8..], cookie);
    }

    private static void WriteChunkHeader(Span<byte> r, ushort flags, ushort type, ulong cookie, uint length)
    {
        BinaryPrimitives.WriteUInt32BigEndian(r, StructuredReplyMagic);
        BinaryPrimitives.WriteUInt16BigEndian(r[4..], flags);
        BinaryPrimitives.WriteUInt16BigEndian(r[6..], type);
        BinaryPrimitives.WriteUInt64BigEndian(r[8..], cookie);
        BinaryPrimitives.WriteUInt32BigEndian(r[16..], length);
    }

    /// <summary>A reply with no data: simple reply, or in structured mode NONE (success) / ERROR chunk.</summary>
    private ValueTask ReplyAsync(ulong cookie, uint error)
    {
        if (!_structured)
        {
            WriteSimpleHeader(_reply, cookie, error);
            return SendAsync(_reply.AsMemory(0, SimpleReplyHeaderSize));
        }

        if (error == 0)
        {
            WriteChunkHeader(_reply, ReplyFlagDone, ReplyTypeNone, cookie, 0);
            return SendAsync(_reply.AsMemory(0, StructuredReplyHeaderSize));
        }

        WriteChunkHeader(_reply, ReplyFlagDone, ReplyTypeError, cookie, 6);
        BinaryPrimitives.WriteUInt32BigEndian(_reply.AsSpan(20), error);
        BinaryPrimitives.WriteUInt16BigEndian(_reply.AsSpan(24), 0);
        return SendAsync(_reply.AsMemory(0, 26));
    }

    // ---- socket helpers ----------------------------------------------------------------------------

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendAsync(ReadOnlyMemory<byte> data)
    {
        while (data.Length > 0)
        {
            int n = await _socket.SendAsync(data, SocketFlags.None).ConfigureAwait(false);
            data = data[n..];
        }
    }

    /// <summary>Fills the buffer; false on a clean or mid-frame end of stream.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> ReceiveAsync(Memory<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            int n = await _socket.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
            if (n == 0)
            {
                return false;
            }

            buffer = buffer[n..];
        }

        return true;
    }
}
