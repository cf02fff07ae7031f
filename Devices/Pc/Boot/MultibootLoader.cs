using System.Buffers.Binary;
using System.Text;
using Colo.Core.Cpu;
using Colo.Core.Memory;
using Colo.Devices.Firmware;

namespace Colo.Devices.Pc.Boot;

/// <summary>The Multiboot 1 header found in a kernel image (Multiboot Specification 0.6.96, section 3.1).</summary>
public sealed record MultibootHeader(int FileOffset, uint Flags, uint HeaderAddr, uint LoadAddr, uint LoadEndAddr,
    uint BssEndAddr, uint EntryAddr)
{
    public const uint Magic = 0x1BAD_B002;
    public const int SearchLimit = 8192;

    public const uint FlagPageAlign = 1 << 0;
    public const uint FlagMemoryInfo = 1 << 1;
    public const uint FlagVideoMode = 1 << 2;
    /// <summary>The address fields are valid (the "a.out kludge"): load the file image as is, not as ELF.</summary>
    public const uint FlagAoutKludge = 1 << 16;

    /// <summary>The header in the first 8 KiB at a 4-byte boundary whose checksum makes the three words sum to 0.</summary>
    public static MultibootHeader? Find(ReadOnlySpan<byte> image)
    {
        int limit = Math.Min(image.Length, SearchLimit) - 12;
        for (int i = 0; i <= limit; i += 4)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(image[i..]) != Magic)
            {
                continue;
            }
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(image[(i + 4)..]);
            uint checksum = BinaryPrimitives.ReadUInt32LittleEndian(image[(i + 8)..]);
            if (unchecked(Magic + flags + checksum) != 0)
            {
                continue;
            }
            if ((flags & FlagAoutKludge) == 0)
            {
                return new MultibootHeader(i, flags, 0, 0, 0, 0, 0);
            }
            ImageBytes.Need(image, i, 32, "the multiboot address fields", "multiboot kernel");
            ReadOnlySpan<byte> f = image.Slice(i, 32);
            return new MultibootHeader(i, flags, BinaryPrimitives.ReadUInt32LittleEndian(f[12..]),
                BinaryPrimitives.ReadUInt32LittleEndian(f[16..]), BinaryPrimitives.ReadUInt32LittleEndian(f[20..]),
                BinaryPrimitives.ReadUInt32LittleEndian(f[24..]), BinaryPrimitives.ReadUInt32LittleEndian(f[28..]));
        }
        return null;
    }
}

/// <summary>A boot module: its contents and the command line the kernel sees for it.</summary>
public sealed record MultibootModule(byte[] Data, string CommandLine);

/// <summary>
/// Loads a Multiboot 1 kernel (kvm-unit-tests' <c>.flat</c> and <c>.elf</c> tests, many hobby kernels) the way QEMU
/// 7.2's <c>-kernel</c> does, but without an option ROM: the ELF segments or the a.out-kludge image, page-aligned
/// modules after the kernel, the boot information structure with memory sizes, command lines, modules and the memory
/// map, then the machine state of the specification's section 3.2 (EAX = 0x2BADB002, EBX = info, flat 32-bit
/// protected mode, paging and interrupts off).
/// </summary>
public static class MultibootLoader
{
    public const uint BootloaderMagic = 0x2BAD_B002;

    // Where QEMU keeps the map and the info structure.
    public const ulong MmapAddress = 0x9000;
    public const ulong InfoAddress = 0x9500;
    public const int MaxMmapEntries = 0x500 / MmapEntrySize;

    // multiboot_info fields.
    public const int InfoSize = 88;
    public const int InfoFlags = 0;
    public const int InfoMemLower = 4;
    public const int InfoMemUpper = 8;
    public const int InfoBootDevice = 12;
    public const int InfoCmdline = 16;
    public const int InfoModsCount = 20;
    public const int InfoModsAddr = 24;
    public const int InfoMmapLength = 44;
    public const int InfoMmapAddr = 48;
    public const int InfoBootLoaderName = 64;

    // multiboot_info.flags bits.
    public const uint InfoFlagMemory = 1 << 0;
    public const uint InfoFlagBootDevice = 1 << 1;
    public const uint InfoFlagCmdline = 1 << 2;
    public const uint InfoFlagMods = 1 << 3;
    public const uint InfoFlagMmap = 1 << 6;
    public const uint InfoFlagBootLoaderName = 1 << 9;

    /// <summary>Module entry {mod_start, mod_end, string, reserved}.</summary>
    public const int ModEntrySize = 16;
    /// <summary>Map entry {size = 20, base_addr u64, length u64, type}; size does not count itself.</summary>
    public const int MmapEntrySize = 24;

    /// <summary>"first BIOS disk, no partition", what QEMU reports since it does not know the real boot device.</summary>
    public const uint BootDevice = 0x8000_FFFF;
    public const string BootLoaderName = "qemu";

    /// <summary>
    /// Splits QEMU's multiboot <c>-initrd</c> value into modules: comma-separated entries (",," for a literal comma),
    /// each "path args..."; the file is the part before the first space, the module's command line is the whole entry.
    /// </summary>
    public static List<(string Path, string CommandLine)> ParseModuleList(string initrd)
    {
        var result = new List<(string, string)>();
        var current = new StringBuilder();
        for (int i = 0; i <= initrd.Length; i++)
        {
            if (i < initrd.Length && initrd[i] == ',' && i + 1 < initrd.Length && initrd[i + 1] == ',')
            {
                current.Append(',');
                i++;
                continue;
            }
            if (i == initrd.Length || initrd[i] == ',')
            {
                string entry = current.ToString();
                int space = entry.IndexOf(' ');
                result.Add((space >= 0 ? entry[..space] : entry, entry));
                current.Clear();
                continue;
            }
            current.Append(initrd[i]);
        }
        return result;
    }

    /// <summary>The command line QEMU gives a multiboot kernel: its file name, a space, then <c>-append</c>.</summary>
    public static string QemuCommandLine(string kernelPath, string append) => kernelPath + " " + append;

    /// <summary>
    /// Loads <paramref name="image"/> into RAM with everything QEMU's option ROM would leave behind, and sets up
    /// <paramref name="cpu"/> for the entry. Throws <see cref="KernelImageException"/> when there is no valid multiboot
    /// header, the kernel is a 64-bit ELF (multiboot 1 enters in 32-bit mode; QEMU refuses those too) or it does not fit.
    /// </summary>
    /// <param name="commandLine">The kernel's command line; see <see cref="QemuCommandLine"/> to match QEMU, whose
    /// argv[0] kvm-unit-tests rely on.</param>
    /// <param name="e820">The memory map to report; mem_lower/mem_upper are derived from it.</param>
    public static BootLayout Load(IPhysicalMemory memory, ReadOnlySpan<byte> image, string commandLine,
        IReadOnlyList<MultibootModule> modules, IReadOnlyList<E820Entry> e820, ulong ramBelow4G, ref X86CpuState cpu)
    {
        if (e820.Count > MaxMmapEntries)
        {
            throw new KernelImageException($"memory map has {e820.Count} entries; multiboot boot takes at most {MaxMmapEntries}");
        }
        var layout = new BootLayout();
        BootCpu.WriteGdt(memory, layout, ramBelow4G);
        layout.Place("mmap", MmapAddress, (ulong)(e820.Count * MmapEntrySize), ramBelow4G);
        layout.Place("multiboot_info", InfoAddress, InfoSize, ramBelow4G);
        Image mb = Build(image, commandLine, modules, layout, ramBelow4G);
        ImageBytes.Write(memory, mb.LoadAddress, mb.Buffer);

        byte[] mmap = new byte[e820.Count * MmapEntrySize];
        for (int i = 0; i < e820.Count; i++)
        {
            Span<byte> m = mmap.AsSpan(i * MmapEntrySize);
            BinaryPrimitives.WriteUInt32LittleEndian(m, MmapEntrySize - 4);
            e820[i].WriteTo(m[4..]);
        }
        ImageBytes.Write(memory, MmapAddress, mmap);

        (uint lower, uint upper) = MemorySizes(e820, ramBelow4G);
        Span<byte> info = mb.Info;
        BinaryPrimitives.WriteUInt32LittleEndian(info[InfoMemLower..], lower);
        BinaryPrimitives.WriteUInt32LittleEndian(info[InfoMemUpper..], upper);
        BinaryPrimitives.WriteUInt32LittleEndian(info[InfoMmapLength..], (uint)mmap.Length);
        memory.Write(InfoAddress, info);

        BootCpu.SetFlatProtectedMode(ref cpu, mb.Entry);
        cpu.Gpr[0] = BootloaderMagic; // EAX
        cpu.Gpr[3] = InfoAddress;     // EBX
        return layout;
    }

    /// <summary>
    /// The SeaBIOS route, as QEMU 7.2 sets it up for the <c>multiboot_dma.bin</c> option ROM: KERNEL_ADDR/SIZE/DATA
    /// carry the whole image from the load address (kernel, module table, strings, page-aligned modules),
    /// KERNEL_ENTRY the entry, and INITRD_ADDR/SIZE/DATA the info structure for 0x9500, with the memory fields and
    /// the map left for the ROM to fill from the BIOS's e820.
    /// </summary>
    public static BootLayout ConfigureFwCfg(FwCfg fwCfg, ReadOnlySpan<byte> image, string commandLine,
        IReadOnlyList<MultibootModule> modules, ulong ramBelow4G)
    {
        var layout = new BootLayout();
        layout.Place("multiboot_info", InfoAddress, InfoSize, ramBelow4G);
        Image mb = Build(image, commandLine, modules, layout, ramBelow4G);
        fwCfg.AddU32(FwCfg.KeyKernelAddr, (uint)mb.LoadAddress);
        fwCfg.AddU32(FwCfg.KeyKernelSize, (uint)mb.Buffer.Length);
        fwCfg.AddBytes(FwCfg.KeyKernelData, mb.Buffer);
        fwCfg.AddU32(FwCfg.KeyKernelEntry, mb.Entry);
        fwCfg.AddU32(FwCfg.KeyInitrdAddr, (uint)InfoAddress);
        fwCfg.AddU32(FwCfg.KeyInitrdSize, InfoSize);
        fwCfg.AddBytes(FwCfg.KeyInitrdData, mb.Info);
        return layout;
    }

    /// <summary>The option ROM QEMU pairs with <see cref="ConfigureFwCfg"/>.</summary>
    public static string OptionRomName(bool fwCfgDma) => fwCfgDma ? "multiboot_dma.bin" : "multiboot.bin";

    /// <summary>The loaded image as one buffer from <see cref="LoadAddress"/>, plus the info structure.</summary>
    private sealed record Image(ulong LoadAddress, byte[] Buffer, uint Entry, byte[] Info);

    /// <summary>
    /// Lays the image out as QEMU does: the kernel's memory image up to its (page-aligned) end, then the module table,
    /// the module command lines, the kernel command line and the loader name, then each module on a page boundary.
    /// </summary>
    private static Image Build(ReadOnlySpan<byte> image, string commandLine, IReadOnlyList<MultibootModule> modules,
        BootLayout layout, ulong ramEnd)
    {
        MultibootHeader mh = MultibootHeader.Find(image)
            ?? throw new KernelImageException("kernel image has no multiboot header in its first 8 KiB");
        ulong loadAddress;
        ulong kernelSize;
        uint entry;
        byte[] buffer;
        if ((mh.Flags & MultibootHeader.FlagAoutKludge) != 0)
        {
            (loadAddress, ulong fileOffset, ulong loadSize, kernelSize) = CheckAoutKludge(image, mh);
            entry = mh.EntryAddr;
            layout.Place("kernel", loadAddress, kernelSize, ramEnd);
            buffer = new byte[TotalSize(kernelSize, commandLine, modules, ramEnd)];
            image.Slice((int)fileOffset, (int)loadSize).CopyTo(buffer);
        }
        else
        {
            ElfImage elf = ElfImage.Parse(image, "multiboot kernel");
            if (elf.Is64 || elf.Machine == ElfImage.EmX8664)
            {
                throw new KernelImageException("Cannot load x86-64 image, give a 32bit one.");
            }
            ulong low = ulong.MaxValue, high = 0;
            for (int i = 0; i < elf.Segments.Count; i++)
            {
                ElfSegment s = elf.Segments[i];
                layout.Place($"segment{i}", s.PhysicalAddress, s.MemorySize, ramEnd);
                low = Math.Min(low, s.PhysicalAddress);
                high = Math.Max(high, s.PhysicalAddress + s.MemorySize);
            }
            loadAddress = low;
            kernelSize = high - low;
            entry = (uint)elf.Entry;
            buffer = new byte[TotalSize(kernelSize, commandLine, modules, ramEnd)];
            foreach (ElfSegment s in elf.Segments)
            {
                image.Slice((int)s.FileOffset, (int)s.FileSize).CopyTo(buffer.AsSpan((int)(s.PhysicalAddress - low)));
            }
        }

        // Module table, then strings, right after the kernel.
        int tableOffset = (int)ImageBytes.AlignUp(kernelSize, 4096);
        int stringOffset = tableOffset + modules.Count * ModEntrySize;
        uint AddString(byte[] buf, string s)
        {
            byte[] bytes = FwCfg.NulTerminated(s);
            bytes.CopyTo(buf, stringOffset);
            uint at = (uint)(loadAddress + (ulong)stringOffset);
            stringOffset += bytes.Length;
            return at;
        }
        var moduleStrings = new uint[modules.Count];
        for (int i = 0; i < modules.Count; i++)
        {
            moduleStrings[i] = AddString(buffer, modules[i].CommandLine);
        }
        uint cmdlineAddr = AddString(buffer, commandLine);
        uint loaderNameAddr = AddString(buffer, BootLoaderName);
        layout.Place("multiboot_data", loadAddress + (ulong)tableOffset, (ulong)(stringOffset - tableOffset), ramEnd);

        int moduleOffset = (int)ImageBytes.AlignUp((ulong)stringOffset, 4096);
        for (int i = 0; i < modules.Count; i++)
        {
            byte[] data = modules[i].Data;
            ulong start = loadAddress + (ulong)moduleOffset;
            layout.Place($"module{i}", start, (ulong)data.Length, ramEnd);
            data.CopyTo(buffer, moduleOffset);
            Span<byte> m = buffer.AsSpan(tableOffset + i * ModEntrySize);
            BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)start);
            BinaryPrimitives.WriteUInt32LittleEndian(m[4..], (uint)(start + (ulong)data.Length));
            BinaryPrimitives.WriteUInt32LittleEndian(m[8..], moduleStrings[i]);
            moduleOffset = (int)ImageBytes.AlignUp((ulong)(moduleOffset + data.Length), 4096);
        }

        byte[] info = new byte[InfoSize];
        Span<byte> b = info;
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoFlags..], InfoFlagMemory | InfoFlagBootDevice | InfoFlagCmdline
            | InfoFlagMods | InfoFlagMmap | InfoFlagBootLoaderName);
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoBootDevice..], BootDevice);
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoCmdline..], cmdlineAddr);
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoModsCount..], (uint)modules.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoModsAddr..], (uint)(loadAddress + (ulong)tableOffset));
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoMmapAddr..], (uint)MmapAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoBootLoaderName..], loaderNameAddr);
        layout.EntryPoint = entry;
        return new Image(loadAddress, buffer, entry, info);
    }

    /// <summary>Size of the whole buffer; refuses layouts that cannot fit in RAM before allocating anything.</summary>
    private static int TotalSize(ulong kernelSize, string commandLine, IReadOnlyList<MultibootModule> modules, ulong ramEnd)
    {
        ulong size = ImageBytes.AlignUp(kernelSize, 4096) + (ulong)(modules.Count * ModEntrySize)
            + (ulong)FwCfg.NulTerminated(commandLine).Length + (ulong)BootLoaderName.Length + 1;
        foreach (MultibootModule m in modules)
        {
            size += (ulong)FwCfg.NulTerminated(m.CommandLine).Length;
        }
        size = ImageBytes.AlignUp(size, 4096);
        foreach (MultibootModule m in modules)
        {
            size = ImageBytes.AlignUp(size + (ulong)m.Data.LongLength, 4096);
        }
        if (size > ramEnd || size > int.MaxValue)
        {
            throw new KernelImageException($"multiboot kernel and modules (0x{size:x} bytes) do not fit in guest RAM");
        }
        return (int)size;
    }

    /// <summary>mem_lower: RAM from 0 (at most 640 KiB); mem_upper: RAM contiguous from 1 MiB (spec 3.3).</summary>
    private static (uint Lower, uint Upper) MemorySizes(IReadOnlyList<E820Entry> e820, ulong ramBelow4G)
    {
        ulong lower = 0, upper = 0;
        bool any = false;
        foreach (E820Entry e in e820)
        {
            if (e.Type != E820Type.Ram)
            {
                continue;
            }
            any = true;
            if (e.Address == 0)
            {
                lower = Math.Min(e.Length, 640 * 1024);
            }
            if (e.Address <= 0x10_0000 && e.End > 0x10_0000)
            {
                upper = e.End - 0x10_0000;
            }
        }
        if (!any)
        {
            lower = 640 * 1024;
            upper = ramBelow4G > 0x10_0000 ? ramBelow4G - 0x10_0000 : 0;
        }
        return ((uint)(lower / 1024), (uint)Math.Min(upper / 1024, uint.MaxValue));
    }

    /// <summary>
    /// Checks the a.out kludge fields (spec 3.1.3): the file from <c>load_addr</c>'s position is copied up to
    /// <c>load_end_addr</c> (0: the file end), and memory up to <c>bss_end_addr</c> is cleared.
    /// </summary>
    private static (ulong LoadAddress, ulong FileOffset, ulong LoadSize, ulong MemorySize) CheckAoutKludge(
        ReadOnlySpan<byte> image, MultibootHeader mh)
    {
        if (mh.HeaderAddr < mh.LoadAddr)
        {
            throw new KernelImageException("invalid multiboot header: header_addr is below load_addr");
        }
        ulong headerDelta = mh.HeaderAddr - mh.LoadAddr;
        if (headerDelta > (ulong)mh.FileOffset)
        {
            throw new KernelImageException("invalid multiboot header: load_addr lies before the start of the file");
        }
        ulong textOffset = (ulong)mh.FileOffset - headerDelta;
        ulong loadSize;
        if (mh.LoadEndAddr != 0)
        {
            if (mh.LoadEndAddr < mh.LoadAddr)
            {
                throw new KernelImageException("invalid multiboot header: load_end_addr is below load_addr");
            }
            loadSize = mh.LoadEndAddr - mh.LoadAddr;
        }
        else
        {
            loadSize = (ulong)image.Length - textOffset;
        }
        if (textOffset + loadSize > (ulong)image.Length)
        {
            throw new KernelImageException(
                $"multiboot kernel is truncated: load_end_addr asks for 0x{loadSize:x} bytes from file offset 0x{textOffset:x} " +
                $"of a 0x{image.Length:x}-byte file");
        }
        ulong memSize = loadSize;
        if (mh.BssEndAddr != 0)
        {
            if (mh.BssEndAddr < mh.LoadAddr + loadSize)
            {
                throw new KernelImageException("invalid multiboot header: bss_end_addr is below the end of the loaded image");
            }
            memSize = mh.BssEndAddr - mh.LoadAddr;
        }
        return (mh.LoadAddr, textOffset, loadSize, memSize);
    }
}
