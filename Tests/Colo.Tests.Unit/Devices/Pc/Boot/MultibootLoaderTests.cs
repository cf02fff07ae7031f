using System.Buffers.Binary;
using System.Text;
using Colo.Core.Cpu;
using Colo.Devices.Pc.Boot;
using Colo.Tests.Unit.Memory;

namespace Colo.Tests.Unit.Devices.Pc.Boot;

[TestFixture]
public sealed class MultibootLoaderTests
{
    private const int Ram = 32 << 20;

    private static void WriteHeader(Span<byte> at, uint flags)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(at, MultibootHeader.Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(at[4..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(at[8..], unchecked(0u - MultibootHeader.Magic - flags));
    }

    /// <summary>A kvm-unit-tests-style flat image: header at 0x40 using the a.out kludge, loaded at 4 MiB.</summary>
    internal static byte[] MakeAoutKernel(uint loadEnd = 0, uint bssEnd = 0x40_3000, int size = 0x1800)
    {
        byte[] img = new byte[size];
        for (int i = 0; i < img.Length; i++)
        {
            img[i] = (byte)(i + 3);
        }
        Span<byte> h = img.AsSpan(0x40);
        WriteHeader(h, MultibootHeader.FlagPageAlign | MultibootHeader.FlagMemoryInfo | MultibootHeader.FlagAoutKludge);
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], 0x40_0040); // header_addr
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], 0x40_0000); // load_addr
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], loadEnd);
        BinaryPrimitives.WriteUInt32LittleEndian(h[24..], bssEnd);
        BinaryPrimitives.WriteUInt32LittleEndian(h[28..], 0x40_0100); // entry_addr
        return img;
    }

    private static uint U32(FakePhysicalMemory m, ulong a) => BinaryPrimitives.ReadUInt32LittleEndian(m.Span(a, 4));

    private static string CString(FakePhysicalMemory m, ulong a)
    {
        int end = Array.IndexOf(m.Bytes, (byte)0, (int)a);
        return Encoding.ASCII.GetString(m.Bytes, (int)a, end - (int)a);
    }

    [Test]
    public void ParseModuleList_SplitsOnCommasWithEscape()
    {
        Assert.That(MultibootLoader.ParseModuleList("a arg,b"),
            Is.EqualTo(new[] { ("a", "a arg"), ("b", "b") }));
        Assert.That(MultibootLoader.ParseModuleList("x,,y z"), Is.EqualTo(new[] { ("x,y", "x,y z") }));
    }

    [Test]
    public void Load_AoutKludge_InfoModulesMmapAndCpu()
    {
        var mem = new FakePhysicalMemory(Ram);
        mem.Bytes.AsSpan(0x40_1800, 0x1800).Fill(0xEE);
        byte[] image = MakeAoutKernel();
        List<E820Entry> e820 = PcMemoryMap.ForDirectBoot(PcMemoryMap.Build(Ram));
        var cpu = default(X86CpuState);
        MultibootModule[] mods = [new([1, 2, 3], "a arg"), new(new byte[5000], "b")];
        BootLayout layout = MultibootLoader.Load(mem, image, "/path/x.flat -smp 1", mods, e820, Ram, ref cpu);

        Assert.That(mem.Span(0x40_0000, image.Length).ToArray(), Is.EqualTo(image), "file loaded at load_addr from offset 0");
        Assert.That(mem.Bytes[0x40_2FFF], Is.Zero, "bss cleared up to bss_end_addr");
        Assert.That(cpu.Rip, Is.EqualTo(0x40_0100UL));
        Assert.That(cpu.Gpr[0], Is.EqualTo(0x2BAD_B002UL), "EAX");
        Assert.That(cpu.Gpr[3], Is.EqualTo(MultibootLoader.InfoAddress), "EBX");
        Assert.That(cpu.Cr0 & (X86CpuState.Cr0Pe | X86CpuState.Cr0Pg), Is.EqualTo(X86CpuState.Cr0Pe));
        Assert.That(cpu.Rflags & X86CpuState.FlagIf, Is.Zero);

        const ulong mbi = MultibootLoader.InfoAddress;
        Assert.That(U32(mem, mbi), Is.EqualTo(0x24Fu), "mem, boot device, cmdline, mods, mmap, loader name");
        Assert.That(U32(mem, mbi + 4), Is.EqualTo(639u), "RAM below the EBDA in the map");
        Assert.That(U32(mem, mbi + 8), Is.EqualTo((uint)(Ram / 1024 - 1024)));
        Assert.That(U32(mem, mbi + 12), Is.EqualTo(0x8000_FFFFu));
        Assert.That(CString(mem, U32(mem, mbi + 16)), Is.EqualTo("/path/x.flat -smp 1"));
        Assert.That(CString(mem, U32(mem, mbi + 64)), Is.EqualTo("qemu"));

        Assert.That(U32(mem, mbi + 20), Is.EqualTo(2u));
        uint modsAddr = U32(mem, mbi + 24);
        Assert.That(modsAddr % 4, Is.Zero);
        Assert.That(modsAddr, Is.EqualTo(0x40_3000u), "module table right after the page-aligned bss end");
        uint m0 = U32(mem, modsAddr);
        Assert.That(m0, Is.EqualTo(0x40_4000u), "first module on the page after the table and strings");
        Assert.That(U32(mem, modsAddr + 4), Is.EqualTo(m0 + 3));
        Assert.That(CString(mem, U32(mem, modsAddr + 8)), Is.EqualTo("a arg"));
        Assert.That(mem.Span(m0, 3).ToArray(), Is.EqualTo(new byte[] { 1, 2, 3 }));
        uint m1 = U32(mem, modsAddr + 16);
        Assert.That(m1, Is.EqualTo(0x40_5000u));
        Assert.That(U32(mem, modsAddr + 20), Is.EqualTo(m1 + 5000));
        Assert.That(CString(mem, U32(mem, modsAddr + 24)), Is.EqualTo("b"));

        Assert.That(U32(mem, mbi + 44), Is.EqualTo((uint)(e820.Count * 24)));
        uint mmap = U32(mem, mbi + 48);
        for (int i = 0; i < e820.Count; i++)
        {
            ulong at = mmap + (ulong)(i * 24);
            Assert.That(U32(mem, at), Is.EqualTo(20u), "size excludes itself");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(mem.Span(at + 4, 8)), Is.EqualTo(e820[i].Address));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(mem.Span(at + 12, 8)), Is.EqualTo(e820[i].Length));
            Assert.That(U32(mem, at + 20), Is.EqualTo((uint)e820[i].Type));
        }
        Assert.That(layout.Find("module1")!.Value.Size, Is.EqualTo(5000UL));
    }

    [Test]
    public void Load_AoutKludge_LoadEndAddrLimitsCopy()
    {
        var mem = new FakePhysicalMemory(Ram);
        var cpu = default(X86CpuState);
        MultibootLoader.Load(mem, MakeAoutKernel(loadEnd: 0x40_0800), "", [], [], Ram, ref cpu);
        Assert.That(mem.Bytes[0x40_07FF], Is.EqualTo(unchecked((byte)(0x7FF + 3))));
        Assert.That(mem.Bytes[0x40_0800], Is.Zero, "beyond load_end_addr is bss");
    }

    [Test]
    public void Load_Elf32_UsesSegmentsAndEntry()
    {
        byte[] elf = ElfBuilder.Build(false, 3, 0x10_0010, [new ElfBuilder.Segment(0x10_0000, new byte[0x40], 0x1000)]);
        WriteHeader(elf.AsSpan(elf.Length - 0x40), MultibootHeader.FlagMemoryInfo);
        var mem = new FakePhysicalMemory(Ram);
        var cpu = default(X86CpuState);
        BootLayout layout = MultibootLoader.Load(mem, elf, "k", [new([9], "m")], [], Ram, ref cpu);
        Assert.That(cpu.Rip, Is.EqualTo(0x10_0010UL));
        Assert.That(U32(mem, U32(mem, MultibootLoader.InfoAddress + 24)), Is.EqualTo(0x10_2000u),
            "module after the segment's memory size and the table page");
        Assert.That(layout.Find("segment0")!.Value.Size, Is.EqualTo(0x1000UL));
    }

    [Test]
    public void ConfigureFwCfg_MatchesQemu72()
    {
        // Observed on qemu-system-x86_64 7.2: -kernel mb.bin (this a.out image) -append "x y"
        // -initrd "/tmp/fwcfg-work/m1.bin a arg,/tmp/fwcfg-work/m2.bin" with m1 = 01 02 03 and m2 = 5000 zero bytes.
        var fw = new Colo.Devices.Firmware.FwCfg(new FakePhysicalMemory(0x1000));
        var mods = new List<MultibootModule>();
        foreach ((string path, string cmdline) in MultibootLoader.ParseModuleList("/tmp/fwcfg-work/m1.bin a arg,/tmp/fwcfg-work/m2.bin"))
        {
            mods.Add(new MultibootModule(path.EndsWith("m1.bin", StringComparison.Ordinal) ? [1, 2, 3] : new byte[5000], cmdline));
        }
        MultibootLoader.ConfigureFwCfg(fw, MakeAoutKernel(), MultibootLoader.QemuCommandLine("/tmp/fwcfg-work/mb.bin", "x y"),
            mods, Ram);
        uint Item(ushort key) => BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(key));
        Assert.That(Item(Colo.Devices.Firmware.FwCfg.KeyKernelAddr), Is.EqualTo(0x40_0000u));
        Assert.That(Item(Colo.Devices.Firmware.FwCfg.KeyKernelSize), Is.EqualTo(0x7000u));
        Assert.That(Item(Colo.Devices.Firmware.FwCfg.KeyKernelEntry), Is.EqualTo(0x40_0100u));
        Assert.That(Item(Colo.Devices.Firmware.FwCfg.KeyInitrdAddr), Is.EqualTo(0x9500u));
        Assert.That(Item(Colo.Devices.Firmware.FwCfg.KeyInitrdSize), Is.EqualTo(0x58u));
        Assert.That(Convert.ToHexStringLower(fw.GetItem(Colo.Devices.Firmware.FwCfg.KeyInitrdData)!), Is.EqualTo(
            "4f0200000000000000000000ffff00805430400002000000003040000000000000000000000000000000000000000000" +
            "009000000000000000000000000000006f3040000000000000000000000000000000000000000000"));
        byte[] data = fw.GetItem(Colo.Devices.Firmware.FwCfg.KeyKernelData)!;
        Assert.That(Convert.ToHexStringLower(data.AsSpan(0x3000, 0x80)), Is.EqualTo(
            "0040400003404000203040000000000000504000886340003d304000000000002f746d702f66776366672d776f726b2f" +
            "6d312e62696e206120617267002f746d702f66776366672d776f726b2f6d322e62696e002f746d702f66776366672d77" +
            "6f726b2f6d622e62696e207820790071656d7500000000000000000000000000"));
        Assert.That(data.AsSpan(0, 0x1800).ToArray(), Is.EqualTo(MakeAoutKernel()));
        Assert.That(data.AsSpan(0x4000, 3).ToArray(), Is.EqualTo(new byte[] { 1, 2, 3 }));
        Assert.That(MultibootLoader.OptionRomName(true), Is.EqualTo("multiboot_dma.bin"));
    }

    [Test]
    public void Load_Elf64_IsRefusedAsQemuDoes()
    {
        byte[] elf = ElfBuilder.Build(true, 62, 0x10_0010, [new ElfBuilder.Segment(0x10_0000, new byte[0x40], 0x1000)]);
        WriteHeader(elf.AsSpan(elf.Length - 0x40), 0);
        var cpu = default(X86CpuState);
        Assert.That(() => MultibootLoader.Load(new FakePhysicalMemory(Ram), elf, "", [], [], Ram, ref cpu),
            Throws.TypeOf<KernelImageException>().With.Message.Contains("x86-64"));
    }

    private static IEnumerable<TestCaseData> Malformed()
    {
        yield return new TestCaseData(new byte[64], "no multiboot header").SetName("Load_Malformed_NoHeader");
        byte[] badSum = MakeAoutKernel();
        badSum[0x48] ^= 1;
        yield return new TestCaseData(badSum, "no multiboot header").SetName("Load_Malformed_BadChecksum");
        byte[] late = new byte[9000];
        WriteHeader(late.AsSpan(8192), 0);
        yield return new TestCaseData(late, "no multiboot header").SetName("Load_Malformed_HeaderPast8K");
        yield return new TestCaseData(MakeAoutKernel(loadEnd: 0x50_0000), "truncated").SetName("Load_Malformed_LoadEndPastFile");
        yield return new TestCaseData(MakeAoutKernel(loadEnd: 0x30_0000), "load_end_addr").SetName("Load_Malformed_LoadEndBelowLoad");
        yield return new TestCaseData(MakeAoutKernel(bssEnd: 0x40_0010), "bss_end_addr").SetName("Load_Malformed_BssBelowImage");
        yield return new TestCaseData(MakeAoutKernel(bssEnd: 0xFFFF_F000), "does not fit").SetName("Load_Malformed_BssBeyondRam");
        byte[] headerBefore = MakeAoutKernel();
        BinaryPrimitives.WriteUInt32LittleEndian(headerBefore.AsSpan(0x40 + 12), 0x50_0000);
        yield return new TestCaseData(headerBefore, "load_addr").SetName("Load_Malformed_LoadAddrBeforeFile");
        yield return new TestCaseData(MakeAoutKernel()[..0x50], "truncated").SetName("Load_Malformed_TruncatedAddressFields");
    }

    [TestCaseSource(nameof(Malformed))]
    public void Load_Malformed_ThrowsClearMessage(byte[] image, string message)
    {
        var cpu = default(X86CpuState);
        Assert.That(() => MultibootLoader.Load(new FakePhysicalMemory(Ram), image, "", [], [], Ram, ref cpu),
            Throws.TypeOf<KernelImageException>().With.Message.Contains(message));
    }
}
