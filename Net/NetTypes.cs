using Colo.Core.Objects;

namespace Colo.Net;

/// <summary>
/// Registers the network backends (<c>-netdev</c>) and packet filters (<c>-object filter-*</c>,
/// <c>colo-compare</c>) with QEMU 7.2's property schemas. <c>socket</c>, <c>tap</c> and <c>hubport</c> are built;
/// the others are listed and validated, but creating one fails with a message that names it.
/// </summary>
public static class NetTypes
{
    private const string NetIssue = "the networking issue builds it";

    private static readonly string[] Directions = ["all", "rx", "tx"];

    /// <summary>Registers the types with a registry of their own (help texts, tests that only validate).</summary>
    public static void Register(TypeRegistry registry) => Register(registry, new NetClients());

    /// <summary>Registers the types; the built netdevs join <paramref name="net"/>.</summary>
    public static void Register(TypeRegistry registry, NetClients net)
    {
        RegisterNetdevs(registry, net);
        RegisterFilters(registry);
    }

    /// <summary>Object types QEMU creates after the netdevs (they attach to one), not with the early objects.</summary>
    public static bool IsLateObject(string qomType) =>
        qomType.StartsWith("filter-", StringComparison.Ordinal) || qomType == "colo-compare";

    private static void RegisterNetdevs(TypeRegistry registry, NetClients net)
    {
        Netdev(registry, "tap", (t, id, v) => new TapNetdev(t, v, id, net),
        [
            PropertyDescriptor.Str("ifname", "interface name"),
            PropertyDescriptor.Str("fd", "file descriptor of an already opened tap"),
            PropertyDescriptor.Str("fds", "colon-separated file descriptors for multiqueue"),
            PropertyDescriptor.Str("script", "network configure script (default /etc/qemu-ifup)"),
            PropertyDescriptor.Str("downscript", "network deconfigure script (default /etc/qemu-ifdown)"),
            PropertyDescriptor.Str("br", "bridge name for the helper"),
            PropertyDescriptor.Str("helper", "command to run to set up the tap (qemu-bridge-helper)"),
            new PropertyDescriptor("sndbuf", PropertyKind.Size, "send buffer limit"),
            PropertyDescriptor.Flag("vnet_hdr", false, "enable the IFF_VNET_HDR flag"),
            PropertyDescriptor.Flag("vhost", false, "enable vhost-net"),
            PropertyDescriptor.Str("vhostfd", "vhost-net file descriptor"),
            PropertyDescriptor.Str("vhostfds", "vhost-net file descriptors"),
            PropertyDescriptor.Flag("vhostforce", false, "force vhost"),
            PropertyDescriptor.UInt("queues", uint.MaxValue, null, "number of queues"),
            PropertyDescriptor.UInt("poll-us", uint.MaxValue, null, "busy polling time"),
        ]);
        Netdev(registry, "user", null,
        [
            PropertyDescriptor.Str("net"), PropertyDescriptor.Str("host"), PropertyDescriptor.Str("hostname"),
            PropertyDescriptor.Flag("restrict", false), PropertyDescriptor.Str("dhcpstart"), PropertyDescriptor.Str("dns"),
            PropertyDescriptor.Str("hostfwd"), PropertyDescriptor.Str("guestfwd"), PropertyDescriptor.Str("tftp"),
            PropertyDescriptor.Str("bootfile"), PropertyDescriptor.Str("smb"), PropertyDescriptor.Flag("ipv4", true),
            PropertyDescriptor.Flag("ipv6", true), PropertyDescriptor.Str("ipv6-net"), PropertyDescriptor.Str("ipv6-host"),
            PropertyDescriptor.Str("ipv6-dns"), PropertyDescriptor.Str("domainname"), PropertyDescriptor.Str("dnssearch"),
        ]);
        Netdev(registry, "socket", (t, id, v) => new SocketNetdev(t, v, id, net),
        [
            PropertyDescriptor.Str("fd"), PropertyDescriptor.Str("listen"), PropertyDescriptor.Str("connect"),
            PropertyDescriptor.Str("mcast"), PropertyDescriptor.Str("localaddr"), PropertyDescriptor.Str("udp"),
        ]);
        Netdev(registry, "bridge", null, [PropertyDescriptor.Str("br"), PropertyDescriptor.Str("helper")]);
        Netdev(registry, "hubport", (t, id, v) => new HubPort(t, v, id, net),
            [PropertyDescriptor.UInt("hubid", int.MaxValue) with { Required = true }, PropertyDescriptor.Str("netdev")]);
    }

    private static void RegisterFilters(TypeRegistry registry)
    {
        PropertyDescriptor[] common =
        [
            PropertyDescriptor.Str("netdev", "the netdev this filter attaches to", required: true),
            PropertyDescriptor.OneOf("queue", "NetFilterDirection", Directions, "all", "which packets to filter"),
            new PropertyDescriptor("status", PropertyKind.String, "on: filter active, off: bypass", "on", Writable: true),
            new PropertyDescriptor("position", PropertyKind.String, "'head', 'tail' or 'id=<filter>'", "tail"),
            PropertyDescriptor.OneOf("insert", "NetFilterInsert", ["before", "behind"], "behind", "where to insert relative to position"),
        ];
        PropertyDescriptor vnetHdr = PropertyDescriptor.Flag("vnet_hdr_support", false, "carry the vnet header length in the stream");

        Obj(registry, "filter-mirror", [.. common, PropertyDescriptor.Str("outdev", "chardev that receives a copy of the packets", required: true), vnetHdr]);
        Obj(registry, "filter-redirector", [.. common, PropertyDescriptor.Str("indev", "chardev whose packets are injected"), PropertyDescriptor.Str("outdev", "chardev that receives the packets"), vnetHdr]);
        Obj(registry, "filter-rewriter", [.. common, vnetHdr]);
        Obj(registry, "filter-buffer", [.. common, PropertyDescriptor.UInt("interval", uint.MaxValue, null, "release interval in microseconds")]);
        Obj(registry, "filter-dump", [.. common, PropertyDescriptor.Str("file", "pcap file"), PropertyDescriptor.UInt("maxlen", uint.MaxValue, 65536)]);
        Obj(registry, "colo-compare",
        [
            PropertyDescriptor.Str("primary_in", "chardev carrying the primary's packets", required: true),
            PropertyDescriptor.Str("secondary_in", "chardev carrying the secondary's packets", required: true),
            PropertyDescriptor.Str("outdev", "chardev that receives released packets", required: true),
            PropertyDescriptor.Str("iothread", "iothread running the comparison", required: true),
            PropertyDescriptor.Str("notify_dev", "chardev for notifications (Xen COLO)"),
            PropertyDescriptor.UInt("compare_timeout", ulong.MaxValue, 3000, "milliseconds before an unmatched packet is released"),
            PropertyDescriptor.UInt("expired_scan_cycle", uint.MaxValue, 3000, "milliseconds between scans for expired packets"),
            PropertyDescriptor.UInt("max_queue_size", uint.MaxValue, 1024, "packets queued per connection"),
            vnetHdr,
        ]);
    }

    private static void Netdev(TypeRegistry registry, string name, ObjectFactory? factory, PropertyDescriptor[] properties) =>
        registry.Register(new ObjectTypeInfo(name, ObjectCategory.Netdev, properties, factory) { NotImplemented = factory is null ? NetIssue : null });

    private static void Obj(TypeRegistry registry, string name, PropertyDescriptor[] properties) =>
        registry.Register(new ObjectTypeInfo(name, ObjectCategory.Object, properties, factory: null) { NotImplemented = NetIssue });
}
