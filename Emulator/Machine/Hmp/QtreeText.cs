using System.Globalization;
using System.Text;
using Colo.Block.Graph;
using Colo.Core.Objects;
using Colo.Devices;
using Colo.Devices.Ide;
using Colo.Devices.Pc;
using Colo.Devices.Pci;
using Colo.Devices.Usb;

namespace Colo.Machine.Hmp;

/// <summary>
/// HMP <c>info qtree</c> for the pc board, in QEMU's layout: each bus lists its devices newest first, each device
/// its GPIO counts, its qdev properties (leaf class first, as the registry declares them) and its bus's own line
/// (PCI class/address/ids and BARs, sysbus MMIO windows, USB address/port/speed). Property names, order and
/// defaults come from <see cref="DeviceTypes"/>; values from the <c>-device</c> options or, for the parts the
/// board builds, from where the board put them.
/// </summary>
internal static class QtreeText
{
    // GPIO lines QEMU's models declare; printed before the properties as QEMU does.
    private static readonly Dictionary<string, string[]> Gpios = new()
    {
        ["ps2-mouse"] = ["gpio-out \"\" 1"],
        ["ps2-kbd"] = ["gpio-out \"\" 1"],
        ["ioapic"] = ["gpio-in \"\" 24"],
        ["port92"] = ["gpio-out \"a20\" 1"],
        ["i8042"] = ["gpio-in \"ps2-mouse-input-irq\" 1", "gpio-in \"ps2-kbd-input-irq\" 1", "gpio-out \"\" 2", "gpio-out \"a20\" 1"],
        ["isa-pit"] = ["gpio-in \"\" 1", "gpio-out \"\" 1"],
        ["mc146818rtc"] = ["gpio-out \"\" 1"],
        ["isa-i8259"] = ["gpio-in \"\" 8", "gpio-out \"\" 1"],
    };

    public static string Describe(VirtualMachine vm, PcBoard board, IReadOnlyList<DeviceObject> devices)
    {
        var w = new Writer(vm.Types);
        var byModel = new Dictionary<object, DeviceObject>(ReferenceEqualityComparer.Instance);
        foreach (DeviceObject d in devices)
        {
            if (d.Model is not null)
            {
                byModel[d.Model] = d;
            }
        }

        w.Line(0, "bus: main-system-bus");
        w.Line(1, "type System");
        w.Device(1, "ps2-mouse", "", null, new());
        w.Device(1, "ps2-kbd", "", null, new());
        w.Device(1, "ioapic", "", null, new(), $"mmio {PcBoard.IoApicAddress:x16}/{0x1000:x16}");
        w.Device(1, "i440FX-pcihost", "", null, new());
        w.Line(2, "bus: pci.0");
        w.Line(3, "type PCI");
        var pci = new List<PciDevice>(board.PciBus.Devices);
        pci.Reverse();
        foreach (PciDevice f in pci)
        {
            DeviceObject? user = byModel.GetValueOrDefault(f);
            var overrides = new Dictionary<string, string> { ["addr"] = $"{f.DevFn >> 3:x2}.{f.DevFn & 7:x}" };
            if ((f.Config[PciDevice.HeaderType] & PciDevice.HeaderTypeMultiFunction) != 0)
            {
                overrides["multifunction"] = "true";
            }
            var extra = new List<string> { PciLine(f) };
            foreach (PciDevice.Bar? bar in f.Bars)
            {
                if (bar is not null)
                {
                    ulong at = f.BarAddress(bar) ?? ulong.MaxValue;
                    extra.Add($"bar {bar.Index}: {(bar.Kind == PciBarKind.Io ? "i/o" : "mem")} at 0x{at:x} [0x{unchecked(at + bar.Region.Size - 1):x}]");
                }
            }
            w.Device(3, user?.TypeName ?? f.Name, IdOf(user), user?.Values, overrides, [.. extra]);
            switch (f)
            {
                case Piix3 when f == board.Isa:
                    IsaBus(w, board, devices);
                    break;
                case Piix3Ide ide:
                    IdeBuses(w, vm, ide);
                    break;
                case Piix3Uhci uhci:
                    UsbBus(w, uhci, user, byModel);
                    break;
            }
        }
        w.Device(1, "fw_cfg_io", "", null, new());
        return w.ToString();
    }

    private static void IsaBus(Writer w, PcBoard board, IReadOnlyList<DeviceObject> devices)
    {
        w.Line(4, "bus: isa.0");
        w.Line(5, "type ISA");
        for (int i = devices.Count - 1; i >= 0; i--)
        {
            DeviceObject d = devices[i];
            if (d.Type.Bus == "ISA")
            {
                w.Device(5, d.TypeName, IdOf(d), d.Values, new());
            }
        }
        w.Device(5, "port92", "", null, new());
        w.Device(5, "i8042", "", null, new());
        for (int i = board.Serials.Count - 1; i >= 0; i--)
        {
            w.Device(5, "isa-serial", "", null, new()
            {
                ["index"] = Number((ulong)i),
                ["iobase"] = Number(PcBoard.SerialPorts[i]),
                ["irq"] = Number((ulong)PcBoard.SerialIrqs[i]),
            });
        }
        w.Device(5, "isa-pit", "", null, new() { ["iobase"] = Number(PcBoard.PitPort) });
        w.Device(5, "mc146818rtc", "", null, new() { ["base_year"] = Signed(0) });
        w.Device(5, "isa-i8259", "", null, new()
        {
            ["iobase"] = Number(PcBoard.PicSlavePort),
            ["elcr_addr"] = Number(PcBoard.ElcrPort + 1UL),
            ["elcr_mask"] = Number(0xDEUL),
            ["master"] = "false",
        });
        w.Device(5, "isa-i8259", "", null, new()
        {
            ["iobase"] = Number(PcBoard.PicMasterPort),
            ["elcr_addr"] = Number(PcBoard.ElcrPort),
            ["elcr_mask"] = Number(0xF8UL),
            ["master"] = "true",
        });
    }

    /// <summary>The IDE buses, newest (ide.1) first, with each drive's identity (a subset of ide-hd's properties).</summary>
    private static void IdeBuses(Writer w, VirtualMachine vm, Piix3Ide ide)
    {
        for (int channel = 1; channel >= 0; channel--)
        {
            w.Line(4, $"bus: ide.{channel}");
            w.Line(5, "type IDE");
            for (int unit = 1; unit >= 0; unit--)
            {
                if (ide.Channel(channel).Drive(unit) is not AtaDrive drive)
                {
                    continue;
                }
                string? name = null;
                foreach (BlockBackend b in vm.Blocks.Backends)
                {
                    if (b.IdePosition == (channel, unit))
                    {
                        name = b.Name;
                    }
                }
                w.Line(5, "dev: ide-hd, id \"\"");
                w.Line(6, $"drive = \"{name}\"");
                w.Line(6, $"serial = \"{drive.Serial}\"");
                w.Line(6, $"cyls = {Number((ulong)drive.Cylinders)}");
                w.Line(6, $"heads = {Number((ulong)drive.Heads)}");
                w.Line(6, $"secs = {Number((ulong)drive.SectorsPerTrack)}");
                w.Line(6, $"unit = {Number((ulong)unit)}");
            }
        }
    }

    private static void UsbBus(Writer w, Piix3Uhci uhci, DeviceObject? controller, Dictionary<object, DeviceObject> byModel)
    {
        // A bus takes its controller's id; without one, its type's name.
        w.Line(4, $"bus: {(controller?.Parent?.Name == "peripheral" ? controller.Name : "usb-bus")}.0");
        w.Line(5, "type usb-bus");
        for (int port = Piix3Uhci.PortCount - 1; port >= 0; port--)
        {
            if (uhci.DeviceAt(port) is not UsbDevice usb)
            {
                continue;
            }
            DeviceObject? d = byModel.GetValueOrDefault(usb);
            w.Device(5, d?.TypeName ?? "usb-device", IdOf(d), d?.Values, new(),
                $"addr 0.{usb.Address}, port {port + 1}, speed {(usb.LowSpeed ? "1.5" : "12")}, name {usb.ProductName}, attached");
        }
    }

    /// <summary>The user's id; devices added without one (under peripheral-anon) show an empty id.</summary>
    private static string IdOf(DeviceObject? d) => d?.Parent?.Name == "peripheral" ? d.Name : "";

    private static string PciLine(PciDevice f)
    {
        uint cls = f.ConfigRead(PciDevice.ClassDevice, 2);
        string className = PcBoard.ClassName(cls) ?? $"Class {cls:x4}";
        return $"class {className}, addr 00:{f.DevFn >> 3:x2}.{f.DevFn & 7:x}, pci id {f.ReadConfigWord(PciDevice.VendorId):x4}:{f.ReadConfigWord(PciDevice.DeviceId):x4} (sub {f.ReadConfigWord(PciDevice.SubsystemVendorId):x4}:{f.ReadConfigWord(PciDevice.SubsystemId):x4})";
    }

    private static string Number(ulong v) => $"{v} (0x{v:x})";

    private static string Signed(long v) => $"{v} (0x{unchecked((ulong)v):x})";

    /// <summary>QEMU's size_to_str: three significant digits in the largest binary unit that keeps the value ≥ 1.</summary>
    internal static string Size(ulong v)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        int unit = 0;
        double d = v;
        while (d >= 1024 && unit < units.Length - 1)
        {
            d /= 1024;
            unit++;
        }
        return $"{v} ({d.ToString("0.##", CultureInfo.InvariantCulture)} {units[unit]})";
    }

    private sealed class Writer(TypeRegistry types)
    {
        private readonly StringBuilder _sb = new();

        public void Line(int depth, string text) => _sb.Append(' ', depth * 2).Append(text).Append('\n');

        /// <summary>One device: header, GPIOs, every listed property (override, value or default), then bus lines.</summary>
        public void Device(int depth, string typeName, string id, PropertyValues? values, Dictionary<string, string> overrides, params string[] busLines)
        {
            Line(depth, $"dev: {typeName}, id \"{id}\"");
            foreach (string gpio in Gpios.GetValueOrDefault(typeName, []))
            {
                Line(depth + 1, gpio);
            }
            if (types.Find(ObjectCategory.Device, typeName) is { } type)
            {
                foreach (PropertyDescriptor p in type.Properties)
                {
                    if (!p.Hidden)
                    {
                        Line(depth + 1, $"{p.Name} = {overrides.GetValueOrDefault(p.Name) ?? Format(p, values)}");
                    }
                }
            }
            foreach (string line in busLines)
            {
                Line(depth + 1, line);
            }
        }

        private static string Format(PropertyDescriptor p, PropertyValues? values)
        {
            switch (p.Kind)
            {
                case PropertyKind.Bool:
                    return (values?.GetBool(p.Name) ?? p.Default == "true") ? "true" : "false";
                case PropertyKind.UInt:
                    return Number(values?.GetUInt(p.Name) ?? ulong.Parse(p.Default ?? "0", CultureInfo.InvariantCulture));
                case PropertyKind.Int:
                    return Signed(values?.GetInt(p.Name) ?? long.Parse(p.Default ?? "0", CultureInfo.InvariantCulture));
                case PropertyKind.Size:
                    return Size(values?.GetUInt(p.Name) ?? ulong.Parse(p.Default ?? "0", CultureInfo.InvariantCulture));
                default:
                    return $"\"{values?.GetString(p.Name) ?? p.Default ?? ""}\"";
            }
        }

        public override string ToString() => _sb.ToString();
    }
}
