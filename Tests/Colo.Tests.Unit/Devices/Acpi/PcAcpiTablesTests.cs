using System.Buffers.Binary;
using System.Text;
using Colo.Devices.Acpi;

namespace Colo.Tests.Unit.Devices.Acpi;

[TestFixture]
public sealed class PcAcpiTablesTests
{
    private const ulong TablesAt = 0x07FE_0000;
    private const ulong RsdpAt = 0xF_5A00;

    // Read from qemu-system-x86_64 7.2 (-M pc -nodefaults -S, fw_cfg etc/acpi/tables before SeaBIOS ran, so PMBA is 0):
    // the FADT and a one-CPU MADT, byte for byte, checksums still zero as QEMU publishes them.
    private const string QemuFadtPmBase0 =
        "46414350740000000100424f434853204258504320202020010000004258504301000000000000004000000001000900b2000000f1f00000"
        + "000000000000000004000000000000000000000008000000e0af0000000000000402000404000000ff0fff0f000000000000000032000000a5800000";
    private const string QemuMadtOneCpu =
        "41504943780000000100424f4348532042585043202020200100000042585043010000000000e0fe010000000008000001000000010c000000"
        + "00c0fe00000000020a0000020000000000020a0005050000000d00020a0009090000000d00020a000a0a0000000d00020a000b0b0000000d000406ff000001";
    private const string QemuMadtTwoCpus =
        "41504943800000000100424f4348532042585043202020200100000042585043010000000000e0fe0100000000080000010000000008010101"
        + "000000010c00000000c0fe00000000020a0000020000000000020a0005050000000d00020a0009090000000d00020a000a0a0000000d00020a"
        + "000b0b0000000d000406ff000001";
    private const string QemuWaet = "57414554280000000100424f43485320425850432020202001000000425850430100000002000000";

    private static PcAcpiConfig Config(int cpus = 1, ushort pm = 0, int serials = 0) =>
        new(cpus, pm, 128UL << 20, 0, serials == 0 ? [] : [(0x3F8, 4)]);

    private static byte[] TableAt(AcpiTableSet set, string signature)
    {
        int at = set.Offsets[signature];
        int length = BinaryPrimitives.ReadInt32LittleEndian(set.Tables.AsSpan(at + 4));
        return set.Tables.AsSpan(at, length).ToArray();
    }

    [Test]
    public void Fadt_Madt_Waet_AreByteIdenticalToQemu72()
    {
        AcpiTableSet one = PcAcpiTables.Build(Config());
        Assert.That(Convert.ToHexStringLower(TableAt(one, "FACP")), Is.EqualTo(QemuFadtPmBase0));
        Assert.That(Convert.ToHexStringLower(TableAt(one, "APIC")), Is.EqualTo(QemuMadtOneCpu));
        Assert.That(Convert.ToHexStringLower(TableAt(one, "WAET")), Is.EqualTo(QemuWaet));
        AcpiTableSet two = PcAcpiTables.Build(Config(cpus: 2));
        Assert.That(Convert.ToHexStringLower(TableAt(two, "APIC")), Is.EqualTo(QemuMadtTwoCpus));
    }

    [Test]
    public void Layout_FollowsQemu_FacsThenDsdtAt0x40()
    {
        AcpiTableSet set = PcAcpiTables.Build(Config());
        Assert.That(Encoding.ASCII.GetString(set.Tables, 0, 4), Is.EqualTo("FACS"));
        Assert.That(set.Offsets["DSDT"], Is.EqualTo(0x40));
        Assert.That(set.Tables, Has.Length.EqualTo(PcAcpiTables.TablesBlobSize));
        Assert.That(set.Rsdp, Has.Length.EqualTo(20));
        Assert.That(set.Loader, Has.Length.EqualTo(4096));
        Assert.That(set.Offsets.Keys, Is.EquivalentTo(new[] { "FACS", "DSDT", "FACP", "APIC", "WAET", "RSDT" }));
    }

    [Test]
    public void Loader_AllocatesLikeQemuAndChecksumsEveryTable()
    {
        AcpiTableSet set = PcAcpiTables.Build(Config());
        List<BiosLinker.Command> cmds = BiosLinker.Parse(set.Loader);
        Assert.That(cmds[0], Is.EqualTo(new BiosLinker.Command(BiosLinker.CommandAllocate, PcAcpiTables.RsdpFile, "", 0, 0, 0, 0, BiosLinker.Zone.FSeg, 16)));
        Assert.That(cmds[1], Is.EqualTo(new BiosLinker.Command(BiosLinker.CommandAllocate, PcAcpiTables.TablesFile, "", 0, 0, 0, 0, BiosLinker.Zone.High, 64)));
        foreach (string sig in new[] { "DSDT", "FACP", "APIC", "WAET", "RSDT" })
        {
            int at = set.Offsets[sig];
            int length = BinaryPrimitives.ReadInt32LittleEndian(set.Tables.AsSpan(at + 4));
            Assert.That(cmds, Has.One.EqualTo(new BiosLinker.Command(BiosLinker.CommandAddChecksum, PcAcpiTables.TablesFile, "", (uint)(at + 9), (uint)at, (uint)length, 0, 0, 0)), sig);
        }
        Assert.That(cmds[^1], Is.EqualTo(new BiosLinker.Command(BiosLinker.CommandAddChecksum, PcAcpiTables.RsdpFile, "", 8, 0, 20, 0, 0, 0)));
        // FADT's two pointers, RSDT's three entries and the RSDP's RSDT pointer.
        Assert.That(cmds.Count(c => c.Kind == BiosLinker.CommandAddPointer), Is.EqualTo(6));
    }

    [Test]
    public void AfterTheLoaderRuns_ChecksumsAreZeroAndPointersResolve()
    {
        AcpiTableSet set = PcAcpiTables.Build(Config(cpus: 4, pm: 0x600, serials: 1));
        BiosLinker.Run(set.Loader, new Dictionary<string, (byte[], ulong)>
        {
            [PcAcpiTables.TablesFile] = (set.Tables, TablesAt),
            [PcAcpiTables.RsdpFile] = (set.Rsdp, RsdpAt),
        });
        Assert.That(Encoding.ASCII.GetString(set.Rsdp, 0, 8), Is.EqualTo("RSD PTR "));
        Assert.That(BiosLinker.Sum(set.Rsdp), Is.Zero);
        Assert.That(set.Rsdp[15], Is.Zero, "RSDP revision 0, as QEMU's pc");
        ulong rsdt = BinaryPrimitives.ReadUInt32LittleEndian(set.Rsdp.AsSpan(16));
        byte[] rsdtTable = Table(set, rsdt, "RSDT");
        var found = new List<string>();
        for (int i = 36; i < rsdtTable.Length; i += 4)
        {
            ulong entry = BinaryPrimitives.ReadUInt32LittleEndian(rsdtTable.AsSpan(i));
            byte[] t = Table(set, entry, null);
            found.Add(Encoding.ASCII.GetString(t, 0, 4));
        }
        Assert.That(found, Is.EqualTo(new[] { "FACP", "APIC", "WAET" }));
        byte[] fadt = Table(set, BinaryPrimitives.ReadUInt32LittleEndian(rsdtTable.AsSpan(36)), "FACP");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fadt.AsSpan(36)), Is.EqualTo(TablesAt + (ulong)set.Offsets["FACS"]));
        byte[] dsdt = Table(set, BinaryPrimitives.ReadUInt32LittleEndian(fadt.AsSpan(40)), "DSDT");
        Assert.That(dsdt[8], Is.EqualTo(1), "DSDT revision 1: 32-bit integers");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fadt.AsSpan(56)), Is.EqualTo(0x600u), "PM1a_EVT_BLK");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fadt.AsSpan(64)), Is.EqualTo(0x604u), "PM1a_CNT_BLK");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fadt.AsSpan(76)), Is.EqualTo(0x608u), "PM_TMR_BLK");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fadt.AsSpan(80)), Is.EqualTo(0xAFE0u), "GPE0_BLK");
        Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(fadt.AsSpan(46)), Is.EqualTo(9), "SCI_INT");
    }

    /// <summary>The table at guest address <paramref name="address"/> (inside the placed blob), checked to sum to zero.</summary>
    private static byte[] Table(AcpiTableSet set, ulong address, string? signature)
    {
        int at = (int)(address - TablesAt);
        int length = BinaryPrimitives.ReadInt32LittleEndian(set.Tables.AsSpan(at + 4));
        byte[] t = set.Tables.AsSpan(at, length).ToArray();
        if (signature is not null)
        {
            Assert.That(Encoding.ASCII.GetString(t, 0, 4), Is.EqualTo(signature));
        }
        Assert.That(BiosLinker.Sum(t), Is.Zero, $"{Encoding.ASCII.GetString(t, 0, 4)} checksum");
        return t;
    }

    [Test]
    public void Dsdt_DecodesBackToTheExpectedNamespace()
    {
        byte[] aml = PcAcpiTables.Dsdt(Config(cpus: 2, serials: 1));
        var walker = new AmlWalker();
        walker.Walk(aml, "\\");
        Assert.That(walker.Objects, Is.SupersetOf(new[]
        {
            "\\_SB_.PCI0", "\\_SB_.PCI0._HID", "\\_SB_.PCI0._CRS", "\\_SB_.PCI0._PRT",
            "\\_SB_.PCI0.ISA_.P40C", "\\_SB_.PCI0.ISA_.KBD_", "\\_SB_.PCI0.ISA_.MOU_", "\\_SB_.PCI0.ISA_.RTC_",
            "\\_SB_.PCI0.ISA_.COM1._CRS", "\\_SB_.PCI0.FWCF._HID",
            "\\_SB_.PRQ0", "\\_SB_.PRQ3", "\\_SB_.IQST", "\\_SB_.IQCR",
            "\\_SB_.LNKA._PRS", "\\_SB_.LNKA._CRS", "\\_SB_.LNKA._SRS", "\\_SB_.LNKD._DIS", "\\_SB_.LNKS._STA",
            "\\_SB_.CPUS.C000", "\\_SB_.CPUS.C001", "\\_GPE._HID", "\\_S4_", "\\_S5_",
        }));
        Assert.That(walker.Objects, Has.None.EqualTo("\\_S3_"), "S3 is not emulated");
        Assert.That(walker.Objects, Has.None.EqualTo("\\_SB_.CPUS.C002"));
        Assert.That(walker.Values["\\_S5_"], Is.EqualTo(new byte[] { 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00 }));
        Assert.That(walker.Values["\\_SB_.PCI0._PRT"][0], Is.EqualTo(0x12));
    }

    [Test]
    public void Prt_RoutesSlotsWithTheBoardSwizzle()
    {
        byte[] aml = PcAcpiTables.Dsdt(Config());
        var walker = new AmlWalker();
        walker.Walk(aml, "\\");
        byte[] prt = walker.Values["\\_SB_.PCI0._PRT"];
        List<(uint Address, int Pin, string Link)> entries = AmlWalker.PrtEntries(prt);
        Assert.That(entries, Has.Count.EqualTo(128));
        Assert.That(entries[0], Is.EqualTo((0x0000FFFFu, 0, "LNKD")));
        Assert.That(entries[4], Is.EqualTo((0x0001FFFFu, 0, "LNKS")), "slot 1 INTA is the SCI's link");
        Assert.That(entries[5], Is.EqualTo((0x0001FFFFu, 1, "LNKB")));
        Assert.That(entries[3 * 4 + 0], Is.EqualTo((0x0003FFFFu, 0, "LNKC")));
        Assert.That(entries[3 * 4 + 3], Is.EqualTo((0x0003FFFFu, 3, "LNKB")));
    }

    /// <summary>
    /// Decodes the namespace-level terms of an AML stream (Scope, Device, Processor, Method, Name, OperationRegion,
    /// Field), checking that every package length ends exactly where its parent expects, and records each named
    /// object's full path (and Name values).
    /// </summary>
    private sealed class AmlWalker
    {
        public List<string> Objects { get; } = [];

        public Dictionary<string, byte[]> Values { get; } = [];

        public void Walk(ReadOnlySpan<byte> aml, string scope)
        {
            int at = 0;
            while (at < aml.Length)
            {
                byte op = aml[at++];
                switch (op)
                {
                    case 0x10: // Scope
                    {
                        int end = PkgEnd(aml, ref at);
                        string path = ReadName(aml, ref at, scope);
                        Walk(aml[at..end], path);
                        at = end;
                        break;
                    }
                    case 0x14: // Method
                    {
                        int end = PkgEnd(aml, ref at);
                        Objects.Add(ReadName(aml, ref at, scope));
                        at = end;
                        break;
                    }
                    case 0x08: // Name
                    {
                        string path = ReadName(aml, ref at, scope);
                        int start = at;
                        SkipData(aml, ref at);
                        Objects.Add(path);
                        Values[path] = aml[start..at].ToArray();
                        break;
                    }
                    case 0x5B:
                    {
                        byte ext = aml[at++];
                        switch (ext)
                        {
                            case 0x80: // OperationRegion name space offset length
                                Objects.Add(ReadName(aml, ref at, scope));
                                at++;
                                SkipData(aml, ref at);
                                SkipData(aml, ref at);
                                break;
                            case 0x81: // Field
                            {
                                int end = PkgEnd(aml, ref at);
                                string region = ReadName(aml, ref at, scope);
                                Assert.That(region, Is.Not.Empty);
                                at++; // flags
                                while (at < end)
                                {
                                    if (aml[at] == 0)
                                    {
                                        at++;
                                    }
                                    else
                                    {
                                        Objects.Add(Join(scope, Encoding.ASCII.GetString(aml.Slice(at, 4))));
                                        at += 4;
                                    }
                                    FieldBits(aml, ref at);
                                }
                                Assert.That(at, Is.EqualTo(end), "field list length");
                                break;
                            }
                            case 0x82: // Device
                            case 0x83: // Processor
                            {
                                int end = PkgEnd(aml, ref at);
                                string path = ReadName(aml, ref at, scope);
                                Objects.Add(path);
                                if (ext == 0x83)
                                {
                                    at += 6;
                                }
                                Walk(aml[at..end], path);
                                at = end;
                                break;
                            }
                            default:
                                Assert.Fail($"unexpected extended opcode 0x{ext:x2} at {at - 1}");
                                break;
                        }
                        break;
                    }
                    default:
                        Assert.Fail($"unexpected namespace-level opcode 0x{op:x2} at {at - 1} in {scope}");
                        break;
                }
            }
            Assert.That(at, Is.EqualTo(aml.Length), $"terms of {scope} end at the package end");
        }

        public static List<(uint Address, int Pin, string Link)> PrtEntries(byte[] prt)
        {
            var list = new List<(uint, int, string)>();
            int at = 1;
            int end = PkgEnd(prt, ref at);
            int count = prt[at++];
            for (int i = 0; i < count; i++)
            {
                Assert.That(prt[at++], Is.EqualTo(0x12));
                int entryEnd = PkgEnd(prt, ref at);
                Assert.That(prt[at++], Is.EqualTo(4));
                uint address = (uint)ReadInt(prt, ref at);
                int pin = (int)ReadInt(prt, ref at);
                string link = Encoding.ASCII.GetString(prt, at, 4);
                at += 4;
                Assert.That(ReadInt(prt, ref at), Is.Zero);
                Assert.That(at, Is.EqualTo(entryEnd));
                list.Add((address, pin, link));
            }
            Assert.That(at, Is.EqualTo(end));
            return list;
        }

        private static ulong ReadInt(ReadOnlySpan<byte> aml, ref int at)
        {
            byte op = aml[at++];
            int size = op switch { 0x00 or 0x01 => 0, 0x0A => 1, 0x0B => 2, 0x0C => 4, 0x0E => 8, _ => -1 };
            Assert.That(size, Is.Not.Negative, $"integer opcode 0x{op:x2}");
            ulong v = op == 0x01 ? 1UL : 0UL;
            for (int i = 0; i < size; i++)
            {
                v |= (ulong)aml[at++] << (8 * i);
            }
            return v;
        }

        private static void SkipData(ReadOnlySpan<byte> aml, ref int at)
        {
            byte op = aml[at];
            switch (op)
            {
                case 0x0D:
                    at = aml[at..].IndexOf((byte)0) + at + 1;
                    return;
                case 0x11 or 0x12:
                    at++;
                    at = PkgEnd(aml, ref at);
                    return;
                default:
                    ReadInt(aml, ref at);
                    return;
            }
        }

        /// <summary>Reads a PkgLength at <paramref name="at"/> (just after the opcode); returns the package's end.</summary>
        private static int PkgEnd(ReadOnlySpan<byte> aml, ref int at)
        {
            int start = at;
            byte lead = aml[at++];
            int extra = lead >> 6;
            int length = extra == 0 ? lead & 0x3F : lead & 0x0F;
            for (int i = 0; i < extra; i++)
            {
                length |= aml[at++] << (4 + 8 * i);
            }
            int end = start + length;
            Assert.That(end, Is.LessThanOrEqualTo(aml.Length), "package runs past its parent");
            return end;
        }

        private static void FieldBits(ReadOnlySpan<byte> aml, ref int at)
        {
            byte lead = aml[at++];
            at += lead >> 6;
        }

        private static string ReadName(ReadOnlySpan<byte> aml, ref int at, string scope)
        {
            string prefix = scope;
            if (aml[at] == 0x5C)
            {
                prefix = "\\";
                at++;
            }
            int count = 1;
            if (aml[at] == 0x2E)
            {
                count = 2;
                at++;
            }
            else if (aml[at] == 0x2F)
            {
                count = aml[at + 1];
                at += 2;
            }
            else if (aml[at] == 0)
            {
                at++;
                return prefix;
            }
            string path = prefix;
            for (int i = 0; i < count; i++)
            {
                path = Join(path, Encoding.ASCII.GetString(aml.Slice(at, 4)));
                at += 4;
            }
            return path;
        }

        private static string Join(string scope, string seg) => scope == "\\" ? "\\" + seg : scope + "." + seg;
    }
}
