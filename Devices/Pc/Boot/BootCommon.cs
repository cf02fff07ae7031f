using System.Buffers.Binary;
using Colo.Core.Cpu;
using Colo.Core.Memory;

namespace Colo.Devices.Pc.Boot;

/// <summary>
/// A kernel image or boot configuration the loaders cannot use (bad magic, truncated file, too old a protocol,
/// does not fit in RAM). The message is ready for a <c>qemu-system-x86_64: ...</c> line.
/// </summary>
public sealed class KernelImageException(string message) : Exception(message);

/// <summary>One thing a loader placed in guest memory.</summary>
public readonly record struct BootRegion(string What, ulong Address, ulong Size)
{
    public ulong End => Address + Size;
}

/// <summary>
/// Where a loader put everything, plus the entry it prepared. Tests check layouts with it; the board may log it.
/// </summary>
public sealed class BootLayout
{
    private readonly List<BootRegion> _regions = [];

    /// <summary>Everything written, in the order it was placed.</summary>
    public IReadOnlyList<BootRegion> Regions => _regions;

    /// <summary>The 32-bit entry point the CPU state points at.</summary>
    public uint EntryPoint { get; set; }

    /// <summary>Looks a region up by its <see cref="BootRegion.What"/> name.</summary>
    public BootRegion? Find(string what)
    {
        foreach (BootRegion r in _regions)
        {
            if (r.What == what)
            {
                return r;
            }
        }
        return null;
    }

    /// <summary>Records a region, refusing overlaps and ranges outside <paramref name="ramEnd"/>.</summary>
    public void Place(string what, ulong address, ulong size, ulong ramEnd)
    {
        if (size == 0)
        {
            _regions.Add(new BootRegion(what, address, 0));
            return;
        }
        if (address + size < address || address + size > ramEnd)
        {
            throw new KernelImageException(
                $"{what} (0x{address:x}-0x{address + size - 1:x}) does not fit in guest RAM below 0x{ramEnd:x}");
        }
        foreach (BootRegion r in _regions)
        {
            if (r.Size != 0 && address < r.End && r.Address < address + size)
            {
                throw new KernelImageException(
                    $"{what} (0x{address:x}-0x{address + size - 1:x}) overlaps {r.What} (0x{r.Address:x}-0x{r.End - 1:x})");
            }
        }
        _regions.Add(new BootRegion(what, address, size));
    }
}

/// <summary>The flat protected-mode environment every 32-bit boot protocol here enters with.</summary>
public static class BootCpu
{
    /// <summary>
    /// Where the loaders put their GDT: conventional memory that no protocol here gives to anything else (the
    /// Linux zero page sits at 0x10000, PVH's start_info and multiboot's info at 0x9000 and up).
    /// </summary>
    public const ulong GdtAddress = 0x500;

    /// <summary>Null, null, then the 4 GiB code and data descriptors at 0x10/0x18 (Linux's __BOOT_CS/__BOOT_DS).</summary>
    public const int GdtSize = 4 * 8;

    public const ushort CodeSelector = 0x10;
    public const ushort DataSelector = 0x18;

    /// <summary>Flat 4 GiB ring-0 code, execute/read, accessed, 32-bit, 4 KiB granularity.</summary>
    public const ulong FlatCodeDescriptor = 0x00CF_9B00_0000_FFFF;
    /// <summary>Flat 4 GiB ring-0 data, read/write, accessed, 32-bit, 4 KiB granularity.</summary>
    public const ulong FlatDataDescriptor = 0x00CF_9300_0000_FFFF;

    /// <summary>Writes the boot GDT so that a kernel reloading a segment register finds the same descriptors.</summary>
    public static void WriteGdt(IPhysicalMemory memory, BootLayout layout, ulong ramEnd)
    {
        layout.Place("gdt", GdtAddress, GdtSize, ramEnd);
        Span<byte> gdt = stackalloc byte[GdtSize];
        gdt.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[CodeSelector..], FlatCodeDescriptor);
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[DataSelector..], FlatDataDescriptor);
        memory.Write(GdtAddress, gdt);
    }

    /// <summary>
    /// Puts <paramref name="cpu"/> in 32-bit protected mode with paging off and interrupts disabled: CS = 0x10 and
    /// DS/ES/FS/GS/SS = 0x18, all flat, caches loaded as if from <see cref="WriteGdt"/>'s table; a 32-bit TSS of
    /// 0x68 bytes at base 0 in TR (PVH asks for it; it also satisfies VMX entry checks). General registers are
    /// zero; callers set the protocol's ones.
    /// </summary>
    public static void SetFlatProtectedMode(ref X86CpuState cpu, uint eip)
    {
        cpu.Reset();
        cpu.Gpr[2] = 0;
        cpu.Rip = eip;
        cpu.Rflags = X86CpuState.FlagReserved1;
        // PE plus the hardwired ET bit; caches on (CD/NW clear) as after a firmware's setup.
        cpu.Cr0 = X86CpuState.Cr0Pe | 0x10;
        const ushort flat = SegmentRegister.S | SegmentRegister.P | SegmentRegister.DB | SegmentRegister.G;
        for (int i = 0; i < 6; i++)
        {
            cpu.Segments[i] = new SegmentRegister { Selector = DataSelector, Base = 0, Limit = 0xFFFF_FFFF, Attributes = flat | 0x3 };
        }
        cpu.Segments[(int)SegmentIndex.Cs] = new SegmentRegister { Selector = CodeSelector, Base = 0, Limit = 0xFFFF_FFFF, Attributes = flat | 0xB };
        cpu.Gdtr = new DescriptorTableRegister { Base = GdtAddress, Limit = GdtSize - 1 };
        cpu.Idtr = new DescriptorTableRegister { Base = 0, Limit = 0 };
        cpu.Tr = new SegmentRegister { Selector = 0, Base = 0, Limit = 0x67, Attributes = SegmentRegister.P | 0xB };
    }
}

/// <summary>Little helpers over image bytes that turn truncation into <see cref="KernelImageException"/>.</summary>
internal static class ImageBytes
{
    public static void Need(ReadOnlySpan<byte> image, long offset, long length, string what, string kind)
    {
        if (offset < 0 || length < 0 || offset + length > image.Length)
        {
            throw new KernelImageException($"{kind} is truncated: {what} needs bytes 0x{offset:x}-0x{offset + length:x} " +
                $"but the file has 0x{image.Length:x}");
        }
    }

    public static void Write(IPhysicalMemory memory, ulong address, ReadOnlySpan<byte> data)
    {
        if (!data.IsEmpty)
        {
            memory.Write(address, data);
        }
    }

    /// <summary>Writes <paramref name="length"/> zero bytes (BSS), page by page to avoid a large temporary.</summary>
    public static void Zero(IPhysicalMemory memory, ulong address, ulong length)
    {
        Span<byte> zeros = stackalloc byte[4096];
        zeros.Clear();
        while (length > 0)
        {
            int n = (int)Math.Min(length, (ulong)zeros.Length);
            memory.Write(address, zeros[..n]);
            address += (ulong)n;
            length -= (ulong)n;
        }
    }

    public static ulong AlignDown(ulong value, ulong alignment) => value & ~(alignment - 1);

    public static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) & ~(alignment - 1);
}

/// <summary>The boot protocols a <c>-kernel</c> file can use.</summary>
public enum KernelImageKind
{
    /// <summary>A bzImage with the "HdrS" setup header.</summary>
    LinuxBzImage,
    /// <summary>A kernel with a Multiboot 1 header.</summary>
    Multiboot,
    /// <summary>An ELF with the Xen PVH entry note.</summary>
    Pvh,
}

/// <summary>Tells the protocols apart in QEMU 7.2's order.</summary>
public static class KernelImage
{
    /// <summary>
    /// "HdrS" first; otherwise a multiboot header (checked before the ELF note, since multiboot kernels may be ELF
    /// too); otherwise the PVH note. Throws <see cref="KernelImageException"/> for anything else.
    /// </summary>
    public static KernelImageKind Detect(ReadOnlySpan<byte> image)
    {
        if (image.Length >= LinuxSetupHeader.MagicOffset + 4
            && BinaryPrimitives.ReadUInt32LittleEndian(image[LinuxSetupHeader.MagicOffset..]) == LinuxSetupHeader.Magic)
        {
            return KernelImageKind.LinuxBzImage;
        }
        if (MultibootHeader.Find(image) is not null)
        {
            return KernelImageKind.Multiboot;
        }
        if (PvhLoader.FindEntry(image) is not null)
        {
            return KernelImageKind.Pvh;
        }
        throw new KernelImageException(ElfImage.IsElf(image)
            ? "ELF kernel has neither a multiboot header nor a PVH entry note"
            : "kernel image is neither a Linux bzImage, a multiboot kernel nor a PVH ELF");
    }
}
