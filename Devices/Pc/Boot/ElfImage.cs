using System.Buffers.Binary;

namespace Colo.Devices.Pc.Boot;

/// <summary>One PT_LOAD program header.</summary>
public readonly record struct ElfSegment(ulong FileOffset, ulong PhysicalAddress, ulong VirtualAddress, ulong FileSize, ulong MemorySize);

/// <summary>One note from a PT_NOTE segment.</summary>
public readonly record struct ElfNote(string Name, uint Type, ulong DescOffset, uint DescSize);

/// <summary>
/// The parts of a little-endian x86 ELF executable (ELF32 or ELF64, System V gABI) a boot loader needs: the entry,
/// the PT_LOAD segments and the notes. Every offset and size is checked against the file, so a malformed image
/// gives <see cref="KernelImageException"/> and never reads out of bounds.
/// </summary>
public sealed class ElfImage
{
    public const uint PtLoad = 1;
    public const uint PtNote = 4;
    public const ushort EmI386 = 3;
    public const ushort EmX8664 = 62;
    private const int MaxProgramHeaders = 4096;

    private ElfImage(bool is64, ushort machine, ulong entry, List<ElfSegment> segments, List<ElfNote> notes)
    {
        Is64 = is64;
        Machine = machine;
        Entry = entry;
        Segments = segments;
        Notes = notes;
    }

    public bool Is64 { get; }
    public ushort Machine { get; }
    public ulong Entry { get; }
    public IReadOnlyList<ElfSegment> Segments { get; }
    public IReadOnlyList<ElfNote> Notes { get; }

    /// <summary>Whether <paramref name="image"/> starts with the ELF magic.</summary>
    public static bool IsElf(ReadOnlySpan<byte> image) => image.Length >= 4 && image[..4].SequenceEqual("\u007fELF"u8);

    public static ElfImage Parse(ReadOnlySpan<byte> image, string kind)
    {
        ImageBytes.Need(image, 0, 52, "the ELF header", kind);
        if (!IsElf(image))
        {
            throw new KernelImageException($"{kind} is not an ELF file (bad magic)");
        }
        byte elfClass = image[4];
        if (elfClass is not (1 or 2) || image[5] != 1)
        {
            throw new KernelImageException($"{kind} is not a little-endian ELF32/ELF64 file (class {elfClass}, data {image[5]})");
        }
        bool is64 = elfClass == 2;
        ImageBytes.Need(image, 0, is64 ? 64 : 52, "the ELF header", kind);
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(image[18..]);
        ulong entry, phoff;
        int phentsize, phnum;
        if (is64)
        {
            entry = BinaryPrimitives.ReadUInt64LittleEndian(image[24..]);
            phoff = BinaryPrimitives.ReadUInt64LittleEndian(image[32..]);
            phentsize = BinaryPrimitives.ReadUInt16LittleEndian(image[54..]);
            phnum = BinaryPrimitives.ReadUInt16LittleEndian(image[56..]);
        }
        else
        {
            entry = BinaryPrimitives.ReadUInt32LittleEndian(image[24..]);
            phoff = BinaryPrimitives.ReadUInt32LittleEndian(image[28..]);
            phentsize = BinaryPrimitives.ReadUInt16LittleEndian(image[42..]);
            phnum = BinaryPrimitives.ReadUInt16LittleEndian(image[44..]);
        }
        int minEntry = is64 ? 56 : 32;
        if (phnum == 0 || phnum > MaxProgramHeaders || phentsize < minEntry)
        {
            throw new KernelImageException($"{kind} has an unusable program header table ({phnum} entries of {phentsize} bytes)");
        }
        if (phoff > (ulong)image.Length)
        {
            throw new KernelImageException($"{kind} is truncated: program headers at 0x{phoff:x} beyond the file end");
        }
        ImageBytes.Need(image, (long)phoff, (long)phentsize * phnum, "the program headers", kind);

        var segments = new List<ElfSegment>();
        var notes = new List<ElfNote>();
        for (int i = 0; i < phnum; i++)
        {
            ReadOnlySpan<byte> ph = image.Slice((int)phoff + i * phentsize, phentsize);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(ph);
            ulong offset, vaddr, paddr, filesz, memsz;
            if (is64)
            {
                offset = BinaryPrimitives.ReadUInt64LittleEndian(ph[8..]);
                vaddr = BinaryPrimitives.ReadUInt64LittleEndian(ph[16..]);
                paddr = BinaryPrimitives.ReadUInt64LittleEndian(ph[24..]);
                filesz = BinaryPrimitives.ReadUInt64LittleEndian(ph[32..]);
                memsz = BinaryPrimitives.ReadUInt64LittleEndian(ph[40..]);
            }
            else
            {
                offset = BinaryPrimitives.ReadUInt32LittleEndian(ph[4..]);
                vaddr = BinaryPrimitives.ReadUInt32LittleEndian(ph[8..]);
                paddr = BinaryPrimitives.ReadUInt32LittleEndian(ph[12..]);
                filesz = BinaryPrimitives.ReadUInt32LittleEndian(ph[16..]);
                memsz = BinaryPrimitives.ReadUInt32LittleEndian(ph[20..]);
            }
            if (type != PtLoad && type != PtNote)
            {
                continue;
            }
            if (offset > (ulong)image.Length || filesz > (ulong)image.Length - offset)
            {
                throw new KernelImageException(
                    $"{kind} is truncated: segment {i} wants file bytes 0x{offset:x}+0x{filesz:x} of a 0x{image.Length:x}-byte file");
            }
            if (type == PtLoad)
            {
                if (memsz < filesz)
                {
                    throw new KernelImageException($"{kind}: segment {i} has a memory size below its file size");
                }
                if (memsz > 0)
                {
                    segments.Add(new ElfSegment(offset, paddr, vaddr, filesz, memsz));
                }
            }
            else
            {
                ParseNotes(image.Slice((int)offset, (int)filesz), (int)offset, notes);
            }
        }
        if (segments.Count == 0)
        {
            throw new KernelImageException($"{kind} has no loadable segments");
        }
        return new ElfImage(is64, machine, entry, segments, notes);
    }

    /// <summary>Reads a note descriptor as an unsigned integer of its own size (4 or 8 bytes).</summary>
    public static bool TryReadNoteValue(ReadOnlySpan<byte> image, ElfNote note, out ulong value)
    {
        value = 0;
        ReadOnlySpan<byte> desc = image.Slice((int)note.DescOffset, (int)note.DescSize);
        switch (note.DescSize)
        {
            case 4:
                value = BinaryPrimitives.ReadUInt32LittleEndian(desc);
                return true;
            case 8:
                value = BinaryPrimitives.ReadUInt64LittleEndian(desc);
                return true;
            default:
                return false;
        }
    }

    /// <summary>Notes are {namesz, descsz, type, name padded to 4, desc padded to 4} back to back.</summary>
    private static void ParseNotes(ReadOnlySpan<byte> segment, int segmentOffset, List<ElfNote> notes)
    {
        int pos = 0;
        while (segment.Length - pos >= 12)
        {
            uint namesz = BinaryPrimitives.ReadUInt32LittleEndian(segment[pos..]);
            uint descsz = BinaryPrimitives.ReadUInt32LittleEndian(segment[(pos + 4)..]);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(segment[(pos + 8)..]);
            ulong nameEnd = (ulong)pos + 12 + ImageBytes.AlignUp(namesz, 4);
            ulong descEnd = nameEnd + ImageBytes.AlignUp(descsz, 4);
            if (nameEnd > (ulong)segment.Length || (ulong)nameEnd + descsz > (ulong)segment.Length)
            {
                // A torn note ends the list; what came before stays usable.
                return;
            }
            ReadOnlySpan<byte> name = segment.Slice(pos + 12, (int)namesz);
            int nul = name.IndexOf((byte)0);
            string text = System.Text.Encoding.ASCII.GetString(nul >= 0 ? name[..nul] : name);
            notes.Add(new ElfNote(text, type, (ulong)segmentOffset + nameEnd, descsz));
            pos = (int)Math.Min(descEnd, (ulong)segment.Length);
        }
    }
}
