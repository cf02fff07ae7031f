using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using static Colo.Block.Nbd.NbdProtocol;

namespace Colo.Tests.Unit.Block.Nbd;

/// <summary>A hand-driven NBD client for sending raw (and hostile) frames at the server.</summary>
internal sealed class RawNbdPeer : IDisposable
{
    private readonly Socket _s;

    public RawNbdPeer(int port)
    {
        _s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _s.Connect(new IPEndPoint(IPAddress.Loopback, port));
        _s.ReceiveTimeout = 10_000;
        _s.NoDelay = true; // a request header and its payload go out as two sends; Nagle would hold the second
    }

    public void Dispose() => _s.Dispose();

    public ushort Greeting()
    {
        byte[] g = Receive(18);
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(g), Is.EqualTo(NbdMagic));
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(g.AsSpan(8)), Is.EqualTo(IHaveOpt));
        return BinaryPrimitives.ReadUInt16BigEndian(g.AsSpan(16));
    }

    public void ClientFlags(uint flags)
    {
        byte[] b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, flags);
        Send(b);
    }

    public void Option(uint option, byte[] data, ulong magic = IHaveOpt)
    {
        byte[] b = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(b, magic);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), (uint)data.Length);
        data.CopyTo(b, 16);
        Send(b);
    }

    public (uint Type, byte[] Data) OptionReply(uint option)
    {
        byte[] h = Receive(20);
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(h), Is.EqualTo(OptionReplyMagic));
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(8)), Is.EqualTo(option));
        return (BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(12)), Receive((int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(16))));
    }

    public static byte[] GoPayload(string name)
    {
        byte[] n = Encoding.UTF8.GetBytes(name);
        byte[] p = new byte[6 + n.Length];
        BinaryPrimitives.WriteUInt32BigEndian(p, (uint)n.Length);
        n.CopyTo(p, 4);
        return p;
    }

    /// <summary>Handshake up to transmission with NBD_OPT_GO (simple replies unless asked).</summary>
    public void Connect(string export, bool structured = false)
    {
        Greeting();
        ClientFlags(FlagFixedNewstyle | FlagNoZeroes);
        if (structured)
        {
            Option(OptStructuredReply, []);
            Assert.That(OptionReply(OptStructuredReply).Type, Is.EqualTo(RepAck));
        }

        Option(OptGo, GoPayload(export));
        while (true)
        {
            (uint type, _) = OptionReply(OptGo);
            if (type == RepAck)
            {
                return;
            }

            Assert.That(type, Is.EqualTo(RepInfo));
        }
    }

    public void Request(ushort type, ulong offset, uint length, ushort flags = 0, ulong cookie = 7, uint magic = RequestMagic)
    {
        byte[] h = new byte[28];
        BinaryPrimitives.WriteUInt32BigEndian(h, magic);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(h.AsSpan(8), cookie);
        BinaryPrimitives.WriteUInt64BigEndian(h.AsSpan(16), offset);
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(24), length);
        Send(h);
    }

    /// <summary>Reads a simple reply; returns its error.</summary>
    public uint SimpleReply(ulong cookie = 7)
    {
        byte[] r = Receive(16);
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(r), Is.EqualTo(SimpleReplyMagic));
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(r.AsSpan(8)), Is.EqualTo(cookie));
        return BinaryPrimitives.ReadUInt32BigEndian(r.AsSpan(4));
    }

    /// <summary>Reads one structured chunk: (flags, type, payload).</summary>
    public (ushort Flags, ushort Type, byte[] Payload) Chunk(ulong cookie = 7)
    {
        byte[] h = Receive(20);
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(h), Is.EqualTo(StructuredReplyMagic));
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(8)), Is.EqualTo(cookie));
        return (BinaryPrimitives.ReadUInt16BigEndian(h.AsSpan(4)), BinaryPrimitives.ReadUInt16BigEndian(h.AsSpan(6)),
            Receive((int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(16))));
    }

    public void Send(ReadOnlySpan<byte> b)
    {
        while (b.Length > 0)
        {
            b = b[_s.Send(b)..];
        }
    }

    public byte[] Receive(int n)
    {
        byte[] b = new byte[n];
        int got = 0;
        while (got < n)
        {
            int r = _s.Receive(b, got, n - got, SocketFlags.None);
            if (r == 0)
            {
                throw new EndOfStreamException();
            }

            got += r;
        }

        return b;
    }

    /// <summary>True when the server closed the connection (EOF or reset) within the timeout.</summary>
    public bool IsClosedByServer()
    {
        try
        {
            return _s.Receive(new byte[1]) == 0;
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode == SocketError.ConnectionReset;
        }
    }
}
