using System.Buffers.Binary;
using Colo.Block;
using Colo.Block.Graph;
using Colo.Devices.Ide;
using Colo.Devices.Pci;
using static Colo.Devices.Ide.AtaChannel;

namespace Colo.Tests.Unit.Devices.Ide;

[TestFixture]
public sealed class Piix3IdeTests
{
    private const int DiskSize = 100 << 20;
    private const ushort Cmd = IdeHarness.Cmd;
    private const ushort Ctl = IdeHarness.Ctl;

    private IdeHarness _h = null!;
    private IdeTestNode _disk = null!;

    [SetUp]
    public void SetUp()
    {
        _h = new IdeHarness();
        _disk = new IdeTestNode(DiskSize);
        _disk.Pattern(300);
        _h.Ide.Attach(0, 0, _disk);
    }

    [TearDown]
    public void TearDown() => _disk.Dispose();

    private byte[] Sector(long sector, int count = 1) => _disk.Data.AsSpan((int)(sector * 512), count * 512).ToArray();

    // ---- Identity and IDENTIFY ----

    [Test]
    public void PciConfig_IdentifiesPiix3Ide()
    {
        Assert.That(_h.Ide.ReadConfigDword(PciDevice.VendorId), Is.EqualTo(0x7010_8086u));
        Assert.That(_h.Ide.ReadConfigDword(PciDevice.RevisionId), Is.EqualTo(0x0101_8000u), "class 0101h, prog-if 80h");
        Assert.That(_h.Ide.Config[PciDevice.InterruptPin], Is.Zero, "legacy mode: ISA IRQ 14/15, no INTx");
        Assert.That(_h.Ide.ReadConfigDword(0x20), Is.EqualTo(IdeHarness.Bm | 1u));
        _h.Bus.ConfigWrite(IdeHarness.DevFn, 0x20, 4, 0xFFFF_FFFF);
        Assert.That(_h.Ide.ReadConfigDword(0x20), Is.EqualTo(0xFFFF_FFF1u), "BAR4 sizes as 16 bytes of I/O");
    }

    /// <summary>Every word of IDENTIFY DEVICE for a blank 100 MiB raw disk, as QEMU 7.2 returns it for the primary master.</summary>
    [Test]
    public void Identify_100MiB_MatchesQemu()
    {
        var expected = new Dictionary<int, ushort>
        {
            [0] = 0x0040, [1] = 0x00CB, [3] = 0x0010, [4] = 0x7E00, [5] = 0x0200, [6] = 0x003F, [10] = 0x514D,
            [11] = 0x3030, [12] = 0x3030, [13] = 0x3120, [14] = 0x2020, [15] = 0x2020, [16] = 0x2020, [17] = 0x2020,
            [18] = 0x2020, [19] = 0x2020, [20] = 0x0003, [21] = 0x0200, [22] = 0x0004, [23] = 0x322E, [24] = 0x352B,
            [25] = 0x2020, [26] = 0x2020, [27] = 0x5145, [28] = 0x4D55, [29] = 0x2048, [30] = 0x4152, [31] = 0x4444,
            [32] = 0x4953, [33] = 0x4B20, [34] = 0x2020, [35] = 0x2020, [36] = 0x2020, [37] = 0x2020, [38] = 0x2020,
            [39] = 0x2020, [40] = 0x2020, [41] = 0x2020, [42] = 0x2020, [43] = 0x2020, [44] = 0x2020, [45] = 0x2020,
            [46] = 0x2020, [47] = 0x8010, [48] = 0x0001, [49] = 0x0B00, [51] = 0x0200, [52] = 0x0200, [53] = 0x0007,
            [54] = 0x00CB, [55] = 0x0010, [56] = 0x003F, [57] = 0x1F50, [58] = 0x0003, [59] = 0x0110, [60] = 0x2000,
            [61] = 0x0003, [62] = 0x0007, [63] = 0x0007, [64] = 0x0003, [65] = 0x0078, [66] = 0x0078, [67] = 0x0078,
            [68] = 0x0078, [69] = 0x4000, [80] = 0x00F0, [81] = 0x0016, [82] = 0x4021, [83] = 0x7400, [84] = 0x4000,
            [85] = 0x4021, [86] = 0x3400, [87] = 0x4000, [88] = 0x203F, [93] = 0x6001, [100] = 0x2000, [101] = 0x0003,
            [106] = 0x6000, [169] = 0x0001,
        };
        _h.Out(Cmd + 6, 0xA0);
        ushort[] words = _h.Identify();
        for (int i = 0; i < 256; i++)
        {
            Assert.That(words[i], Is.EqualTo(expected.GetValueOrDefault(i)), $"word {i}");
        }
        Assert.That(_h.Status, Is.EqualTo(0x50), "DRQ clears after the block");
    }

    [Test]
    public void Identify_DrqAndIrq_StatusDuringTransfer()
    {
        _h.Out(Cmd + 7, CmdIdentifyDevice);
        Assert.That(_h.AltStatus, Is.EqualTo(StatusDrdy | StatusDsc | StatusDrq));
        Assert.That(_h.Irq14.Level, Is.True);
        _h.ReadData(512);
        Assert.That(_h.AltStatus, Is.EqualTo(StatusDrdy | StatusDsc));
        Assert.That(_h.Irq14.Level, Is.True, "no interrupt acknowledge by data or alternate status reads");
        _ = _h.Status;
        Assert.That(_h.Irq14.Level, Is.False);
    }

    [Test]
    public void Identify_LargeDisk_ClampsCylindersAndLba28()
    {
        var h = new IdeHarness();
        long sectors = 600_000_000L;
        h.Ide.Attach(0, 0, new PatternNode(sectors * 512));
        ushort[] w = h.Identify();
        Assert.That(w[1], Is.EqualTo(16383));
        Assert.That(w[60] | (w[61] << 16), Is.EqualTo((1 << 28) - 1));
        Assert.That(w[100] | ((long)w[101] << 16) | ((long)w[102] << 32), Is.EqualTo(sectors));
        Assert.That(w[57] | (w[58] << 16), Is.EqualTo(16383 * 16 * 63));
    }

    [Test]
    public void Identify_MbrWithFourHeads_UsesPartitionGeometry()
    {
        var h = new IdeHarness();
        var node = new IdeTestNode(DiskSize);
        node.Data[0x1BE + 5] = 3; // ending head
        node.Data[0x1BE + 6] = 17; // ending sector
        BinaryPrimitives.WriteUInt32LittleEndian(node.Data.AsSpan(0x1BE + 12), 1000);
        node.Data[510] = 0x55;
        node.Data[511] = 0xAA;
        h.Ide.Attach(0, 0, node);
        ushort[] w = h.Identify();
        // QEMU 7.2 reports 3011/4/17 for this image (cylinders = 204800 / (4 * 17)).
        Assert.That((w[1], w[3], w[6]), Is.EqualTo(((ushort)3011, (ushort)4, (ushort)17)));
    }

    [Test]
    public void Identify_SerialAndModel_FromAttach()
    {
        var h = new IdeHarness();
        h.Ide.Attach(1, 0, new IdeTestNode(1 << 20), serial: "ABC", model: "Disk");
        h.Out(IdeHarness.Cmd2 + 7, CmdIdentifyDevice);
        byte[] b = new byte[512];
        for (int i = 0; i < 512; i += 2)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(i), h.InW(IdeHarness.Cmd2));
        }
        Assert.That(b[20..26], Is.EqualTo("BA C  "u8.ToArray()), "ATA strings swap each byte pair");
        Assert.That(b[54..58], Is.EqualTo("iDks"u8.ToArray()));
        Assert.That(h.Ide.Secondary.Drive(0)!.Serial, Is.EqualTo("ABC"));
        Assert.That(_h.Ide.Primary.Drive(0)!.Serial, Is.EqualTo("QM00001"));
    }

    [Test]
    public void Attach_ReadOnly_RefusedAsQemu()
    {
        var h = new IdeHarness();
        Assert.That(() => h.Ide.Attach(0, 1, new IdeTestNode(4096), readOnly: true),
            Throws.ArgumentException.With.Message.EqualTo("Can't use a read-only drive"));
        Assert.That(() => _h.Ide.Attach(0, 0, new IdeTestNode(4096)), Throws.ArgumentException);
    }

    // ---- Registers, selection, absent devices ----

    [Test]
    public void PowerOn_Registers_Signature()
    {
        byte[] regs = [.. Enumerable.Range(1, 6).Select(i => _h.In((ushort)(Cmd + i)))];
        Assert.That(regs, Is.EqualTo(new byte[] { 0x00, 0x01, 0x01, 0x00, 0x00, 0xA0 }));
        Assert.That(_h.Status, Is.EqualTo(0x50));
        Assert.That(_h.AltStatus, Is.EqualTo(0x50));
    }

    [Test]
    public void AbsentSlave_StatusZero_TaskFileShowsAbsentSignature_CommandsIgnored()
    {
        _h.Out(Cmd + 6, 0xB0);
        byte[] regs = [.. Enumerable.Range(1, 7).Select(i => _h.In((ushort)(Cmd + i)))];
        // QEMU 7.2: error 0, count 1, LBA low 1, mid/high FFh, device B0h, status 0.
        Assert.That(regs, Is.EqualTo(new byte[] { 0x00, 0x01, 0x01, 0xFF, 0xFF, 0xB0, 0x00 }));
        Assert.That(_h.AltStatus, Is.Zero);
        _h.Out(Cmd + 7, CmdIdentifyDevice);
        Assert.That(_h.Irq14.Changes, Is.Empty);
        Assert.That(_h.Status, Is.Zero);
        _h.Out(Cmd + 6, 0xA0);
        Assert.That(_h.Status, Is.EqualTo(0x50), "the master is untouched");
    }

    [Test]
    public void EmptyChannel_ReadsZero()
    {
        for (int i = 1; i < 8; i++)
        {
            Assert.That(_h.In((ushort)(IdeHarness.Cmd2 + i)), Is.Zero, $"register {i}");
        }
        Assert.That(_h.In(IdeHarness.Ctl2), Is.Zero);
        Assert.That(_h.In(Cmd), Is.EqualTo(0xFF), "byte access to the data port");
    }

    [Test]
    public void TaskFile_WrittenToBothDevices_HobReadsPreviousValue()
    {
        var h = new IdeHarness();
        h.Ide.Attach(0, 0, new IdeTestNode(1 << 20));
        h.Ide.Attach(0, 1, new IdeTestNode(1 << 20));
        h.Out(Cmd + 3, 0x11);
        h.Out(Cmd + 3, 0x22);
        h.Out(Cmd + 6, 0xB0);
        Assert.That(h.In(Cmd + 3), Is.EqualTo(0x22), "the slave latched the master's write");
        h.Out(Ctl, ControlHob);
        Assert.That(h.In(Cmd + 3), Is.EqualTo(0x11));
        h.Out(Cmd + 4, 0);
        Assert.That(h.In(Cmd + 3), Is.EqualTo(0x22), "any task-file write clears HOB");
    }

    // ---- PIO ----

    [Test]
    public void ReadSectors_Lba28_TwoBlocks_IrqPerBlock_RegistersAdvance()
    {
        _h.Lba28(CmdReadSectors, 5, 2);
        Assert.That(_h.AltStatus, Is.EqualTo(0x58));
        Assert.That(_h.In(Cmd + 2), Is.EqualTo(1), "count already counts the offered block");
        Assert.That(_h.In(Cmd + 3), Is.EqualTo(6));
        Assert.That(_h.Irq14.RisingEdges, Is.EqualTo(1));
        _ = _h.Status;
        Assert.That(_h.ReadData(512), Is.EqualTo(Sector(5)));
        Assert.That(_h.Irq14.RisingEdges, Is.EqualTo(2), "the next block interrupts as soon as it is offered");
        _ = _h.Status;
        Assert.That(_h.ReadData(512), Is.EqualTo(Sector(6)));
        Assert.That(_h.Irq14.RisingEdges, Is.EqualTo(2), "no interrupt after the last block of a read");
        Assert.That(_h.Status, Is.EqualTo(0x50));
        Assert.That((_h.In(Cmd + 2), _h.In(Cmd + 3)), Is.EqualTo(((byte)0, (byte)7)));
        Assert.That(_h.InW(Cmd), Is.Zero, "no DRQ: data reads zero");
    }

    [Test]
    public void ReadSectors_DwordDataAccess()
    {
        _h.Lba28(CmdReadSectors, 9, 1);
        byte[] got = new byte[512];
        for (int i = 0; i < 512; i += 4)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(got.AsSpan(i), _h.InL(Cmd));
        }
        Assert.That(got, Is.EqualTo(Sector(9)));
        Assert.That(_h.Status, Is.EqualTo(0x50));
    }

    [Test]
    public void ReadSectors_CountZeroMeans256()
    {
        _h.Lba28(CmdReadSectors, 0, 0);
        for (int s = 0; s < 256; s++)
        {
            Assert.That(_h.ReadData(512), Is.EqualTo(Sector(s)), $"sector {s}");
            _ = _h.Status;
        }
        Assert.That(_h.Status, Is.EqualTo(0x50));
    }

    [Test]
    public void WriteSectors_Lba28_RoundTrip_IrqAfterEachBlock()
    {
        byte[] data = [.. Enumerable.Range(0, 1024).Select(i => (byte)(i * 3 + 1))];
        _h.Lba28(CmdWriteSectors, 40, 2);
        Assert.That(_h.AltStatus, Is.EqualTo(0x58));
        Assert.That(_h.Irq14.Changes, Is.Empty, "the first block is requested without an interrupt");
        _h.WriteData(data.AsSpan(0, 512));
        Assert.That(_h.Irq14.Level, Is.True);
        Assert.That(_h.Status, Is.EqualTo(0x58));
        _h.WriteData(data.AsSpan(512));
        Assert.That(_h.Irq14.Level, Is.True);
        Assert.That(_h.Status, Is.EqualTo(0x50));
        Assert.That(Sector(40, 2), Is.EqualTo(data));
        Assert.That(_h.In(Cmd + 3), Is.EqualTo(42));
        _h.Lba28(CmdReadSectors, 41, 1);
        Assert.That(_h.ReadData(512), Is.EqualTo(data[512..]));
    }

    [Test]
    public void Lba48_ReadAndWrite_UseHighOrderBytes()
    {
        var h = new IdeHarness();
        var node = new PatternNode(1L << 42);
        h.Ide.Attach(0, 0, node);
        const ulong lba = 0x1_2345_6789;
        h.Lba48(CmdReadSectorsExt, lba, 1);
        byte[] got = h.ReadData(512);
        Assert.That(got, Is.EqualTo(PatternNode.Expected((long)lba * 512, 512)));
        Assert.That(h.In(Cmd + 3), Is.EqualTo(0x8A), "LBA advanced to ...678A");
        h.Out(Ctl, ControlHob);
        Assert.That(h.In(Cmd + 3), Is.EqualTo(0x23));
        Assert.That(h.In(Cmd + 4), Is.EqualTo(0x01));
        h.Out(Ctl, 0);

        h.Lba48(CmdWriteSectorsExt, lba + 1, 1);
        h.WriteData(new byte[512]);
        Assert.That(node.LastWrite, Is.EqualTo(((long)(lba + 1) * 512, 512)));
    }

    [Test]
    public void ReadMultiple_BlocksOfMultipleSize()
    {
        _h.Out(Cmd + 2, 4);
        _h.Out(Cmd + 7, CmdSetMultipleMode);
        Assert.That(_h.Status, Is.EqualTo(0x50));
        _h.Lba28(CmdReadMultiple, 10, 6);
        Assert.That(_h.In(Cmd + 2), Is.EqualTo(2));
        Assert.That(_h.ReadData(4 * 512), Is.EqualTo(Sector(10, 4)));
        Assert.That(_h.AltStatus, Is.EqualTo(0x58));
        _ = _h.Status;
        Assert.That(_h.ReadData(2 * 512), Is.EqualTo(Sector(14, 2)));
        Assert.That(_h.Irq14.RisingEdges, Is.EqualTo(2));
        Assert.That(_h.Status, Is.EqualTo(0x50));
    }

    [Test]
    public void WriteMultipleExt_RoundTrip()
    {
        _h.Out(Cmd + 2, 2);
        _h.Out(Cmd + 7, CmdSetMultipleMode);
        byte[] data = [.. Enumerable.Range(0, 3 * 512).Select(i => (byte)(i ^ 0x5A))];
        _h.Lba48(CmdWriteMultipleExt, 100, 3);
        _h.WriteData(data.AsSpan(0, 1024));
        Assert.That(_h.Status, Is.EqualTo(0x58));
        _h.WriteData(data.AsSpan(1024));
        Assert.That(_h.Status, Is.EqualTo(0x50));
        Assert.That(Sector(100, 3), Is.EqualTo(data));
        Assert.That(_h.Irq14.RisingEdges, Is.EqualTo(3), "set multiple, then one per block");
    }

    [Test]
    public void SetMultipleMode_Invalid_Aborts_ZeroDisablesMultiple()
    {
        foreach (byte bad in new byte[] { 3, 32 })
        {
            _h.Out(Cmd + 2, bad);
            _h.Out(Cmd + 7, CmdSetMultipleMode);
            Assert.That((_h.Status, _h.Error), Is.EqualTo(((byte)0x41, ErrorAbrt)));
        }
        _h.Out(Cmd + 2, 0);
        _h.Out(Cmd + 7, CmdSetMultipleMode);
        Assert.That(_h.Status, Is.EqualTo(0x50));
        _h.Lba28(CmdReadMultiple, 0, 1);
        Assert.That((_h.Status, _h.Error), Is.EqualTo(((byte)0x41, ErrorAbrt)));
    }

    [Test]
    public void TaskFileWrites_IgnoredWhileDrq()
    {
        _h.Lba28(CmdWriteSectors, 1, 1);
        _h.Out(Cmd + 2, 9);
        Assert.That(_h.In(Cmd + 2), Is.EqualTo(1));
        _h.Out(Cmd + 7, CmdIdentifyDevice);
        Assert.That(_h.Status, Is.EqualTo(0x58), "command ignored while DRQ");
    }

    [Test]
    public void InitializeDeviceParameters_ChangesChsTranslation()
    {
        _h.Out(Cmd + 6, 0xA3);
        _h.Out(Cmd + 2, 17);
        _h.Out(Cmd + 7, CmdInitializeParameters);
        Assert.That(_h.Status, Is.EqualTo(0x50));
        // CHS cylinder 0, head 1, sector 1 with 4 heads x 17 sectors is LBA 17 (QEMU 7.2 reads sector 17 here).
        _h.Out(Cmd + 6, 0xA1);
        _h.Out(Cmd + 2, 1);
        _h.Out(Cmd + 3, 1);
        _h.Out(Cmd + 4, 0);
        _h.Out(Cmd + 5, 0);
        _h.Out(Cmd + 7, CmdReadSectors);
        Assert.That(_h.ReadData(512), Is.EqualTo(Sector(17)));
        Assert.That((_h.In(Cmd + 3), _h.In(Cmd + 6)), Is.EqualTo(((byte)2, (byte)0xA1)));
    }

    [Test]
    public void ChsRead_DefaultGeometry()
    {
        _h.Out(Cmd + 6, 0xA1);
        _h.Out(Cmd + 2, 1);
        _h.Out(Cmd + 3, 2);
        _h.Out(Cmd + 4, 0);
        _h.Out(Cmd + 5, 0);
        _h.Out(Cmd + 7, CmdReadSectors);
        Assert.That(_h.ReadData(512), Is.EqualTo(Sector(64)), "head 1 sector 2 with 63 sectors per track");
    }

    // ---- Errors ----

    [Test]
    public void ReadSectors_OutOfRange_AbortsLikeQemu()
    {
        _h.Lba28(CmdReadSectors, DiskSize / 512, 1);
        // QEMU 7.2 reports ABRT (not IDNF) for a range past the end, with the task file unchanged.
        Assert.That((_h.Error, _h.AltStatus), Is.EqualTo((ErrorAbrt, (byte)0x41)));
        Assert.That(_h.Irq14.Level, Is.True);
        Assert.That(_h.In(Cmd + 5), Is.EqualTo(0x03));
        Assert.That(_h.InW(Cmd), Is.Zero);
    }

    [Test]
    public void WriteSectors_OutOfRange_AbortsAfterTheData()
    {
        _h.Lba28(CmdWriteSectors, (DiskSize / 512) - 1, 2);
        _h.WriteData(new byte[512]);
        Assert.That(_h.Status, Is.EqualTo(0x58), "first sector is in range");
        Assert.That(_h.In(Cmd + 2), Is.EqualTo(1));
        _h.WriteData(new byte[512]);
        // The range is checked per DRQ block, once its data has arrived: the second sector is past the end.
        Assert.That((_h.Error, _h.Status), Is.EqualTo((ErrorAbrt, (byte)0x41)));
        Assert.That(_h.InW(Cmd), Is.Zero);
    }

    [Test]
    public void IoErrors_ReportedAsAbort()
    {
        _disk.FailReads = true;
        _h.Lba28(CmdReadSectors, 0, 1);
        Assert.That((_h.Error, _h.Status), Is.EqualTo((ErrorAbrt, (byte)0x41)));
        _disk.FailReads = false;
        _disk.FailWrites = true;
        _h.Lba28(CmdWriteSectors, 0, 1);
        _h.WriteData(new byte[512]);
        Assert.That((_h.Error, _h.Status), Is.EqualTo((ErrorAbrt, (byte)0x41)));
        _disk.FailFlush = true;
        _h.Out(Cmd + 7, CmdFlushCache);
        Assert.That((_h.Error, _h.Status), Is.EqualTo((ErrorAbrt, (byte)0x41)));
    }

    [TestCase((byte)0x00)]
    [TestCase((byte)0x08)]
    [TestCase((byte)0x11)]
    [TestCase((byte)0xA0)]
    [TestCase((byte)0xB0)]
    [TestCase((byte)0xFF)]
    public void UnknownOrNonDiskCommand_Aborts(byte command)
    {
        _h.Out(Cmd + 7, command);
        Assert.That((_h.Error, _h.Status), Is.EqualTo((ErrorAbrt, (byte)0x41)));
        Assert.That(_h.Irq14.RisingEdges, Is.EqualTo(1));
    }

    // ---- Non-data commands ----

    [TestCase(CmdSeek, (byte)0x50)]
    [TestCase(CmdRecalibrate, (byte)0x50)]
    [TestCase(CmdReadVerify, (byte)0x50)]
    [TestCase(CmdStandbyImmediate, (byte)0x40)]
    [TestCase(CmdIdleImmediate, (byte)0x40)]
    [TestCase(CmdStandby, (byte)0x40)]
    [TestCase(CmdIdle, (byte)0x40)]
    [TestCase(CmdCheckPowerMode, (byte)0x50)]
    [TestCase(CmdFlushCacheExt, (byte)0x50)]
    public void NonDataCommands_CompleteWithQemuStatus(byte command, byte status)
    {
        _h.Out(Cmd + 7, command);
        Assert.That(_h.Irq14.Level, Is.True);
        Assert.That(_h.Status, Is.EqualTo(status));
        Assert.That(_h.Error, Is.Zero);
    }

    [Test]
    public void CheckPowerMode_ReportsActive()
    {
        _h.Out(Cmd + 7, CmdCheckPowerMode);
        Assert.That(_h.In(Cmd + 2), Is.EqualTo(0xFF));
    }

    [Test]
    public void ReadNativeMax_LastSector()
    {
        _h.Out(Cmd + 6, 0xE0);
        _h.Out(Cmd + 7, CmdReadNativeMax);
        long last = (DiskSize / 512) - 1;
        Assert.That((_h.In(Cmd + 3), _h.In(Cmd + 4), _h.In(Cmd + 5), _h.In(Cmd + 6)),
            Is.EqualTo(((byte)last, (byte)(last >> 8), (byte)(last >> 16), (byte)0xE0)));
    }

    [Test]
    public void ExecuteDiagnostic_Signature()
    {
        _h.Out(Cmd + 6, 0xE5);
        _h.Out(Cmd + 3, 9);
        _h.Out(Cmd + 7, CmdExecuteDiagnostic);
        Assert.That(_h.Error, Is.EqualTo(1));
        Assert.That(_h.Status, Is.EqualTo(0x50));
        Assert.That((_h.In(Cmd + 2), _h.In(Cmd + 3), _h.In(Cmd + 6)), Is.EqualTo(((byte)1, (byte)1, (byte)0xA0)));
    }

    [Test]
    public void Flush_ReachesNode()
    {
        _h.Out(Cmd + 7, CmdFlushCache);
        _h.Out(Cmd + 7, CmdFlushCacheExt);
        Assert.That(_disk.Flushes, Is.EqualTo(2));
        Assert.That(_h.Status, Is.EqualTo(0x50));
    }

    [Test]
    public void SetFeatures_WriteCacheOff_FlushesAndWritesThrough()
    {
        _h.Out(Cmd + 1, FeatureDisableWriteCache);
        _h.Out(Cmd + 7, CmdSetFeatures);
        Assert.That(_h.Status, Is.EqualTo(0x50));
        Assert.That(_disk.Flushes, Is.EqualTo(1));
        Assert.That(_h.Identify()[85] & 0x20, Is.Zero);
        _h.Lba28(CmdWriteSectors, 3, 1);
        _h.WriteData(new byte[512]);
        Assert.That(_disk.Flushes, Is.EqualTo(2), "writethrough: the write is flushed");
        _h.Out(Cmd + 1, FeatureEnableWriteCache);
        _h.Out(Cmd + 7, CmdSetFeatures);
        Assert.That(_h.Identify()[85] & 0x20, Is.EqualTo(0x20));
    }

    [Test]
    public void SetFeatures_TransferMode_EditsIdentify()
    {
        _ = _h.Identify();
        SetFeature(FeatureSetTransferMode, 0x42); // UDMA 2
        ushort[] w = _h.Identify();
        Assert.That((w[62], w[63], w[88]), Is.EqualTo(((ushort)0x07, (ushort)0x07, (ushort)0x043F)));
        SetFeature(FeatureSetTransferMode, 0x22); // multiword DMA 2
        w = _h.Identify();
        Assert.That((w[62], w[63], w[88]), Is.EqualTo(((ushort)0x07, (ushort)0x0407, (ushort)0x003F)));
        SetFeature(FeatureSetTransferMode, 0x0C); // PIO 4
        w = _h.Identify();
        Assert.That((w[62], w[63], w[88]), Is.EqualTo(((ushort)0x07, (ushort)0x07, (ushort)0x003F)));
        SetFeature(FeatureSetTransferMode, 0x80);
        Assert.That(_h.Error, Is.EqualTo(ErrorAbrt));
        SetFeature(0x55, 0);
        Assert.That(_h.Status, Is.EqualTo(0x50), "read look-ahead off is accepted");
        SetFeature(0x77, 0);
        Assert.That(_h.Error, Is.EqualTo(ErrorAbrt));
    }

    [Test]
    public void SetFeatures_BeforeFirstIdentify_OverwrittenWhenTheBlockIsBuilt()
    {
        // QEMU 7.2 builds the IDENTIFY block at the first IDENTIFY DEVICE, over earlier SET FEATURES edits.
        SetFeature(FeatureSetTransferMode, 0x42);
        Assert.That(_h.Status, Is.EqualTo(0x50));
        ushort[] w = _h.Identify();
        Assert.That((w[62], w[63], w[88]), Is.EqualTo(((ushort)0x07, (ushort)0x07, (ushort)0x203F)));
    }

    [Test]
    public void ReadNativeMaxExt_Lba48Registers()
    {
        _h.Out(Cmd + 6, 0xE0);
        _h.Out(Cmd + 7, CmdReadNativeMaxExt);
        Assert.That(_h.Status, Is.EqualTo(0x50));
        Assert.That((_h.In(Cmd + 3), _h.In(Cmd + 4), _h.In(Cmd + 5)), Is.EqualTo(((byte)0xFF, (byte)0x1F, (byte)0x03)));
        _h.Out(Ctl, ControlHob);
        Assert.That((_h.In(Cmd + 3), _h.In(Cmd + 4), _h.In(Cmd + 5)), Is.EqualTo(((byte)0, (byte)0, (byte)0)));
    }

    private void SetFeature(byte feature, byte count)
    {
        _h.Out(Cmd + 1, feature);
        _h.Out(Cmd + 2, count);
        _h.Out(Cmd + 7, CmdSetFeatures);
    }

    // ---- Interrupts and reset ----

    [Test]
    public void Irq_StatusReadClears_AltStatusDoesNot_CommandWriteClears()
    {
        _h.Out(Cmd + 7, CmdCheckPowerMode);
        Assert.That(_h.Irq14.Level, Is.True);
        _ = _h.AltStatus;
        Assert.That(_h.Irq14.Level, Is.True);
        _h.Out(Cmd + 7, 0x70);
        Assert.That(_h.Irq14.Changes, Is.EqualTo(new[] { true, false, true }), "command write lowers, completion raises");
        _ = _h.Status;
        Assert.That(_h.Irq14.Level, Is.False);
        Assert.That(_h.Irq15.Changes, Is.Empty);
    }

    [Test]
    public void Nien_SuppressesInterrupt_DoesNotLowerPendingOne()
    {
        _h.Out(Ctl, ControlNien);
        _h.Out(Cmd + 7, CmdSeek);
        Assert.That(_h.Irq14.Changes, Is.Empty);
        Assert.That(_h.BmStatus() & BusMasterDma.StatusInterrupt, Is.Zero);
        _h.Out(Ctl, 0);
        _h.Out(Cmd + 7, CmdSeek);
        _h.Out(Ctl, ControlNien);
        Assert.That(_h.Irq14.Level, Is.True);
        _ = _h.Status;
        Assert.That(_h.Irq14.Level, Is.False);
    }

    [Test]
    public void PioInterrupt_SetsBusMasterInterruptBit()
    {
        _h.Out(Cmd + 7, CmdSeek);
        Assert.That(_h.BmStatus(), Is.EqualTo(BusMasterDma.StatusInterrupt));
    }

    [Test]
    public void SoftReset_StopsTransfer_RestoresSignatureAndMultiple()
    {
        _h.Out(Cmd + 2, 2);
        _h.Out(Cmd + 7, CmdSetMultipleMode);
        _h.Lba28(CmdReadSectors, 7, 2);
        _h.Out(Ctl, ControlSrst);
        _h.Out(Ctl, 0);
        Assert.That(_h.Status, Is.EqualTo(0x50));
        Assert.That(_h.Error, Is.EqualTo(1));
        byte[] regs = [.. Enumerable.Range(2, 5).Select(i => _h.In((ushort)(Cmd + i)))];
        Assert.That(regs, Is.EqualTo(new byte[] { 1, 1, 0, 0, 0xA0 }));
        Assert.That(_h.InW(Cmd), Is.Zero, "transfer dropped");
        Assert.That(_h.Identify()[59], Is.EqualTo(0x110), "multiple mode back to 16");
    }

    // ---- Bus-master DMA ----

    private const uint Table = 0x1000;

    [Test]
    public void BusMasterRegisters_Semantics()
    {
        _h.Out(IdeHarness.Bm + 2, 0xFF);
        Assert.That(_h.BmStatus(), Is.EqualTo(0x60), "capable bits stick, active is read-only, W1C bits were clear");
        _h.OutL(IdeHarness.Bm + 4, 0x1003);
        Assert.That(_h.InL(IdeHarness.Bm + 4), Is.EqualTo(0x1000u));
        _h.Out(IdeHarness.Bm + 5, 0x12);
        Assert.That(_h.InL(IdeHarness.Bm + 4), Is.EqualTo(0x1200u));
        Assert.That((_h.In(IdeHarness.Bm + 1), _h.In(IdeHarness.Bm + 3)), Is.EqualTo(((byte)0xFF, (byte)0xFF)));
        _h.Out(IdeHarness.Bm, 0xFF);
        Assert.That(_h.In(IdeHarness.Bm), Is.EqualTo(0x09));
        Assert.That(_h.BmStatus() & BusMasterDma.StatusActive, Is.EqualTo(1));
        Assert.That(_h.BmStatus(1), Is.Zero, "the secondary engine is separate");
    }

    [Test]
    public void ReadDma_SinglePrd_DataInterruptAndStatus()
    {
        _h.Memory.WritePrd(Table, 0, 0x2000, 512, last: true);
        _h.Out(IdeHarness.Bm + 2, 0x60);
        _h.Lba28(CmdReadDma, 1, 1);
        Assert.That(_h.AltStatus, Is.EqualTo(0x58), "DRQ while waiting for the engine");
        Assert.That(_h.Irq14.Changes, Is.Empty);
        _h.StartBm(Table, toMemory: true);
        Assert.That(_h.BmStatus(), Is.EqualTo(0x64), "capable bits, interrupt, not active");
        Assert.That(_h.Irq14.Level, Is.True);
        Assert.That(_h.AltStatus, Is.EqualTo(0x50));
        Assert.That(_h.Memory.Bytes.AsSpan(0x2000, 512).ToArray(), Is.EqualTo(Sector(1)));
        Assert.That((_h.In(Cmd + 2), _h.In(Cmd + 3)), Is.EqualTo(((byte)0, (byte)2)));
        _h.StopBm();
        _h.Out(IdeHarness.Bm + 2, BusMasterDma.StatusInterrupt);
        Assert.That(_h.BmStatus(), Is.Zero.Or.EqualTo(0x00), "interrupt bit is write-one-to-clear");
    }

    [Test]
    public void ReadDma_EngineStartedFirst_RunsWhenCommandArrives()
    {
        _h.Memory.WritePrd(Table, 0, 0x3000, 1024, last: true);
        _h.StartBm(Table, toMemory: true);
        Assert.That(_h.BmStatus() & BusMasterDma.StatusActive, Is.EqualTo(1));
        _h.Lba28(CmdReadDma, 20, 2);
        Assert.That(_h.Memory.Bytes.AsSpan(0x3000, 1024).ToArray(), Is.EqualTo(Sector(20, 2)));
        Assert.That(_h.BmStatus() & 0x05, Is.EqualTo(BusMasterDma.StatusInterrupt));
    }

    [Test]
    public void ReadDmaExt_MultiEntryAnd64KiBEntry()
    {
        // 130 sectors: 64 KiB (count 0) + 512 + 510 + 2 bytes, scattered.
        _h.Memory.WritePrd(Table, 0, 0x10000, 0, last: false);
        _h.Memory.WritePrd(Table, 1, 0x30000, 512, last: false);
        _h.Memory.WritePrd(Table, 2, 0x40000, 510, last: false);
        _h.Memory.WritePrd(Table, 3, 0x50000, 2, last: true);
        _h.Lba48(CmdReadDmaExt, 3, 130);
        _h.StartBm(Table, toMemory: true);
        byte[] expected = Sector(3, 130);
        byte[] got = [.. _h.Memory.Bytes.AsSpan(0x10000, 0x10000), .. _h.Memory.Bytes.AsSpan(0x30000, 512),
            .. _h.Memory.Bytes.AsSpan(0x40000, 510), .. _h.Memory.Bytes.AsSpan(0x50000, 2)];
        Assert.That(got, Is.EqualTo(expected));
        Assert.That(_h.Status, Is.EqualTo(0x50));
        Assert.That(_h.BmStatus() & BusMasterDma.StatusActive, Is.Zero, "table exactly covered the request");
    }

    [Test]
    public void WriteDma_MultiEntry_RoundTrip()
    {
        byte[] data = [.. Enumerable.Range(0, 1536).Select(i => (byte)(i * 13))];
        data.AsSpan(0, 1000).CopyTo(_h.Memory.Bytes.AsSpan(0x20000));
        data.AsSpan(1000).CopyTo(_h.Memory.Bytes.AsSpan(0x28000));
        _h.Memory.WritePrd(Table, 0, 0x20000, 1000, last: false);
        _h.Memory.WritePrd(Table, 1, 0x28000, 536, last: true);
        _h.Lba28(CmdWriteDma, 50, 3);
        _h.StartBm(Table, toMemory: false);
        Assert.That(Sector(50, 3), Is.EqualTo(data));
        Assert.That(_h.Status, Is.EqualTo(0x50));
        Assert.That(_h.Irq14.RisingEdges, Is.EqualTo(1));
    }

    [Test]
    public void Dma_ShortTable_MovesNothing_NoInterrupt_EngineInactive()
    {
        _h.Memory.WritePrd(Table, 0, 0x2000, 1024, last: true);
        _h.Lba28(CmdReadDma, 1, 3);
        _h.StartBm(Table, toMemory: true);
        Assert.That(_h.BmStatus(), Is.Zero);
        Assert.That(_h.Irq14.Changes, Is.Empty);
        Assert.That(_h.AltStatus, Is.EqualTo(0x50));
        Assert.That((_h.In(Cmd + 2), _h.In(Cmd + 3)), Is.EqualTo(((byte)3, (byte)1)));
        Assert.That(_h.Memory.Bytes.AsSpan(0x2000, 1024).ToArray(), Is.All.Zero);
    }

    [Test]
    public void Dma_LongTable_InterruptsAndStaysActive()
    {
        _h.Memory.WritePrd(Table, 0, 0x2000, 1024, last: true);
        _h.Lba28(CmdReadDma, 2, 1);
        _h.StartBm(Table, toMemory: true);
        Assert.That(_h.BmStatus(), Is.EqualTo(BusMasterDma.StatusActive | BusMasterDma.StatusInterrupt));
        Assert.That(_h.Irq14.Level, Is.True);
        Assert.That(_h.Memory.Bytes.AsSpan(0x2000, 512).ToArray(), Is.EqualTo(Sector(2)));
        _h.StopBm();
        Assert.That(_h.BmStatus(), Is.EqualTo(BusMasterDma.StatusInterrupt));
    }

    [Test]
    public void Dma_EngineLeftActive_NextCommandContinuesAfterUsedTable()
    {
        // QEMU 7.2: a command consumes its table up to end-of-table; without a restart of the engine the next
        // command fetches the descriptors that follow (here a second table at +8).
        _h.Memory.WritePrd(Table, 0, 0x2000, 1024, last: true);
        _h.Memory.WritePrd(Table, 1, 0x3000, 512, last: true);
        _h.Lba28(CmdReadDma, 1, 1);
        _h.StartBm(Table, toMemory: true);
        Assert.That(_h.BmStatus(), Is.EqualTo(BusMasterDma.StatusActive | BusMasterDma.StatusInterrupt));
        _ = _h.Status;
        _h.Lba28(CmdReadDma, 2, 1);
        Assert.That(_h.BmStatus(), Is.EqualTo(BusMasterDma.StatusInterrupt));
        Assert.That(_h.Memory.Bytes.AsSpan(0x2000, 512).ToArray(), Is.EqualTo(Sector(1)));
        Assert.That(_h.Memory.Bytes.AsSpan(0x3000, 512).ToArray(), Is.EqualTo(Sector(2)));
        Assert.That(_h.Status, Is.EqualTo(0x50));
    }

    [Test]
    public void Dma_TableWithoutEnd_CutOffAfterOnePage()
    {
        // 512 descriptors of 2 bytes, none marked last: 1 KiB described; a request of 3 sectors is short.
        for (int i = 0; i < 600; i++)
        {
            _h.Memory.WritePrd(Table, i, 0x20000, 2, last: false);
        }
        _h.Lba28(CmdReadDma, 0, 3);
        _h.StartBm(Table, toMemory: true);
        Assert.That(_h.Irq14.Changes, Is.Empty);
        Assert.That(_h.AltStatus, Is.EqualTo(0x50));
    }

    [Test]
    public void Dma_OutOfRange_Aborts()
    {
        _h.Memory.WritePrd(Table, 0, 0x2000, 512, last: true);
        _h.Lba28(CmdReadDma, DiskSize / 512, 1);
        _h.StartBm(Table, toMemory: true);
        Assert.That(_h.BmStatus(), Is.EqualTo(BusMasterDma.StatusInterrupt));
        Assert.That((_h.Error, _h.Status), Is.EqualTo((ErrorAbrt, (byte)0x41)));
    }

    [Test]
    public void Dma_IoError_Aborts()
    {
        _disk.FailReads = true;
        _h.Memory.WritePrd(Table, 0, 0x2000, 512, last: true);
        _h.Lba28(CmdReadDma, 0, 1);
        _h.StartBm(Table, toMemory: true);
        Assert.That((_h.Error, _h.Status), Is.EqualTo((ErrorAbrt, (byte)0x41)));
        Assert.That(_h.BmStatus() & BusMasterDma.StatusActive, Is.Zero);
    }

    [Test]
    public void Dma_WithoutBusMastering_NothingReachesMemory_NoThrow()
    {
        _h.Bus.ConfigWrite(IdeHarness.DevFn, PciDevice.Command, 2, PciDevice.CommandIo);
        _h.Memory.WritePrd(Table, 0, 0x2000, 512, last: true);
        _h.Lba28(CmdReadDma, 1, 1);
        _h.StartBm(Table, toMemory: true);
        Assert.That(_h.Memory.Bytes.AsSpan(0x2000, 512).ToArray(), Is.All.Zero);
        // The table reads as zeros (64 KiB regions without end): the request completes into nowhere, as in QEMU 7.2.
        Assert.That(_h.BmStatus(), Is.EqualTo(BusMasterDma.StatusActive | BusMasterDma.StatusInterrupt));
        Assert.That(_h.Status, Is.EqualTo(0x50));
    }

    [Test]
    public void Trim_DiscardsRanges()
    {
        byte[] payload = new byte[512];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, (8UL << 48) | 100);
        BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(8), (1UL << 48) | 7);
        BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(16), 200); // count 0: padding
        payload.CopyTo(_h.Memory.Bytes.AsSpan(0x4000));
        _h.Memory.WritePrd(Table, 0, 0x4000, 512, last: true);
        _h.Out(Cmd + 1, DsmTrim);
        _h.Lba28(CmdDataSetManagement, 0, 1);
        _h.StartBm(Table, toMemory: false);
        Assert.That(_disk.Discards, Is.EqualTo(new[] { (100L * 512, 8L * 512), (7L * 512, 512L) }));
        Assert.That(_h.Status, Is.EqualTo(0x50));
        Assert.That(Sector(100, 8), Is.All.Zero);
    }

    [Test]
    public void Trim_OutOfRange_Aborts_WithoutFeatureBit_Aborts()
    {
        byte[] payload = new byte[512];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, (2UL << 48) | (DiskSize / 512 - 1));
        payload.CopyTo(_h.Memory.Bytes.AsSpan(0x4000));
        _h.Memory.WritePrd(Table, 0, 0x4000, 512, last: true);
        _h.Out(Cmd + 1, DsmTrim);
        _h.Lba28(CmdDataSetManagement, 0, 1);
        _h.StartBm(Table, toMemory: false);
        Assert.That((_h.Error, _h.Status), Is.EqualTo((ErrorAbrt, (byte)0x41)));
        Assert.That(_disk.Discards, Is.Empty);
        _h.StopBm();
        _h.Out(Cmd + 1, 0);
        _h.Lba28(CmdDataSetManagement, 0, 1);
        Assert.That((_h.Error, _h.Status), Is.EqualTo((ErrorAbrt, (byte)0x41)));
    }

    [Test]
    public void AttachBackend_TakesDriveSettings()
    {
        var h = new IdeHarness();
        using var node = new IdeTestNode(1 << 20);
        var settings = BlockNodeSettings.Default with { Writeback = false, Discard = "ignore", NoFlush = true };
        h.Ide.Attach(0, 0, new BlockBackend("ide0-hd0", node, "ide", settings));
        Assert.That(h.Identify()[85] & 0x20, Is.Zero, "writethrough: write cache reported off");
        h.Out(Cmd + 7, CmdFlushCache);
        Assert.That((h.Status, node.Flushes), Is.EqualTo(((byte)0x50, 0)), "cache.no-flush: flush succeeds, node untouched");
        byte[] payload = new byte[512];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, (1UL << 48) | 5);
        payload.CopyTo(h.Memory.Bytes.AsSpan(0x4000));
        h.Memory.WritePrd(Table, 0, 0x4000, 512, last: true);
        h.Out(Cmd + 1, DsmTrim);
        h.Lba28(CmdDataSetManagement, 0, 1);
        h.StartBm(Table, toMemory: false);
        Assert.That((h.Status, node.Discards.Count), Is.EqualTo(((byte)0x50, 0)), "discard=ignore: TRIM succeeds, node untouched");
    }

    [Test]
    public void SecondaryChannel_UsesIrq15AndSecondEngine()
    {
        var node = new IdeTestNode(1 << 20);
        node.Pattern(8);
        _h.Ide.Attach(1, 0, node);
        _h.Memory.WritePrd(0x5000, 0, 0x6000, 512, last: true);
        _h.Out(IdeHarness.Cmd2 + 6, 0xE0);
        _h.Out(IdeHarness.Cmd2 + 2, 1);
        _h.Out(IdeHarness.Cmd2 + 3, 4);
        _h.Out(IdeHarness.Cmd2 + 4, 0);
        _h.Out(IdeHarness.Cmd2 + 5, 0);
        _h.Out(IdeHarness.Cmd2 + 7, CmdReadDma);
        _h.StartBm(0x5000, toMemory: true, channel: 1);
        Assert.That(_h.Memory.Bytes.AsSpan(0x6000, 512).ToArray(), Is.EqualTo(node.Data.AsSpan(4 * 512, 512).ToArray()));
        Assert.That(_h.Irq15.Level, Is.True);
        Assert.That(_h.Irq14.Changes, Is.Empty);
        Assert.That(_h.BmStatus(1), Is.EqualTo(BusMasterDma.StatusInterrupt));
        Assert.That(_h.BmStatus(0), Is.Zero);
    }

    [Test]
    public void RawFile_DmaWriteThenFlush_ReachesTheFile()
    {
        string path = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"ide-{Guid.NewGuid():N}.raw");
        File.WriteAllBytes(path, new byte[1 << 20]);
        try
        {
            var h = new IdeHarness();
            using (var file = Colo.Block.File.FileNode.Open(path, readOnly: false))
            {
                using var raw = new Colo.Block.Raw.RawNode(file, readOnly: false);
                h.Ide.Attach(0, 0, raw);
                byte[] data = [.. Enumerable.Range(0, 1024).Select(i => (byte)(255 - (i & 0xFF)))];
                data.CopyTo(h.Memory.Bytes.AsSpan(0x8000));
                h.Memory.WritePrd(Table, 0, 0x8000, 1024, last: true);
                h.Lba28(CmdWriteDma, 10, 2);
                h.StartBm(Table, toMemory: false);
                h.Out(Cmd + 7, CmdFlushCache);
                Assert.That(h.Status, Is.EqualTo(0x50));
            }
            byte[] bytes = File.ReadAllBytes(path);
            Assert.That(bytes.AsSpan(10 * 512, 1024).ToArray(),
                Is.EqualTo(Enumerable.Range(0, 1024).Select(i => (byte)(255 - (i & 0xFF))).ToArray()));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void DmaRead_AllocatesNothing()
    {
        _h.Memory.WritePrd(Table, 0, 0x10000, 0, last: false);
        _h.Memory.WritePrd(Table, 1, 0x20000, 0, last: true);
        void Once()
        {
            _h.Lba28(CmdReadDma, 0, 0);
            _h.StartBm(Table, toMemory: true);
            _h.StopBm();
            _ = _h.Status;
        }
        for (int i = 0; i < 100; i++)
        {
            Once();
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++)
        {
            Once();
        }
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
        Assert.That(_h.Memory.Bytes.AsSpan(0x10000, 512).ToArray(), Is.EqualTo(Sector(0)));
    }

    // ---- State ----

    [Test]
    public void SaveRestore_MidPioRead_ContinuesInFreshInstance_IrqReRaised()
    {
        _h.Out(Cmd + 2, 2);
        _h.Out(Cmd + 7, CmdSetMultipleMode);
        _ = _h.Status;
        _h.Lba28(CmdReadMultiple, 30, 4);
        byte[] first = _h.ReadData(300);
        Piix3IdeState saved = _h.Ide.Save();

        var h2 = new IdeHarness();
        h2.Ide.Attach(0, 0, _disk);
        h2.Ide.Restore(saved);
        Assert.That(h2.Irq14.Level, Is.True, "pending interrupt re-raised");
        Assert.That(h2.Ide.Save(), Is.EqualTo(saved));
        byte[] rest = h2.ReadData(1024 - 300);
        Assert.That((byte[])[.. first, .. rest], Is.EqualTo(Sector(30, 2)));
        _ = h2.Status;
        Assert.That(h2.ReadData(1024), Is.EqualTo(Sector(32, 2)));
        Assert.That(h2.Status, Is.EqualTo(0x50));
        Assert.That(h2.InW(IdeHarness.Bm + 4), Is.Zero);
    }

    [Test]
    public void SaveRestore_BusMasterAndBarMapping()
    {
        _h.OutL(IdeHarness.Bm + 4, 0x1234_5678);
        _h.Out(IdeHarness.Bm + 2, 0x20);
        Piix3IdeState saved = _h.Ide.Save();
        var h2 = new IdeHarness();
        h2.Bus.ConfigWrite(IdeHarness.DevFn, 0x20, 4, 0xD001);
        h2.Ide.Attach(0, 0, _disk);
        h2.Ide.Restore(saved);
        Assert.That(h2.InL(IdeHarness.Bm + 4), Is.EqualTo(0x1234_5678u), "BAR re-mapped at the saved address");
        Assert.That(h2.BmStatus(), Is.EqualTo(0x20));
        Assert.That(h2.Irq14.Level, Is.False);
    }

    [Test]
    public void Reset_BackToPowerOn()
    {
        Piix3IdeState powerOn = _h.Ide.Save();
        _h.Out(Cmd + 2, 4);
        _h.Out(Cmd + 7, CmdSetMultipleMode);
        _h.Lba28(CmdReadSectors, 3, 2);
        _h.OutL(IdeHarness.Bm + 4, 0x5000);
        _h.Ide.Reset();
        Assert.That(_h.Irq14.Level, Is.False);
        Piix3IdeState after = _h.Ide.Save();
        Assert.That(after.Primary, Is.EqualTo(powerOn.Primary));
        Assert.That(after.Secondary, Is.EqualTo(powerOn.Secondary));
        Assert.That(_h.Ide.ReadConfigWord(PciDevice.Command), Is.Zero);
    }

    // ---- Misuse ----

    [Test]
    public void Fuzz_RandomPortAndMemoryTraffic_NeverThrows()
    {
        var h = new IdeHarness(1 << 20);
        var master = new IdeTestNode(1 << 20);
        h.Ide.Attach(0, 0, master);
        h.Ide.Attach(1, 1, new IdeTestNode(64 * 1024));
        var rng = new Random(12345);
        ushort[] ports =
        [
            0x1F0, 0x1F1, 0x1F2, 0x1F3, 0x1F4, 0x1F5, 0x1F6, 0x1F7, 0x3F6,
            0x170, 0x171, 0x172, 0x173, 0x174, 0x175, 0x176, 0x177, 0x376,
            0xC000, 0xC001, 0xC002, 0xC003, 0xC004, 0xC006, 0xC008, 0xC00A, 0xC00C, 0xC00F,
        ];
        byte[] commands = [0x20, 0x24, 0x25, 0x29, 0x30, 0x34, 0x35, 0x39, 0x06, 0xC4, 0xC5, 0xC6, 0xC8, 0xCA, 0xEC, 0xEF, 0x91, 0xE7, 0x90, 0x27, 0xF8];
        int[] sizes = [1, 2, 4];
        Assert.DoesNotThrow(() =>
        {
            for (int i = 0; i < 200_000; i++)
            {
                ushort port = ports[rng.Next(ports.Length)];
                int size = sizes[rng.Next(sizes.Length)];
                switch (rng.Next(10))
                {
                    case < 4:
                        h.Ports.Read(port, size);
                        break;
                    case < 8:
                        h.Ports.Write(port, size, (ulong)rng.NextInt64());
                        break;
                    case 8:
                        h.Ports.Write((ushort)(port | 7), 1, commands[rng.Next(commands.Length)]);
                        break;
                    default:
                        rng.NextBytes(h.Memory.Bytes.AsSpan(rng.Next(0x10000) & ~7, 64));
                        break;
                }
                if (rng.Next(5000) == 0)
                {
                    h.Ide.Restore(h.Ide.Save());
                }
            }
        });
    }
}

/// <summary>A large sparse disk whose bytes are a function of their offset; remembers the last write.</summary>
internal sealed class PatternNode(long size) : BlockNode(null, readOnly: false)
{
    public (long Offset, int Length) LastWrite { get; private set; }

    public override string DriverName => "pattern";

    public override long Size => size;

    public override string Filename => "pattern";

    public static byte[] Expected(long offset, int length)
    {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++)
        {
            long at = offset + i;
            b[i] = (byte)((at >> 9) ^ (at >> 17) ^ at);
        }
        return b;
    }

    public override void Read(long offset, Span<byte> buffer)
    {
        CheckRequest(offset, buffer.Length);
        for (int i = 0; i < buffer.Length; i++)
        {
            long at = offset + i;
            buffer[i] = (byte)((at >> 9) ^ (at >> 17) ^ at);
        }
    }

    public override void Write(long offset, ReadOnlySpan<byte> buffer)
    {
        CheckRequest(offset, buffer.Length);
        LastWrite = (offset, buffer.Length);
    }

    public override void Flush()
    {
    }
}
