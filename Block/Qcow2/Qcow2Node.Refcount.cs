using System.Buffers.Binary;

namespace Colo.Block.Qcow2;

/// <summary>Refcount table/blocks and cluster allocation.</summary>
public sealed partial class Qcow2Node
{
    private long _reservedStart = -1;
    private long _reservedCount;

    /// <summary>Stored refcount of host cluster <paramref name="cluster"/> (0 where no block exists).</summary>
    internal ulong GetRefcount(long cluster)
    {
        long block = cluster >> _refBlockBits;
        if (block >= _refTable.Length)
        {
            return 0;
        }

        long off = (long)(_refTable[block] & RefTableOffsetMask);
        if (off == 0)
        {
            return 0;
        }

        byte[] rb = GetRefBlock(off);
        return ReadRefEntry(rb, (int)(cluster & ((1L << _refBlockBits) - 1)));
    }

    private byte[] GetRefBlock(long off)
    {
        if (off + _clusterSize > _file.Size && !_knownRefBlocks.Contains(off))
        {
            throw Corrupt($"Refcount block offset 0x{off:x} lies beyond the end of the image file");
        }

        _knownRefBlocks.Add(off);
        return _refCache.Get(off);
    }

    private readonly HashSet<long> _knownRefBlocks = [];

    private ulong ReadRefEntry(byte[] rb, int index)
    {
        switch (_header.RefcountOrder)
        {
            case 4:
                return BinaryPrimitives.ReadUInt16BigEndian(rb.AsSpan(index * 2));
            case 3:
                return rb[index];
            case 5:
                return BinaryPrimitives.ReadUInt32BigEndian(rb.AsSpan(index * 4));
            case 6:
                return BinaryPrimitives.ReadUInt64BigEndian(rb.AsSpan(index * 8));
            default:
                // Sub-byte widths: entry i lives in byte i*bits/8 at bit (i*bits)%8 counted from the LSB.
                int bits = 1 << _header.RefcountOrder;
                int bit = index * bits;
                return (ulong)((rb[bit >> 3] >> (bit & 7)) & ((1 << bits) - 1));
        }
    }

    /// <summary>Writes the entry into the block and returns the byte range to write through.</summary>
    private (int Start, int Length) WriteRefEntry(byte[] rb, int index, ulong value)
    {
        switch (_header.RefcountOrder)
        {
            case 4:
                BinaryPrimitives.WriteUInt16BigEndian(rb.AsSpan(index * 2), (ushort)value);
                return (index * 2, 2);
            case 3:
                rb[index] = (byte)value;
                return (index, 1);
            case 5:
                BinaryPrimitives.WriteUInt32BigEndian(rb.AsSpan(index * 4), (uint)value);
                return (index * 4, 4);
            case 6:
                BinaryPrimitives.WriteUInt64BigEndian(rb.AsSpan(index * 8), value);
                return (index * 8, 8);
            default:
                int bits = 1 << _header.RefcountOrder;
                int bit = index * bits;
                int mask = ((1 << bits) - 1) << (bit & 7);
                rb[bit >> 3] = (byte)((rb[bit >> 3] & ~mask) | (((int)value << (bit & 7)) & mask));
                return (bit >> 3, 1);
        }
    }

    internal ulong MaxRefcount => _header.RefcountOrder == 6 ? ulong.MaxValue : (1UL << (1 << _header.RefcountOrder)) - 1;

    internal void SetRefcount(long cluster, ulong value)
    {
        if (value > MaxRefcount)
        {
            throw new BlockException("Reference count overflow");
        }

        long block = cluster >> _refBlockBits;
        EnsureRefBlock(block);
        long off = (long)(_refTable[block] & RefTableOffsetMask);
        byte[] rb = GetRefBlock(off);
        (int start, int len) = WriteRefEntry(rb, (int)(cluster & ((1L << _refBlockBits) - 1)), value);
        _file.Write(off + start, rb.AsSpan(start, len));
        if (value == 0 && cluster < _freeHint)
        {
            _freeHint = cluster;
        }
    }

    private void DecrementRefcount(long cluster)
    {
        ulong r = GetRefcount(cluster);
        if (r == 0)
        {
            throw Corrupt($"Cannot free cluster 0x{cluster << _clusterBits:x}: its refcount is already 0");
        }

        SetRefcount(cluster, r - 1);
    }

    /// <summary>
    /// Allocates <paramref name="count"/> contiguous free clusters, sets their refcounts to 1 and
    /// returns the byte offset of the first. The caller writes the contents afterwards: a crash in
    /// between leaves a leak, never a reference to an unaccounted cluster.
    /// </summary>
    internal long AllocateClusters(int count)
    {
        long c = Math.Max(_freeHint, 1);
        while (true)
        {
            int run = 0;
            while (run < count && GetRefcount(c + run) == 0 && !IsFixedMetadata((c + run) << _clusterBits, _clusterSize))
            {
                run++;
            }

            if (run == count)
            {
                break;
            }

            c += run + 1;
        }

        if (((c + count) << _clusterBits) > (1L << 56))
        {
            throw new BlockException("qcow2: image file would exceed the maximum host offset");
        }

        _reservedStart = c;
        _reservedCount = count;
        try
        {
            for (int i = 0; i < count; i++)
            {
                SetRefcount(c + i, 1);
            }
        }
        finally
        {
            _reservedStart = -1;
            _reservedCount = 0;
        }

        if (count == 1 || c == _freeHint)
        {
            _freeHint = c + count;
        }

        return c << _clusterBits;
    }

    private bool IsReserved(long cluster) =>
        (cluster >= _reservedStart && cluster < _reservedStart + _reservedCount) || cluster == _extraReserved;

    /// <summary>
    /// Makes sure refcount block <paramref name="block"/> exists. A missing block means every cluster
    /// it covers is free, so the new block goes into its own range and counts itself.
    /// </summary>
    private void EnsureRefBlock(long block)
    {
        if (block >= _refTable.Length)
        {
            GrowRefTable(block);
        }

        if (_refTable[block] != 0)
        {
            return;
        }

        long first = block << _refBlockBits;
        long last = first + (1L << _refBlockBits);
        long f = first;
        while (f < last && (IsReserved(f) || IsFixedMetadata(f << _clusterBits, _clusterSize)))
        {
            f++;
        }

        if (f == last)
        {
            // The caller reserved this whole range (a large table allocation): host the block
            // elsewhere and count it through whichever block covers that spot.
            PlaceRefBlockOutside(block);
            return;
        }

        long off = f << _clusterBits;
        byte[] rb = _refCache.GetEmpty(off);
        WriteRefEntry(rb, (int)(f - first), 1);
        _file.Write(off, rb);
        _knownRefBlocks.Add(off);
        SetRefTableEntry(block, (ulong)off);
    }

    private void PlaceRefBlockOutside(long block)
    {
        long g = Math.Max(_reservedStart + _reservedCount, (_file.Size + _clusterSize - 1) >> _clusterBits);
        while (GetRefcount(g) != 0 || IsFixedMetadata(g << _clusterBits, _clusterSize) || IsReserved(g) || (g >> _refBlockBits) == block)
        {
            g++;
        }

        long off = g << _clusterBits;
        byte[] rb = _refCache.GetEmpty(off);
        _file.Write(off, rb);
        _knownRefBlocks.Add(off);
        _extraReserved = g;
        try
        {
            SetRefcount(g, 1);
        }
        finally
        {
            _extraReserved = -1;
        }

        SetRefTableEntry(block, (ulong)off);
    }

    private long _extraReserved = -1;

    private void SetRefTableEntry(long block, ulong value)
    {
        _refTable[block] = value;
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        _file.Write((long)_header.RefcountTableOffset + (block * 8), b);
    }

    /// <summary>
    /// Moves the refcount table to a larger one. The new table and the refcount blocks describing it
    /// go at the start of a fresh block-aligned area past everything in use, where all clusters are
    /// free; the header switches in one write after a flush, then the old table is freed.
    /// </summary>
    private void GrowRefTable(long neededBlock)
    {
        long rpb = 1L << _refBlockBits;
        long fileEndCluster = (_file.Size + _clusterSize - 1) >> _clusterBits;
        long b0 = Math.Max((fileEndCluster + rpb - 1) / rpb, _refTable.Length);
        b0 = Math.Max(b0, neededBlock + 1);
        if (_reservedStart >= 0)
        {
            b0 = Math.Max(b0, (_reservedStart + _reservedCount + rpb - 1) / rpb);
        }

        long entriesPerCluster = _clusterSize / 8;
        long k = 1;
        long tableClusters;
        long entries;
        while (true)
        {
            entries = Math.Max(Math.Max(neededBlock + 1, b0 + k), _refTable.Length + (_refTable.Length / 2));
            tableClusters = (entries + entriesPerCluster - 1) / entriesPerCluster;
            long needK = (k + tableClusters + rpb - 1) / rpb;
            if (needK <= k)
            {
                break;
            }

            k = needK;
        }

        entries = tableClusters * entriesPerCluster;
        if (tableClusters * _clusterSize > MaxRefTableBytes)
        {
            throw new BlockException("Reference count table too large");
        }

        long t = b0 * rpb;
        long areaEnd = t + k + tableClusters;
        for (long j = 0; j < k; j++)
        {
            var rb = new byte[_clusterSize];
            long blockStart = t + (j * rpb);
            for (long c = blockStart; c < Math.Min(areaEnd, blockStart + rpb); c++)
            {
                WriteRefEntry(rb, (int)(c - blockStart), 1);
            }

            _file.Write((t + j) << _clusterBits, rb);
        }

        var newTable = new ulong[entries];
        _refTable.CopyTo(newTable, 0);
        for (long j = 0; j < k; j++)
        {
            newTable[b0 + j] = (ulong)((t + j) << _clusterBits);
            _knownRefBlocks.Add((t + j) << _clusterBits);
        }

        var bytes = new byte[tableClusters * _clusterSize];
        for (int i = 0; i < newTable.Length; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(i * 8), newTable[i]);
        }

        long tableOffset = (t + k) << _clusterBits;
        _file.Write(tableOffset, bytes);
        _file.Flush();

        // refcount_table_offset (u64 at 48) and refcount_table_clusters (u32 at 56) are adjacent.
        Span<byte> hdr = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(hdr, (ulong)tableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(hdr[8..], (uint)tableClusters);
        _file.Write(Qcow2Header.OffsetRefcountTableOffset, hdr);
        long oldOffset = (long)_header.RefcountTableOffset;
        long oldClusters = _header.RefcountTableClusters;
        _header.RefcountTableOffset = (ulong)tableOffset;
        _header.RefcountTableClusters = (uint)tableClusters;
        _refTable = newTable;
        for (long c = oldOffset >> _clusterBits; c < (oldOffset >> _clusterBits) + oldClusters; c++)
        {
            DecrementRefcount(c);
        }
    }
}
