using System.Buffers.Binary;
using System.Net;
using Colo.Block;
using Colo.Block.Nbd;
using static Colo.Block.Nbd.NbdProtocol;

namespace Colo.Tests.Unit.Block.Nbd;

/// <summary>
/// Pipelined reads of a file-backed export are served side by side: every reply arrives whole (replies
/// never interleave on the socket), matched by cookie, with the right data; a write between bursts waits
/// for the reads before it and is seen by the reads after it.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class NbdConcurrentReadTests
{
    private const int Size = 4 << 20;
    private string _path = "";
    private byte[] _data = [];
    private NbdServer _server = null!;
    private BlockNode _node = null!;

    [SetUp]
    public void SetUp()
    {
        _path = Path.Combine(TestContext.CurrentContext.WorkDirectory, "nbdcr-" + Guid.NewGuid().ToString("N") + ".raw");
        _data = new byte[Size];
        new Random(3).NextBytes(_data.AsSpan(0, Size / 2)); // the upper half stays zero: hole chunks
        System.IO.File.WriteAllBytes(_path, _data);
        _node = BlockImage.Open(_path, "raw", readOnly: false);
        Assert.That(_node.ConcurrentReads, Is.True);
        _server = NbdServer.StartTcp(new IPEndPoint(IPAddress.Loopback, 0));
        _server.AddExport("disk", _node, writable: true);
    }

    [TearDown]
    public async Task TearDown()
    {
        await _server.DisposeAsync();
        _node.Dispose();
        System.IO.File.Delete(_path);
    }

    [TestCase(true)]
    [TestCase(false)]
    public void PipelinedReads_EveryReplyWholeAndCorrect(bool structured)
    {
        using var peer = new RawNbdPeer(_server.Port);
        peer.Connect("disk", structured);
        var rng = new Random(9);
        for (int burst = 0; burst < 3; burst++)
        {
            var expected = new Dictionary<ulong, (long Offset, int Length)>();
            for (ulong cookie = 1; cookie <= 40; cookie++)
            {
                int len = rng.Next(1, 200 << 10);
                long off = rng.NextInt64(Size - len);
                expected[cookie] = (off, len);
                peer.Request(CmdRead, (ulong)off, (uint)len, cookie: cookie);
            }
            while (expected.Count > 0)
            {
                (ulong cookie, byte[] data) = ReadReply(peer, structured, expected);
                (long off, int len) = expected[cookie];
                Assert.That(data, Is.EqualTo(_data.AsSpan((int)off, len).ToArray()), $"burst {burst} cookie {cookie}");
                expected.Remove(cookie);
            }

            // A write after the burst: the reads that follow see it.
            byte[] w = new byte[8192];
            rng.NextBytes(w);
            long wo = rng.Next(Size / 8192) * 8192L;
            peer.Request(CmdWrite, (ulong)wo, (uint)w.Length, cookie: 99);
            peer.Send(w);
            w.CopyTo(_data, wo);
            if (structured)
            {
                Assert.That(peer.Chunk(99).Type, Is.EqualTo(ReplyTypeNone));
            }
            else
            {
                Assert.That(peer.SimpleReply(99), Is.Zero);
            }
        }
    }

    private static (ulong Cookie, byte[] Data) ReadReply(RawNbdPeer peer, bool structured, Dictionary<ulong, (long Offset, int Length)> expected)
    {
        if (!structured)
        {
            byte[] h = peer.Receive(16);
            Assert.That(BinaryPrimitives.ReadUInt32BigEndian(h), Is.EqualTo(SimpleReplyMagic));
            Assert.That(BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(4)), Is.Zero);
            ulong c = BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(8));
            Assert.That(expected.ContainsKey(c), Is.True, $"unknown cookie {c}");
            return (c, peer.Receive(expected[c].Length));
        }

        byte[] ch = peer.Receive(20);
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(ch), Is.EqualTo(StructuredReplyMagic));
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(ch.AsSpan(6));
        ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(ch.AsSpan(8));
        byte[] payload = peer.Receive((int)BinaryPrimitives.ReadUInt32BigEndian(ch.AsSpan(16)));
        Assert.That(expected.ContainsKey(cookie), Is.True, $"unknown cookie {cookie}");
        (long off, int len) = expected[cookie];
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(payload), Is.EqualTo((ulong)off));
        if (type == ReplyTypeOffsetHole)
        {
            Assert.That(BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(8)), Is.EqualTo((uint)len));
            return (cookie, new byte[len]);
        }
        Assert.That(type, Is.EqualTo(ReplyTypeOffsetData));
        return (cookie, payload[8..]);
    }
}
