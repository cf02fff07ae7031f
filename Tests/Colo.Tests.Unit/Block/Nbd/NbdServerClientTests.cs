using System.Buffers.Binary;
using System.Net;
using System.Text;
using Colo.Block;
using Colo.Block.Nbd;
using static Colo.Block.Nbd.NbdProtocol;

namespace Colo.Tests.Unit.Block.Nbd;

[TestFixture]
[CancelAfter(60_000)]
public sealed class NbdServerClientTests
{
    private const int Size = 4 << 20;
    private NbdServer _server = null!;
    private MemoryNode _disk = null!;
    private MemoryNode _ro = null!;

    [SetUp]
    public void SetUp()
    {
        _disk = new MemoryNode(Size);
        new Random(1).NextBytes(_disk.Data.AsSpan(0, 1 << 20));
        _ro = new MemoryNode(1 << 20);
        _ro.Data.AsSpan().Fill(0xAB);
        _server = NbdServer.StartTcp(new IPEndPoint(IPAddress.Loopback, 0));
        _server.AddExport("disk", _disk, writable: true, description: "the disk");
        _server.AddExport("ro", _ro, writable: false);
    }

    [TearDown]
    public async Task TearDown()
    {
        await _server.DisposeAsync();
        _disk.Dispose();
        _ro.Dispose();
    }

    private NbdClient Client(string export = "disk") => NbdClient.ConnectTcp("127.0.0.1", _server.Port, export);

    [Test]
    public void Client_Negotiates_SizeFlagsStructuredAndMetaContext()
    {
        using NbdClient c = Client();
        Assert.Multiple(() =>
        {
            Assert.That(c.Size, Is.EqualTo(Size));
            Assert.That(c.ReadOnly, Is.False);
            Assert.That(c.StructuredReplies, Is.True);
            Assert.That(c.MetaContextId, Is.Not.Null);
            Assert.That(c.MaxRequest, Is.EqualTo(MaxPayload));
            Assert.That(c.DriverName, Is.EqualTo("nbd"));
            Assert.That(c.Filename, Is.EqualTo($"nbd://127.0.0.1:{_server.Port}/disk"));
        });
    }

    [TestCase(0, 512)]
    [TestCase(4095, 1)]
    [TestCase(12345, 65536)]
    [TestCase(0, 3 << 20)]
    public void ReadWrite_RoundTrip(int offset, int length)
    {
        using NbdClient c = Client();
        var rnd = new byte[length];
        new Random(offset + length).NextBytes(rnd);
        c.Write(offset, rnd);
        var back = new byte[length];
        c.Read(offset, back);
        Assert.That(back, Is.EqualTo(rnd));
        Assert.That(_disk.Data.AsSpan(offset, length).SequenceEqual(rnd), Is.True);
    }

    [Test]
    public void Read_OfZeroRegion_ComesBackAsZeroes()
    {
        _disk.Data.AsSpan(1 << 20, 1 << 20).Clear();
        using NbdClient c = Client();
        var b = new byte[65536];
        b.AsSpan().Fill(0xFF);
        c.Read(1 << 20, b);
        Assert.That(b.All(x => x == 0), Is.True);
    }

    [Test]
    public void FlushTrimWriteZeroes_ReachTheNode()
    {
        using NbdClient c = Client();
        c.Flush();
        c.Discard(0, 4096);
        c.WriteZeroes(8192, 8192);
        Assert.Multiple(() =>
        {
            Assert.That(_disk.Flushes, Is.EqualTo(1));
            Assert.That(_disk.Discards, Is.EqualTo(1));
            Assert.That(_disk.Data.AsSpan(0, 4096).ContainsAnyExcept((byte)0), Is.False);
            Assert.That(_disk.Data.AsSpan(8192, 8192).ContainsAnyExcept((byte)0), Is.False);
            Assert.That(_disk.Data.AsSpan(16384, 4096).ContainsAnyExcept((byte)0), Is.True);
        });
    }

    [Test]
    public void BlockStatus_ReportsZeroAndDataExtents()
    {
        // [0,1M) random data, [1M,4M) zeroes.
        using NbdClient c = Client();
        IReadOnlyList<NbdExtent> ext = c.BlockStatus(0, Size);
        Assert.That(ext, Has.Count.EqualTo(2));
        Assert.Multiple(() =>
        {
            Assert.That(ext[0], Is.EqualTo(new NbdExtent(1 << 20, false, false)));
            Assert.That(ext[1], Is.EqualTo(new NbdExtent(3 << 20, false, true)));
        });
    }

    [Test]
    public void ReadOnlyExport_RefusesWritesLocallyAndOnTheWire()
    {
        using (NbdClient c = Client("ro"))
        {
            Assert.That(c.ReadOnly, Is.True);
            Assert.Throws<BlockException>(() => c.Write(0, new byte[512]));
            var b = new byte[512];
            c.Read(0, b);
            Assert.That(b.All(x => x == 0xAB), Is.True);
        }

        using var raw = new RawNbdPeer(_server.Port);
        raw.Connect("ro");
        raw.Request(CmdWrite, 0, 4);
        raw.Send(new byte[4]);
        Assert.That(raw.SimpleReply(), Is.EqualTo(EPerm));
        raw.Request(CmdTrim, 0, 4096);
        Assert.That(raw.SimpleReply(), Is.EqualTo(EPerm));
        raw.Request(CmdWriteZeroes, 0, 4096);
        Assert.That(raw.SimpleReply(), Is.EqualTo(EPerm));
        Assert.That(_ro.Data.All(x => x == 0xAB), Is.True);
    }

    [Test]
    public void UnknownExport_IsAClearBlockException()
    {
        var e = Assert.Throws<BlockException>(() => Client("nope"));
        Assert.That(e!.Message, Is.EqualTo("Requested export not available\nserver reported: export 'nope' not present"));
    }

    [Test]
    public void ConnectionRefused_IsABlockException()
    {
        int port = _server.Port;
        _server.StopAsync().GetAwaiter().GetResult();
        Assert.Throws<BlockException>(() => NbdClient.ConnectTcp("127.0.0.1", port, "disk"));
    }

    [Test]
    public async Task DroppedConnection_IsABlockExceptionAndStaysDead()
    {
        using NbdClient c = Client();
        await _server.StopAsync();
        var b = new byte[512];
        var e = Assert.Throws<BlockException>(() => c.Read(0, b));
        Assert.That(e!.Message, Does.Contain("NBD connection"));
        Assert.Throws<BlockException>(() => c.Read(0, b));
    }

    [Test]
    public void RemoveExport_Hard_ClosesItsClients_Soft_HidesItFromNewOnes()
    {
        using NbdClient c = Client("ro");
        using NbdClient d = Client("disk");
        _server.RemoveExport("ro", hard: true);
        Assert.Throws<BlockException>(() => c.Read(0, new byte[512]));
        _server.RemoveExport("disk");
        d.Read(0, new byte[512]);
        Assert.Throws<BlockException>(() => Client("disk"));
        Assert.Throws<BlockException>(() => _server.RemoveExport("disk"));
    }

    [Test]
    public void UnixSocketAndUri_Work()
    {
        string path = Path.Combine(Path.GetTempPath(), $"colo-nbd-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");
        using NbdServer unix = NbdServer.StartUnix(path);
        unix.AddExport("u", _disk, writable: true);
        using (NbdClient c = NbdClient.Open($"nbd+unix:///u?socket={path}"))
        {
            c.Write(0, "hello"u8);
        }

        using NbdClient t = NbdClient.Open($"nbd://127.0.0.1:{_server.Port}/disk");
        var b = new byte[5];
        t.Read(0, b);
        Assert.That(Encoding.ASCII.GetString(b), Is.EqualTo("hello"));
    }

    [Test]
    public void SeveralClients_Concurrently()
    {
        const int Clients = 6;
        Parallel.For(0, Clients, i =>
        {
            using NbdClient c = Client();
            var data = new byte[65536];
            new Random(i).NextBytes(data);
            long off = (long)i * 65536 * 4;
            for (int k = 0; k < 20; k++)
            {
                c.Write(off, data);
                var back = new byte[data.Length];
                c.Read(off, back);
                Assert.That(back.AsSpan().SequenceEqual(data), Is.True);
            }
        });
        Assert.That(() => _server.ConnectionCount, Is.EqualTo(0).After(5000, 20));
    }

    // ---- option haggling by hand ----

    [Test]
    public void Greeting_AdvertisesFixedNewstyleAndNoZeroes()
    {
        using var raw = new RawNbdPeer(_server.Port);
        Assert.That(raw.Greeting(), Is.EqualTo(FlagFixedNewstyle | FlagNoZeroes));
    }

    [Test]
    public void List_NamesEveryExport_UnknownOption_IsUnsup_Abort_IsAcked()
    {
        using var raw = new RawNbdPeer(_server.Port);
        raw.Greeting();
        raw.ClientFlags(FlagFixedNewstyle);
        raw.Option(OptList, []);
        var names = new List<string>();
        while (true)
        {
            (uint type, byte[] d) = raw.OptionReply(OptList);
            if (type == RepAck)
            {
                break;
            }

            Assert.That(type, Is.EqualTo(RepServer));
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(d);
            names.Add(Encoding.UTF8.GetString(d, 4, len));
        }

        Assert.That(names, Is.EquivalentTo(new[] { "disk", "ro" }));
        raw.Option(999, [1, 2, 3]);
        Assert.That(raw.OptionReply(999).Type, Is.EqualTo(RepErrUnsup));
        raw.Option(OptStartTls, []);
        Assert.That(raw.OptionReply(OptStartTls).Type, Is.EqualTo(RepErrUnsup));
        raw.Option(OptList, [1]);
        Assert.That(raw.OptionReply(OptList).Type, Is.EqualTo(RepErrInvalid));
        raw.Option(OptAbort, []);
        Assert.That(raw.OptionReply(OptAbort).Type, Is.EqualTo(RepAck));
        Assert.That(raw.IsClosedByServer(), Is.True);
    }

    [Test]
    public void Info_ReportsExportBlockSizeNameAndDescription_UnknownIsErrUnknown()
    {
        using var raw = new RawNbdPeer(_server.Port);
        raw.Greeting();
        raw.ClientFlags(FlagFixedNewstyle | FlagNoZeroes);
        byte[] n = Encoding.UTF8.GetBytes("disk");
        byte[] p = new byte[4 + n.Length + 2 + 4];
        BinaryPrimitives.WriteUInt32BigEndian(p, (uint)n.Length);
        n.CopyTo(p, 4);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4 + n.Length), 2);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(6 + n.Length), InfoName);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(8 + n.Length), InfoDescription);
        raw.Option(OptInfo, p);
        var infos = new Dictionary<ushort, byte[]>();
        while (true)
        {
            (uint type, byte[] d) = raw.OptionReply(OptInfo);
            if (type == RepAck)
            {
                break;
            }

            infos[BinaryPrimitives.ReadUInt16BigEndian(d)] = d;
        }

        Assert.Multiple(() =>
        {
            Assert.That(BinaryPrimitives.ReadUInt64BigEndian(infos[InfoExport].AsSpan(2)), Is.EqualTo((ulong)Size));
            Assert.That(BinaryPrimitives.ReadUInt32BigEndian(infos[InfoBlockSize].AsSpan(10)), Is.EqualTo((uint)MaxPayload));
            Assert.That(Encoding.UTF8.GetString(infos[InfoName], 2, infos[InfoName].Length - 2), Is.EqualTo("disk"));
            Assert.That(Encoding.UTF8.GetString(infos[InfoDescription], 2, infos[InfoDescription].Length - 2), Is.EqualTo("the disk"));
        });

        raw.Option(OptGo, RawNbdPeer.GoPayload("missing"));
        Assert.That(raw.OptionReply(OptGo).Type, Is.EqualTo(RepErrUnknown));
        raw.Option(OptGo, [0, 0, 0, 50, 1]); // name length past the payload
        Assert.That(raw.OptionReply(OptGo).Type, Is.EqualTo(RepErrInvalid));
        raw.Option(OptSetMetaContext, []); // before structured replies
        Assert.That(raw.OptionReply(OptSetMetaContext).Type, Is.EqualTo(RepErrInvalid));
    }

    [Test]
    public void ExportName_WithoutNoZeroes_SendsSizeFlagsAndPadding()
    {
        using var raw = new RawNbdPeer(_server.Port);
        raw.Greeting();
        raw.ClientFlags(FlagFixedNewstyle);
        raw.Option(OptExportName, Encoding.UTF8.GetBytes("ro"));
        byte[] r = raw.Receive(134);
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(r), Is.EqualTo(1UL << 20));
        Assert.That(BinaryPrimitives.ReadUInt16BigEndian(r.AsSpan(8)) & FlagReadOnly, Is.EqualTo(FlagReadOnly));
        raw.Request(CmdRead, 0, 4);
        Assert.That(raw.SimpleReply(), Is.Zero);
        Assert.That(raw.Receive(4), Is.EqualTo(new byte[] { 0xAB, 0xAB, 0xAB, 0xAB }));
    }

    [Test]
    public void ExportName_Unknown_ClosesConnection()
    {
        using var raw = new RawNbdPeer(_server.Port);
        raw.Greeting();
        raw.ClientFlags(FlagFixedNewstyle);
        raw.Option(OptExportName, Encoding.UTF8.GetBytes("nope"));
        Assert.That(raw.IsClosedByServer(), Is.True);
    }

    [Test]
    public void BadOptionMagic_OrUnknownClientFlags_OrHugeOption_CloseConnection()
    {
        using (var raw = new RawNbdPeer(_server.Port))
        {
            raw.Greeting();
            raw.ClientFlags(FlagFixedNewstyle);
            raw.Option(OptList, [], magic: 0x1234);
            Assert.That(raw.IsClosedByServer(), Is.True);
        }

        using (var raw = new RawNbdPeer(_server.Port))
        {
            raw.Greeting();
            raw.ClientFlags(0x80);
            Assert.That(raw.IsClosedByServer(), Is.True);
        }

        using (var raw = new RawNbdPeer(_server.Port))
        {
            raw.Greeting();
            raw.ClientFlags(FlagFixedNewstyle);
            byte[] h = new byte[16];
            BinaryPrimitives.WriteUInt64BigEndian(h, IHaveOpt);
            BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(8), OptGo);
            BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(12), uint.MaxValue);
            raw.Send(h);
            Assert.That(raw.IsClosedByServer(), Is.True);
        }

        AssertServerStillServes();
    }

    // ---- hostile transmission frames ----

    [Test]
    public void HostileRequests_GetErrorReplies_AndTheConnectionSurvives()
    {
        using var raw = new RawNbdPeer(_server.Port);
        raw.Connect("disk");
        raw.Request(CmdRead, Size - 100, 200); // past the end
        Assert.That(raw.SimpleReply(), Is.EqualTo(EInval));
        raw.Request(CmdRead, ulong.MaxValue - 10, 100); // offset overflow
        Assert.That(raw.SimpleReply(), Is.EqualTo(EInval));
        raw.Request(CmdRead, 0, (uint)MaxPayload + 1); // oversized
        Assert.That(raw.SimpleReply(), Is.EqualTo(EInval));
        raw.Request(42, 0, 0); // unknown command
        Assert.That(raw.SimpleReply(), Is.EqualTo(EInval));
        raw.Request(CmdTrim, Size, 4096); // trim past the end
        Assert.That(raw.SimpleReply(), Is.EqualTo(EInval));
        raw.Request(CmdWrite, Size - 2, 4); // write past the end: payload consumed, ENOSPC
        raw.Send(new byte[4]);
        Assert.That(raw.SimpleReply(), Is.EqualTo(ENoSpc));
        raw.Request(CmdRead, 0, 16, flags: 0x4000); // unknown flag
        Assert.That(raw.SimpleReply(), Is.EqualTo(EInval));
        raw.Request(CmdBlockStatus, 0, 4096); // no meta context negotiated
        Assert.That(raw.SimpleReply(), Is.EqualTo(EInval));
        raw.Request(CmdRead, 0, 16, cookie: 99);
        Assert.That(raw.SimpleReply(99), Is.Zero);
        Assert.That(raw.Receive(16), Is.EqualTo(_disk.Data[..16]));
    }

    [Test]
    public void BadRequestMagic_OversizedWrite_TruncatedFrame_CloseOnlyThatConnection()
    {
        using (var raw = new RawNbdPeer(_server.Port))
        {
            raw.Connect("disk");
            raw.Request(CmdRead, 0, 16, magic: 0xDEADBEEF);
            Assert.That(raw.IsClosedByServer(), Is.True);
        }

        using (var raw = new RawNbdPeer(_server.Port))
        {
            raw.Connect("disk");
            raw.Request(CmdWrite, 0, uint.MaxValue);
            Assert.That(raw.SimpleReply(), Is.EqualTo(EOverflow));
            Assert.That(raw.IsClosedByServer(), Is.True);
        }

        using (var raw = new RawNbdPeer(_server.Port))
        {
            raw.Connect("disk");
            raw.Send(new byte[] { 0x25, 0x60, 0x95, 0x13, 0, 0, 0 }); // 7 of 28 header bytes
        }

        using (var raw = new RawNbdPeer(_server.Port))
        {
            raw.Connect("disk");
            raw.Request(CmdWrite, 0, 65536);
            raw.Send(new byte[100]); // payload cut short
        }

        AssertServerStillServes();
    }

    [Test]
    public void StructuredRead_SendsDataOrHoleChunks_AndErrorChunks()
    {
        using var raw = new RawNbdPeer(_server.Port);
        raw.Connect("disk", structured: true);
        raw.Request(CmdRead, 100, 50);
        (ushort flags, ushort type, byte[] p) = raw.Chunk();
        Assert.Multiple(() =>
        {
            Assert.That(flags, Is.EqualTo(ReplyFlagDone));
            Assert.That(type, Is.EqualTo(ReplyTypeOffsetData));
            Assert.That(BinaryPrimitives.ReadUInt64BigEndian(p), Is.EqualTo(100UL));
            Assert.That(p[8..], Is.EqualTo(_disk.Data[100..150]));
        });

        raw.Request(CmdRead, 2 << 20, 65536);
        (flags, type, p) = raw.Chunk();
        Assert.That(type, Is.EqualTo(ReplyTypeOffsetHole));
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(8)), Is.EqualTo(65536u));

        raw.Request(CmdRead, Size, 1);
        (flags, type, p) = raw.Chunk();
        Assert.That(type, Is.EqualTo(ReplyTypeError));
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(p), Is.EqualTo(EInval));
        Assert.That(flags, Is.EqualTo(ReplyFlagDone));

        raw.Request(CmdFlush, 0, 0);
        (flags, type, p) = raw.Chunk();
        Assert.That((flags, type, p.Length), Is.EqualTo((ReplyFlagDone, ReplyTypeNone, 0)));
    }

    [Test]
    public void WriteWithFua_Flushes()
    {
        using var raw = new RawNbdPeer(_server.Port);
        raw.Connect("disk");
        raw.Request(CmdWrite, 0, 3, flags: CmdFlagFua);
        raw.Send("abc"u8);
        Assert.That(raw.SimpleReply(), Is.Zero);
        Assert.That(_disk.Flushes, Is.EqualTo(1));
        raw.Request(CmdDisc, 0, 0);
        Assert.That(raw.IsClosedByServer(), Is.True);
    }

    private void AssertServerStillServes()
    {
        using NbdClient c = Client();
        var b = new byte[16];
        c.Read(0, b);
        Assert.That(b, Is.EqualTo(_disk.Data[..16]));
    }
}
