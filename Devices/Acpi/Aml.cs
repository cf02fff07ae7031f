using System.Buffers.Binary;
using System.Text;

namespace Colo.Devices.Acpi;

/// <summary>
/// A small AML encoder (ACPI 6.4 chapter 20, "ACPI Machine Language Specification"): just the terms the pc
/// machine's DSDT needs. Every helper returns the encoded bytes of one term, so a table is built by nesting calls the
/// way ASL nests blocks. Not a hot path: it runs when the firmware asks for the tables.
/// </summary>
public static class Aml
{
    // 20.2.5 opcodes.
    public const byte ZeroOp = 0x00;
    public const byte OneOp = 0x01;
    public const byte NameOp = 0x08;
    public const byte BytePrefix = 0x0A;
    public const byte WordPrefix = 0x0B;
    public const byte DWordPrefix = 0x0C;
    public const byte StringPrefix = 0x0D;
    public const byte QWordPrefix = 0x0E;
    public const byte ScopeOp = 0x10;
    public const byte BufferOp = 0x11;
    public const byte PackageOp = 0x12;
    public const byte MethodOp = 0x14;
    public const byte DualNamePrefix = 0x2E;
    public const byte MultiNamePrefix = 0x2F;
    public const byte ExtOpPrefix = 0x5B;
    public const byte RootChar = 0x5C;
    public const byte Local0Op = 0x60;
    public const byte Arg0Op = 0x68;
    public const byte StoreOp = 0x70;
    public const byte AndOp = 0x7B;
    public const byte OrOp = 0x7D;
    public const byte CreateDWordFieldOp = 0x8A;
    public const byte LEqualOp = 0x93;
    public const byte LLessOp = 0x95;
    public const byte IfOp = 0xA0;
    public const byte ElseOp = 0xA1;
    public const byte ReturnOp = 0xA4;
    public const byte OnesOp = 0xFF;

    // Extended (0x5B-prefixed) opcodes.
    public const byte OpRegionOp = 0x80;
    public const byte FieldOp = 0x81;
    public const byte DeviceOp = 0x82;
    public const byte ProcessorOp = 0x83;

    /// <summary>Operation region spaces (19.6.100).</summary>
    public enum RegionSpace : byte
    {
        SystemMemory = 0,
        SystemIo = 1,
        PciConfig = 2,
    }

    /// <summary>Field access types (19.6.48).</summary>
    public enum FieldAccess : byte
    {
        Any = 0,
        Byte = 1,
        Word = 2,
        DWord = 3,
    }

    /// <summary>An integer in the shortest encoding (Zero, One, Ones, or a prefixed constant).</summary>
    public static byte[] Int(ulong value) => value switch
    {
        0 => [ZeroOp],
        1 => [OneOp],
        <= 0xFF => [BytePrefix, (byte)value],
        <= 0xFFFF => [WordPrefix, (byte)value, (byte)(value >> 8)],
        <= 0xFFFF_FFFF => Prefixed(DWordPrefix, 4, value),
        _ => Prefixed(QWordPrefix, 8, value),
    };

    /// <summary>A DWord constant even when a shorter form exists (fields patched later keep their size).</summary>
    public static byte[] DWord(uint value) => Prefixed(DWordPrefix, 4, value);

    /// <summary>An ASCII string constant.</summary>
    public static byte[] String(string value) => [StringPrefix, .. Encoding.ASCII.GetBytes(value), 0];

    /// <summary>
    /// A compressed EISA id such as <c>PNP0A03</c> (three letters packed in five bits each, then four hex digits),
    /// encoded as the DWord ASL's <c>EisaId()</c> produces.
    /// </summary>
    public static byte[] EisaId(string id)
    {
        if (id.Length != 7)
        {
            throw new ArgumentException($"EISA id '{id}' must be 3 letters and 4 hex digits", nameof(id));
        }
        int c1 = id[0] - 0x40, c2 = id[1] - 0x40, c3 = id[2] - 0x40;
        ushort product = ushort.Parse(id.AsSpan(3), System.Globalization.NumberStyles.HexNumber, null);
        return [DWordPrefix, (byte)((c1 << 2) | (c2 >> 3)), (byte)(((c2 & 7) << 5) | c3), (byte)(product >> 8), (byte)product];
    }

    /// <summary>
    /// A NameString: optional root prefix and dot-separated segments, each padded to four characters with '_'
    /// (<c>\_SB.PCI0</c>, <c>LNKA</c>, <c>^PRQ0</c>).
    /// </summary>
    public static byte[] NameString(string path)
    {
        var b = new List<byte>();
        int i = 0;
        if (path.StartsWith('\\'))
        {
            b.Add(RootChar);
            i = 1;
        }
        while (i < path.Length && path[i] == '^')
        {
            b.Add((byte)'^');
            i++;
        }
        string[] segs = path.Length > i ? path[i..].Split('.') : [];
        switch (segs.Length)
        {
            case 0:
                b.Add(0);
                break;
            case 1:
                break;
            case 2:
                b.Add(DualNamePrefix);
                break;
            default:
                b.Add(MultiNamePrefix);
                b.Add((byte)segs.Length);
                break;
        }
        foreach (string s in segs)
        {
            b.AddRange(NameSeg(s));
        }
        return [.. b];
    }

    /// <summary>One four-character name segment.</summary>
    public static byte[] NameSeg(string name)
    {
        if (name.Length is 0 or > 4 || !(char.IsAsciiLetterUpper(name[0]) || name[0] == '_'))
        {
            throw new ArgumentException($"'{name}' is not an ACPI name segment", nameof(name));
        }
        return Encoding.ASCII.GetBytes(name.PadRight(4, '_'));
    }

    /// <summary>
    /// PkgLength (20.2.4): the length of what follows plus the encoding itself, in one byte below 64, else a lead byte
    /// holding the byte count and the low nibble, then the remaining bits eight at a time.
    /// </summary>
    public static byte[] PkgLength(int contentLength)
    {
        for (int n = 1; n <= 4; n++)
        {
            int total = contentLength + n;
            if (n == 1 && total <= 0x3F)
            {
                return [(byte)total];
            }
            if (n > 1 && total < 1 << (4 + 8 * (n - 1)))
            {
                byte[] r = new byte[n];
                r[0] = (byte)(((n - 1) << 6) | (total & 0xF));
                for (int k = 1; k < n; k++)
                {
                    r[k] = (byte)(total >> (4 + 8 * (k - 1)));
                }
                return r;
            }
        }
        throw new ArgumentOutOfRangeException(nameof(contentLength), "AML package too large");
    }

    /// <summary>Name(name, value).</summary>
    public static byte[] Name(string name, byte[] value) => [NameOp, .. NameString(name), .. value];

    /// <summary>Scope(name) { body }.</summary>
    public static byte[] Scope(string name, params byte[][] body) => Package1(ScopeOp, [.. NameString(name), .. Concat(body)]);

    /// <summary>Device(name) { body }.</summary>
    public static byte[] Device(string name, params byte[][] body) => Package2(DeviceOp, [.. NameString(name), .. Concat(body)]);

    /// <summary>Method(name, args, Serialized|NotSerialized) { body }.</summary>
    public static byte[] Method(string name, int args, bool serialized, params byte[][] body) =>
        Package1(MethodOp, [.. NameString(name), (byte)((args & 7) | (serialized ? 8 : 0)), .. Concat(body)]);

    /// <summary>Processor(name, id, pblk, pblkLength) { body } (deprecated in ACPI 6 but what QEMU 7.2 emits).</summary>
    public static byte[] Processor(string name, byte id, uint pblk, byte pblkLength, params byte[][] body)
    {
        byte[] head = [.. NameString(name), id, 0, 0, 0, 0, pblkLength];
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(head.Length - 5), pblk);
        return Package2(ProcessorOp, [.. head, .. Concat(body)]);
    }

    /// <summary>Package(n) { elements } (at most 255 elements).</summary>
    public static byte[] Package(params byte[][] elements) =>
        elements.Length > 255 ? throw new ArgumentException("package too long") : Package1(PackageOp, [(byte)elements.Length, .. Concat(elements)]);

    /// <summary>Buffer(size) { bytes }.</summary>
    public static byte[] Buffer(ReadOnlySpan<byte> data) => Package1(BufferOp, [.. Int((ulong)data.Length), .. data]);

    /// <summary>LocalN.</summary>
    public static byte[] Local(int n) => [(byte)(Local0Op + n)];

    /// <summary>ArgN.</summary>
    public static byte[] Arg(int n) => [(byte)(Arg0Op + n)];

    /// <summary>Return(value).</summary>
    public static byte[] Return(byte[] value) => [ReturnOp, .. value];

    /// <summary>Store(source, target).</summary>
    public static byte[] Store(byte[] source, byte[] target) => [StoreOp, .. source, .. target];

    /// <summary>And(a, b, target); pass no target for a bare expression.</summary>
    public static byte[] And(byte[] a, byte[] b, byte[]? target = null) => [AndOp, .. a, .. b, .. target ?? [ZeroOp]];

    /// <summary>Or(a, b, target); pass no target for a bare expression.</summary>
    public static byte[] Or(byte[] a, byte[] b, byte[]? target = null) => [OrOp, .. a, .. b, .. target ?? [ZeroOp]];

    /// <summary>LEqual(a, b).</summary>
    public static byte[] LEqual(byte[] a, byte[] b) => [LEqualOp, .. a, .. b];

    /// <summary>LLess(a, b).</summary>
    public static byte[] LLess(byte[] a, byte[] b) => [LLessOp, .. a, .. b];

    /// <summary>If(predicate) { body }.</summary>
    public static byte[] If(byte[] predicate, params byte[][] body) => Package1(IfOp, [.. predicate, .. Concat(body)]);

    /// <summary>Else { body } (directly after an If).</summary>
    public static byte[] Else(params byte[][] body) => Package1(ElseOp, Concat(body));

    /// <summary>CreateDWordField(buffer, byteIndex, name).</summary>
    public static byte[] CreateDWordField(byte[] buffer, byte[] byteIndex, string name) =>
        [CreateDWordFieldOp, .. buffer, .. byteIndex, .. NameString(name)];

    /// <summary>OperationRegion(name, space, offset, length).</summary>
    public static byte[] OperationRegion(string name, RegionSpace space, ulong offset, ulong length) =>
        [ExtOpPrefix, OpRegionOp, .. NameString(name), (byte)space, .. Int(offset), .. Int(length)];

    /// <summary>
    /// Field(region, access, NoLock, Preserve) { name, bits; ... }; a null name is a reserved gap (<c>, bits</c>).
    /// </summary>
    public static byte[] Field(string region, FieldAccess access, params (string? Name, int Bits)[] units)
    {
        var list = new List<byte>();
        foreach ((string? name, int bits) in units)
        {
            list.AddRange(name is null ? [0] : NameSeg(name));
            list.AddRange(FieldLength(bits));
        }
        return Package2(FieldOp, [.. NameString(region), (byte)access, .. list]);
    }

    /// <summary>
    /// The end of a ResourceTemplate: the end tag with a zero checksum (which means "treat as valid"), wrapped in a
    /// Buffer as ASL's ResourceTemplate() does.
    /// </summary>
    public static byte[] ResourceTemplate(params byte[][] descriptors) => Buffer([.. Concat(descriptors), 0x79, 0x00]);

    /// <summary>Concatenation of terms (a TermList).</summary>
    public static byte[] Concat(params byte[][] terms)
    {
        int length = 0;
        foreach (byte[] t in terms)
        {
            length += t.Length;
        }
        byte[] r = new byte[length];
        int at = 0;
        foreach (byte[] t in terms)
        {
            t.CopyTo(r, at);
            at += t.Length;
        }
        return r;
    }

    /// <summary>A field unit's bit count uses the PkgLength encoding without counting its own bytes.</summary>
    private static byte[] FieldLength(int bits)
    {
        if (bits <= 0x3F)
        {
            return [(byte)bits];
        }
        int n = bits < 1 << 12 ? 2 : bits < 1 << 20 ? 3 : 4;
        byte[] r = new byte[n];
        r[0] = (byte)(((n - 1) << 6) | (bits & 0xF));
        for (int k = 1; k < n; k++)
        {
            r[k] = (byte)(bits >> (4 + 8 * (k - 1)));
        }
        return r;
    }

    private static byte[] Prefixed(byte prefix, int size, ulong value)
    {
        byte[] r = new byte[1 + size];
        r[0] = prefix;
        for (int i = 0; i < size; i++)
        {
            r[1 + i] = (byte)(value >> (8 * i));
        }
        return r;
    }

    private static byte[] Package1(byte op, byte[] content) => [op, .. PkgLength(content.Length), .. content];

    private static byte[] Package2(byte extOp, byte[] content) => [ExtOpPrefix, extOp, .. PkgLength(content.Length), .. content];
}
