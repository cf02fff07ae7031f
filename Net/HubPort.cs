using Colo.Core.Objects;

namespace Colo.Net;

/// <summary>
/// A port of a <see cref="NetHub"/> (<c>-netdev hubport,id=,hubid=[,netdev=]</c>). Its peer is the netdev named by
/// <c>netdev=</c> (or, later, a NIC); what the peer sends, the hub forwards to the other ports.
/// </summary>
public sealed class HubPort : NetClient
{
    internal HubPort(ObjectTypeInfo type, PropertyValues values, string id, NetClients net)
        : base(type, values, id, net)
    {
    }

    /// <summary>The hub this port belongs to, once created.</summary>
    public NetHub Hub { get; private set; } = null!;

    /// <inheritdoc/>
    public override void Complete()
    {
        string? netdev = Values.GetString("netdev");
        NetClient? peer = null;
        if (netdev is not null)
        {
            peer = Net.Find(netdev) ?? throw new Core.Qmp.QmpException($"netdev '{netdev}' not found");
            if (peer.Peer is not null)
            {
                throw new Core.Qmp.QmpException($"netdev '{netdev}' is already in use");
            }
        }
        // The hub exists from its first port on, as in QEMU (a failed netdev= lookup creates none).
        Hub = Net.GetOrCreateHub((int)Values.GetUInt("hubid"));
        lock (Net.Lock)
        {
            Hub.Add(this);
            if (peer is not null)
            {
                Connect(this, peer);
            }
        }
    }

    /// <inheritdoc/>
    public override bool CanReceive() => Hub.CanForward(this);

    /// <inheritdoc/>
    public override int Receive(ReadOnlySpan<byte> frame)
    {
        Hub.Forward(this, frame);
        return frame.Length;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && Hub is not null)
        {
            lock (Net.Lock)
            {
                Hub.Remove(this);
            }
        }
        base.Dispose(disposing);
    }
}
