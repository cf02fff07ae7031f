using System.Buffers.Binary;
using System.Text;
using Colo.Devices.Firmware;
using Colo.Tests.Unit.Memory;

namespace Colo.Tests.Unit.Devices.Firmware;

[TestFixture]
public sealed class FwCfgTests
{
    private const ulong DescriptorAddress = 0x1000;
    private const ulong BufferAddress = 0x2000;

    private FakePhysicalMemory _mem = null!;
    private FwCfg _fw = null!;

    [SetUp]
    public void SetUp()
    {
        _mem = new FakePhysicalMemory(0x10000);
        _fw = new FwCfg(_mem, _mem.IsRam);
    }

    private void Select(ushort key) => _fw.Write(FwCfg.SelectorOffset, 2, key);

    private byte[] ReadData(int count)
    {
        byte[] b = new byte[count];
        for (int i = 0; i < count; i++)
        {
            b[i] = (byte)_fw.Read(FwCfg.DataOffset, 1);
        }
        return b;
    }

    /// <summary>Writes a descriptor and triggers it the way a guest does: two big-endian 32-bit port writes.</summary>
    private uint Dma(uint control, uint length, ulong address, ulong descriptor = DescriptorAddress)
    {
        byte[] d = new byte[FwCfg.DmaAccessSize];
        BinaryPrimitives.WriteUInt32BigEndian(d, control);
        BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(4), length);
        BinaryPrimitives.WriteUInt64BigEndian(d.AsSpan(8), address);
        _mem.Write(descriptor, d);
        _fw.Write(FwCfg.DmaOffset, 4, BinaryPrimitives.ReverseEndianness((uint)(descriptor >> 32)));
        _fw.Write(FwCfg.DmaLowOffset, 4, BinaryPrimitives.ReverseEndianness((uint)descriptor));
        return BinaryPrimitives.ReadUInt32BigEndian(_mem.Span(descriptor, 4));
    }

    [Test]
    public void Signature_ReadBytewise_IsQemuThenZeros()
    {
        Select(FwCfg.KeySignature);
        Assert.That(Encoding.ASCII.GetString(ReadData(4)), Is.EqualTo("QEMU"));
        Assert.That(ReadData(3), Is.EqualTo(new byte[3]), "past the end reads 0");
        Assert.That(_fw.Save().CurrentOffset, Is.EqualTo(4u), "the offset stops at the end");
    }

    [Test]
    public void SelectorPortByteRead_StreamsDataLikeTheDataPort()
    {
        Select(FwCfg.KeySignature);
        Assert.That(_fw.Read(FwCfg.SelectorOffset, 1), Is.EqualTo((uint)'Q'));
        Assert.That(_fw.Read(FwCfg.DataOffset, 1), Is.EqualTo((uint)'E'));
    }

    [Test]
    public void OddPortAccesses_GiveQemu72Results()
    {
        // Sequence replayed from qemu-system-x86_64 7.2 over qtest (port = 0x510 + offset).
        Select(FwCfg.KeySignature);
        Assert.That(_fw.Read(1, 2), Is.EqualTo(0xFF51u), "inw 0x511: a data byte, then unassigned 0x512");
        Assert.That(_fw.Read(1, 1), Is.EqualTo(0x45u));
        Assert.That(_fw.Read(0, 4), Is.Zero, "inl 0x510: rejected, no side effect");
        Assert.That(_fw.Read(0, 2), Is.Zero, "inw 0x510: rejected, no side effect");
        Assert.That(_fw.Read(1, 1), Is.EqualTo(0x4Du));
        Select(FwCfg.KeySignature);
        Assert.That(_fw.Read(1, 4), Is.EqualTo(0x51FF_FF51u), "inl 0x511: data, two unassigned bytes, DMA signature 'Q'");
        Assert.That(_fw.Read(2, 2), Is.EqualTo(0xFFFFu));
        Assert.That(_fw.Read(2, 4), Is.EqualTo(0x4551_FFFFu));
        Assert.That(_fw.Read(5, 4), Is.EqualTo(0x2055_4D45u));
        Assert.That(_fw.Read(6, 4), Is.EqualTo(0x4320_554Du));
        Assert.That(_fw.Read(10, 2), Is.EqualTo(0x4746u));
        Assert.That(_fw.Read(10, 4), Is.EqualTo(0xFFFF_4746u), "past the DMA register: unassigned");
        Select(FwCfg.KeyId);
        _fw.Write(1, 2, 0);
        _fw.Write(0, 1, 0);
        _fw.Write(0, 4, 0);
        Assert.That(_fw.Read(1, 1), Is.EqualTo(3u), "outw 0x511, outb 0x510, outl 0x510 neither select nor advance");
    }

    [Test]
    public void Id_ReportsTraditionalAndDma()
    {
        Select(FwCfg.KeyId);
        Assert.That(ReadData(4), Is.EqualTo(new byte[] { 3, 0, 0, 0 }), "QEMU 7.2 reads 03 00 00 00");
        var noDma = new FwCfg(_mem, dmaEnabled: false);
        noDma.Write(FwCfg.SelectorOffset, 2, FwCfg.KeyId);
        Assert.That(noDma.Read(FwCfg.DataOffset, 1), Is.EqualTo(1u));
        Assert.That(noDma.Read(FwCfg.DmaOffset, 4), Is.EqualTo(0xFFFF_FFFFu), "no DMA register: unassigned ports");
    }

    [Test]
    public void DmaRegister_ReadsQemuCfgSignature()
    {
        // Values observed on qemu-system-x86_64 7.2 with qtest inl/inb.
        Assert.That(_fw.Read(FwCfg.DmaOffset, 4), Is.EqualTo(0x554D4551u));
        Assert.That(_fw.Read(FwCfg.DmaLowOffset, 4), Is.EqualTo(0x47464320u));
        Assert.That(_fw.Read(FwCfg.DmaOffset, 1), Is.EqualTo(0x51u));
        Assert.That(_fw.Read(FwCfg.DmaOffset + 5, 2), Is.EqualTo((uint)('C' | ('F' << 8))));
    }

    [Test]
    public void DataPortWrite_IsIgnored()
    {
        _fw.AddBytes(FwCfg.KeyRamSize, [1, 2, 3]);
        Select(FwCfg.KeyRamSize);
        _fw.Write(FwCfg.DataOffset, 1, 0xAA);
        Assert.That(ReadData(3), Is.EqualTo(new byte[] { 1, 2, 3 }));
    }

    [Test]
    public void InvalidKey_ReadsZeroAndSavesAsInvalid()
    {
        Select(0x1234);
        Assert.That(ReadData(4), Is.EqualTo(new byte[4]));
        Assert.That(_fw.Save().CurrentKey, Is.EqualTo(FwCfg.InvalidKey));
        Select(0x3F);
        Assert.That(_fw.Save().CurrentKey, Is.EqualTo((ushort)0x3F), "unused keys inside the table stay selected");
        Assert.That(ReadData(2), Is.EqualTo(new byte[2]));
    }

    [Test]
    public void Numbered_Items_AreLittleEndian()
    {
        _fw.AddU64(FwCfg.KeyRamSize, 0x800_0000);
        _fw.AddU16(FwCfg.KeyNbCpus, 1);
        _fw.AddU32(FwCfg.KeyIrq0Override, 1);
        Select(FwCfg.KeyRamSize);
        Assert.That(ReadData(8), Is.EqualTo(new byte[] { 0, 0, 0, 8, 0, 0, 0, 0 }));
        Select(FwCfg.KeyIrq0Override);
        Assert.That(ReadData(4), Is.EqualTo(new byte[] { 1, 0, 0, 0 }));
        Select(FwCfg.KeyNbCpus);
        Assert.That(ReadData(2), Is.EqualTo(new byte[] { 1, 0 }));
    }

    [Test]
    public void FileDirectory_SortedByName_KeysFollowOrder_AsQemu72()
    {
        // The file set of `qemu-system-x86_64 -M pc -nodefaults` 7.2, added in a scrambled order; QEMU listed them
        // as bios-geometry=0x20 ... genroms/kvmvapic.bin=0x2b.
        string[] names =
        [
            "etc/table-loader", "genroms/kvmvapic.bin", "bootorder", "etc/e820", "etc/acpi/tables", "etc/tpm/log",
            "bios-geometry", "etc/system-states", "etc/acpi/rsdp", "etc/smbios/smbios-tables", "etc/boot-fail-wait",
            "etc/smbios/smbios-anchor",
        ];
        foreach (string n in names)
        {
            _fw.AddFile(n, new byte[n.Length]);
        }
        Select(FwCfg.KeyFileDir);
        uint count = BinaryPrimitives.ReadUInt32BigEndian(ReadData(4));
        Assert.That(count, Is.EqualTo((uint)names.Length));
        string[] sorted = [.. names.Order(StringComparer.Ordinal)];
        for (int i = 0; i < count; i++)
        {
            byte[] e = ReadData(FwCfg.FileDirEntrySize);
            string name = Encoding.ASCII.GetString(e, 8, 56).TrimEnd('\0');
            Assert.That(name, Is.EqualTo(sorted[i]));
            Assert.That(BinaryPrimitives.ReadUInt32BigEndian(e), Is.EqualTo((uint)name.Length), "size");
            Assert.That(BinaryPrimitives.ReadUInt16BigEndian(e.AsSpan(4)), Is.EqualTo(0x20 + i), "select");
            Assert.That(BinaryPrimitives.ReadUInt16BigEndian(e.AsSpan(6)), Is.Zero, "reserved");
        }
        Assert.That(_fw.TryGetFileKey("bios-geometry", out ushort k0) && k0 == 0x20, Is.True);
        Assert.That(_fw.TryGetFileKey("genroms/kvmvapic.bin", out ushort k1) && k1 == 0x2B, Is.True);
        Assert.That(_fw.TryGetFileKey("etc/e820", out ushort k2) && k2 == 0x25, Is.True);
    }

    [Test]
    public void AddFile_SmallerNameLater_ShiftsKeysAndDataFollows()
    {
        ushort b = _fw.AddFile("b", [2]);
        Assert.That(b, Is.EqualTo((ushort)0x20));
        ushort a = _fw.AddFile("a", [1]);
        Assert.That(a, Is.EqualTo((ushort)0x20));
        Assert.That(_fw.TryGetFileKey("b", out ushort nb), Is.True);
        Assert.That(nb, Is.EqualTo((ushort)0x21));
        Select(nb);
        Assert.That(ReadData(1), Is.EqualTo(new byte[] { 2 }));
    }

    [Test]
    public void AddFile_Misuse_ThrowsClearErrors()
    {
        _fw.AddFile("etc/e820", []);
        Assert.That(() => _fw.AddFile("etc/e820", []), Throws.TypeOf<FwCfgException>().With.Message.Contains("duplicate"));
        Assert.That(() => _fw.AddFile(new string('x', 56), []), Throws.TypeOf<FwCfgException>().With.Message.Contains("55"));
        Assert.That(() => _fw.AddFile("", []), Throws.TypeOf<FwCfgException>());
        Assert.That(() => _fw.AddBytes(0x25, []), Throws.TypeOf<FwCfgException>().With.Message.Contains("AddFile"));
        Assert.That(() => _fw.AddBytes(0x4001, []), Throws.TypeOf<FwCfgException>());
        for (int i = 1; i < FwCfg.DefaultFileSlots; i++)
        {
            _fw.AddFile($"f{i:d2}", []);
        }
        Assert.That(() => _fw.AddFile("one-too-many", []), Throws.TypeOf<FwCfgException>().With.Message.Contains("slots"));
    }

    [Test]
    public void SetFile_ReplacesContents_UpdatesDirectorySize()
    {
        _fw.AddFile("bootorder", []);
        ushort key = _fw.SetFile("bootorder", "/pci@i0cf8/ide@1,1/drive@0/disk@0\n\0"u8.ToArray());
        Select(FwCfg.KeyFileDir);
        byte[] dir = ReadData(4 + 64);
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(dir.AsSpan(4)), Is.EqualTo(35u));
        Select(key);
        Assert.That(Encoding.ASCII.GetString(ReadData(5)), Is.EqualTo("/pci@"));
    }

    [Test]
    public void Dma_SelectAndRead_CopiesAndClearsControl()
    {
        ushort key = _fw.AddFile("etc/boot-fail-wait", [0xFF, 0xFF, 0xFF, 0xFF]);
        _mem.Write(BufferAddress, new byte[] { 9, 9, 9, 9, 9, 9, 9, 9 });
        uint control = Dma(((uint)key << 16) | FwCfg.DmaCtlSelect | FwCfg.DmaCtlRead, 6, BufferAddress);
        Assert.That(control, Is.Zero);
        Assert.That(_mem.Span(BufferAddress, 8).ToArray(), Is.EqualTo(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 9, 9 }),
            "bytes past the item end are zero-filled");
        Assert.That(_fw.Save().DmaAddress, Is.Zero, "the address register is consumed");
    }

    [Test]
    public void Dma_SkipThenRead_ContinuesAtOffset_AndSharesOffsetWithDataPort()
    {
        Select(FwCfg.KeySignature);
        Assert.That(Dma(FwCfg.DmaCtlSkip, 1, 0), Is.Zero);
        Assert.That(Dma(FwCfg.DmaCtlRead, 2, BufferAddress), Is.Zero);
        Assert.That(Encoding.ASCII.GetString(_mem.Span(BufferAddress, 2)), Is.EqualTo("EM"));
        Assert.That(ReadData(1), Is.EqualTo("U"u8.ToArray()));
    }

    [Test]
    public void Dma_Sixty4BitStore_Triggers()
    {
        Select(FwCfg.KeySignature);
        byte[] d = new byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(d, FwCfg.DmaCtlRead);
        BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(4), 4);
        BinaryPrimitives.WriteUInt64BigEndian(d.AsSpan(8), BufferAddress);
        _mem.Write(DescriptorAddress, d);
        _fw.WriteDma64(BinaryPrimitives.ReverseEndianness(DescriptorAddress));
        Assert.That(Encoding.ASCII.GetString(_mem.Span(BufferAddress, 4)), Is.EqualTo("QEMU"));
    }

    [Test]
    public void Dma_PureSelect_MovesNoData()
    {
        _fw.AddU32(FwCfg.KeyNbCpus, 0x04030201);
        _mem.Write(BufferAddress, new byte[] { 7 });
        Assert.That(Dma(((uint)FwCfg.KeyNbCpus << 16) | FwCfg.DmaCtlSelect, 100, BufferAddress), Is.Zero);
        Assert.That(_mem.Bytes[BufferAddress], Is.EqualTo(7));
        Assert.That(ReadData(1), Is.EqualTo(new byte[] { 1 }));
    }

    [Test]
    public void Dma_WriteToReadOnlyItem_SetsError()
    {
        ushort key = _fw.AddFile("etc/e820", new byte[20]);
        uint control = Dma(((uint)key << 16) | FwCfg.DmaCtlSelect | FwCfg.DmaCtlWrite, 4, BufferAddress);
        Assert.That(control, Is.EqualTo(FwCfg.DmaCtlError));
    }

    [Test]
    public void Dma_WriteToWritableFile_UpdatesDataAndCallsBack()
    {
        byte[] data = new byte[8];
        var writes = new List<(uint, uint)>();
        ushort key = _fw.AddFile("etc/wr", data, writable: true, onWrite: (o, l) => writes.Add((o, l)));
        _mem.Write(BufferAddress, new byte[] { 1, 2, 3 });
        Assert.That(Dma(((uint)key << 16) | FwCfg.DmaCtlSelect | FwCfg.DmaCtlSkip, 2, 0), Is.Zero);
        Assert.That(Dma(FwCfg.DmaCtlWrite, 3, BufferAddress), Is.Zero);
        Assert.That(_fw.GetFile("etc/wr"), Is.EqualTo(new byte[] { 0, 0, 1, 2, 3, 0, 0, 0 }));
        Assert.That(writes, Is.EqualTo(new[] { (2u, 3u) }));
        Assert.That(Dma(FwCfg.DmaCtlWrite, 4, BufferAddress), Is.EqualTo(FwCfg.DmaCtlError), "a write past the end fails whole");
        Assert.That(_fw.GetFile("etc/wr")![5], Is.Zero);
    }

    [Test]
    public void Dma_BadAddresses_SetErrorBitNeverThrow()
    {
        Select(FwCfg.KeySignature);
        Assert.That(Dma(FwCfg.DmaCtlRead, 4, 0xFFFF_FFFF_0000), Is.EqualTo(FwCfg.DmaCtlError), "target outside RAM");
        Select(0x3E);
        Assert.That(Dma(FwCfg.DmaCtlRead, uint.MaxValue, BufferAddress), Is.EqualTo(FwCfg.DmaCtlError), "4 GiB zero fill");
        Assert.That(Dma(FwCfg.DmaCtlRead, 16, ulong.MaxValue - 4), Is.EqualTo(FwCfg.DmaCtlError), "wrapping range");
        Assert.That(Dma(FwCfg.DmaCtlWrite, 4, BufferAddress), Is.EqualTo(FwCfg.DmaCtlError), "write to an empty key");
        // A descriptor outside RAM cannot be read or answered; nothing happens and nothing throws.
        _fw.Write(FwCfg.DmaOffset, 4, BinaryPrimitives.ReverseEndianness(0x1u));
        _fw.Write(FwCfg.DmaLowOffset, 4, 0);
        Assert.That(_mem.StrayWrites, Is.Zero);
    }

    [Test]
    public void Dma_Disabled_IgnoresWrites()
    {
        var fw = new FwCfg(_mem, dmaEnabled: false);
        _mem.Write(DescriptorAddress, new byte[] { 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0x20, 0 });
        fw.Write(FwCfg.DmaOffset, 4, 0);
        fw.Write(FwCfg.DmaLowOffset, 4, BinaryPrimitives.ReverseEndianness((uint)DescriptorAddress));
        Assert.That(_mem.Bytes[DescriptorAddress + 3], Is.EqualTo(2), "descriptor untouched");
    }

    [Test]
    public void SelectCallback_RunsOnGuestSelect()
    {
        int calls = 0;
        ushort key = _fw.AddFile("etc/acpi/tables", [1], onSelect: () => calls++);
        Select(key);
        Dma(((uint)key << 16) | FwCfg.DmaCtlSelect, 0, 0);
        Assert.That(calls, Is.EqualTo(2));
    }

    [Test]
    public void ArchLocalKeys_AreSeparateTable()
    {
        _fw.AddU32(FwCfg.KeyIrq0Override, 1);
        Select(0x0002);
        Assert.That(ReadData(4), Is.EqualTo(new byte[4]), "generic key 2 (UUID) is not registered");
        Select(FwCfg.KeyIrq0Override | FwCfg.WriteChannel);
        Assert.That(ReadData(1), Is.EqualTo(new byte[] { 1 }), "the write-channel bit does not change the item");
    }

    [Test]
    public void DataPortAndDma_AllocateNothing()
    {
        ushort key = _fw.AddFile("etc/blob", new byte[0x4000]);
        Select(FwCfg.KeyFileDir);
        ReadData(8);
        Dma(((uint)key << 16) | FwCfg.DmaCtlSelect | FwCfg.DmaCtlRead, 0x4000, BufferAddress);
        byte[] descriptor = new byte[FwCfg.DmaAccessSize];
        BinaryPrimitives.WriteUInt32BigEndian(descriptor, ((uint)key << 16) | FwCfg.DmaCtlSelect | FwCfg.DmaCtlRead);
        BinaryPrimitives.WriteUInt32BigEndian(descriptor.AsSpan(4), 0x4000);
        BinaryPrimitives.WriteUInt64BigEndian(descriptor.AsSpan(8), BufferAddress);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int round = 0; round < 4; round++)
        {
            Select(key);
            for (int i = 0; i < 0x4000; i++)
            {
                _fw.Read(FwCfg.DataOffset, 1);
            }
            Select(FwCfg.KeyFileDir);
            _fw.Read(FwCfg.DataOffset, 1);
            _mem.Write(DescriptorAddress, descriptor);
            _fw.Write(FwCfg.DmaOffset, 4, 0);
            _fw.Write(FwCfg.DmaLowOffset, 4, BinaryPrimitives.ReverseEndianness((uint)DescriptorAddress));
        }
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
        Assert.That(_mem.Span(DescriptorAddress, 4).ToArray(), Is.EqualTo(new byte[4]), "the last DMA completed");
    }

    [Test]
    public void SaveRestore_RoundTrips_ResetSelectsSignature()
    {
        Select(FwCfg.KeySignature);
        ReadData(2);
        _fw.Write(FwCfg.DmaOffset, 4, BinaryPrimitives.ReverseEndianness(0x12u));
        FwCfgState saved = _fw.Save();
        var other = new FwCfg(_mem, _mem.IsRam);
        other.Restore(saved);
        Assert.That(other.Save(), Is.EqualTo(saved));
        Assert.That((char)other.Read(FwCfg.DataOffset, 1), Is.EqualTo('M'));
        other.Reset();
        Assert.That(other.Save(), Is.EqualTo(FwCfgState.PowerOn));
    }
}
