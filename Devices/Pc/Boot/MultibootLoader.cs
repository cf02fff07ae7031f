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

    /// <summary>
    /// Loads <paramref name="image"/>; throws <see cref="KernelImageException"/> when it has no valid multiboot header,
    /// is a 64-bit ELF (multiboot 1 enters in 32-bit mode, and QEMU refuses those too) or does not fit.
    /// </summary>
    /// <param name="commandLine">The kernel's command line. QEMU passes "kernel-path append-string"; pass that to
    /// match it exactly (kvm-unit-tests read argv[0] from it).</param>
    /// <param name="e820">The memory map to report.</param>
    public static BootLayout Load(IPhysicalMemory memory, ReadOnlySpan<byte> image, string commandLine,
        IReadOnlyList<MultibootModule> modules, IReadOnlyList<E820Entry> e820, ulong ramBelow4G, ref X86CpuState cpu)
    {
        MultibootHeader mh = MultibootHeader.Find(image)
            ?? throw new KernelImageException("kernel image has no multiboot header in its first 8 KiB");
        if (e820.Count > MaxMmapEntries)
        {
            throw new KernelImageException($"memory map has {e820.Count} entries; multiboot boot takes at most {MaxMmapEntries}");
        }
        var layout = new BootLayout();
        BootCpu.WriteGdt(memory, layout, ramBelow4G);
        layout.Place("mmap", MmapAddress, (ulong)(e820.Count * MmapEntrySize), ramBelow4G);
        layout.Place("multiboot_info", InfoAddress, InfoSize, ramBelow4G);

        ulong kernelEnd;
        uint entry;
        if ((mh.Flags & MultibootHeader.FlagAoutKludge) != 0)
        {
            (kernelEnd, entry) = LoadAoutKludge(memory, image, mh, layout, ramBelow4G);
        }
        else
        {
            ElfImage elf = ElfImage.Parse(image, "multiboot kernel");
            if (elf.Is64 || elf.Machine == ElfImage.EmX8664)
            {
                throw new KernelImageException("Cannot load x86-64 image, give a 32bit one.");
            }
            PvhLoader.LoadSegments(memory, image, elf, layout, ramBelow4G);
            kernelEnd = 0;
            foreach (ElfSegment s in elf.Segments)
            {
                kernelEnd = Math.Max(kernelEnd, s.PhysicalAddress + s.MemorySize);
            }
            entry = (uint)elf.Entry;
        }
        layout.EntryPoint = entry;

        // Modules go page-aligned after the kernel; the strings and the module table follow the last one.
        ulong next = ImageBytes.AlignUp(kernelEnd, 4096);
        var modAddresses = new ulong[modules.Count];
        for (int i = 0; i < modules.Count; i++)
        {
            modAddresses[i] = next;
            layout.Place($"module{i}", next, (ulong)modules[i].Data.LongLength, ramBelow4G);
            ImageBytes.Write(memory, next, modules[i].Data);
            next = ImageBytes.AlignUp(next + (ulong)modules[i].Data.LongLength, 4096);
        }

        var strings = new MemoryStream();
        ulong stringsBase = next;
        uint AddString(string s)
        {
            ulong at = stringsBase + (ulong)strings.Length;
            strings.Write(FwCfg.NulTerminated(s));
            return (uint)at;
        }
        uint cmdlineAddr = AddString(commandLine);
        uint loaderNameAddr = AddString(BootLoaderName);
        var modTable = new byte[modules.Count * ModEntrySize];
        for (int i = 0; i < modules.Count; i++)
        {
            Span<byte> m = modTable.AsSpan(i * ModEntrySize);
            BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)modAddresses[i]);
            BinaryPrimitives.WriteUInt32LittleEndian(m[4..], (uint)(modAddresses[i] + (ulong)modules[i].Data.LongLength));
            BinaryPrimitives.WriteUInt32LittleEndian(m[8..], AddString(modules[i].CommandLine));
        }
        // Keep the table 4-byte aligned after the strings.
        while (strings.Length % 4 != 0)
        {
            strings.WriteByte(0);
        }
        ulong modTableAddr = stringsBase + (ulong)strings.Length;
        strings.Write(modTable);
        layout.Place("multiboot_strings", stringsBase, (ulong)strings.Length, ramBelow4G);
        ImageBytes.Write(memory, stringsBase, strings.ToArray());

        byte[] mmap = new byte[e820.Count * MmapEntrySize];
        for (int i = 0; i < e820.Count; i++)
        {
            Span<byte> m = mmap.AsSpan(i * MmapEntrySize);
            BinaryPrimitives.WriteUInt32LittleEndian(m, MmapEntrySize - 4);
            e820[i].WriteTo(m[4..]);
        }
        ImageBytes.Write(memory, MmapAddress, mmap);

        byte[] info = new byte[InfoSize];
        Span<byte> b = info;
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoFlags..], InfoFlagMemory | InfoFlagBootDevice | InfoFlagCmdline
            | InfoFlagMods | InfoFlagMmap | InfoFlagBootLoaderName);
        // Conventional memory is reported as the full 640 KiB and extended memory as everything from 1 MiB to the
        // end of low RAM, as QEMU computes them (not from the map).
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoMemLower..], 640);
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoMemUpper..], (uint)(ramBelow4G / 1024 - 1024));
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoBootDevice..], BootDevice);
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoCmdline..], cmdlineAddr);
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoModsCount..], (uint)modules.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoModsAddr..], (uint)modTableAddr);
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoMmapLength..], (uint)mmap.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoMmapAddr..], (uint)MmapAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(b[InfoBootLoaderName..], loaderNameAddr);
        memory.Write(InfoAddress, info);

        BootCpu.SetFlatProtectedMode(ref cpu, entry);
        cpu.Gpr[0] = BootloaderMagic; // EAX
        cpu.Gpr[3] = InfoAddress;     // EBX
        return layout;
    }

    /// <summary>
    /// The a.out kludge (spec 3.1.3): the file from the header's position back to <c>load_addr</c> is copied as one
    /// image up to <c>load_end_addr</c> (0: the file end), and memory up to <c>bss_end_addr</c> is cleared.
    /// </summary>
    private static (ulong End, uint Entry) LoadAoutKludge(IPhysicalMemory memory, ReadOnlySpan<byte> image, MultibootHeader mh,
        BootLayout layout, ulong ramEnd)
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
        layout.Place("kernel", mh.LoadAddr, memSize, ramEnd);
        ImageBytes.Write(memory, mh.LoadAddr, image.Slice((int)textOffset, (int)loadSize));
        ImageBytes.Zero(memory, mh.LoadAddr + loadSize, memSize - loadSize);
        return (mh.LoadAddr + memSize, mh.EntryAddr);
    }
}
