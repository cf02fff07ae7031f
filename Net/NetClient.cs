using Colo.Core.Objects;

namespace Colo.Net;

/// <summary>
/// One end of a network link (QEMU's NetClientState): a netdev backend, a hub port, later a NIC. Two clients are
/// peers; <see cref="Send"/> hands a frame to the peer's <see cref="Receive"/>, or to the peer's queue while the peer
/// cannot take it. Frames are spans valid only during the call; nothing on this path allocates.
/// <para>
/// Every delivery runs under <see cref="NetClients.Lock"/> (the net layer's share of QEMU's big lock): backends read
/// on their own threads and take it around <see cref="Send"/>, so a client sees one frame at a time.
/// </para>
/// </summary>
public abstract class NetClient : QomObject
{
    private readonly NetQueue _incoming = new();

    protected NetClient(ObjectTypeInfo type, PropertyValues values, string id, NetClients net)
        : base(type, values)
    {
        Id = id;
        Net = net;
    }

    /// <summary>The netdev id (QEMU's client name).</summary>
    public string Id { get; }

    /// <summary>The registry this client belongs to; its lock guards deliveries.</summary>
    public NetClients Net { get; }

    /// <summary>The other end of the link, or null.</summary>
    public NetClient? Peer { get; private set; }

    /// <summary>QEMU's NetClientDriver name, shown by <c>info network</c> (<c>socket</c>, <c>tap</c>, <c>hubport</c>).</summary>
    public string Driver => TypeName;

    /// <summary>QEMU's info_str: what <c>info network</c> prints after the type, e.g. <c>socket: fd=4</c>.</summary>
    public string InfoString { get; protected set; } = "";

    /// <summary>Frames waiting for this client.</summary>
    public NetQueue Incoming => _incoming;

    /// <summary>Whether <see cref="Receive"/> would take a frame now; queued frames wait while it is false.</summary>
    public virtual bool CanReceive() => true;

    /// <summary>
    /// Takes a frame from the peer. Returns its length when consumed (also when dropped on purpose, as QEMU does for
    /// a link that is down), or 0 to have it queued until the client calls <see cref="FlushIncoming"/>.
    /// </summary>
    public abstract int Receive(ReadOnlySpan<byte> frame);

    /// <summary>Sends a frame to the peer; frames without a peer are dropped. The caller holds <see cref="NetClients.Lock"/>.</summary>
    public void Send(ReadOnlySpan<byte> frame)
    {
        if (Peer is { } peer)
        {
            peer.Deliver(frame);
        }
    }

    /// <summary>Whether a frame sent now would reach the peer without queueing (QEMU's qemu_can_send_packet).</summary>
    public bool CanSend() => Peer is not { } peer || (peer.Incoming.Count == 0 && peer.CanReceive());

    /// <summary>Delivers queued frames once this client can receive again. The caller holds <see cref="NetClients.Lock"/>.</summary>
    public void FlushIncoming()
    {
        _incoming.Flush(this);
        if (Peer is HubPort port)
        {
            // Frames a hub held back because this client was full wait on the hub's ports (QEMU's net_hub_flush).
            port.Hub.FlushPorts();
        }
    }

    /// <summary>Links two clients; each may have at most one peer.</summary>
    internal static void Connect(NetClient a, NetClient b)
    {
        a.Peer = b;
        b.Peer = a;
    }

    /// <summary>Links a frontend (a NIC's client) to a netdev that has no peer yet, as a NIC's <c>netdev=</c> does.</summary>
    /// <exception cref="InvalidOperationException">Either side is already linked.</exception>
    public static void Link(NetClient a, NetClient b)
    {
        lock (a.Net.Lock)
        {
            if (a.Peer is not null || b.Peer is not null)
            {
                throw new InvalidOperationException($"net client '{(a.Peer is null ? b.Id : a.Id)}' already has a peer");
            }
            Connect(a, b);
        }
    }

    /// <summary>Unlinks this client from its peer (netdev_del); frames queued for either side are dropped.</summary>
    internal void Disconnect()
    {
        if (Peer is { } peer)
        {
            peer.Peer = null;
            peer._incoming.Purge();
            Peer = null;
        }
        _incoming.Purge();
    }

    private void Deliver(ReadOnlySpan<byte> frame)
    {
        // Order is kept: a frame never overtakes queued ones.
        if (_incoming.Count == 0 && CanReceive() && Receive(frame) != 0)
        {
            return;
        }
        _incoming.Append(frame);
    }
}
