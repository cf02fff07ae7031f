namespace Colo.Net;

/// <summary>
/// A hub (QEMU's <c>-netdev hubport,hubid=N</c>): every frame one port receives from its peer goes out of all the
/// other ports. Hubs are created by their first port and, as in QEMU, stay for the life of the process.
/// </summary>
public sealed class NetHub
{
    // Newest first: QEMU inserts ports at the head and info network lists them in that order.
    private readonly List<HubPort> _ports = [];

    internal NetHub(int id)
    {
        Id = id;
    }

    public int Id { get; }

    /// <summary>Ports, newest first.</summary>
    public IReadOnlyList<HubPort> Ports => _ports;

    /// <summary>The name QEMU gives an unnamed port: <c>hub0port1</c>.</summary>
    internal int NextPortIndex { get; private set; }

    internal void Add(HubPort port)
    {
        _ports.Insert(0, port);
        NextPortIndex++;
    }

    internal void Remove(HubPort port) => _ports.Remove(port);

    /// <summary>Forwards a frame from <paramref name="source"/> to every other port's peer; nothing allocates.</summary>
    internal void Forward(HubPort source, ReadOnlySpan<byte> frame)
    {
        List<HubPort> ports = _ports;
        for (int i = 0; i < ports.Count; i++)
        {
            HubPort port = ports[i];
            if (!ReferenceEquals(port, source))
            {
                port.Send(frame);
            }
        }
    }

    /// <summary>Offers each port's held-back frames to the hub again.</summary>
    internal void FlushPorts()
    {
        List<HubPort> ports = _ports;
        for (int i = 0; i < ports.Count; i++)
        {
            ports[i].Incoming.Flush(ports[i]);
        }
    }

    /// <summary>Whether some other port could pass a frame on now (QEMU's hub port can_receive).</summary>
    internal bool CanForward(HubPort source)
    {
        List<HubPort> ports = _ports;
        for (int i = 0; i < ports.Count; i++)
        {
            HubPort port = ports[i];
            if (!ReferenceEquals(port, source) && port.CanSend())
            {
                return true;
            }
        }
        return false;
    }
}
