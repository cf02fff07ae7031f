using System.Buffers.Binary;
using Colo.Core.Cpu;
using Colo.Core.Memory;
using Colo.Devices.Firmware;

namespace Colo.Devices.Pc.Boot;

/// <summary>
/// Boots an uncompressed ELF kernel (<c>vmlinux</c>) through the Xen PVH entry, as QEMU does for an ELF
/// <c>-kernel</c> carrying the <c>XEN_ELFNOTE_PHYS32_ENTRY</c> note: PT_LOAD segments at their physical addresses, an
/// <c>hvm_start_info</c> (Xen public/arch-x86/hvm/start_info.h, version 1) with the command line, the initrd as
/// module 0 and the memory map, then the 32-bit entry with EBX pointing at the start info.
/// </summary>
public static class PvhLoader
{
    /// <summary>Xen ELF note type holding the 32-bit physical entry point.</summary>
    public const uint XenElfNotePhys32Entry = 18;
    public const uint StartInfoMagic = 0x336E_C578;

    // Placement in free conventional memory (below the Linux-style command line at 0x20000).
    public const ulong StartInfoAddress = 0x6000;
    public const ulong ModlistAddress = 0x6040;
    public const ulong MemmapAddress = 0x6100;
    public const int MaxMemmapEntries = (0x7000 - 0x6100) / MemmapEntrySize;
    public const ulong CmdlineAddress = 0x2_0000;

    // hvm_start_info (version 1) layout.
    public const int StartInfoSize = 56;
    public const int MagicOffset = 0;
    public const int VersionOffset = 4;
    public const int FlagsOffset = 8;
    public const int NrModulesOffset = 12;
    public const int ModlistPaddrOffset = 16;
    public const int CmdlinePaddrOffset = 24;
    public const int RsdpPaddrOffset = 32;
    public const int MemmapPaddrOffset = 40;
    public const int MemmapEntriesOffset = 48;
    // hvm_modlist_entry {paddr, size, cmdline_paddr, reserved} and hvm_memmap_table_entry {addr, size, type, reserved}.
    public const int ModlistEntrySize = 32;
    public const int MemmapEntrySize = 24;

    /// <summary>The PVH entry of <paramref name="image"/>, or null when it is not an ELF with the Xen PHYS32 note.</summary>
    public static uint? FindEntry(ReadOnlySpan<byte> image)
    {
        if (!ElfImage.IsElf(image))
        {
            return null;
        }
        ElfImage elf;
        try
        {
            elf = ElfImage.Parse(image, "PVH kernel");
        }
        catch (KernelImageException)
        {
            return null;
        }
        return FindEntry(image, elf);
    }

    private static uint? FindEntry(ReadOnlySpan<byte> image, ElfImage elf)
    {
        foreach (ElfNote note in elf.Notes)
        {
            if (note.Name == "Xen" && note.Type == XenElfNotePhys32Entry
                && ElfImage.TryReadNoteValue(image, note, out ulong entry) && entry <= uint.MaxValue)
            {
                return (uint)entry;
            }
        }
        return null;
    }

    /// <summary>
    /// Loads <paramref name="image"/>, writes the start info and leaves <paramref name="cpu"/> at the PVH entry:
    /// flat 32-bit protected mode, paging off, IF clear, EBX = start info.
    /// </summary>
    /// <param name="e820">The memory map for start_info's memmap.</param>
    /// <param name="ramBelow4G">Bytes of RAM from 0; segments, modules and tables must fit below it.</param>
    public static BootLayout Load(IPhysicalMemory memory, ReadOnlySpan<byte> image, IReadOnlyList<E820Entry> e820,
        ulong ramBelow4G, LinuxBootOptions options, ref X86CpuState cpu)
    {
        ElfImage elf = ElfImage.Parse(image, "PVH kernel");
        uint entry = FindEntry(image, elf)
            ?? throw new KernelImageException("ELF kernel has no Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); " +
                "build it with CONFIG_PVH");
        if (e820.Count > MaxMemmapEntries)
        {
            throw new KernelImageException($"memory map has {e820.Count} entries; PVH boot takes at most {MaxMemmapEntries}");
        }

        var layout = new BootLayout { EntryPoint = entry };
        BootCpu.WriteGdt(memory, layout, ramBelow4G);
        layout.Place("start_info", StartInfoAddress, StartInfoSize, ramBelow4G);
        byte[] cmdline = FwCfg.NulTerminated(options.CommandLine);
        layout.Place("cmdline", CmdlineAddress, (ulong)cmdline.Length, ramBelow4G);
        layout.Place("memmap", MemmapAddress, (ulong)(e820.Count * MemmapEntrySize), ramBelow4G);
        if (options.Initrd is not null)
        {
            layout.Place("modlist", ModlistAddress, ModlistEntrySize, ramBelow4G);
        }
        LoadSegments(memory, image, elf, layout, ramBelow4G);

        ulong initrdAddress = 0;
        if (options.Initrd is { } initrd)
        {
            initrdAddress = InitrdAddress(ramBelow4G, initrd);
            layout.Place("initrd", initrdAddress, (ulong)initrd.LongLength, ramBelow4G);
            ImageBytes.Write(memory, initrdAddress, initrd);
            byte[] mod = new byte[ModlistEntrySize];
            BinaryPrimitives.WriteUInt64LittleEndian(mod, initrdAddress);
            BinaryPrimitives.WriteUInt64LittleEndian(mod.AsSpan(8), (ulong)initrd.LongLength);
            memory.Write(ModlistAddress, mod);
        }

        byte[] memmap = new byte[e820.Count * MemmapEntrySize];
        for (int i = 0; i < e820.Count; i++)
        {
            Span<byte> m = memmap.AsSpan(i * MemmapEntrySize);
            BinaryPrimitives.WriteUInt64LittleEndian(m, e820[i].Address);
            BinaryPrimitives.WriteUInt64LittleEndian(m[8..], e820[i].Length);
            BinaryPrimitives.WriteUInt32LittleEndian(m[16..], (uint)e820[i].Type);
        }
        ImageBytes.Write(memory, MemmapAddress, memmap);
        memory.Write(CmdlineAddress, cmdline);

        byte[] info = new byte[StartInfoSize];
        Span<byte> s = info;
        BinaryPrimitives.WriteUInt32LittleEndian(s[MagicOffset..], StartInfoMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(s[VersionOffset..], 1);
        BinaryPrimitives.WriteUInt32LittleEndian(s[NrModulesOffset..], options.Initrd is null ? 0u : 1u);
        BinaryPrimitives.WriteUInt64LittleEndian(s[ModlistPaddrOffset..], options.Initrd is null ? 0 : ModlistAddress);
        BinaryPrimitives.WriteUInt64LittleEndian(s[CmdlinePaddrOffset..], CmdlineAddress);
        BinaryPrimitives.WriteUInt64LittleEndian(s[RsdpPaddrOffset..], options.AcpiRsdpAddress ?? 0);
        BinaryPrimitives.WriteUInt64LittleEndian(s[MemmapPaddrOffset..], MemmapAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(s[MemmapEntriesOffset..], (uint)e820.Count);
        memory.Write(StartInfoAddress, info);

        BootCpu.SetFlatProtectedMode(ref cpu, entry);
        cpu.Gpr[3] = StartInfoAddress; // EBX
        return layout;
    }

    /// <summary>
    /// The SeaBIOS route, as QEMU 7.2 sets it up for an ELF <c>-kernel</c> with the PVH note: the segments go straight
    /// into RAM (QEMU loads them as ROM blobs), and fw_cfg tells the <c>pvh.bin</c> option ROM the entry
    /// (KERNEL_ENTRY), the loaded span (KERNEL_ADDR/SIZE), the command line (CMDLINE_SIZE/DATA), the first 8 KiB of
    /// the file (SETUP_SIZE/DATA) and the initrd (INITRD_*); the ROM builds start_info itself.
    /// </summary>
    public static BootLayout ConfigureFwCfg(FwCfg fwCfg, IPhysicalMemory memory, ReadOnlySpan<byte> image, ulong ramBelow4G,
        LinuxBootOptions options)
    {
        ElfImage elf = ElfImage.Parse(image, "PVH kernel");
        uint entry = FindEntry(image, elf)
            ?? throw new KernelImageException("ELF kernel has no Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); " +
                "build it with CONFIG_PVH");
        var layout = new BootLayout { EntryPoint = entry };
        LoadSegments(memory, image, elf, layout, ramBelow4G);
        ulong low = ulong.MaxValue, high = 0;
        foreach (ElfSegment seg in elf.Segments)
        {
            low = Math.Min(low, seg.PhysicalAddress);
            high = Math.Max(high, seg.PhysicalAddress + seg.MemorySize);
        }
        byte[] cmdline = FwCfg.NulTerminated(options.CommandLine);
        // QEMU hands over the 8 KiB header buffer it probed the file with; only the file's own bytes are meaningful.
        byte[] header = image[..Math.Min(image.Length, 8192)].ToArray();
        fwCfg.AddU32(FwCfg.KeyKernelEntry, entry);
        fwCfg.AddU32(FwCfg.KeyKernelAddr, (uint)low);
        fwCfg.AddU32(FwCfg.KeyKernelSize, (uint)(high - low));
        fwCfg.AddU32(FwCfg.KeyCmdlineSize, (uint)cmdline.Length);
        fwCfg.AddBytes(FwCfg.KeyCmdlineData, cmdline);
        fwCfg.AddU32(FwCfg.KeySetupSize, (uint)header.Length);
        fwCfg.AddBytes(FwCfg.KeySetupData, header);
        if (options.Initrd is { } initrd)
        {
            ulong initrdAddress = InitrdAddress(ramBelow4G, initrd);
            layout.Place("initrd", initrdAddress, (ulong)initrd.LongLength, ramBelow4G);
            fwCfg.AddU32(FwCfg.KeyInitrdAddr, (uint)initrdAddress);
            fwCfg.AddU32(FwCfg.KeyInitrdSize, (uint)initrd.LongLength);
            fwCfg.AddBytes(FwCfg.KeyInitrdData, initrd);
        }
        return layout;
    }

    /// <summary>The option ROM QEMU pairs with <see cref="ConfigureFwCfg"/>.</summary>
    public const string OptionRomName = "pvh.bin";

    /// <summary>Same rule as a bzImage's initrd: as high as possible below the firmware's ACPI area, page aligned.</summary>
    private static ulong InitrdAddress(ulong ramBelow4G, byte[] initrd)
    {
        if (ramBelow4G <= LinuxBootLoader.AcpiDataSize + (ulong)initrd.LongLength)
        {
            throw new KernelImageException($"initrd ({initrd.LongLength} bytes) does not fit in guest RAM");
        }
        return ImageBytes.AlignDown(ramBelow4G - LinuxBootLoader.AcpiDataSize - 1 - (ulong)initrd.LongLength, 4096);
    }

    /// <summary>Copies each PT_LOAD segment to its physical address and clears the rest of its memory size (BSS).</summary>
    internal static void LoadSegments(IPhysicalMemory memory, ReadOnlySpan<byte> image, ElfImage elf, BootLayout layout, ulong ramEnd)
    {
        for (int i = 0; i < elf.Segments.Count; i++)
        {
            ElfSegment seg = elf.Segments[i];
            layout.Place($"segment{i}", seg.PhysicalAddress, seg.MemorySize, ramEnd);
            ImageBytes.Write(memory, seg.PhysicalAddress, image.Slice((int)seg.FileOffset, (int)seg.FileSize));
            ImageBytes.Zero(memory, seg.PhysicalAddress + seg.FileSize, seg.MemorySize - seg.FileSize);
        }
    }
}
