using Colo.Core.Objects;

namespace Colo.Devices;

/// <summary>
/// Registers the <c>-device</c> models of QEMU's COLO documentation with their QEMU 7.2 properties.
/// Types not built yet are listed by <c>-device help</c> and their options validated, but creating one fails
/// with a message that names it; built ones create a <see cref="DeviceObject"/> the board plugs in.
/// </summary>
public static class DeviceTypes
{
    private const string PcIssue = "the pc-machine issue builds it";

    public static void Register(TypeRegistry registry)
    {
        PropertyDescriptor[] pci =
        [
            PropertyDescriptor.Str("bus", "parent bus"),
            PropertyDescriptor.Str("addr", "slot and function, e.g. 03.0"),
            PropertyDescriptor.Flag("multifunction", false),
            PropertyDescriptor.Str("romfile"),
            PropertyDescriptor.UInt("rombar", uint.MaxValue, 1),
            PropertyDescriptor.UInt("acpi-index", uint.MaxValue, 0),
        ];
        Device(registry, "rtl8139", "Network devices", "PCI", "RealTek RTL8139 Fast Ethernet",
        [
            .. pci,
            PropertyDescriptor.Str("mac", "MAC address, e.g. 52:54:00:12:34:56"),
            PropertyDescriptor.Str("netdev", "the -netdev backend"),
            PropertyDescriptor.Int64("bootindex"),
        ]);
        Device(registry, "piix3-usb-uhci", "USB devices", "PCI", null,
        [
            .. pci,
            PropertyDescriptor.Str("masterbus"),
            PropertyDescriptor.UInt("firstport", uint.MaxValue, 0),
            PropertyDescriptor.UInt("bandwidth", uint.MaxValue, 1280),
            PropertyDescriptor.UInt("maxframes", uint.MaxValue, 128),
        ], built: true);
        Device(registry, "usb-tablet", "Input devices", "usb-bus", "QEMU USB Tablet",
        [
            PropertyDescriptor.Str("bus", "parent bus"),
            PropertyDescriptor.Str("port", "USB port path, e.g. 1 or 1.2"),
            PropertyDescriptor.Str("display"),
            PropertyDescriptor.UInt("head", uint.MaxValue, 0),
            PropertyDescriptor.Str("serial"),
            PropertyDescriptor.Str("pcap"),
            PropertyDescriptor.UInt("usb_version", uint.MaxValue, 2),
        ], built: true);
        Device(registry, "isa-debug-exit", "Misc devices", "ISA", null,
        [
            PropertyDescriptor.UInt("iobase", uint.MaxValue, 0x501),
            PropertyDescriptor.UInt("iosize", uint.MaxValue, 2),
        ], built: true);
        Device(registry, "isa-debugcon", "Input devices", "ISA", null,
        [
            PropertyDescriptor.Str("chardev", "ID of a chardev to use as a backend"),
            PropertyDescriptor.UInt("iobase", uint.MaxValue, 0xE9),
            PropertyDescriptor.UInt("readback", uint.MaxValue, 0xE9),
        ], built: true);
    }

    private static void Device(TypeRegistry registry, string name, string group, string bus, string? description, PropertyDescriptor[] properties, bool built = false) =>
        registry.Register(new ObjectTypeInfo(name, ObjectCategory.Device, properties, built ? DeviceObject.Create : null, description)
        {
            HelpGroup = group,
            Bus = bus,
            NotImplemented = built ? null : PcIssue,
        });
}
