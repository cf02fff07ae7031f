using System.Buffers.Binary;

namespace Colo.Tests.Unit.Devices.Pc.Boot;

/// <summary>Builds small little-endian ELF executables for loader tests (one PT_LOAD per segment, optional PT_NOTE).</summary>
internal static class ElfBuilder
{
    public sealed record Segment(ulong PhysicalAddress, byte[] Data, ulong MemorySize);

    public static byte[] Build(bool is64, ushort machine, ulong entry, IReadOnlyList<Segment> segments, byte[]? notes = null)
    {
        int ehsize = is64 ? 64 : 52;
        int phentsize = is64 ? 56 : 32;
        int phnum = segments.Count + (notes is null ? 0 : 1);
        int dataStart = ehsize + phentsize * phnum;
        var file = new List<byte>(new byte[dataStart]);
        var offsets = new List<int>();
        foreach (Segment s in segments)
        {
            offsets.Add(file.Count);
            file.AddRange(s.Data);
        }
        int noteOffset = file.Count;
        if (notes is not null)
        {
            file.AddRange(notes);
        }
        byte[] b = [.. file];
        Span<byte> h = b;
        "\u007fELF"u8.CopyTo(h);
        h[4] = (byte)(is64 ? 2 : 1);
        h[5] = 1;
        h[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(h[16..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(h[18..], machine);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], 1);
        if (is64)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(h[24..], entry);
            BinaryPrimitives.WriteUInt64LittleEndian(h[32..], (ulong)ehsize);
            BinaryPrimitives.WriteUInt16LittleEndian(h[52..], (ushort)ehsize);
            BinaryPrimitives.WriteUInt16LittleEndian(h[54..], (ushort)phentsize);
            BinaryPrimitives.WriteUInt16LittleEndian(h[56..], (ushort)phnum);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(h[24..], (uint)entry);
            BinaryPrimitives.WriteUInt32LittleEndian(h[28..], (uint)ehsize);
            BinaryPrimitives.WriteUInt16LittleEndian(h[40..], (ushort)ehsize);
            BinaryPrimitives.WriteUInt16LittleEndian(h[42..], (ushort)phentsize);
            BinaryPrimitives.WriteUInt16LittleEndian(h[44..], (ushort)phnum);
        }
        for (int i = 0; i < phnum; i++)
        {
            Span<byte> ph = h.Slice(ehsize + i * phentsize, phentsize);
            bool isNote = i == segments.Count;
            uint type = isNote ? 4u : 1u;
            ulong offset = (ulong)(isNote ? noteOffset : offsets[i]);
            ulong paddr = isNote ? 0 : segments[i].PhysicalAddress;
            ulong filesz = (ulong)(isNote ? notes!.Length : segments[i].Data.Length);
            ulong memsz = isNote ? filesz : segments[i].MemorySize;
            BinaryPrimitives.WriteUInt32LittleEndian(ph, type);
            if (is64)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(ph[8..], offset);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[16..], paddr | 0xFFFF_FFFF_8000_0000UL);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[24..], paddr);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], filesz);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[40..], memsz);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], (uint)offset);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[8..], (uint)paddr);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[12..], (uint)paddr);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[16..], (uint)filesz);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[20..], (uint)memsz);
            }
        }
        return b;
    }

    /// <summary>One ELF note: {namesz, descsz, type, name padded to 4, desc padded to 4}.</summary>
    public static byte[] Note(string name, uint type, byte[] desc)
    {
        int nameLen = name.Length + 1;
        int namePadded = (nameLen + 3) & ~3;
        int descPadded = (desc.Length + 3) & ~3;
        byte[] n = new byte[12 + namePadded + descPadded];
        BinaryPrimitives.WriteUInt32LittleEndian(n, (uint)nameLen);
        BinaryPrimitives.WriteUInt32LittleEndian(n.AsSpan(4), (uint)desc.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(n.AsSpan(8), type);
        System.Text.Encoding.ASCII.GetBytes(name).CopyTo(n, 12);
        desc.CopyTo(n, 12 + namePadded);
        return n;
    }
}
