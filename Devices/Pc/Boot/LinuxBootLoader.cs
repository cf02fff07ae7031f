using System.Buffers.Binary;
using System.Text;
using Colo.Core.Cpu;
using Colo.Core.Memory;
using Colo.Devices.Firmware;

namespace Colo.Devices.Pc.Boot;

/// <summary>
/// The real-mode kernel header of a bzImage (Linux Documentation/arch/x86/boot.rst, "The Real-Mode Kernel Header").
/// Offsets are file offsets, which are also the offsets inside <c>boot_params</c>.
/// </summary>
public sealed record LinuxSetupHeader(
    ushort Version, byte SetupSects, byte LoadFlags, uint Code32Start, uint InitrdAddrMax, uint KernelAlignment,
    bool RelocatableKernel, ushort XLoadFlags, uint CmdlineSize, ulong PrefAddress, uint InitSize, int HeaderEnd)
{
    // Header field offsets.
    public const int SetupSectsOffset = 0x1F1;
    public const int VidModeOffset = 0x1FA;
    public const int BootFlagOffset = 0x1FE;
    public const int JumpOffset = 0x200;
    public const int MagicOffset = 0x202;
    public const int VersionOffset = 0x206;
    public const int TypeOfLoaderOffset = 0x210;
    public const int LoadFlagsOffset = 0x211;
    public const int Code32StartOffset = 0x214;
    public const int RamdiskImageOffset = 0x218;
    public const int RamdiskSizeOffset = 0x21C;
    public const int HeapEndPtrOffset = 0x224;
    public const int CmdLinePtrOffset = 0x228;
    public const int InitrdAddrMaxOffset = 0x22C;
    public const int KernelAlignmentOffset = 0x230;
    public const int RelocatableKernelOffset = 0x234;
    public const int XLoadFlagsOffset = 0x236;
    public const int CmdlineSizeOffset = 0x238;
    public const int PrefAddressOffset = 0x258;
    public const int InitSizeOffset = 0x260;
    /// <summary>End of the setup header as boot_params holds it (the next field, _pad7, starts here).</summary>
    public const int MaxHeaderEnd = 0x290;

    public const uint Magic = 0x5372_6448; // "HdrS"

    // loadflags.
    public const byte LoadedHigh = 0x01;
    public const byte CanUseHeap = 0x80;

    // xloadflags.
    public const ushort XlfKernel64 = 0x01;
    public const ushort XlfCanBeLoadedAbove4G = 0x02;

    /// <summary>Size of the real-mode part: the boot sector plus <see cref="SetupSects"/> sectors (0 meaning 4).</summary>
    public int SetupSize => ((SetupSects == 0 ? 4 : SetupSects) + 1) * 512;

    /// <summary>Highest address an initrd byte may occupy, per protocol version (boot.rst "initrd_addr_max").</summary>
    public uint EffectiveInitrdAddrMax =>
        Version >= 0x20C && (XLoadFlags & XlfCanBeLoadedAbove4G) != 0 ? uint.MaxValue
        : Version >= 0x203 ? InitrdAddrMax
        : 0x37FF_FFFF;

    /// <summary>Longest command line without its NUL (255 before protocol 2.06).</summary>
    public uint EffectiveCmdlineSize => Version >= 0x206 ? CmdlineSize : 255;

    /// <summary>Parses and validates the header; throws <see cref="KernelImageException"/> on anything unusable.</summary>
    public static LinuxSetupHeader Parse(ReadOnlySpan<byte> image)
    {
        // Every field this parser may read lies below 0x268; a real bzImage is far longer.
        ImageBytes.Need(image, 0, InitSizeOffset + 8, "the setup header", "Linux kernel image");
        if (BinaryPrimitives.ReadUInt32LittleEndian(image[MagicOffset..]) != Magic)
        {
            throw new KernelImageException("Linux kernel image has no \"HdrS\" setup header (not a bzImage)");
        }
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(image[VersionOffset..]);
        // The jump at 0x200 is a short jump whose displacement says where the header ends.
        int headerEnd = Math.Min(JumpOffset + 2 + image[JumpOffset + 1], MaxHeaderEnd);
        static uint U32(ReadOnlySpan<byte> image, ushort version, int offset, ushort since) =>
            version >= since ? BinaryPrimitives.ReadUInt32LittleEndian(image[offset..]) : 0;
        var header = new LinuxSetupHeader(
            version,
            image[SetupSectsOffset],
            image[LoadFlagsOffset],
            BinaryPrimitives.ReadUInt32LittleEndian(image[Code32StartOffset..]),
            U32(image, version, InitrdAddrMaxOffset, 0x203),
            U32(image, version, KernelAlignmentOffset, 0x205),
            version >= 0x205 && image[RelocatableKernelOffset] != 0,
            version >= 0x20C ? BinaryPrimitives.ReadUInt16LittleEndian(image[XLoadFlagsOffset..]) : (ushort)0,
            U32(image, version, CmdlineSizeOffset, 0x206),
            version >= 0x20A ? BinaryPrimitives.ReadUInt64LittleEndian(image[PrefAddressOffset..]) : 0,
            U32(image, version, InitSizeOffset, 0x20A),
            headerEnd);
        if (header.SetupSize >= image.Length)
        {
            throw new KernelImageException(
                $"Linux kernel image is truncated: {header.SetupSize} bytes of setup code but a {image.Length}-byte file");
        }
        return header;
    }
}

/// <summary>What the caller wants besides the kernel.</summary>
/// <param name="CommandLine">The kernel command line (<c>-append</c>).</param>
/// <param name="Initrd">Initial ramdisk contents, or null.</param>
/// <param name="AcpiRsdpAddress">Physical address of the ACPI RSDP, written to boot_params when given.</param>
public sealed record LinuxBootOptions(string CommandLine = "", byte[]? Initrd = null, ulong? AcpiRsdpAddress = null);

/// <summary>
/// Loads a Linux bzImage. Two ways:
/// <list type="bullet">
/// <item><see cref="LoadDirect"/> writes everything into guest RAM and prepares the 32-bit boot protocol entry
/// (boot.rst "32-bit Boot Protocol"), so no firmware runs: the protected-mode kernel at 1 MiB, a fresh zero page
/// with the setup header and e820 map, the command line, the initrd at the top of low RAM.</item>
/// <item><see cref="ConfigureFwCfg"/> publishes the pieces through fw_cfg the way QEMU 7.2's <c>-kernel</c> does, for
/// SeaBIOS's linuxboot option ROM to copy and enter in real mode.</item>
/// </list>
/// Addresses follow QEMU's choices for a modern (2.02+) kernel: setup/zero page at 0x10000, command line at 0x20000,
/// kernel at 0x100000, and the initrd below <c>initrd_addr_max</c> and below the top 160 KiB of low RAM that SeaBIOS
/// keeps for ACPI tables.
/// </summary>
public static class LinuxBootLoader
{
    /// <summary>Where QEMU puts the real-mode setup (and where the zero page goes for the 32-bit entry).</summary>
    public const ulong RealModeAddress = 0x1_0000;
    public const ulong CmdlineAddress = 0x2_0000;
    public const ulong KernelAddress = 0x10_0000;
    /// <summary>QEMU's loader id (type 0xB, version 0), which the kernel shows in its boot log.</summary>
    public const byte TypeOfLoaderQemu = 0xB0;
    /// <summary>Top of low RAM kept free of the initrd for the firmware's ACPI tables (QEMU's <c>acpi_data_size</c>).</summary>
    public const ulong AcpiDataSize = 0x2_0000 + 0x8000;
    /// <summary>A stack for the kernel's first instructions, inside free conventional memory.</summary>
    public const uint BootStackPointer = 0x8FF0;

    // boot_params fields outside the setup header (Documentation/arch/x86/zero-page.rst).
    public const int BootParamsSize = 4096;
    public const int AcpiRsdpAddrOffset = 0x070;
    public const int ExtRamdiskImageOffset = 0x0C0;
    public const int ExtRamdiskSizeOffset = 0x0C4;
    public const int ExtCmdLinePtrOffset = 0x0C8;
    public const int E820EntriesOffset = 0x1E8;
    public const int E820TableOffset = 0x2D0;
    public const int E820MaxEntries = 128;

    /// <summary>
    /// Loads <paramref name="image"/> for the 32-bit entry and leaves <paramref name="cpu"/> at <c>code32_start</c>:
    /// flat protected mode, CS 0x10, data 0x18, paging and interrupts off, ESI = zero page, EBP/EDI/EBX = 0.
    /// </summary>
    /// <param name="e820">The map to pass in boot_params (at most 128 entries are used, as the kernel reads).</param>
    /// <param name="ramBelow4G">Bytes of RAM from address 0; everything is placed below it.</param>
    public static BootLayout LoadDirect(IPhysicalMemory memory, ReadOnlySpan<byte> image, IReadOnlyList<E820Entry> e820,
        ulong ramBelow4G, LinuxBootOptions options, ref X86CpuState cpu)
    {
        LinuxSetupHeader h = LinuxSetupHeader.Parse(image);
        if (h.Version < 0x202 || (h.LoadFlags & LinuxSetupHeader.LoadedHigh) == 0)
        {
            throw new KernelImageException(
                $"Linux boot protocol {h.Version >> 8}.{h.Version & 0xFF:d2} kernel is too old for direct 32-bit boot " +
                "(needs 2.02 and a bzImage loaded high); boot it through the BIOS");
        }
        byte[] cmdline = CommandLineBytes(h, options.CommandLine);
        ReadOnlySpan<byte> kernel = image[h.SetupSize..];
        var layout = new BootLayout { EntryPoint = (uint)KernelAddress };

        BootCpu.WriteGdt(memory, layout, ramBelow4G);
        layout.Place("boot_params", RealModeAddress, BootParamsSize, ramBelow4G);
        layout.Place("cmdline", CmdlineAddress, (ulong)cmdline.Length, ramBelow4G);
        // Decompression happens in place up to init_size bytes; reserve that much so nothing we place is overwritten.
        ulong kernelFootprint = Math.Max((ulong)kernel.Length, h.InitSize);
        layout.Place("kernel", KernelAddress, kernelFootprint, ramBelow4G);
        (ulong initrdAddress, uint initrdSize) = PlaceInitrd(h, options.Initrd, ramBelow4G, layout);

        byte[] bootParams = new byte[BootParamsSize];
        image[LinuxSetupHeader.SetupSectsOffset..h.HeaderEnd].CopyTo(bootParams.AsSpan(LinuxSetupHeader.SetupSectsOffset));
        Span<byte> bp = bootParams;
        bp[LinuxSetupHeader.TypeOfLoaderOffset] = TypeOfLoaderQemu;
        // Protocol 2.02 reads cmd_line_ptr; the heap flag matters only to the real-mode setup code, which this entry skips.
        BinaryPrimitives.WriteUInt32LittleEndian(bp[LinuxSetupHeader.CmdLinePtrOffset..], (uint)CmdlineAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(bp[LinuxSetupHeader.RamdiskImageOffset..], (uint)initrdAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(bp[LinuxSetupHeader.RamdiskSizeOffset..], initrdSize);
        BinaryPrimitives.WriteUInt32LittleEndian(bp[ExtRamdiskImageOffset..], (uint)(initrdAddress >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(bp[LinuxSetupHeader.Code32StartOffset..], (uint)KernelAddress);
        if (options.AcpiRsdpAddress is ulong rsdp)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bp[AcpiRsdpAddrOffset..], rsdp);
        }
        int count = Math.Min(e820.Count, E820MaxEntries);
        bp[E820EntriesOffset] = (byte)count;
        for (int i = 0; i < count; i++)
        {
            e820[i].WriteTo(bp[(E820TableOffset + i * E820Entry.EncodedSize)..]);
        }

        memory.Write(RealModeAddress, bootParams);
        memory.Write(CmdlineAddress, cmdline);
        ImageBytes.Write(memory, KernelAddress, kernel);
        if (options.Initrd is { } initrd)
        {
            ImageBytes.Write(memory, initrdAddress, initrd);
        }

        // The kernel runs from where it was loaded; code32_start in the image names the address it was built for,
        // which is 1 MiB for every kernel this path accepts.
        BootCpu.SetFlatProtectedMode(ref cpu, (uint)KernelAddress);
        cpu.Gpr[6] = RealModeAddress; // ESI: boot_params
        cpu.Gpr[4] = BootStackPointer;
        return layout;
    }

    /// <summary>
    /// Publishes the kernel through fw_cfg as QEMU 7.2's <c>-kernel</c> does for the linuxboot option ROM: the
    /// patched real-mode setup (SETUP_*), the protected-mode kernel (KERNEL_*), the command line (CMDLINE_*) and the
    /// initrd (INITRD_*). The board adds the option ROM itself (<see cref="OptionRomName"/>).
    /// </summary>
    /// <returns>The planned addresses; the option ROM does the copying.</returns>
    public static BootLayout ConfigureFwCfg(FwCfg fwCfg, ReadOnlySpan<byte> image, ulong ramBelow4G, LinuxBootOptions options)
    {
        LinuxSetupHeader h = LinuxSetupHeader.Parse(image);
        if (h.Version < 0x200 || (h.LoadFlags & LinuxSetupHeader.LoadedHigh) == 0)
        {
            throw new KernelImageException("Linux kernel image is a zImage (boot protocol below 2.00 or not loaded high); " +
                "only bzImage kernels are supported");
        }
        // Protocols before 2.02 need the setup and command line below 0xA0000 and use the old command-line pointer.
        bool modern = h.Version >= 0x202;
        ulong realAddress = modern ? RealModeAddress : 0x9_0000;
        byte[] cmdline = CommandLineBytes(h, options.CommandLine);
        ulong cmdlineAddress = modern ? CmdlineAddress : 0x9_A000 - (ulong)cmdline.Length;

        var layout = new BootLayout { EntryPoint = (uint)KernelAddress };
        layout.Place("setup", realAddress, (ulong)h.SetupSize, ramBelow4G);
        layout.Place("cmdline", cmdlineAddress, (ulong)cmdline.Length, ramBelow4G);
        ReadOnlySpan<byte> kernel = image[h.SetupSize..];
        layout.Place("kernel", KernelAddress, (ulong)kernel.Length, ramBelow4G);
        (ulong initrdAddress, uint initrdSize) = PlaceInitrd(h, options.Initrd, ramBelow4G, layout);

        byte[] setup = image[..h.SetupSize].ToArray();
        Span<byte> s = setup;
        s[LinuxSetupHeader.TypeOfLoaderOffset] = TypeOfLoaderQemu;
        if (modern)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(s[LinuxSetupHeader.CmdLinePtrOffset..], (uint)cmdlineAddress);
        }
        else
        {
            // The old protocol: magic 0xA33F at 0x20 and the command line's offset from the setup segment at 0x22.
            BinaryPrimitives.WriteUInt16LittleEndian(s[0x20..], 0xA33F);
            BinaryPrimitives.WriteUInt16LittleEndian(s[0x22..], (ushort)(cmdlineAddress - realAddress));
        }
        if (h.Version >= 0x201)
        {
            // The heap runs up to the command line, less the 512-byte boot sector the segment starts with.
            s[LinuxSetupHeader.LoadFlagsOffset] |= LinuxSetupHeader.CanUseHeap;
            BinaryPrimitives.WriteUInt16LittleEndian(s[LinuxSetupHeader.HeapEndPtrOffset..],
                (ushort)(cmdlineAddress - realAddress - 0x200));
        }
        BinaryPrimitives.WriteUInt32LittleEndian(s[LinuxSetupHeader.RamdiskImageOffset..], (uint)initrdAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(s[LinuxSetupHeader.RamdiskSizeOffset..], initrdSize);

        fwCfg.AddU32(FwCfg.KeyKernelAddr, (uint)KernelAddress);
        fwCfg.AddU32(FwCfg.KeyKernelSize, (uint)kernel.Length);
        fwCfg.AddBytes(FwCfg.KeyKernelData, kernel.ToArray());
        fwCfg.AddU32(FwCfg.KeyCmdlineAddr, (uint)cmdlineAddress);
        fwCfg.AddU32(FwCfg.KeyCmdlineSize, (uint)cmdline.Length);
        fwCfg.AddBytes(FwCfg.KeyCmdlineData, cmdline);
        fwCfg.AddU32(FwCfg.KeySetupAddr, (uint)realAddress);
        fwCfg.AddU32(FwCfg.KeySetupSize, (uint)setup.Length);
        fwCfg.AddBytes(FwCfg.KeySetupData, setup);
        if (options.Initrd is { } initrd)
        {
            fwCfg.AddU32(FwCfg.KeyInitrdAddr, (uint)initrdAddress);
            fwCfg.AddU32(FwCfg.KeyInitrdSize, initrdSize);
            fwCfg.AddBytes(FwCfg.KeyInitrdData, initrd);
        }
        return layout;
    }

    /// <summary>The option ROM QEMU pairs with <see cref="ConfigureFwCfg"/>: the DMA flavour when fw_cfg has DMA.</summary>
    public static string OptionRomName(bool fwCfgDma) => fwCfgDma ? "linuxboot_dma.bin" : "linuxboot.bin";

    private static byte[] CommandLineBytes(LinuxSetupHeader h, string commandLine)
    {
        byte[] bytes = FwCfg.NulTerminated(commandLine);
        if ((uint)(bytes.Length - 1) > h.EffectiveCmdlineSize)
        {
            throw new KernelImageException(
                $"kernel command line is {bytes.Length - 1} bytes; this kernel accepts at most {h.EffectiveCmdlineSize}");
        }
        return bytes;
    }

    /// <summary>
    /// Puts the initrd as high as allowed, page aligned: below the kernel's <c>initrd_addr_max</c>, below low RAM
    /// minus the firmware's ACPI area.
    /// </summary>
    private static (ulong Address, uint Size) PlaceInitrd(LinuxSetupHeader h, byte[]? initrd, ulong ramBelow4G, BootLayout layout)
    {
        if (initrd is null)
        {
            return (0, 0);
        }
        ulong max = h.EffectiveInitrdAddrMax;
        if (ramBelow4G < AcpiDataSize + 1)
        {
            throw new KernelImageException($"guest RAM (0x{ramBelow4G:x} bytes) is too small for an initrd");
        }
        max = Math.Min(max, ramBelow4G - AcpiDataSize - 1);
        if ((ulong)initrd.LongLength > max)
        {
            throw new KernelImageException($"initrd is too large ({initrd.LongLength} bytes; at most {max} fit below 0x{max:x})");
        }
        ulong address = ImageBytes.AlignDown(max - (ulong)initrd.LongLength, 4096);
        layout.Place("initrd", address, (ulong)initrd.LongLength, ramBelow4G);
        return (address, (uint)initrd.LongLength);
    }
}
