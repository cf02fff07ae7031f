using System.Text;
using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Net;

/// <summary>
/// Every net client of a machine in creation order (QEMU's net_clients list) and the hubs. Netdevs are created
/// through the <see cref="TypeRegistry"/> like every other object; this keeps the links between them and the
/// lock every frame delivery holds.
/// </summary>
public sealed class NetClients
{
    private readonly List<NetClient> _clients = [];

    // Newest first, as QEMU lists hubs.
    private readonly List<NetHub> _hubs = [];

    /// <summary>Held around every <see cref="NetClient.Send"/>, peer change and hub change.</summary>
    public Lock Lock { get; } = new();

    /// <summary>Where backends report run-time warnings (QEMU's error_report), without the program prefix.</summary>
    public Action<string> Report { get; set; } = static _ => { };

    public IReadOnlyList<NetClient> Clients => _clients;

    /// <summary>Raised after a netdev is created (the machine lists it in its object tree).</summary>
    public event Action<NetClient>? Added;

    /// <summary>Raised after a netdev is deleted.</summary>
    public event Action<NetClient>? Removed;

    public IReadOnlyList<NetHub> Hubs => _hubs;

    public NetClient? Find(string id)
    {
        lock (Lock)
        {
            foreach (NetClient c in _clients)
            {
                if (c.Id == id)
                {
                    return c;
                }
            }
            return null;
        }
    }

    /// <summary>
    /// Creates and starts a netdev. <paramref name="fromQmp"/> selects QEMU's texts: netdev_add reports a duplicate
    /// as <c>Duplicate ID 'x'</c>, the command line and HMP as <c>Duplicate ID 'x' for netdev</c>.
    /// </summary>
    public NetClient Add(TypeRegistry types, string type, string? id, IEnumerable<KeyValuePair<string, string>> properties, bool fromQmp)
    {
        CheckNewId(id, fromQmp);
        var client = (NetClient)types.CreateFromStrings(ObjectCategory.Netdev, type, id, properties);
        Register(client);
        return client;
    }

    /// <summary>Creates and starts a netdev from netdev_add's JSON members.</summary>
    public NetClient Add(TypeRegistry types, string type, string? id, IEnumerable<KeyValuePair<string, System.Text.Json.JsonElement>> properties)
    {
        CheckNewId(id, fromQmp: true);
        var client = (NetClient)types.CreateFromJson(ObjectCategory.Netdev, type, id, properties);
        Register(client);
        return client;
    }

    /// <summary>netdev_del: unlinks the netdev from its peer and stops it.</summary>
    /// <exception cref="QmpException">No such netdev (DeviceNotFound, as QEMU).</exception>
    public NetClient Delete(string id)
    {
        NetClient client = Find(id) ?? throw new QmpException($"Device '{id}' not found", QmpErrorClass.DeviceNotFound);
        lock (Lock)
        {
            client.Disconnect();
            _clients.Remove(client);
        }
        Removed?.Invoke(client);
        client.Dispose();
        return client;
    }

    /// <summary>Stops every netdev (exit).</summary>
    public void DisposeAll()
    {
        NetClient[] all;
        lock (Lock)
        {
            all = [.. _clients];
            _clients.Clear();
        }
        foreach (NetClient c in all)
        {
            Removed?.Invoke(c);
            c.Dispose();
        }
    }

    /// <summary>QEMU's warnings for netdevs left without a peer once the machine is built.</summary>
    public IEnumerable<string> UnconnectedWarnings()
    {
        lock (Lock)
        {
            var warnings = new List<string>();
            foreach (NetHub hub in _hubs)
            {
                foreach (HubPort port in hub.Ports)
                {
                    if (port.Peer is null)
                    {
                        warnings.Add($"warning: hub port {port.Id} has no peer");
                    }
                }
            }
            foreach (NetClient c in _clients)
            {
                if (c.Peer is null)
                {
                    warnings.Add($"warning: netdev {c.Id} has no peer");
                }
            }
            return warnings;
        }
    }

    /// <summary>The text of HMP <c>info network</c>: hubs with their ports, then the other clients.</summary>
    public string InfoNetwork()
    {
        var sb = new StringBuilder();
        lock (Lock)
        {
            foreach (NetHub hub in _hubs)
            {
                sb.Append("hub ").Append(hub.Id).Append('\n');
                foreach (HubPort port in hub.Ports)
                {
                    sb.Append(" \\ ").Append(port.Id);
                    if (port.Peer is { } peer)
                    {
                        sb.Append(": ");
                        AppendClient(sb, peer);
                    }
                    else
                    {
                        sb.Append('\n');
                    }
                }
            }
            foreach (NetClient c in _clients)
            {
                // Hub ports and their peers were shown under their hub; a netdev linked to a NIC is shown with it.
                if (c is HubPort || c.Peer is HubPort)
                {
                    continue;
                }
                AppendClient(sb, c);
            }
        }
        return sb.ToString();
    }

    internal NetHub GetOrCreateHub(int id)
    {
        lock (Lock)
        {
            foreach (NetHub hub in _hubs)
            {
                if (hub.Id == id)
                {
                    return hub;
                }
            }
            var created = new NetHub(id);
            _hubs.Insert(0, created);
            return created;
        }
    }

    private static void AppendClient(StringBuilder sb, NetClient c) =>
        sb.Append(c.Id).Append(": index=0,type=").Append(c.Driver).Append(',').Append(c.InfoString).Append('\n');

    private void CheckNewId(string? id, bool fromQmp)
    {
        if (id is null)
        {
            throw new QmpException("Parameter 'id' is missing");
        }
        if (!TypeRegistry.IsIdentifier(id))
        {
            throw new QmpException(fromQmp ? "Parameter 'id' expects an identifier" : "Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.");
        }
        if (Find(id) is not null)
        {
            throw new QmpException(fromQmp ? $"Duplicate ID '{id}'" : $"Duplicate ID '{id}' for netdev");
        }
    }

    private void Register(NetClient client)
    {
        lock (Lock)
        {
            _clients.Add(client);
        }
        Added?.Invoke(client);
    }
}
