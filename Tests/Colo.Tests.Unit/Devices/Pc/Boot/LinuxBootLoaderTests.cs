using System.Buffers.Binary;
using System.Text;
using Colo.Core.Cpu;
using Colo.Devices.Firmware;
using Colo.Devices.Pc.Boot;
using Colo.Tests.Unit.Memory;

namespace Colo.Tests.Unit.Devices.Pc.Boot;

[TestFixture]
public sealed class LinuxBootLoaderTests
{
    private const int Ram = 128 << 20;

    /// <summary>A synthetic bzImage: 4 setup sectors plus the boot sector, then a recognisable protected-mode part.</summary>
    internal static byte[] MakeBzImage(ushort version = 0x20F, int kernelSize = 8192, byte loadFlags = 0x01,
        uint cmdlineSize = 2047, uint initrdAddrMax = 0x7FFF_FFFF, ushort xloadflags = 0x03)
    {
        byte[] img = new byte[5 * 512 + kernelSize];
        Span<byte> s = img;
        s[0x1F1] = 4;
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x1FA..], 0xFFFF);
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x1FE..], 0xAA55);
        s[0x200] = 0xEB;
        s[0x201] = 0x66; // header ends at 0x268
        "HdrS"u8.CopyTo(s[0x202..]);
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x206..], version);
        s[0x211] = loadFlags;
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x214..], 0x10_0000);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x22C..], initrdAddrMax);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x230..], 0x20_0000);
        s[0x234] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x236..], xloadflags);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x238..], cmdlineSize);
        BinaryPrimitives.WriteUInt64LittleEndian(s[0x258..], 0x100_0000);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x260..], 0x4000);
        for (int i = 0; i < kernelSize; i++)
        {
            img[5 * 512 + i] = (byte)(i * 7 + 1);
        }
        return img;
    }

    private static uint U32(FakePhysicalMemory m, ulong a) => BinaryPrimitives.ReadUInt32LittleEndian(m.Span(a, 4));

    [Test]
    public void ParseHeader_ReadsFields()
    {
        LinuxSetupHeader h = LinuxSetupHeader.Parse(MakeBzImage());
        Assert.That(h.Version, Is.EqualTo((ushort)0x20F));
        Assert.That(h.SetupSize, Is.EqualTo(2560));
        Assert.That(h.RelocatableKernel, Is.True);
        Assert.That(h.XLoadFlags, Is.EqualTo((ushort)3));
        Assert.That(h.CmdlineSize, Is.EqualTo(2047u));
        Assert.That(h.PrefAddress, Is.EqualTo(0x100_0000UL));
        Assert.That(h.HeaderEnd, Is.EqualTo(0x268));
        Assert.That(h.EffectiveInitrdAddrMax, Is.EqualTo(uint.MaxValue), "XLF_CAN_BE_LOADED_ABOVE_4G on 2.12+");
    }

    [Test]
    public void LoadDirect_LaysOutZeroPageCmdlineKernelInitrd()
    {
        var mem = new FakePhysicalMemory(Ram);
        byte[] image = MakeBzImage();
        byte[] initrd = new byte[10_000];
        initrd[0] = 0x1F;
        initrd[^1] = 0x8B;
        List<E820Entry> e820 = PcMemoryMap.ForDirectBoot(PcMemoryMap.Build(Ram, amdHtHole: true));
        var cpu = default(X86CpuState);
        BootLayout layout = LinuxBootLoader.LoadDirect(mem, image, e820, Ram,
            new LinuxBootOptions("console=ttyS0 root=/dev/sda", initrd, AcpiRsdpAddress: 0xF5A40), ref cpu);

        const ulong bp = LinuxBootLoader.RealModeAddress;
        // The setup header is copied verbatim apart from the loader's fields.
        Assert.That(mem.Span(bp + 0x202, 4).ToArray(), Is.EqualTo("HdrS"u8.ToArray()));
        Assert.That(mem.Bytes[bp + 0x1F1], Is.EqualTo(4));
        Assert.That(mem.Bytes[bp + 0x210], Is.EqualTo(0xB0), "type_of_loader = QEMU");
        Assert.That(U32(mem, bp + 0x228), Is.EqualTo(0x2_0000u), "cmd_line_ptr");
        Assert.That(mem.Bytes[bp + 0x268], Is.Zero, "nothing copied past the header end");
        Assert.That(Encoding.ASCII.GetString(mem.Span(0x2_0000, 29)), Is.EqualTo("console=ttyS0 root=/dev/sda\0\0"[..29]));

        // The initrd goes below low RAM minus QEMU's 0x28000 ACPI area, page aligned.
        ulong expectInitrd = (Ram - 0x2_8000UL - 1 - 10_000) & ~0xFFFUL;
        Assert.That(U32(mem, bp + 0x218), Is.EqualTo((uint)expectInitrd), "ramdisk_image");
        Assert.That(U32(mem, bp + 0x21C), Is.EqualTo(10_000u), "ramdisk_size");
        Assert.That(mem.Bytes[expectInitrd], Is.EqualTo(0x1F));
        Assert.That(mem.Bytes[expectInitrd + 9_999], Is.EqualTo(0x8B));
        Assert.That(layout.Find("initrd")!.Value.Address, Is.EqualTo(expectInitrd));

        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(mem.Span(bp + 0x70, 8)), Is.EqualTo(0xF5A40UL), "acpi_rsdp_addr");
        Assert.That(mem.Bytes[bp + 0x1E8], Is.EqualTo(e820.Count), "e820_entries");
        for (int i = 0; i < e820.Count; i++)
        {
            ulong at = bp + 0x2D0 + (ulong)(i * 20);
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(mem.Span(at, 8)), Is.EqualTo(e820[i].Address));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(mem.Span(at + 8, 8)), Is.EqualTo(e820[i].Length));
            Assert.That(U32(mem, at + 16), Is.EqualTo((uint)e820[i].Type));
        }
        Assert.That(mem.Span(0x10_0000, 8192).ToArray(), Is.EqualTo(image.AsSpan(2560).ToArray()), "protected-mode kernel at 1 MiB");
    }

    [Test]
    public void LoadDirect_CpuState_Is32BitBootProtocol()
    {
        var mem = new FakePhysicalMemory(Ram);
        var cpu = default(X86CpuState);
        LinuxBootLoader.LoadDirect(mem, MakeBzImage(), PcMemoryMap.Build(Ram), Ram, new LinuxBootOptions(), ref cpu);

        Assert.That(cpu.Rip, Is.EqualTo(0x10_0000UL));
        Assert.That(cpu.Gpr[6], Is.EqualTo(LinuxBootLoader.RealModeAddress), "ESI = boot_params");
        Assert.That(cpu.Gpr[3] | cpu.Gpr[5] | cpu.Gpr[7], Is.Zero, "EBX, EBP, EDI zero");
        Assert.That(cpu.Cr0 & X86CpuState.Cr0Pe, Is.Not.Zero);
        Assert.That(cpu.Cr0 & X86CpuState.Cr0Pg, Is.Zero);
        Assert.That(cpu.Rflags & X86CpuState.FlagIf, Is.Zero);
        Assert.That(cpu.Efer, Is.Zero);
        SegmentRegister cs = cpu.Segments[(int)SegmentIndex.Cs];
        Assert.That((cs.Selector, cs.Base, cs.Limit), Is.EqualTo(((ushort)0x10, 0UL, 0xFFFF_FFFFu)));
        Assert.That(cs.Attributes & SegmentRegister.DB, Is.Not.Zero, "32-bit code");
        foreach (SegmentIndex s in new[] { SegmentIndex.Ds, SegmentIndex.Es, SegmentIndex.Ss })
        {
            Assert.That(cpu.Segments[(int)s].Selector, Is.EqualTo((ushort)0x18));
            Assert.That(cpu.Segments[(int)s].Limit, Is.EqualTo(0xFFFF_FFFFu));
        }
        // The GDT in memory matches the cached descriptors.
        Assert.That(cpu.Gdtr.Base, Is.EqualTo(BootCpu.GdtAddress));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(mem.Span(cpu.Gdtr.Base + 0x10, 8)), Is.EqualTo(0x00CF_9B00_0000_FFFFUL));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(mem.Span(cpu.Gdtr.Base + 0x18, 8)), Is.EqualTo(0x00CF_9300_0000_FFFFUL));
    }

    [Test]
    public void LoadDirect_InitrdAddrMax_IsHonoured()
    {
        var mem = new FakePhysicalMemory(Ram);
        var cpu = default(X86CpuState);
        // Protocol 2.06 without XLF_CAN_BE_LOADED_ABOVE_4G: initrd_addr_max is the limit.
        BootLayout layout = LinuxBootLoader.LoadDirect(mem, MakeBzImage(version: 0x206, initrdAddrMax: 0x3FF_FFFF, xloadflags: 0),
            PcMemoryMap.Build(Ram), Ram, new LinuxBootOptions(Initrd: new byte[4096]), ref cpu);
        Assert.That(layout.Find("initrd")!.Value.Address, Is.EqualTo(0x3FF_E000UL));
    }

    [Test]
    public void ConfigureFwCfg_PublishesPatchedSetupAndItems()
    {
        var mem = new FakePhysicalMemory(0x1000);
        var fw = new FwCfg(mem);
        byte[] image = MakeBzImage();
        byte[] initrd = [1, 2, 3];
        LinuxBootLoader.ConfigureFwCfg(fw, image, Ram, new LinuxBootOptions("quiet", initrd));

        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeyKernelAddr)), Is.EqualTo(0x10_0000u));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeyKernelSize)), Is.EqualTo(8192u));
        Assert.That(fw.GetItem(FwCfg.KeyKernelData), Is.EqualTo(image.AsSpan(2560).ToArray()));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeyCmdlineAddr)), Is.EqualTo(0x2_0000u));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeyCmdlineSize)), Is.EqualTo(6u));
        Assert.That(fw.GetItem(FwCfg.KeyCmdlineData), Is.EqualTo("quiet\0"u8.ToArray()));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeySetupAddr)), Is.EqualTo(0x1_0000u));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeySetupSize)), Is.EqualTo(2560u));
        uint initrdAddr = BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeyInitrdAddr));
        Assert.That(initrdAddr, Is.EqualTo((uint)((Ram - 0x2_8000UL - 1 - 3) & ~0xFFFUL)));
        Assert.That(fw.GetItem(FwCfg.KeyInitrdData), Is.EqualTo(initrd));

        byte[] setup = fw.GetItem(FwCfg.KeySetupData)!;
        Assert.That(setup, Has.Length.EqualTo(2560));
        Assert.That(setup[0x210], Is.EqualTo(0xB0));
        Assert.That(setup[0x211], Is.EqualTo(0x81), "LOADED_HIGH | CAN_USE_HEAP");
        Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(setup.AsSpan(0x224)), Is.EqualTo(0xFE00), "heap_end_ptr");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(setup.AsSpan(0x228)), Is.EqualTo(0x2_0000u));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(setup.AsSpan(0x218)), Is.EqualTo(initrdAddr));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(setup.AsSpan(0x21C)), Is.EqualTo(3u));
        Assert.That(LinuxBootLoader.OptionRomName(fw.DmaEnabled), Is.EqualTo("linuxboot_dma.bin"));
    }

    [Test]
    public void ConfigureFwCfg_OldProtocol_UsesLegacyCommandLinePointer()
    {
        var fw = new FwCfg(new FakePhysicalMemory(0x1000));
        LinuxBootLoader.ConfigureFwCfg(fw, MakeBzImage(version: 0x201), Ram, new LinuxBootOptions("ro"));
        byte[] setup = fw.GetItem(FwCfg.KeySetupData)!;
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeySetupAddr)), Is.EqualTo(0x9_0000u));
        Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(setup.AsSpan(0x20)), Is.EqualTo(0xA33F));
        Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(setup.AsSpan(0x22)), Is.EqualTo(0xA000 - 3));
    }

    private static TestCaseData Bad(byte[] image, string message, string name) =>
        new TestCaseData(image, message).SetName($"LoadDirect_Malformed_{name}");

    private static IEnumerable<TestCaseData> MalformedImages()
    {
        yield return Bad([], "truncated", "Empty");
        yield return Bad(MakeBzImage()[..0x240], "truncated", "TruncatedHeader");
        byte[] noMagic = MakeBzImage();
        noMagic[0x202] = (byte)'X';
        yield return Bad(noMagic, "HdrS", "BadMagic");
        byte[] hugeSetup = MakeBzImage();
        hugeSetup[0x1F1] = 255;
        yield return Bad(hugeSetup, "truncated", "SetupBeyondFile");
        yield return Bad(MakeBzImage(version: 0x201), "too old", "OldProtocol");
        yield return Bad(MakeBzImage(loadFlags: 0), "too old", "ZImage");
        byte[] hugeInit = MakeBzImage();
        BinaryPrimitives.WriteUInt32LittleEndian(hugeInit.AsSpan(0x260), 0xF000_0000);
        yield return Bad(hugeInit, "does not fit", "InitSizeBeyondRam");
    }

    [TestCaseSource(nameof(MalformedImages))]
    public void LoadDirect_Malformed_ThrowsClearMessage(byte[] image, string message)
    {
        var mem = new FakePhysicalMemory(Ram);
        var cpu = default(X86CpuState);
        Assert.That(() => LinuxBootLoader.LoadDirect(mem, image, PcMemoryMap.Build(Ram), Ram, new LinuxBootOptions(), ref cpu),
            Throws.TypeOf<KernelImageException>().With.Message.Contains(message));
    }

    [Test]
    public void LoadDirect_CommandLineTooLong_OrInitrdTooLarge_Throws()
    {
        var mem = new FakePhysicalMemory(Ram);
        var cpu = default(X86CpuState);
        byte[] image = MakeBzImage(cmdlineSize: 10);
        Assert.That(() => LinuxBootLoader.LoadDirect(mem, image, [], Ram, new LinuxBootOptions(new string('a', 11)), ref cpu),
            Throws.TypeOf<KernelImageException>().With.Message.Contains("at most 10"));
        Assert.That(() => LinuxBootLoader.LoadDirect(mem, MakeBzImage(), [], Ram,
                new LinuxBootOptions(Initrd: new byte[Ram]), ref cpu),
            Throws.TypeOf<KernelImageException>().With.Message.Contains("initrd is too large"));
        Assert.That(() => LinuxBootLoader.LoadDirect(mem, MakeBzImage(), [], 0x10_2000,
                new LinuxBootOptions(Initrd: new byte[16]), ref cpu),
            Throws.TypeOf<KernelImageException>());
    }

    /// <summary>Debian's kernel from tools/guest/build.sh (or COLO_TEST_BZIMAGE), when present.</summary>
    internal static string? FindGuestFile(string name, string envVar)
    {
        string? env = Environment.GetEnvironmentVariable(envVar);
        if (env is not null && File.Exists(env))
        {
            return env;
        }
        for (DirectoryInfo? d = new(TestContext.CurrentContext.TestDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "build", "guest", name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }

    [Test]
    public void LoadDirect_DebianKernel_WhenAvailable()
    {
        string? path = FindGuestFile("bzImage", "COLO_TEST_BZIMAGE");
        Assume.That(path, Is.Not.Null, "no guest bzImage (run tools/guest/build.sh or set COLO_TEST_BZIMAGE)");
        byte[] image = File.ReadAllBytes(path!);
        LinuxSetupHeader h = LinuxSetupHeader.Parse(image);
        Assert.That(h.Version, Is.GreaterThanOrEqualTo((ushort)0x20C));
        Assert.That(h.XLoadFlags & LinuxSetupHeader.XlfKernel64, Is.Not.Zero);
        const int ram = 256 << 20;
        var mem = new FakePhysicalMemory(ram);
        var cpu = default(X86CpuState);
        BootLayout layout = LinuxBootLoader.LoadDirect(mem, image, PcMemoryMap.Build(ram), ram,
            new LinuxBootOptions("console=ttyS0", new byte[1 << 20]), ref cpu);
        Assert.That(layout.Find("kernel")!.Value.Size, Is.EqualTo((ulong)Math.Max(image.Length - h.SetupSize, h.InitSize)));
        Assert.That(mem.Span(0x10_0000, 64).ToArray(), Is.EqualTo(image.AsSpan(h.SetupSize, 64).ToArray()));
    }
}

/// <summary>Cross-check against real QEMU 7.2: the items it publishes for the same kernel, initrd and command line.</summary>
[TestFixture]
public sealed class LinuxBootLoaderQemuTests
{
    [Test]
    public void ConfigureFwCfg_DebianKernel_MatchesQemu()
    {
        string? dump = Environment.GetEnvironmentVariable("COLO_TEST_QEMU_LINUXBOOT_DUMP");
        string? kernel = LinuxBootLoaderTests.FindGuestFile("bzImage", "COLO_TEST_BZIMAGE");
        Assume.That(dump is not null && Directory.Exists(dump) && kernel is not null, Is.True,
            "set COLO_TEST_QEMU_LINUXBOOT_DUMP (from dump-qemu-linuxboot.py) and COLO_TEST_BZIMAGE");
        var fw = new FwCfg(new FakePhysicalMemory(0x1000));
        byte[] initrd = File.ReadAllBytes(Path.Combine(dump!, "qemu-initrd.bin"));
        LinuxBootLoader.ConfigureFwCfg(fw, File.ReadAllBytes(kernel!), 128 << 20,
            new LinuxBootOptions("console=ttyS0 quiet foo=bar", initrd));
        Assert.That(fw.GetItem(FwCfg.KeySetupData), Is.EqualTo(File.ReadAllBytes(Path.Combine(dump!, "qemu-setup.bin"))));
        Assert.That(fw.GetItem(FwCfg.KeyCmdlineData), Is.EqualTo(File.ReadAllBytes(Path.Combine(dump!, "qemu-cmdline.bin"))));
        Assert.That(fw.GetItem(FwCfg.KeyKernelData), Is.EqualTo(File.ReadAllBytes(Path.Combine(dump!, "qemu-kernel.bin"))));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fw.GetItem(FwCfg.KeyInitrdAddr)), Is.EqualTo(0x7FD_7000u),
            "QEMU put this 3900-byte initrd at 0x7fd7000 with -m 128M");
    }
}
