using System.Net;
using Colo.Block;
using Colo.Block.File;
using Colo.Block.Nbd;
using Colo.Block.Qcow2;
using static Colo.Block.Nbd.NbdProtocol;

namespace Colo.Tests.Unit.Block.Nbd;

/// <summary>
/// Writes of a qcow2 export run side by side (replies by cookie, data in issue order for overlaps), and a
/// read in flight on one connection keeps its clusters: a trim plus a reallocating write on another
/// connection wait for it instead of handing its host cluster to other data.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class NbdConcurrentWriteTests
{
    private const int Cs = 65536;
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "nbdcw-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string NewImage(long size)
    {
        string path = Path.Combine(_dir, "disk.qcow2");
        Qcow2Creator.Create(path, new Qcow2CreateOptions { Size = size, ClusterSize = Cs, Version = 3, RefcountBits = 16 });
        return path;
    }

    [Test]
    public async Task ReadInFlightOnOneConnection_TrimAndReallocationOnAnother_ReadSeesItsOwnData()
    {
        var gated = new GatedNode(FileNode.Open(NewImage(1 << 20), readOnly: false));
        using var node = Qcow2Node.Open(gated, readOnly: false);
        var oldData = new byte[Cs];
        Array.Fill(oldData, (byte)0xAA);
        node.Write(0, oldData);
        await using NbdServer server = NbdServer.StartTcp(new IPEndPoint(IPAddress.Loopback, 0));
        server.AddExport("disk", node, writable: true);

        using var reader = new RawNbdPeer(server.Port);
        reader.Connect("disk");
        using var writer = new RawNbdPeer(server.Port);
        writer.Connect("disk");

        gated.Close();
        reader.Request(CmdRead, 0, Cs, cookie: 1);
        Assert.That(SpinWait.SpinUntil(() => gated.Held == 1, 10_000), Is.True, "the read is in flight");

        var newData = new byte[Cs];
        Array.Fill(newData, (byte)0xBB);
        writer.Request(CmdTrim, 0, Cs, cookie: 2);
        writer.Request(CmdWrite, 3 * Cs, Cs, cookie: 3);
        writer.Send(newData);
        Task<(uint, uint)> writerReplies = Task.Run(() => (writer.SimpleReply(2), writer.SimpleReply(3)));
        bool doneUnderRead = writerReplies.Wait(500);
        gated.Open();

        Assert.That(reader.SimpleReply(1), Is.Zero);
        byte[] got = reader.Receive(Cs);
        (uint trimErr, uint writeErr) = await writerReplies;
        Assert.Multiple(() =>
        {
            Assert.That(got, Is.EqualTo(oldData), "the read saw another cluster's new data: its host cluster was freed and reused under it");
            Assert.That(doneUnderRead, Is.False, "the trim waits for the read in flight");
            Assert.That(trimErr, Is.Zero);
            Assert.That(writeErr, Is.Zero);
        });

        var check = new byte[Cs];
        node.Read(3 * Cs, check);
        Assert.That(check, Is.EqualTo(newData));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void PipelinedWrites_RepliesByCookie_OverlapsInIssueOrder(bool structured)
    {
        const int size = 4 << 20;
        string path = NewImage(size);
        using BlockNode node = BlockImage.Open(path, "qcow2", readOnly: false);
        using var server = NbdServer.StartTcp(new IPEndPoint(IPAddress.Loopback, 0));
        server.AddExport("disk", node, writable: true);
        using var peer = new RawNbdPeer(server.Port);
        peer.Connect("disk", structured);

        var reference = new byte[size];
        var rng = new Random(5);
        for (int burst = 0; burst < 4; burst++)
        {
            var cookies = new HashSet<ulong>();
            for (ulong cookie = 1; cookie <= 40; cookie++)
            {
                int len = rng.Next(1, 100_000);
                long off = rng.Next(3) == 0 ? rng.NextInt64(size - len) : rng.Next(60_000); // many overlap
                var data = new byte[len];
                rng.NextBytes(data);
                data.CopyTo(reference, off);
                peer.Request(CmdWrite, (ulong)off, (uint)len, flags: cookie % 7 == 0 ? CmdFlagFua : (ushort)0, cookie: cookie);
                peer.Send(data);
                cookies.Add(cookie);
            }
            while (cookies.Count > 0)
            {
                ulong cookie;
                if (structured)
                {
                    byte[] h = peer.Receive(20);
                    Assert.That(System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(h.AsSpan(6)), Is.EqualTo(ReplyTypeNone));
                    Assert.That(System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(h.AsSpan(4)), Is.EqualTo(ReplyFlagDone));
                    cookie = System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(8));
                }
                else
                {
                    byte[] h = peer.Receive(16);
                    Assert.That(System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(4)), Is.Zero);
                    cookie = System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(8));
                }
                Assert.That(cookies.Remove(cookie), Is.True, $"unexpected cookie {cookie}");
            }

            // A read after the burst sees every write, the later of two overlapping ones winning.
            peer.Request(CmdRead, 0, 200_000, cookie: 99);
            byte[] got = structured ? ReadStructured(peer, 200_000) : ReadSimple(peer, 200_000);
            Assert.That(got, Is.EqualTo(reference.AsSpan(0, 200_000).ToArray()), $"burst {burst}");
        }

        var whole = new byte[size];
        node.Read(0, whole);
        Assert.That(whole, Is.EqualTo(reference));
    }

    private static byte[] ReadSimple(RawNbdPeer peer, int length)
    {
        Assert.That(peer.SimpleReply(99), Is.Zero);
        return peer.Receive(length);
    }

    private static byte[] ReadStructured(RawNbdPeer peer, int length)
    {
        (ushort _, ushort type, byte[] payload) = peer.Chunk(99);
        return type == ReplyTypeOffsetHole ? new byte[length] : payload[8..];
    }
}
