using System.Buffers.Binary;
using System.Text;
using Colo.Core.Cpu;
using Colo.Devices.Firmware;
using Colo.Devices.Pc.Boot;
using Colo.Tests.Unit.Memory;

namespace Colo.Tests.Unit.Devices.Pc.Boot;

[TestFixture]
public sealed class PvhLoaderTests
{
    private const int Ram = 64 << 20;

    private static byte[] PvhNote(uint entry)
    {
        byte[] d = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(d, entry);
        // A harmless other note first, as real kernels carry several Xen notes.
        return [.. ElfBuilder.Note("Xen", 6, "linux\0"u8.ToArray()), .. ElfBuilder.Note("Xen", 18, d)];
    }

    private static byte[] MakeVmlinux(bool is64 = true, byte[]? notes = null) =>
        ElfBuilder.Build(is64, is64 ? (ushort)62 : (ushort)3, 0xFFFF_FFFF_8100_0000,
        [
            new ElfBuilder.Segment(0x100_0000, [0xAA, 0xBB, 0xCC], 0x2000),
            new ElfBuilder.Segment(0x120_0000, [0x11], 1),
        ], notes ?? PvhNote(0x100_0010));

    private static ulong U64(FakePhysicalMemory m, ulong a) => BinaryPrimitives.ReadUInt64LittleEndian(m.Span(a, 8));

    private static uint U32(FakePhysicalMemory m, ulong a) => BinaryPrimitives.ReadUInt32LittleEndian(m.Span(a, 4));

    [TestCase(true)]
    [TestCase(false)]
    public void Load_SegmentsStartInfoAndEntry(bool is64)
    {
        var mem = new FakePhysicalMemory(Ram);
        mem.Bytes.AsSpan(0x100_0000, 0x2000).Fill(0x5A); // BSS must be cleared
        List<E820Entry> e820 = PcMemoryMap.ForDirectBoot(PcMemoryMap.Build(Ram));
        var cpu = default(X86CpuState);
        byte[] initrd = [7, 7, 7];
        BootLayout layout = PvhLoader.Load(mem, MakeVmlinux(is64), e820, Ram,
            new LinuxBootOptions("console=hvc0", initrd, AcpiRsdpAddress: 0xF0000), ref cpu);

        Assert.That(mem.Span(0x100_0000, 4).ToArray(), Is.EqualTo(new byte[] { 0xAA, 0xBB, 0xCC, 0 }));
        Assert.That(mem.Bytes[0x100_1FFF], Is.Zero);
        Assert.That(mem.Bytes[0x120_0000], Is.EqualTo(0x11));

        const ulong si = PvhLoader.StartInfoAddress;
        Assert.That(U32(mem, si), Is.EqualTo(0x336E_C578u), "magic");
        Assert.That(U32(mem, si + 4), Is.EqualTo(1u), "version");
        Assert.That(U32(mem, si + 8), Is.Zero, "flags");
        Assert.That(U32(mem, si + 12), Is.EqualTo(1u), "nr_modules");
        ulong cmdline = U64(mem, si + 24);
        Assert.That(Encoding.ASCII.GetString(mem.Span(cmdline, 13)), Is.EqualTo("console=hvc0\0"));
        Assert.That(U64(mem, si + 32), Is.EqualTo(0xF0000UL), "rsdp_paddr");
        ulong memmap = U64(mem, si + 40);
        Assert.That(U32(mem, si + 48), Is.EqualTo((uint)e820.Count));
        for (int i = 0; i < e820.Count; i++)
        {
            ulong at = memmap + (ulong)(i * 24);
            Assert.That((U64(mem, at), U64(mem, at + 8), U32(mem, at + 16)),
                Is.EqualTo((e820[i].Address, e820[i].Length, (uint)e820[i].Type)));
        }
        ulong mod = U64(mem, si + 16);
        ulong initrdAddr = U64(mem, mod);
        Assert.That(U64(mem, mod + 8), Is.EqualTo(3UL));
        Assert.That(initrdAddr % 4096, Is.Zero);
        Assert.That(mem.Span(initrdAddr, 3).ToArray(), Is.EqualTo(initrd));
        Assert.That(layout.EntryPoint, Is.EqualTo(0x100_0010u));

        Assert.That(cpu.Rip, Is.EqualTo(0x100_0010UL));
        Assert.That(cpu.Gpr[3], Is.EqualTo(si), "EBX = start_info");
        Assert.That(cpu.Cr0 & (X86CpuState.Cr0Pe | X86CpuState.Cr0Pg), Is.EqualTo(X86CpuState.Cr0Pe));
        Assert.That(cpu.Cr4, Is.Zero);
        Assert.That(cpu.Rflags & (X86CpuState.FlagIf | X86CpuState.FlagTf), Is.Zero);
        Assert.That((cpu.Tr.Base, cpu.Tr.Limit), Is.EqualTo((0UL, 0x67u)), "PVH wants a 0x67-limit TSS");
        Assert.That(cpu.Segments[(int)SegmentIndex.Cs].Limit, Is.EqualTo(0xFFFF_FFFFu));
        Assert.That(cpu.Segments[(int)SegmentIndex.Cs].Attributes & SegmentRegister.L, Is.Zero, "not 64-bit code");
    }

    [Test]
    public void Load_NoInitrd_NoModules()
    {
        var mem = new FakePhysicalMemory(Ram);
        var cpu = default(X86CpuState);
        PvhLoader.Load(mem, MakeVmlinux(), PcMemoryMap.Build(Ram), Ram, new LinuxBootOptions(), ref cpu);
        Assert.That(U32(mem, PvhLoader.StartInfoAddress + 12), Is.Zero);
        Assert.That(U64(mem, PvhLoader.StartInfoAddress + 16), Is.Zero);
    }

    [Test]
    public void FindEntry_WithoutNote_IsNull_AndLoadRefuses()
    {
        byte[] image = MakeVmlinux(notes: ElfBuilder.Note("GNU", 3, new byte[20]));
        Assert.That(PvhLoader.FindEntry(image), Is.Null);
        var cpu = default(X86CpuState);
        Assert.That(() => PvhLoader.Load(new FakePhysicalMemory(Ram), image, [], Ram, new LinuxBootOptions(), ref cpu),
            Throws.TypeOf<KernelImageException>().With.Message.Contains("PVH entry note"));
        Assert.That(() => KernelImage.Detect(image), Throws.TypeOf<KernelImageException>());
    }

    [Test]
    public void Detect_OrdersProtocolsAsQemu()
    {
        Assert.That(KernelImage.Detect(MakeVmlinux()), Is.EqualTo(KernelImageKind.Pvh));
        Assert.That(KernelImage.Detect(LinuxBootLoaderTests.MakeBzImage()), Is.EqualTo(KernelImageKind.LinuxBzImage));
        Assert.That(KernelImage.Detect(MultibootLoaderTests.MakeAoutKernel()), Is.EqualTo(KernelImageKind.Multiboot));
        Assert.That(() => KernelImage.Detect(new byte[100]), Throws.TypeOf<KernelImageException>().With.Message.Contains("neither"));
    }

    private static IEnumerable<TestCaseData> MalformedElves()
    {
        byte[] good = MakeVmlinux();
        yield return new TestCaseData(good[..40], "truncated").SetName("Load_Malformed_TruncatedHeader");
        yield return new TestCaseData(good[..100], "truncated").SetName("Load_Malformed_TruncatedProgramHeaders");
        byte[] hugeOffset = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(hugeOffset.AsSpan(64 + 8), ulong.MaxValue - 2);
        yield return new TestCaseData(hugeOffset, "truncated").SetName("Load_Malformed_SegmentOffsetHuge");
        byte[] hugeFilesz = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(hugeFilesz.AsSpan(64 + 32), 0x7FFF_FFFF_FFFF_FFFF);
        yield return new TestCaseData(hugeFilesz, "truncated").SetName("Load_Malformed_SegmentFileSizeHuge");
        byte[] hugeMem = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(hugeMem.AsSpan(64 + 40), ulong.MaxValue);
        yield return new TestCaseData(hugeMem, "does not fit").SetName("Load_Malformed_SegmentMemorySizeHuge");
        byte[] phnum = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(phnum.AsSpan(56), 0xFFFF);
        yield return new TestCaseData(phnum, "program header").SetName("Load_Malformed_TooManyProgramHeaders");
        byte[] badClass = (byte[])good.Clone();
        badClass[4] = 7;
        yield return new TestCaseData(badClass, "ELF32/ELF64").SetName("Load_Malformed_BadClass");
        byte[] tornNote = (byte[])good.Clone();
        // The last note claims a descriptor far past the segment: it is dropped, so no entry is found.
        BinaryPrimitives.WriteUInt32LittleEndian(tornNote.AsSpan(tornNote.Length - 16), 0xFFFF_FFF0);
        yield return new TestCaseData(tornNote, "PVH entry note").SetName("Load_Malformed_TornNote");
    }

    [TestCaseSource(nameof(MalformedElves))]
    public void Load_Malformed_ThrowsClearMessage(byte[] image, string message)
    {
        var cpu = default(X86CpuState);
        Assert.That(() => PvhLoader.Load(new FakePhysicalMemory(Ram), image, [], Ram, new LinuxBootOptions(), ref cpu),
            Throws.TypeOf<KernelImageException>().With.Message.Contains(message));
    }

    [Test]
    public void Load_DebianVmlinux_WhenAvailable()
    {
        string? path = LinuxBootLoaderTests.FindGuestFile("vmlinux", "COLO_TEST_VMLINUX");
        Assume.That(path, Is.Not.Null, "no guest vmlinux (run tools/guest/build.sh or set COLO_TEST_VMLINUX)");
        byte[] image = File.ReadAllBytes(path!);
        uint? entry = PvhLoader.FindEntry(image);
        Assert.That(entry, Is.Not.Null);
        const int ram = 256 << 20;
        var mem = new FakePhysicalMemory(ram);
        var cpu = default(X86CpuState);
        BootLayout layout = PvhLoader.Load(mem, image, PcMemoryMap.Build(ram), ram, new LinuxBootOptions("console=ttyS0"), ref cpu);
        Assert.That(cpu.Rip, Is.EqualTo((ulong)entry!.Value));
        Assert.That(layout.Find("segment0"), Is.Not.Null);

        // QEMU 7.2 with -m 128M, this vmlinux and a 3900-byte initrd published these (Debian 6.1.0-56 kernel).
        var fw = new FwCfg(new FakePhysicalMemory(0x1000));
        PvhLoader.ConfigureFwCfg(fw, new FakePhysicalMemory(128 << 20), image, 128 << 20,
            new LinuxBootOptions("console=ttyS0 quiet foo=bar", new byte[3900]));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeyInitrdAddr)), Is.EqualTo(0x7FD_7000u));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeyKernelEntry)), Is.EqualTo(entry.Value));
        Assert.That(fw.GetItem(FwCfg.KeySetupData), Is.EqualTo(image.AsSpan(0, 8192).ToArray()));
        if (entry.Value == 0x100_0850)
        {
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeyKernelAddr)), Is.EqualTo(0x100_0000u));
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeyKernelSize)), Is.EqualTo(0x3A0_0000u));
        }
    }

    [Test]
    public void ConfigureFwCfg_LoadsSegmentsAndPublishesItems()
    {
        var mem = new FakePhysicalMemory(Ram);
        var fw = new FwCfg(new FakePhysicalMemory(0x1000));
        byte[] image = MakeVmlinux();
        BootLayout layout = PvhLoader.ConfigureFwCfg(fw, mem, image, Ram, new LinuxBootOptions("ro", [5]));
        uint Item(ushort key) => BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(key));
        Assert.That(Item(FwCfg.KeyKernelEntry), Is.EqualTo(0x100_0010u));
        Assert.That(Item(FwCfg.KeyKernelAddr), Is.EqualTo(0x100_0000u), "lowest segment");
        Assert.That(Item(FwCfg.KeyKernelSize), Is.EqualTo(0x20_0001u), "up to the end of the highest segment");
        Assert.That(Item(FwCfg.KeyCmdlineSize), Is.EqualTo(3u));
        Assert.That(fw.GetItem(FwCfg.KeyCmdlineData), Is.EqualTo("ro\0"u8.ToArray()));
        Assert.That(fw.GetItem(FwCfg.KeySetupData), Is.EqualTo(image), "files under 8 KiB are handed over whole");
        Assert.That(Item(FwCfg.KeyInitrdSize), Is.EqualTo(1u));
        Assert.That(Item(FwCfg.KeyInitrdAddr), Is.EqualTo((uint)layout.Find("initrd")!.Value.Address));
        Assert.That(mem.Bytes[0x120_0000], Is.EqualTo(0x11), "segments are in RAM already");
        Assert.That(fw.GetItem(FwCfg.KeyCmdlineAddr), Is.Null, "QEMU publishes no command-line address for PVH");
    }
}
