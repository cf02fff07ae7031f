namespace Colo.Block.Qcow2;

/// <summary>qcow2 creation options (QEMU's BlockdevCreateOptionsQcow2 subset we implement).</summary>
public sealed record Qcow2CreateOptions
{
    public required long Size { get; init; }
    public int ClusterSize { get; init; } = 65536;
    public int Version { get; init; } = 3;
    public bool LazyRefcounts { get; init; }
    public int RefcountBits { get; init; } = 16;
    public string? BackingFile { get; init; }
    public string? BackingFormat { get; init; }
    public bool Zstd { get; init; }
}

/// <summary>
/// Writes a new, empty qcow2 image with QEMU 7.2's layout: header cluster, refcount table at
/// cluster 1, refcount block(s), then the L1 table, the file ending right after the L1 entries.
/// </summary>
public static class Qcow2Creator
{
    public static void Create(string filename, Qcow2CreateOptions o)
    {
        Validate(o);
        int cb = System.Numerics.BitOperations.Log2((uint)o.ClusterSize);
        long cs = o.ClusterSize;
        int refOrder = System.Numerics.BitOperations.Log2((uint)o.RefcountBits);
        long l2Coverage = cs * (cs / 8);
        long l1Size = (o.Size + l2Coverage - 1) / l2Coverage;
        if (l1Size * 8 > Qcow2Node.MaxL1Bytes)
        {
            throw new BlockException("The image size is too large for file format 'qcow2' (try using a larger cluster size)");
        }

        long l1Clusters = (l1Size * 8 + cs - 1) / cs;
        long rpb = cs * 8 / o.RefcountBits;
        long r = 1;
        long k = 1;
        while (true)
        {
            long total = 1 + r + k + l1Clusters;
            long nk = (total + rpb - 1) / rpb;
            long nr = Math.Max(1, ((nk * 8) + cs - 1) / cs);
            if (nk == k && nr == r)
            {
                break;
            }

            k = nk;
            r = nr;
        }

        long reftableOffset = cs;
        long refblocksOffset = reftableOffset + (r * cs);
        long l1Offset = refblocksOffset + (k * cs);
        long used = 1 + r + k + l1Clusters;

        var h = new Qcow2Header
        {
            Version = (uint)o.Version,
            ClusterBits = cb,
            Size = (ulong)o.Size,
            L1Size = (uint)l1Size,
            L1TableOffset = l1Size > 0 ? (ulong)l1Offset : 0,
            RefcountTableOffset = (ulong)reftableOffset,
            RefcountTableClusters = (uint)r,
            RefcountOrder = refOrder,
            CompatibleFeatures = o.LazyRefcounts ? Qcow2Header.CompatLazyRefcounts : 0,
            IncompatibleFeatures = o.Zstd ? Qcow2Header.IncompatCompressionType : 0,
            CompressionType = (byte)(o.Zstd ? 1 : 0),
            BackingFile = o.BackingFile,
            BackingFormat = o.BackingFile != null ? o.BackingFormat : null,
        };

        byte[] header = h.Serialize();
        long fileLength = l1Size > 0 ? l1Offset + (l1Size * 8) : l1Offset;
        FileNodeCreate(filename, fileLength, header, reftableOffset, refblocksOffset, k, r, used, cs, refOrder);
        if (l1Size > 0)
        {
            // Write the empty L1 for real (not a sparse hole), as QEMU does: same "disk size".
            using File.FileNode f = File.FileNode.Open(filename, readOnly: false);
            f.Write(l1Offset, new byte[l1Size * 8]);
        }
    }

    private static void FileNodeCreate(
        string filename, long fileLength, byte[] header, long reftableOffset, long refblocksOffset,
        long k, long r, long used, long cs, int refOrder)
    {
        File.FileNode.Create(filename, fileLength);
        using File.FileNode f = File.FileNode.Open(filename, readOnly: false);
        var table = new byte[r * cs];
        for (long i = 0; i < k; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(i * 8)), (ulong)(refblocksOffset + (i * cs)));
        }

        int bits = 1 << refOrder;
        long rpb = cs * 8 / bits;
        for (long i = 0; i < k; i++)
        {
            var block = new byte[cs];
            for (long c = i * rpb; c < Math.Min(used, (i + 1) * rpb); c++)
            {
                long bit = (c - (i * rpb)) * bits;
                if (bits >= 8)
                {
                    block[(bit / 8) + (bits / 8) - 1] = 1; // big-endian value 1
                }
                else
                {
                    block[bit / 8] |= (byte)(1 << (int)(bit % 8));
                }
            }

            f.Write(refblocksOffset + (i * cs), block);
        }

        f.Write(reftableOffset, table);
        f.Write(0, header);
        f.Flush();
    }

    private static void Validate(Qcow2CreateOptions o)
    {
        if (o.ClusterSize < 512 || o.ClusterSize > (2 << 20) || (o.ClusterSize & (o.ClusterSize - 1)) != 0)
        {
            throw new BlockException("Cluster size must be a power of two between 512 and 2048k");
        }

        if (o.Size < 0)
        {
            throw new BlockException("Image size must be a multiple of 512 bytes");
        }

        if (o.Version is not (2 or 3))
        {
            throw new BlockException($"Invalid compat version {o.Version}");
        }

        if (o.RefcountBits is < 1 or > 64 || (o.RefcountBits & (o.RefcountBits - 1)) != 0)
        {
            throw new BlockException("Refcount width must be a power of two and may not exceed 64 bits");
        }

        if (o.Version == 2 && o.RefcountBits != 16)
        {
            throw new BlockException("Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)");
        }

        if (o.Version == 2 && o.LazyRefcounts)
        {
            throw new BlockException("Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
        }

        if (o.Version == 2 && o.Zstd)
        {
            throw new BlockException("Compression type selection is only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
        }

        if (o.BackingFile != null && o.BackingFile.Length > 1023)
        {
            throw new BlockException("Backing file name too long");
        }
    }
}
