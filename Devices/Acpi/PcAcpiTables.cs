using System.Buffers.Binary;
using System.Text;
using static Colo.Devices.Acpi.Aml;

namespace Colo.Devices.Acpi;

/// <summary>What the pc machine's ACPI tables describe.</summary>
/// <param name="Cpus">vCPUs (<c>-smp</c>): one processor object and one MADT local APIC each, APIC id = index.</param>
/// <param name="PmIoBase">PIIX4 PM I/O base (PMBA) the FADT points at; 0 while the firmware has not set it.</param>
/// <param name="LowRamEnd">End of RAM below 4 GiB: the 32-bit PCI window starts there.</param>
/// <param name="HighRamSize">RAM mapped at 4 GiB (the 64-bit PCI window starts after it).</param>
/// <param name="Serials">I/O base and ISA IRQ of each serial port present, COM1 first.</param>
public sealed record PcAcpiConfig(int Cpus, ushort PmIoBase, ulong LowRamEnd, ulong HighRamSize, IReadOnlyList<(ushort Port, int Irq)> Serials);

/// <summary>The three fw_cfg files QEMU's pc publishes, and where each table sits inside <see cref="Tables"/>.</summary>
public sealed record AcpiTableSet(byte[] Tables, byte[] Rsdp, byte[] Loader, IReadOnlyDictionary<string, int> Offsets);

/// <summary>
/// Builds the ACPI tables of QEMU 7.2's <c>pc</c> machine as read back from qemu-system-x86_64 (fw_cfg files
/// <c>etc/acpi/tables</c>, <c>etc/acpi/rsdp</c>, <c>etc/table-loader</c>): in the tables blob FACS, DSDT, FACP
/// (revision 1), APIC, WAET and RSDT in that order, each header "BOCHS "/"BXPC    " revision 1, checksums left
/// zero and pointer fields holding offsets for the loader script to fix; RSDP revision 0 in the F-segment.
/// Differences from QEMU, because Colo lacks the hardware: no HPET table or device, no floppy controller, no
/// PCI or CPU hot-plug AML, no _S3 (S3 is not emulated); _PRT is a static package instead of QEMU's loop.
/// </summary>
public static class PcAcpiTables
{
    public const string TablesFile = "etc/acpi/tables";
    public const string RsdpFile = "etc/acpi/rsdp";
    public const string LoaderFile = "etc/table-loader";

    /// <summary>The tables blob is padded to this size, as QEMU's pc does so its size stays stable for migration.</summary>
    public const int TablesBlobSize = 0x20000;

    public const int HeaderSize = 36;
    public const ushort SciIrq = 9;
    public const byte SmiCommandPort = 0xB2;
    public const byte AcpiEnable = 0xF1;
    public const byte AcpiDisable = 0xF0;
    public const ushort Gpe0Base = 0xAFE0;
    public const byte Gpe0Length = 4;
    public const uint LocalApicAddress = 0xFEE00000;
    public const uint IoApicAddress = 0xFEC00000;

    /// <summary>FADT flags QEMU 7.2 sets: WBINVD, PROC_C1, SLP_BUTTON, RTC_S4, USE_PLATFORM_CLOCK (fixed power button).</summary>
    public const uint FadtFlags = 0x80A5;

    /// <summary>Field offsets inside the FADT (revision 1 layout).</summary>
    public const int FadtFirmwareCtrl = 36, FadtDsdt = 40, FadtLength = 116;

    /// <summary>Builds the tables, the RSDP and the loader script.</summary>
    public static AcpiTableSet Build(PcAcpiConfig config)
    {
        var blob = new List<byte>();
        var offsets = new Dictionary<string, int>();
        var linker = new BiosLinker();
        linker.Allocate(RsdpFile, 16, BiosLinker.Zone.FSeg);
        linker.Allocate(TablesFile, 64, BiosLinker.Zone.High);

        // FACS first: it must be 64-byte aligned, and the blob itself is.
        offsets["FACS"] = 0;
        byte[] facs = new byte[64];
        Encoding.ASCII.GetBytes("FACS", facs);
        BinaryPrimitives.WriteUInt32LittleEndian(facs.AsSpan(4), 64);
        blob.AddRange(facs);

        int dsdt = Add(blob, offsets, linker, Table("DSDT", 1, Dsdt(config)));

        byte[] fadt = Fadt(config);
        BinaryPrimitives.WriteUInt32LittleEndian(fadt.AsSpan(FadtFirmwareCtrl), (uint)offsets["FACS"]);
        BinaryPrimitives.WriteUInt32LittleEndian(fadt.AsSpan(FadtDsdt), (uint)dsdt);
        int facp = blob.Count;
        linker.AddPointer(TablesFile, TablesFile, (uint)(facp + FadtFirmwareCtrl), 4);
        linker.AddPointer(TablesFile, TablesFile, (uint)(facp + FadtDsdt), 4);
        Add(blob, offsets, linker, fadt);

        int apic = Add(blob, offsets, linker, Table("APIC", 1, Madt(config)));
        // WAET: "the PM timer is good" (one read suffices), which spares Windows guests extra reads; as QEMU.
        int waet = Add(blob, offsets, linker, Table("WAET", 1, [0x02, 0, 0, 0]));

        int[] entries = [facp, apic, waet];
        byte[] rsdtBody = new byte[4 * entries.Length];
        int rsdt = blob.Count;
        for (int i = 0; i < entries.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(rsdtBody.AsSpan(4 * i), (uint)entries[i]);
            linker.AddPointer(TablesFile, TablesFile, (uint)(rsdt + HeaderSize + 4 * i), 4);
        }
        Add(blob, offsets, linker, Table("RSDT", 1, rsdtBody));

        byte[] rsdp = new byte[20];
        Encoding.ASCII.GetBytes("RSD PTR ", rsdp);
        Encoding.ASCII.GetBytes("BOCHS ", rsdp.AsSpan(9));
        rsdp[15] = 0; // revision 0: ACPI 1.0, RSDT only
        BinaryPrimitives.WriteUInt32LittleEndian(rsdp.AsSpan(16), (uint)rsdt);
        linker.AddPointer(RsdpFile, TablesFile, 16, 4);
        linker.AddChecksum(RsdpFile, 8, 0, 20);

        byte[] tables = new byte[Math.Max(TablesBlobSize, blob.Count)];
        blob.CopyTo(tables);
        return new AcpiTableSet(tables, rsdp, linker.ToArray(), offsets);
    }

    /// <summary>Appends a table, records its offset and queues its checksum; returns the offset.</summary>
    private static int Add(List<byte> blob, Dictionary<string, int> offsets, BiosLinker linker, byte[] table)
    {
        int at = blob.Count;
        string signature = Encoding.ASCII.GetString(table, 0, 4);
        offsets[signature] = at;
        blob.AddRange(table);
        linker.AddChecksum(TablesFile, (uint)(at + 9), (uint)at, (uint)table.Length);
        return at;
    }

    /// <summary>A table: the standard header (checksum zero) followed by <paramref name="body"/>.</summary>
    public static byte[] Table(string signature, byte revision, ReadOnlySpan<byte> body)
    {
        byte[] t = new byte[HeaderSize + body.Length];
        Encoding.ASCII.GetBytes(signature, t);
        BinaryPrimitives.WriteUInt32LittleEndian(t.AsSpan(4), (uint)t.Length);
        t[8] = revision;
        Encoding.ASCII.GetBytes("BOCHS ", t.AsSpan(10));
        Encoding.ASCII.GetBytes("BXPC    ", t.AsSpan(16));
        BinaryPrimitives.WriteUInt32LittleEndian(t.AsSpan(24), 1);
        Encoding.ASCII.GetBytes("BXPC", t.AsSpan(28));
        BinaryPrimitives.WriteUInt32LittleEndian(t.AsSpan(32), 1);
        body.CopyTo(t.AsSpan(HeaderSize));
        return t;
    }

    /// <summary>FADT revision 1 (ACPI 1.0, 116 bytes) with QEMU 7.2 pc's values.</summary>
    private static byte[] Fadt(PcAcpiConfig c)
    {
        byte[] t = Table("FACP", 1, new byte[FadtLength - HeaderSize]);
        Span<byte> s = t;
        s[44] = 1; // INT_MODEL (ACPI 1.0: dual PIC/APIC model)
        s[45] = 0; // preferred PM profile: unspecified
        BinaryPrimitives.WriteUInt16LittleEndian(s[46..], SciIrq);
        BinaryPrimitives.WriteUInt32LittleEndian(s[48..], SmiCommandPort);
        s[52] = AcpiEnable;
        s[53] = AcpiDisable;
        BinaryPrimitives.WriteUInt32LittleEndian(s[56..], c.PmIoBase);         // PM1a_EVT_BLK
        BinaryPrimitives.WriteUInt32LittleEndian(s[64..], (uint)(c.PmIoBase + 4)); // PM1a_CNT_BLK
        BinaryPrimitives.WriteUInt32LittleEndian(s[76..], (uint)(c.PmIoBase + 8)); // PM_TMR_BLK
        BinaryPrimitives.WriteUInt32LittleEndian(s[80..], Gpe0Base);
        s[88] = 4; // PM1_EVT_LEN
        s[89] = 2; // PM1_CNT_LEN
        s[91] = 4; // PM_TMR_LEN
        s[92] = Gpe0Length;
        BinaryPrimitives.WriteUInt16LittleEndian(s[96..], 0x0FFF); // P_LVL2_LAT: C2 not supported
        BinaryPrimitives.WriteUInt16LittleEndian(s[98..], 0x0FFF); // P_LVL3_LAT: C3 not supported
        s[108] = 0x32; // CMOS century index
        BinaryPrimitives.WriteUInt32LittleEndian(s[112..], FadtFlags);
        return t;
    }

    /// <summary>MADT: local APICs, the IOAPIC (id 0, GSI base 0), IRQ0→GSI2 and the level PCI IRQs, LINT1 NMI.</summary>
    private static byte[] Madt(PcAcpiConfig c)
    {
        var b = new List<byte>();
        Span<byte> dword = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(dword, LocalApicAddress);
        b.AddRange(dword);
        BinaryPrimitives.WriteUInt32LittleEndian(dword, 1); // PCAT_COMPAT: 8259s present
        b.AddRange(dword);
        for (int i = 0; i < c.Cpus; i++)
        {
            b.AddRange([0, 8, (byte)i, (byte)i, 1, 0, 0, 0]);
        }
        b.AddRange([1, 12, 0, 0]);
        BinaryPrimitives.WriteUInt32LittleEndian(dword, IoApicAddress);
        b.AddRange(dword);
        b.AddRange([0, 0, 0, 0]);
        b.AddRange(Override(0, 2, 0));
        foreach (byte irq in (ReadOnlySpan<byte>)[5, 9, 10, 11])
        {
            b.AddRange(Override(irq, irq, 0x000D)); // active high, level triggered
        }
        b.AddRange([4, 6, 0xFF, 0, 0, 1]); // NMI on LINT1 of every processor
        return [.. b];

        static byte[] Override(byte source, uint gsi, ushort flags) =>
            [2, 10, 0, source, (byte)gsi, (byte)(gsi >> 8), (byte)(gsi >> 16), (byte)(gsi >> 24), (byte)flags, (byte)(flags >> 8)];
    }

    /// <summary>The DSDT's AML body.</summary>
    public static byte[] Dsdt(PcAcpiConfig c)
    {
        var isa = new List<byte[]>
        {
            Name("_ADR", Int(0x00010000)),
            OperationRegion("P40C", RegionSpace.PciConfig, 0x60, 4),
            Device("KBD", Name("_HID", EisaId("PNP0303")), Name("_STA", Int(0x0F)),
                Name("_CRS", ResourceTemplate(AmlResource.Io(0x60, 0x60, 1, 1), AmlResource.Io(0x64, 0x64, 1, 1), AmlResource.IrqNoFlags(1)))),
            Device("MOU", Name("_HID", EisaId("PNP0F13")), Name("_STA", Int(0x0F)),
                Name("_CRS", ResourceTemplate(AmlResource.IrqNoFlags(12)))),
            Device("RTC", Name("_HID", EisaId("PNP0B00")),
                Name("_CRS", ResourceTemplate(AmlResource.Io(0x70, 0x70, 1, 8), AmlResource.IrqNoFlags(8)))),
        };
        for (int i = 0; i < c.Serials.Count; i++)
        {
            (ushort port, int irq) = c.Serials[i];
            isa.Add(Device($"COM{i + 1}", Name("_HID", EisaId("PNP0501")), Name("_UID", Int((ulong)i + 1)), Name("_STA", Int(0x0F)),
                Name("_CRS", ResourceTemplate(AmlResource.Io(port, port, 0, 8), AmlResource.IrqNoFlags(irq)))));
        }

        ulong hole64Start = AlignUp(0x1_0000_0000UL + c.HighRamSize, 1UL << 30);
        byte[] pci0 = Device("PCI0",
            Name("_HID", EisaId("PNP0A03")),
            Name("_ADR", Int(0)),
            Name("_UID", Int(0)),
            Name("_CRS", ResourceTemplate(
                AmlResource.WordBusNumber(0, 0xFF),
                AmlResource.Io(0x0CF8, 0x0CF8, 1, 8),
                AmlResource.WordIo(0x0000, 0x0CF7),
                AmlResource.WordIo(0x0D00, 0xFFFF),
                AmlResource.DWordMemory(0x000A0000, 0x000BFFFF, cacheable: true),
                AmlResource.DWordMemory((uint)c.LowRamEnd, 0xFEBFFFFF, cacheable: false),
                AmlResource.QWordMemory(hole64Start, hole64Start + (1UL << 31) - 1))),
            Name("_PRT", Prt()),
            Device("ISA", [.. isa]),
            Device("GPE0", Name("_HID", String("PNP0A06")), Name("_UID", String("GPE0 resources")), Name("_STA", Int(0x0B)),
                Name("_CRS", ResourceTemplate(AmlResource.Io(Gpe0Base, Gpe0Base, 1, Gpe0Length)))),
            Device("FWCF", Name("_HID", String("QEMU0002")), Name("_STA", Int(0x0B)),
                Name("_CRS", ResourceTemplate(AmlResource.Io(0x0510, 0x0510, 1, 0x0C)))));

        var processors = new List<byte[]> { Name("_HID", String("ACPI0010")), Name("_CID", EisaId("PNP0A05")) };
        for (int i = 0; i < c.Cpus; i++)
        {
            processors.Add(Processor($"C{i:X3}", (byte)i, 0, 0,
                Name("_MAT", Buffer([0, 8, (byte)i, (byte)i, 1, 0, 0, 0]))));
        }

        return Concat(
            Scope("\\_SB",
                pci0,
                Field("PCI0.ISA.P40C", FieldAccess.Byte, ("PRQ0", 8), ("PRQ1", 8), ("PRQ2", 8), ("PRQ3", 8)),
                // IQST: a link is enabled (0x0B) unless its PIRQ route has the disable bit; IQCR: its current IRQ.
                Method("IQST", 1, false,
                    If(And(Int(0x80), Arg(0)), Return(Int(0x09))),
                    Return(Int(0x0B))),
                Method("IQCR", 1, true,
                    Name("PRR0", ResourceTemplate(AmlResource.InterruptLevelHighShared(0))),
                    CreateDWordField(NameString("PRR0"), Int(5), "PRRI"),
                    If(LLess(Arg(0), Int(0x80)), Store(Arg(0), NameString("PRRI"))),
                    Return(NameString("PRR0"))),
                Link("LNKA", 0),
                Link("LNKB", 1),
                Link("LNKC", 2),
                Link("LNKD", 3),
                // The SCI's link: hard-wired to IRQ 9, so nothing to set.
                Device("LNKS",
                    Name("_HID", EisaId("PNP0C0F")),
                    Name("_UID", Int(4)),
                    Name("_PRS", ResourceTemplate(AmlResource.InterruptLevelHighShared(9))),
                    Method("_STA", 0, false, Return(Int(0x0B))),
                    Method("_DIS", 0, false),
                    Method("_CRS", 0, false, Return(NameString("_PRS"))),
                    Method("_SRS", 1, false)),
                Device("CPUS", [.. processors])),
            Scope("\\_GPE", Name("_HID", String("ACPI0006"))),
            // Sleep types written to PM1a_CNT.SLP_TYP: S4 and S5 both end in a power-off, as on QEMU.
            Name("\\_S4", Package(Int(2), Int(2), Int(0), Int(0))),
            Name("\\_S5", Package(Int(0), Int(0), Int(0), Int(0))));
    }

    /// <summary>
    /// _PRT: every slot's INTA–INTD onto LNKA–LNKD with the board's swizzle (PIRQ = (slot + pin − 1) mod 4, so slot 0
    /// INTA is LNKD); slot 1 INTA, the PIIX4 PM function's pin, is LNKS (the SCI), as in QEMU.
    /// </summary>
    private static byte[] Prt()
    {
        string[] links = ["LNKA", "LNKB", "LNKC", "LNKD"];
        var entries = new byte[32 * 4][];
        for (int slot = 0; slot < 32; slot++)
        {
            for (int pin = 0; pin < 4; pin++)
            {
                string link = slot == 1 && pin == 0 ? "LNKS" : links[(slot + pin + 3) & 3];
                entries[slot * 4 + pin] = Package(Int(((ulong)slot << 16) | 0xFFFF), Int((ulong)pin), NameString(link), Int(0));
            }
        }
        return Package(entries);
    }

    /// <summary>A PCI interrupt link over PIIX3's PIRQ route register PRQn: IRQs 5, 10, 11 possible, as QEMU.</summary>
    private static byte[] Link(string name, int index)
    {
        string prq = $"PRQ{index}";
        return Device(name,
            Name("_HID", EisaId("PNP0C0F")),
            Name("_UID", Int((ulong)index)),
            Name("_PRS", ResourceTemplate(AmlResource.InterruptLevelHighShared(5, 10, 11))),
            Method("_STA", 0, false, Return(Concat(NameString("IQST"), NameString(prq)))),
            Method("_DIS", 0, false, Or(NameString(prq), Int(0x80), NameString(prq))),
            Method("_CRS", 0, false, Return(Concat(NameString("IQCR"), NameString(prq)))),
            Method("_SRS", 1, false,
                CreateDWordField(Arg(0), Int(5), "PRRI"),
                Store(NameString("PRRI"), NameString(prq))));
    }

    private static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) & ~(alignment - 1);
}
