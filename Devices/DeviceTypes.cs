using Colo.Core.Objects;

namespace Colo.Devices;

/// <summary>
/// The one registry of device types: the <c>-device</c> models with their QEMU 7.2 properties, the parts the pc
/// board builds itself, and their abstract QOM ancestors. <c>-device help</c>, <c>-device X,help</c>,
/// <c>device-list-properties</c>, <c>qom-list-types</c> and <c>info qtree</c> are all generated from it. Types
/// not built yet are listed by <c>-device help</c> and their options validated, but creating one fails with a
/// message that names it; built ones create a <see cref="DeviceObject"/> the board plugs in.
/// </summary>
public static class DeviceTypes
{
    private const string PcIssue = "the pc-machine issue builds it";
    private const string OnOff = "on/off";

    /// <summary>Properties every PCI function has (QEMU's <c>pci-device</c>), in declaration order.</summary>
    public static readonly PropertyDescriptor[] PciProperties =
    [
        new("addr", PropertyKind.String, "Slot and optional function number, example: 06.0 or 06", "-1", TypeName: "int32"),
        Str("romfile"),
        PropertyDescriptor.UInt("romsize", uint.MaxValue, uint.MaxValue),
        PropertyDescriptor.UInt("rombar", uint.MaxValue, 1),
        PropertyDescriptor.Flag("multifunction", false, OnOff),
        PropertyDescriptor.Flag("x-pcie-lnksta-dllla", true, OnOff),
        PropertyDescriptor.Flag("x-pcie-extcap-init", true, OnOff),
        Str("failover_pair_id"),
        PropertyDescriptor.UInt("acpi-index", uint.MaxValue, 0),
    ];

    /// <summary>Properties every USB device has (QEMU's <c>usb-device</c>).</summary>
    public static readonly PropertyDescriptor[] UsbProperties =
    [
        Str("port"),
        Str("serial"),
        PropertyDescriptor.Flag("msos-desc", true, OnOff),
        Str("pcap"),
    ];

    /// <summary>
    /// The parent bus named on the command line: consumed by qdev itself, so QEMU never lists it as a property;
    /// Colo accepts it for validation and hides it from the help and property listings.
    /// </summary>
    public const string BusOption = "bus";

    public static void Register(TypeRegistry registry)
    {
        Abstract(registry, "device", "object");
        Abstract(registry, "sys-bus-device", "device");
        Abstract(registry, "pci-device", "device", PciProperties);
        Abstract(registry, "isa-device", "device");
        Abstract(registry, "usb-device", "device", UsbProperties);
        Abstract(registry, "usb-hid", "usb-device", UsbProperties);
        Abstract(registry, "pci-uhci-usb", "pci-device", PciProperties);
        Abstract(registry, "pci-ide", "pci-device", PciProperties);
        Abstract(registry, "pci-piix3", "pci-device", PciProperties);
        Abstract(registry, "pci-host-bridge", "sys-bus-device");
        Abstract(registry, "pic-common", "isa-device");
        Abstract(registry, "pit-common", "isa-device");
        Abstract(registry, "ioapic-common", "sys-bus-device");
        Abstract(registry, "fw_cfg", "sys-bus-device");
        Abstract(registry, "cpu", "device");
        Abstract(registry, "ps2-device", "sys-bus-device");
        Abstract(registry, "x86_64-cpu", "cpu");

        Device(registry, "rtl8139", "pci-device", "Network devices", "PCI", null,
        [
            Str("mac", "Ethernet 6-byte MAC Address, example: 52:54:00:12:34:56"),
            Str("netdev", "ID of a netdev to use as a backend"),
            new("bootindex", PropertyKind.Int, TypeName: "int32"),
            .. PciProperties,
        ]);
        Device(registry, "piix3-usb-uhci", "pci-uhci-usb", "USB devices", "PCI", null,
        [
            PropertyDescriptor.UInt("bandwidth", uint.MaxValue, 1280),
            PropertyDescriptor.UInt("maxframes", uint.MaxValue, 128),
            .. PciProperties,
        ], built: true);
        Device(registry, "usb-tablet", "usb-hid", "Input devices", "usb-bus", "QEMU USB Tablet",
        [
            PropertyDescriptor.UInt("usb_version", uint.MaxValue, 2),
            Str("display"),
            PropertyDescriptor.UInt("head", uint.MaxValue, 0),
            .. UsbProperties,
        ], built: true);
        Device(registry, "isa-debug-exit", "isa-device", "Misc devices", "ISA", null,
        [
            PropertyDescriptor.UInt("iobase", uint.MaxValue, 0x501),
            PropertyDescriptor.UInt("iosize", uint.MaxValue, 2),
        ], built: true);
        Device(registry, "isa-debugcon", "isa-device", "Input devices", "ISA", null,
        [
            PropertyDescriptor.UInt("iobase", uint.MaxValue, 0xE9),
            Str("chardev", "ID of a chardev to use as a backend"),
            PropertyDescriptor.UInt("readback", uint.MaxValue, 0xE9),
        ], built: true);
        Device(registry, "pc-testdev", "isa-device", "Misc devices", "ISA", null, [], built: true);
        Device(registry, "pci-testdev", "pci-device", "Misc devices", "PCI", "PCI Test Device",
        [
            new("membar", PropertyKind.Size, null, "0"),
            .. PciProperties,
        ], built: true);

        // The parts the pc board builds itself: described (qom-list-types, device-list-properties, info qtree),
        // never created by -device. isa-serial and piix3-ide are user-creatable in QEMU; Colo's board owns its
        // COM ports (-serial) and its one IDE function, so it does not offer them as -device models yet.
        Board(registry, "qemu64-x86_64-cpu", "x86_64-cpu", []);
        Board(registry, "ps2-kbd", "ps2-device", []);
        Board(registry, "ps2-mouse", "ps2-device", []);
        Board(registry, "i440FX-pcihost", "pci-host-bridge",
        [
            new("pci-hole64-size", PropertyKind.Size, null, "2147483648"),
            PropertyDescriptor.UInt("short_root_bus", uint.MaxValue, 0),
            PropertyDescriptor.Flag("x-pci-hole64-fix", true, OnOff),
            PropertyDescriptor.Flag("x-config-reg-migration-enabled", true, OnOff),
            PropertyDescriptor.Flag("bypass-iommu", false, OnOff),
        ]);
        Board(registry, "i440FX", "pci-device", PciProperties);
        Board(registry, "PIIX3", "pci-piix3", PciProperties);
        Board(registry, "piix3-ide", "pci-ide", PciProperties);
        Board(registry, "ioapic", "ioapic-common", [PropertyDescriptor.UInt("version", byte.MaxValue, 0x20)]);
        Board(registry, "fw_cfg_io", "fw_cfg",
        [
            PropertyDescriptor.Flag("dma_enabled", true, OnOff),
            PropertyDescriptor.UInt("x-file-slots", ushort.MaxValue, 32),
            PropertyDescriptor.Flag("acpi-mr-restore", true, OnOff),
        ]);
        Board(registry, "isa-i8259", "pic-common",
        [
            PropertyDescriptor.UInt("iobase", uint.MaxValue, uint.MaxValue),
            PropertyDescriptor.UInt("elcr_addr", uint.MaxValue, uint.MaxValue),
            PropertyDescriptor.UInt("elcr_mask", byte.MaxValue, 0xFF),
            PropertyDescriptor.Flag("master", false, OnOff),
        ]);
        Board(registry, "mc146818rtc", "isa-device",
        [
            new("base_year", PropertyKind.Int, null, "1980", TypeName: "int32"),
            PropertyDescriptor.UInt("iobase", ushort.MaxValue, 0x70),
            PropertyDescriptor.UInt("irq", byte.MaxValue, 8),
            PropertyDescriptor.OneOf("lost_tick_policy", "LostTickPolicy", ["discard", "delay", "slew"], "discard"),
        ]);
        Board(registry, "isa-pit", "pit-common", [PropertyDescriptor.UInt("iobase", uint.MaxValue, uint.MaxValue)]);
        Board(registry, "i8042", "isa-device",
        [
            PropertyDescriptor.Flag("extended-state", true, OnOff),
            PropertyDescriptor.Flag("kbd-throttle", false, OnOff),
            PropertyDescriptor.UInt("kbd-irq", byte.MaxValue, 1),
            PropertyDescriptor.UInt("mouse-irq", byte.MaxValue, 12),
        ]);
        Board(registry, "port92", "isa-device", []);
        Board(registry, "isa-serial", "isa-device",
        [
            PropertyDescriptor.UInt("index", uint.MaxValue, uint.MaxValue),
            PropertyDescriptor.UInt("iobase", uint.MaxValue, uint.MaxValue),
            PropertyDescriptor.UInt("irq", uint.MaxValue, uint.MaxValue),
        ]);
    }

    /// <summary>A qdev string property: QEMU shows its type as <c>str</c>, not QOM's <c>string</c>.</summary>
    private static PropertyDescriptor Str(string name, string? description = null) =>
        new(name, PropertyKind.String, description, TypeName: "str");

    /// <summary>
    /// A <c>-device</c> model. The command line's <c>bus</c> is accepted by every model that sits on a bus, as
    /// qdev's own option, and hidden from listings.
    /// </summary>
    private static void Device(TypeRegistry registry, string name, string parent, string group, string bus, string? description, PropertyDescriptor[] properties, bool built = false) =>
        registry.Register(new ObjectTypeInfo(name, ObjectCategory.Device, [.. properties, Str(BusOption, "parent bus") with { Hidden = true }], built ? DeviceObject.Create : null, description)
        {
            Parent = parent,
            HelpGroup = group,
            Bus = bus,
            NotImplemented = built ? null : PcIssue,
        });

    private static void Board(TypeRegistry registry, string name, string parent, PropertyDescriptor[] properties) =>
        registry.Register(new ObjectTypeInfo(name, ObjectCategory.Device, properties, factory: null)
        {
            Parent = parent,
            UserCreatable = false,
        });

    private static void Abstract(TypeRegistry registry, string name, string parent, PropertyDescriptor[]? properties = null) =>
        registry.Register(new ObjectTypeInfo(name, ObjectCategory.Device, properties ?? [], factory: null)
        {
            Parent = parent,
            Abstract = true,
        });
}
