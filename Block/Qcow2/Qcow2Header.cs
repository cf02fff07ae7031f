using System.Buffers.Binary;
using System.Text;

namespace Colo.Block.Qcow2;

/// <summary>Header extension as stored after the fixed header (type, raw payload).</summary>
public sealed record Qcow2Extension(uint Type, byte[] Data);

/// <summary>
/// The qcow2 header (docs/interop/qcow2.txt, "Header"), big-endian on disk. Parsing validates
/// everything that does not need the rest of the file; <see cref="Qcow2Node"/> validates the rest.
/// </summary>
public sealed class Qcow2Header
{
    public const uint Magic = 0x514649fb; // "QFI\xfb"
    public const int V2Length = 72;
    public const int V3Length = 104;
    public const int MinClusterBits = 9;
    public const int MaxClusterBits = 21;

    public const uint ExtEnd = 0;
    public const uint ExtBackingFormat = 0xe2792aca;
    public const uint ExtFeatureTable = 0x6803f857;
    public const uint ExtCryptoHeader = 0x0537be77;
    public const uint ExtBitmaps = 0x23852875;
    public const uint ExtDataFile = 0x44415441;

    public const ulong IncompatDirty = 1UL << 0;
    public const ulong IncompatCorrupt = 1UL << 1;
    public const ulong IncompatDataFile = 1UL << 2;
    public const ulong IncompatCompressionType = 1UL << 3;
    public const ulong IncompatExtendedL2 = 1UL << 4;
    public const ulong CompatLazyRefcounts = 1UL << 0;

    // Offsets of header fields we rewrite in place.
    public const int OffsetSize = 24;
    public const int OffsetL1Size = 36;
    public const int OffsetL1TableOffset = 40;
    public const int OffsetRefcountTableOffset = 48;
    public const int OffsetIncompatibleFeatures = 72;

    public uint Version { get; set; }
    public ulong BackingFileOffset { get; set; }
    public uint BackingFileSize { get; set; }
    public int ClusterBits { get; set; }
    public ulong Size { get; set; }
    public uint CryptMethod { get; set; }
    public uint L1Size { get; set; }
    public ulong L1TableOffset { get; set; }
    public ulong RefcountTableOffset { get; set; }
    public uint RefcountTableClusters { get; set; }
    public uint NbSnapshots { get; set; }
    public ulong SnapshotsOffset { get; set; }
    public ulong IncompatibleFeatures { get; set; }
    public ulong CompatibleFeatures { get; set; }
    public ulong AutoclearFeatures { get; set; }
    public int RefcountOrder { get; set; } = 4;
    public uint HeaderLength { get; set; }
    public byte CompressionType { get; set; }

    public List<Qcow2Extension> Extensions { get; } = [];
    public string? BackingFile { get; set; }
    public string? BackingFormat { get; set; }

    public int ClusterSize => 1 << ClusterBits;

    /// <summary>Parses and validates the header cluster (or as much as the file holds).</summary>
    public static Qcow2Header Parse(ReadOnlySpan<byte> buf, long fileLength)
    {
        if (buf.Length < V2Length || BinaryPrimitives.ReadUInt32BigEndian(buf) != Magic)
        {
            throw new BlockException("Image is not in qcow2 format");
        }

        var h = new Qcow2Header
        {
            Version = BinaryPrimitives.ReadUInt32BigEndian(buf[4..]),
            BackingFileOffset = BinaryPrimitives.ReadUInt64BigEndian(buf[8..]),
            BackingFileSize = BinaryPrimitives.ReadUInt32BigEndian(buf[16..]),
            ClusterBits = (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(buf[20..]), 64u),
            Size = BinaryPrimitives.ReadUInt64BigEndian(buf[24..]),
            CryptMethod = BinaryPrimitives.ReadUInt32BigEndian(buf[32..]),
            L1Size = BinaryPrimitives.ReadUInt32BigEndian(buf[36..]),
            L1TableOffset = BinaryPrimitives.ReadUInt64BigEndian(buf[40..]),
            RefcountTableOffset = BinaryPrimitives.ReadUInt64BigEndian(buf[48..]),
            RefcountTableClusters = BinaryPrimitives.ReadUInt32BigEndian(buf[56..]),
            NbSnapshots = BinaryPrimitives.ReadUInt32BigEndian(buf[60..]),
            SnapshotsOffset = BinaryPrimitives.ReadUInt64BigEndian(buf[64..]),
        };

        if (h.Version is < 2 or > 3)
        {
            throw new BlockException($"Unsupported qcow2 version {h.Version}");
        }

        if (h.ClusterBits is < MinClusterBits or > MaxClusterBits)
        {
            throw new BlockException($"Unsupported cluster size: 2^{h.ClusterBits}");
        }

        if (h.Version == 2)
        {
            h.HeaderLength = V2Length;
            h.RefcountOrder = 4;
        }
        else
        {
            if (buf.Length < V3Length)
            {
                throw new BlockException("qcow2 header too short");
            }

            h.IncompatibleFeatures = BinaryPrimitives.ReadUInt64BigEndian(buf[72..]);
            h.CompatibleFeatures = BinaryPrimitives.ReadUInt64BigEndian(buf[80..]);
            h.AutoclearFeatures = BinaryPrimitives.ReadUInt64BigEndian(buf[88..]);
            uint order = BinaryPrimitives.ReadUInt32BigEndian(buf[96..]);
            h.HeaderLength = BinaryPrimitives.ReadUInt32BigEndian(buf[100..]);
            if (h.HeaderLength < V3Length)
            {
                throw new BlockException("qcow2 header too short");
            }

            if (h.HeaderLength > h.ClusterSize || h.HeaderLength > buf.Length)
            {
                throw new BlockException("qcow2 header exceeds cluster size");
            }

            if (order > 6)
            {
                throw new BlockException("Reference count order too large");
            }

            h.RefcountOrder = (int)order;
            if (h.HeaderLength > V3Length)
            {
                h.CompressionType = buf[V3Length];
            }
        }

        if (h.CryptMethod != 0)
        {
            throw new BlockException("qcow2 encryption is not supported by Colo");
        }

        ulong unknown = h.IncompatibleFeatures & ~(IncompatDirty | IncompatCorrupt | IncompatDataFile
            | IncompatCompressionType | IncompatExtendedL2);
        if (unknown != 0)
        {
            throw new BlockException($"Unsupported qcow2 feature(s): Unknown incompatible feature: {unknown:x}");
        }

        if ((h.IncompatibleFeatures & IncompatDataFile) != 0)
        {
            throw new BlockException("Unsupported qcow2 feature(s): External data file (not supported by Colo)");
        }

        if ((h.IncompatibleFeatures & IncompatExtendedL2) != 0)
        {
            throw new BlockException("Unsupported qcow2 feature(s): Extended L2 entries (not supported by Colo)");
        }

        bool hasCompressionBit = (h.IncompatibleFeatures & IncompatCompressionType) != 0;
        if (h.CompressionType > 1)
        {
            throw new BlockException($"Unknown compression type {h.CompressionType}");
        }

        if (h.CompressionType != 0 && !hasCompressionBit)
        {
            throw new BlockException("Compression type incompatible feature bit must be set if non-zlib compression type is used");
        }

        if (h.Size > long.MaxValue / 2)
        {
            throw new BlockException("Image is too big");
        }

        ParseExtensions(h, buf);
        ParseBackingName(h, buf, fileLength);
        return h;
    }

    private static void ParseExtensions(Qcow2Header h, ReadOnlySpan<byte> buf)
    {
        // Extensions live between the header and the end of the first cluster (or the backing name).
        int end = (int)Math.Min(buf.Length, h.ClusterSize);
        if (h.BackingFileOffset != 0 && h.BackingFileOffset < (ulong)end)
        {
            end = (int)h.BackingFileOffset;
        }

        int pos = (int)h.HeaderLength;
        while (pos + 8 <= end)
        {
            uint type = BinaryPrimitives.ReadUInt32BigEndian(buf[pos..]);
            uint len = BinaryPrimitives.ReadUInt32BigEndian(buf[(pos + 4)..]);
            pos += 8;
            if (type == ExtEnd)
            {
                return;
            }

            if (len > (uint)(end - pos))
            {
                throw new BlockException("Invalid qcow2 header extension: extension exceeds cluster");
            }

            byte[] data = buf.Slice(pos, (int)len).ToArray();
            h.Extensions.Add(new Qcow2Extension(type, data));
            if (type == ExtBackingFormat)
            {
                h.BackingFormat = Encoding.UTF8.GetString(data).TrimEnd('\0');
            }
            else if (type == ExtCryptoHeader)
            {
                throw new BlockException("qcow2 encryption is not supported by Colo");
            }

            pos += (int)((len + 7) & ~7u);
        }
    }

    private static void ParseBackingName(Qcow2Header h, ReadOnlySpan<byte> buf, long fileLength)
    {
        if (h.BackingFileOffset == 0)
        {
            return;
        }

        if (h.BackingFileSize > 1023 || h.BackingFileOffset > (ulong)h.ClusterSize
            || h.BackingFileOffset + h.BackingFileSize > (ulong)Math.Min(buf.Length, h.ClusterSize))
        {
            throw new BlockException("Backing file name too long");
        }

        if (h.BackingFileOffset + h.BackingFileSize > (ulong)fileLength)
        {
            throw new BlockException("Backing file name lies beyond end of file");
        }

        h.BackingFile = Encoding.UTF8.GetString(buf.Slice((int)h.BackingFileOffset, (int)h.BackingFileSize));
    }

    /// <summary>
    /// Serialises header, extensions and backing name into the header cluster the way QEMU 7.2
    /// lays them out: backing-format extension, feature-name table (v3 with clusters above 4 KiB),
    /// other kept extensions, end marker, then the backing file name.
    /// </summary>
    public byte[] Serialize()
    {
        var buf = new byte[ClusterSize];
        Span<byte> b = buf;
        BinaryPrimitives.WriteUInt32BigEndian(b, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(b[4..], Version);
        BinaryPrimitives.WriteUInt32BigEndian(b[20..], (uint)ClusterBits);
        BinaryPrimitives.WriteUInt64BigEndian(b[24..], Size);
        BinaryPrimitives.WriteUInt32BigEndian(b[32..], CryptMethod);
        BinaryPrimitives.WriteUInt32BigEndian(b[36..], L1Size);
        BinaryPrimitives.WriteUInt64BigEndian(b[40..], L1TableOffset);
        BinaryPrimitives.WriteUInt64BigEndian(b[48..], RefcountTableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b[56..], RefcountTableClusters);
        BinaryPrimitives.WriteUInt32BigEndian(b[60..], NbSnapshots);
        BinaryPrimitives.WriteUInt64BigEndian(b[64..], SnapshotsOffset);
        int pos;
        if (Version >= 3)
        {
            HeaderLength = 112; // fixed part plus the compression-type byte and its padding
            BinaryPrimitives.WriteUInt64BigEndian(b[72..], IncompatibleFeatures);
            BinaryPrimitives.WriteUInt64BigEndian(b[80..], CompatibleFeatures);
            BinaryPrimitives.WriteUInt64BigEndian(b[88..], AutoclearFeatures);
            BinaryPrimitives.WriteUInt32BigEndian(b[96..], (uint)RefcountOrder);
            BinaryPrimitives.WriteUInt32BigEndian(b[100..], HeaderLength);
            b[104] = CompressionType;
            pos = (int)HeaderLength;
        }
        else
        {
            HeaderLength = V2Length;
            pos = V2Length;
        }

        if (BackingFormat != null)
        {
            pos = WriteExtension(b, pos, ExtBackingFormat, Encoding.UTF8.GetBytes(BackingFormat));
        }

        if (Version >= 3 && ClusterSize > 4096)
        {
            pos = WriteExtension(b, pos, ExtFeatureTable, FeatureTable());
        }

        foreach (Qcow2Extension e in Extensions)
        {
            if (e.Type is not (ExtBackingFormat or ExtFeatureTable))
            {
                pos = WriteExtension(b, pos, e.Type, e.Data);
            }
        }

        pos = WriteExtension(b, pos, ExtEnd, []);
        if (BackingFile != null)
        {
            byte[] name = Encoding.UTF8.GetBytes(BackingFile);
            if (name.Length > 1023 || pos + name.Length > ClusterSize)
            {
                throw new BlockException("Backing file name too long");
            }

            name.CopyTo(b[pos..]);
            BackingFileOffset = (ulong)pos;
            BackingFileSize = (uint)name.Length;
        }
        else
        {
            BackingFileOffset = 0;
            BackingFileSize = 0;
        }

        BinaryPrimitives.WriteUInt64BigEndian(b[8..], BackingFileOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b[16..], BackingFileSize);
        return buf;
    }

    private int WriteExtension(Span<byte> b, int pos, uint type, byte[] data)
    {
        int padded = (data.Length + 7) & ~7;
        if (pos + 8 + padded > ClusterSize)
        {
            throw new BlockException("Cannot update qcow2 header: header extensions do not fit in the first cluster");
        }

        BinaryPrimitives.WriteUInt32BigEndian(b[pos..], type);
        BinaryPrimitives.WriteUInt32BigEndian(b[(pos + 4)..], (uint)data.Length);
        data.CopyTo(b[(pos + 8)..]);
        return pos + 8 + padded;
    }

    /// <summary>Feature-name table: (type, bit, 46-byte name) per known feature.</summary>
    private static byte[] FeatureTable()
    {
        (byte Type, byte Bit, string Name)[] features =
        [
            (0, 0, "dirty bit"), (0, 1, "corrupt bit"), (0, 2, "external data file"),
            (0, 3, "compression type"), (0, 4, "extended L2 entries"), (1, 0, "lazy refcounts"),
            (2, 0, "bitmaps"), (2, 1, "raw external data"),
        ];
        var t = new byte[features.Length * 48];
        for (int i = 0; i < features.Length; i++)
        {
            t[i * 48] = features[i].Type;
            t[(i * 48) + 1] = features[i].Bit;
            Encoding.ASCII.GetBytes(features[i].Name).CopyTo(t, (i * 48) + 2);
        }

        return t;
    }
}
