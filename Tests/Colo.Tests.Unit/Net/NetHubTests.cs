using Colo.Core.Objects;
using Colo.Core.Qmp;
using Colo.Net;

namespace Colo.Tests.Unit.Net;

[TestFixture]
public sealed class NetHubTests
{
    private NetClients _net = null!;
    private TypeRegistry _types = null!;

    /// <summary>A stand-in NIC: records frames, and can refuse them to exercise the queue.</summary>
    private sealed class RecordingClient : NetClient
    {
        public static readonly ObjectTypeInfo ClientType = new("nic", ObjectCategory.Netdev, [], factory: null);

        public RecordingClient(string id, NetClients net)
            : base(ClientType, new PropertyValues(ClientType), id, net)
        {
        }

        public List<byte[]> Frames { get; } = [];

        public bool Ready { get; set; } = true;

        public override bool CanReceive() => Ready;

        public override int Receive(ReadOnlySpan<byte> frame)
        {
            Frames.Add(frame.ToArray());
            return frame.Length;
        }

        public void Attach(NetClient peer) => Link(this, peer);
    }

    [SetUp]
    public void SetUp()
    {
        _net = new NetClients();
        _types = new TypeRegistry();
        NetTypes.Register(_types, _net);
    }

    [TearDown]
    public void TearDown() => _net.DisposeAll();

    private HubPort Port(string id, int hub, string? netdev = null) =>
        (HubPort)_net.Add(_types, "hubport", id, netdev is null ? [new("hubid", hub.ToString())] : [new("hubid", hub.ToString()), new("netdev", netdev)], fromQmp: false);

    private (RecordingClient Nic, HubPort Port) NicOnHub(string id, int hub)
    {
        HubPort port = Port(id, hub);
        var nic = new RecordingClient("nic-" + id, _net);
        nic.Attach(port);
        return (nic, port);
    }

    [Test]
    public void Hub_ForwardsToEveryOtherPort_NotBack()
    {
        (RecordingClient a, _) = NicOnHub("p0", 0);
        (RecordingClient b, _) = NicOnHub("p1", 0);
        (RecordingClient c, _) = NicOnHub("p2", 0);
        (RecordingClient other, _) = NicOnHub("q0", 1);
        lock (_net.Lock)
        {
            a.Send([1, 2, 3]);
        }
        Assert.Multiple(() =>
        {
            Assert.That(a.Frames, Is.Empty);
            Assert.That(b.Frames, Is.EqualTo(new[] { new byte[] { 1, 2, 3 } }));
            Assert.That(c.Frames, Is.EqualTo(new[] { new byte[] { 1, 2, 3 } }));
            Assert.That(other.Frames, Is.Empty, "another hub");
        });
    }

    [Test]
    public void Queue_HoldsFramesWhileReceiverIsNotReady_ThenFlushesInOrder()
    {
        (RecordingClient a, _) = NicOnHub("p0", 0);
        (RecordingClient b, _) = NicOnHub("p1", 0);
        b.Ready = false;
        lock (_net.Lock)
        {
            a.Send([1]);
            a.Send([2]);
        }
        Assert.That(b.Frames, Is.Empty);
        b.Ready = true;
        lock (_net.Lock)
        {
            a.Send([3]); // queued behind the others, never ahead
            Assert.That(b.Frames, Is.Empty);
            b.FlushIncoming();
        }
        Assert.That(b.Frames.Select(f => f[0]), Is.EqualTo(new byte[] { 1, 2, 3 }));
    }

    [Test]
    public void Queue_IsBounded_DropsBeyondCapacity()
    {
        var queue = new NetQueue(capacity: 2);
        Assert.That(new[] { queue.Append([1]), queue.Append([2]), queue.Append([3]) }, Is.EqualTo(new[] { true, true, false }));
        Assert.That((queue.Count, queue.Dropped), Is.EqualTo((2, 1L)));
        queue.Purge();
        Assert.That(queue.Count, Is.Zero);
    }

    [Test]
    public void NetdevOption_LinksThePortToTheNetdev()
    {
        HubPort inner = Port("h0", 3);
        HubPort outer = Port("h1", 4, netdev: "h0");
        Assert.That((inner.Peer, outer.Peer), Is.EqualTo((outer, inner)));
    }

    [Test]
    public void InfoNetwork_ListsHubsAndPortsNewestFirst_AsQemu()
    {
        Port("h0", 0);
        Port("h1", 0);
        Port("h2", 3);
        Assert.That(_net.InfoNetwork(), Is.EqualTo("hub 3\n \\ h2\nhub 0\n \\ h1\n \\ h0\n"));
        _net.Delete("h1");
        Assert.That(_net.InfoNetwork(), Is.EqualTo("hub 3\n \\ h2\nhub 0\n \\ h0\n"));
    }

    [TestCase("hubid=0", "Parameter 'hubid' is missing", false)]
    public void Errors_UseQemuTexts(string _, string expected, bool fromQmp)
    {
        var e = Assert.Throws<QmpException>(() => _net.Add(_types, "hubport", "x", [], fromQmp))!;
        Assert.That(e.Message, Is.EqualTo(expected));
    }

    [Test]
    public void Errors_DuplicateAndUnknown_UseQemuTexts()
    {
        Port("h0", 0);
        Assert.Multiple(() =>
        {
            Assert.That(Assert.Throws<QmpException>(() => Port("h0", 0))!.Message, Is.EqualTo("Duplicate ID 'h0' for netdev"));
            Assert.That(Assert.Throws<QmpException>(() => _net.Add(_types, "hubport", "h0", [new("hubid", "0")], fromQmp: true))!.Message, Is.EqualTo("Duplicate ID 'h0'"));
            Assert.That(Assert.Throws<QmpException>(() => Port("h9", 0, netdev: "zz"))!.Message, Is.EqualTo("netdev 'zz' not found"));
            QmpException del = Assert.Throws<QmpException>(() => _net.Delete("zz"))!;
            Assert.That((del.Message, del.ErrorClass), Is.EqualTo(("Device 'zz' not found", QmpErrorClass.DeviceNotFound)));
        });
        Assert.That(_net.InfoNetwork(), Is.EqualTo("hub 0\n \\ h0\n"), "the failed port left nothing behind");
    }

    [Test]
    public void Forwarding_AllocatesNothingPerFrame()
    {
        (RecordingClient a, _) = NicOnHub("p0", 0);
        HubPort sink = Port("p1", 0);
        var counter = new CountingClient("counter", _net);
        NetClient.Link(counter, sink);
        byte[] frame = new byte[1514];
        lock (_net.Lock)
        {
            // Warm up past tiered compilation and on-stack replacement, which may allocate on this thread once.
            for (int i = 0; i < 100_000; i++)
            {
                a.Send(frame);
            }
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 100_000; i++)
            {
                a.Send(frame);
            }
            Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
        }
        Assert.That(counter.Count, Is.EqualTo(200_000));
    }

    private sealed class CountingClient(string id, NetClients net) : NetClient(RecordingClient.ClientType, new PropertyValues(RecordingClient.ClientType), id, net)
    {
        public int Count { get; private set; }

        public override int Receive(ReadOnlySpan<byte> frame)
        {
            Count++;
            return frame.Length;
        }
    }
}
