using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.CompilerServices;

namespace Colo.Block.Qcow2;

/// <summary>Allocation state of a guest cluster.</summary>
public enum Qcow2ClusterStatus
{
    Unallocated,
    Data,
    Compressed,
    Zero,
}

/// <summary>
/// The qcow2 format driver (versions 2 and 3, docs/interop/qcow2.txt).
/// </summary>
/// <remarks>
/// Metadata is written through (no dirty cache), in the order data → refcounts → L2 → L1, so a
/// process killed at any point leaves at worst leaked clusters, which <c>qemu-img check -r leaks</c>
/// repairs. Power-loss ordering would additionally need a flush between steps; QEMU gets that from
/// its cache dependencies and we do not yet (see <see cref="Flush"/>). Internal snapshots are readable
/// (the active L1 is used) but images holding them are refused for writing.
/// </remarks>
public sealed partial class Qcow2Node : BlockNode
{
    internal const ulong L1OffsetMask = 0x00fffffffffffe00UL;
    internal const ulong L2OffsetMask = 0x00fffffffffffe00UL;
    internal const ulong RefTableOffsetMask = 0xfffffffffffffe00UL;
    internal const ulong OflagCopied = 1UL << 63;
    internal const ulong OflagCompressed = 1UL << 62;
    internal const ulong OflagZero = 1UL;
    internal const long MaxL1Bytes = 32L << 20;
    internal const long MaxRefTableBytes = 8L << 20;
    private const int L2CacheSlots = 16;
    private const int RefCacheSlots = 4;

    private readonly BlockNode _file;
    private readonly BlockNode? _backing;
    private readonly Qcow2Header _header;
    private readonly int _clusterBits;
    private readonly int _clusterSize;
    private readonly int _l2Bits;
    private readonly int _refBlockBits; // log2(refcount entries per refcount block)
    private readonly int _csizeShift;   // start bit of the compressed sector count
    private readonly ulong _csizeMask;
    private readonly ulong _coffsetMask;
    private readonly Qcow2Cache _l2Cache;
    private readonly Qcow2Cache _refCache;
    private ulong[] _l1;
    private ulong[] _refTable;
    private long _freeHint;
    private byte[]? _scratch;
    private byte[]? _compressedBuf;
    private byte[]? _decompressed;
    private long _decompressedEntry = -1;

    // Metadata (tables, caches, scratch buffers) is touched only under this lock; data preads and
    // in-place pwrites of ReadAsync/WriteAsync run outside it. Reentrant: writes read their cluster's old
    // contents.
    private readonly Lock _lock = new();

    // Guest ranges of the requests in flight: taken before _lock, never while holding it. It orders
    // overlapping requests and keeps a range's clusters mapped while a read or write of it runs outside
    // the lock (a discard or write-zeroes of the range waits for it, so its host cluster cannot be freed
    // and reused under it).
    private readonly RequestTracker _tracker = new();

    private Qcow2Node(BlockNode file, BlockNode? backing, Qcow2Header header, bool readOnly, string? nodeName)
        : base(nodeName, readOnly)
    {
        _file = file;
        _backing = backing;
        _header = header;
        _clusterBits = header.ClusterBits;
        _clusterSize = 1 << _clusterBits;
        _l2Bits = _clusterBits - 3;
        _refBlockBits = _clusterBits + 3 - header.RefcountOrder;
        _csizeShift = 62 - (_clusterBits - 8);
        _csizeMask = (1UL << (_clusterBits - 8)) - 1;
        _coffsetMask = (1UL << _csizeShift) - 1;
        _l2Cache = new Qcow2Cache(file, _clusterSize, L2CacheSlots);
        _refCache = new Qcow2Cache(file, _clusterSize, RefCacheSlots);
        _l1 = [];
        _refTable = [];
    }

    public override string DriverName => "qcow2";

    public override string Filename => _file.Filename;

    public override long Size => (long)_header.Size;

    public Qcow2Header Header => _header;

    public int ClusterSize => _clusterSize;

    public BlockNode File => _file;

    public BlockNode? Backing => _backing;

    public override IReadOnlyList<BlockChild> Children =>
        _backing == null ? [new BlockChild("file", _file)] : [new BlockChild("file", _file), new BlockChild("backing", _backing)];

    public bool IsCorrupt => (_header.IncompatibleFeatures & Qcow2Header.IncompatCorrupt) != 0;

    public bool IsDirty => (_header.IncompatibleFeatures & Qcow2Header.IncompatDirty) != 0;

    /// <summary>
    /// Opens a qcow2 image on <paramref name="file"/>. <paramref name="openBacking"/> is asked for the
    /// backing node (given name and format from the header) unless the caller passes null. It is asked
    /// even when the header names no backing file: <c>backing=NODE</c> attaches one anyway, as in QEMU.
    /// </summary>
    /// <param name="forCheck">Allow corrupt images read-write, for <c>qemu-img check -r</c>.</param>
    public static Qcow2Node Open(
        BlockNode file,
        bool readOnly,
        Func<Qcow2Header, BlockNode?>? openBacking = null,
        string? nodeName = null,
        bool forCheck = false)
    {
        long fileLength = file.Size;
        var first = new byte[(int)Math.Min(1 << Qcow2Header.MaxClusterBits, Math.Max(fileLength, Qcow2Header.V2Length))];
        file.Read(0, first);
        Qcow2Header header = Qcow2Header.Parse(first, fileLength);
        if ((header.IncompatibleFeatures & Qcow2Header.IncompatCorrupt) != 0 && !readOnly && !forCheck)
        {
            throw new BlockException("qcow2: Image is corrupt; cannot be opened read/write");
        }

        BlockNode? backing = openBacking?.Invoke(header);
        var node = new Qcow2Node(file, backing, header, readOnly, nodeName);
        try
        {
            node.LoadTables(fileLength);
            if (!readOnly)
            {
                node.PrepareForWriting(forCheck);
            }
        }
        catch
        {
            backing?.Dispose();
            throw;
        }

        return node;
    }

    private void LoadTables(long fileLength)
    {
        Qcow2Header h = _header;
        long cs = _clusterSize;

        // Size and L1: the L1 must map the whole virtual disk and stay within QEMU's limit.
        if ((long)h.L1Size * 8 > MaxL1Bytes)
        {
            throw new BlockException("Active L1 table too large");
        }

        long l2Coverage = cs << _l2Bits;
        long needL1 = (long)((h.Size + (ulong)l2Coverage - 1) / (ulong)l2Coverage);
        if (needL1 > h.L1Size)
        {
            throw new BlockException("L1 table is too small");
        }

        CheckTableOffset(h.L1TableOffset, (long)h.L1Size * 8, fileLength, "Active L1 table");
        if ((long)h.RefcountTableClusters * cs > MaxRefTableBytes)
        {
            throw new BlockException("Reference count table too large");
        }

        if (h.RefcountTableClusters == 0)
        {
            throw new BlockException("Image does not contain a reference count table");
        }

        CheckTableOffset(h.RefcountTableOffset, h.RefcountTableClusters * cs, fileLength, "Reference count table");
        if (h.NbSnapshots > 65536)
        {
            throw new BlockException("Too many snapshots");
        }

        if (h.NbSnapshots > 0)
        {
            CheckTableOffset(h.SnapshotsOffset, 1, fileLength, "Snapshot table");
        }

        if (h.L1Size > 0 && Overlaps(h.L1TableOffset, (long)h.L1Size * 8, 0, cs))
        {
            throw new BlockException("L1 table overlaps with the image header");
        }

        if (Overlaps(h.RefcountTableOffset, h.RefcountTableClusters * cs, 0, cs))
        {
            throw new BlockException("Reference count table overlaps with the image header");
        }

        if (h.L1Size > 0 && Overlaps(h.L1TableOffset, (long)h.L1Size * 8, (long)h.RefcountTableOffset, h.RefcountTableClusters * cs))
        {
            throw new BlockException("L1 table overlaps with the reference count table");
        }

        _hostEnd = fileLength;
        _l1 = ReadTable((long)h.L1TableOffset, (int)h.L1Size);
        _refTable = ReadTable((long)h.RefcountTableOffset, (int)(h.RefcountTableClusters * cs / 8));
        for (int i = 0; i < _refTable.Length; i++)
        {
            ulong e = _refTable[i];
            if (e == 0)
            {
                continue;
            }

            if ((e & ~RefTableOffsetMask) != 0 || e >= 1UL << 56)
            {
                throw new BlockException($"Reference count table entry {i} is invalid: 0x{e:x}");
            }

            // A refcount block sitting on other metadata is a loop: counting it would count itself.
            long off = (long)e;
            if (IsFixedMetadata(off, cs))
            {
                throw new BlockException($"Refcount block {i} at offset 0x{off:x} overlaps with metadata");
            }
        }

        if (_refTable[0] == 0)
        {
            throw new BlockException("Reference count table does not cover the image header");
        }
    }

    private void PrepareForWriting(bool forCheck)
    {
        if (_header.NbSnapshots > 0 && !forCheck)
        {
            throw new BlockException("Writing to qcow2 images with internal snapshots is not supported by Colo");
        }

        // Autoclear bits name extensions (bitmaps) that we do not keep in sync; clearing them is how
        // the spec says an unaware writer invalidates them.
        if (_header.Version >= 3 && _header.AutoclearFeatures != 0)
        {
            _header.AutoclearFeatures = 0;
            Span<byte> z = stackalloc byte[8];
            z.Clear();
            _file.Write(88, z);
        }

        if (IsDirty && !forCheck)
        {
            // Refcounts may be stale (lazy refcounts after a crash): rebuild them before any allocation.
            Check(Qcow2CheckFix.All, TextWriter.Null);
            SetIncompatibleFeatures(_header.IncompatibleFeatures & ~Qcow2Header.IncompatDirty);
        }
    }

    private static bool Overlaps(ulong a, long alen, long b, long blen) => Overlaps((long)a, alen, b, blen);

    private static bool Overlaps(long a, long alen, long b, long blen) => a < b + blen && b < a + alen;

    private bool IsFixedMetadata(long off, long len)
    {
        long cs = _clusterSize;
        return Overlaps(off, len, 0, cs)
            || Overlaps(off, len, (long)_header.RefcountTableOffset, _header.RefcountTableClusters * cs)
            || (_header.L1Size > 0 && Overlaps(off, len, (long)_header.L1TableOffset, RoundUp((long)_header.L1Size * 8)));
    }

    private void CheckTableOffset(ulong offset, long length, long fileLength, string what)
    {
        if ((offset & (ulong)(_clusterSize - 1)) != 0 || offset > long.MaxValue / 2)
        {
            throw new BlockException($"{what} offset invalid");
        }

        if (length > 0 && (long)offset + length > fileLength)
        {
            throw new BlockException($"{what} at offset 0x{offset:x} lies beyond the end of the image file");
        }
    }

    private ulong[] ReadTable(long offset, int entries)
    {
        var bytes = new byte[entries * 8];
        _file.Read(offset, bytes);
        var t = new ulong[entries];
        for (int i = 0; i < entries; i++)
        {
            t[i] = BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(i * 8));
        }

        return t;
    }

    private long RoundUp(long v) => (v + _clusterSize - 1) & ~(long)(_clusterSize - 1);

    // ---- Read path -------------------------------------------------------------------------

    public override void Read(long offset, Span<byte> buffer)
    {
        CheckRequest(offset, buffer.Length);
        int slot = _tracker.BeginSync(offset, buffer.Length, write: false);
        try
        {
            lock (_lock)
            {
                while (buffer.Length > 0)
                {
                    int n = MapRead(offset, buffer, out long host);
                    if (host >= 0)
                    {
                        _file.Read(host, buffer[..n]);
                    }

                    buffer = buffer[n..];
                    offset += n;
                }
            }
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    /// <summary>Requests in flight (running or waiting for an overlapping one); for tests.</summary>
    internal int RequestsInFlight => _tracker.Count;

    /// <summary>Data clusters are read from the file outside the lock, so reads run side by side.</summary>
    public override bool ConcurrentReads => _file.ConcurrentReads;

    public override ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        CheckRequest(offset, buffer.Length);
        return ReadAsyncCore(offset, buffer, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadAsyncCore(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int slot = _tracker.Begin(offset, buffer.Length, write: false, out Task? wait);
        try
        {
            if (wait != null)
            {
                await wait.ConfigureAwait(false);
            }

            while (buffer.Length > 0)
            {
                int n;
                long host;
                lock (_lock)
                {
                    n = MapRead(offset, buffer.Span, out host);
                }

                if (host >= 0)
                {
                    await _file.ReadAsync(host, buffer[..n], cancellationToken).ConfigureAwait(false);
                }

                buffer = buffer[n..];
                offset += n;
            }
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    /// <summary>
    /// Maps the start of a read (caller holds <see cref="_lock"/>). For a run of data clusters that lie
    /// back to back in the file it returns the run's length and its host offset, so one pread serves many
    /// clusters (QEMU merges them the same way); anything else (zero, unallocated, compressed) is filled in
    /// place for the rest of its cluster and <paramref name="host"/> is -1.
    /// </summary>
    private int MapRead(long offset, Span<byte> buffer, out long host)
    {
        int mask = _clusterSize - 1;
        int inCluster = (int)(offset & mask);
        int n = Math.Min(_clusterSize - inCluster, buffer.Length);
        long start = DataClusterHost(offset >> _clusterBits);
        if (start < 0)
        {
            ReadInCluster(offset, inCluster, buffer[..n]);
            host = -1;
            return n;
        }

        host = start + inCluster;
        long next = start + _clusterSize;
        while (n < buffer.Length && DataClusterHost((offset + n) >> _clusterBits) == next)
        {
            n += Math.Min(_clusterSize, buffer.Length - n);
            next += _clusterSize;
        }

        return n;
    }

    /// <summary>Host offset of a plain allocated data cluster, or -1 for any other kind.</summary>
    private long DataClusterHost(long vcluster)
    {
        long l1Index = vcluster >> _l2Bits;
        ulong l2Offset = (ulong)l1Index < (ulong)_l1.Length ? _l1[l1Index] & L1OffsetMask : 0;
        if (l2Offset == 0)
        {
            return -1;
        }

        byte[] l2 = GetL2((long)l2Offset);
        int l2Index = (int)(vcluster & ((1 << _l2Bits) - 1));
        ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(l2Index * 8));
        ulong host = entry & L2OffsetMask;
        if ((entry & OflagCompressed) != 0 || ((entry & OflagZero) != 0 && _header.Version >= 3) || host == 0)
        {
            return -1;
        }

        CheckDataCluster(host, entry);
        return (long)host;
    }

    private void ReadInCluster(long guestOffset, int inCluster, Span<byte> dest)
    {
        long vcluster = guestOffset >> _clusterBits;
        long l1Index = vcluster >> _l2Bits;
        ulong l2Offset = (ulong)l1Index < (ulong)_l1.Length ? _l1[l1Index] & L1OffsetMask : 0;
        if (l2Offset == 0)
        {
            ReadUnallocated(guestOffset, dest);
            return;
        }

        byte[] l2 = GetL2((long)l2Offset);
        int l2Index = (int)(vcluster & ((1 << _l2Bits) - 1));
        ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(l2Index * 8));
        if ((entry & OflagCompressed) != 0)
        {
            ReadCompressed(entry).AsSpan(inCluster, dest.Length).CopyTo(dest);
            return;
        }

        if ((entry & OflagZero) != 0 && _header.Version >= 3)
        {
            dest.Clear();
            return;
        }

        ulong host = entry & L2OffsetMask;
        if (host == 0)
        {
            ReadUnallocated(guestOffset, dest);
            return;
        }

        CheckDataCluster(host, entry);
        _file.Read((long)host + inCluster, dest);
    }

    private void CheckDataCluster(ulong host, ulong entry)
    {
        // Bits 1-8 are reserved and an offset must be cluster aligned; header cluster is never data.
        if ((entry & 0x1feUL) != 0 || (host & (ulong)(_clusterSize - 1)) != 0 || host < (ulong)_clusterSize)
        {
            throw Corrupt($"Cluster allocation offset 0x{host:x} unaligned or invalid (L2 entry 0x{entry:x})");
        }

        // Every cluster we or QEMU allocate is written (so the file covers it) before it is referenced.
        if (host >= (ulong)_hostEnd)
        {
            throw Corrupt($"Data cluster offset 0x{host:x} lies beyond the end of the image file");
        }
    }

    /// <summary>End of the host file as far as we know (updated on allocation; avoids an fstat per I/O).</summary>
    private long _hostEnd;

    private void GrewTo(long end)
    {
        if (end > _hostEnd)
        {
            _hostEnd = end;
        }
    }

    private void ReadUnallocated(long guestOffset, Span<byte> dest)
    {
        if (_backing != null)
        {
            long avail = Math.Max(0, Math.Min(dest.Length, _backing.Size - guestOffset));
            if (avail > 0)
            {
                _backing.Read(guestOffset, dest[..(int)avail]);
            }

            dest[(int)avail..].Clear();
        }
        else
        {
            dest.Clear();
        }
    }

    private byte[] GetL2(long l2Offset)
    {
        if ((l2Offset & (_clusterSize - 1)) != 0)
        {
            throw Corrupt($"L2 table offset 0x{l2Offset:x} unaligned");
        }

        byte[] table = _l2Cache.Get(l2Offset);
        return _l2Validated.Contains(l2Offset) ? table : ValidateL2(l2Offset, table);
    }

    private readonly HashSet<long> _l2Validated = [];

    /// <summary>First sight of an L2 table: it must lie inside the file and off fixed metadata.</summary>
    private byte[] ValidateL2(long l2Offset, byte[] table)
    {
        if (IsFixedMetadata(l2Offset, _clusterSize))
        {
            _l2Cache.Invalidate(l2Offset);
            throw Corrupt($"L2 table offset 0x{l2Offset:x} overlaps with other metadata");
        }

        if (l2Offset + _clusterSize > _file.Size)
        {
            _l2Cache.Invalidate(l2Offset);
            throw Corrupt($"L2 table offset 0x{l2Offset:x} lies beyond the end of the image file");
        }

        _l2Validated.Add(l2Offset);
        return table;
    }

    /// <summary>Compressed host range: (offset, byte length).</summary>
    internal (long Offset, int Length) CompressedRange(ulong entry)
    {
        ulong off = entry & _coffsetMask;
        ulong sectors = ((entry >> _csizeShift) & _csizeMask) + 1;
        long len = (long)(sectors * 512) - (long)(off & 511);
        return ((long)off, (int)len);
    }

    private byte[] ReadCompressed(ulong entry)
    {
        _decompressed ??= new byte[_clusterSize];
        if (_decompressedEntry == (long)entry)
        {
            return _decompressed;
        }

        (long off, int len) = CompressedRange(entry);
        if (off < _clusterSize)
        {
            throw Corrupt($"Compressed cluster offset 0x{off:x} invalid");
        }

        long fileSize = _file.Size;
        len = (int)Math.Min(len, Math.Max(0, fileSize - off));
        _compressedBuf ??= new byte[2 * _clusterSize];
        Span<byte> src = _compressedBuf.AsSpan(0, Math.Min(len, _compressedBuf.Length));
        _file.Read(off, src);
        _decompressedEntry = -1;
        int produced = _header.CompressionType == 0 ? Inflate(src, _decompressed) : Qcow2Zstd.Decompress(src, _decompressed);
        if (produced < 0)
        {
            throw new BlockException($"Could not decompress cluster at offset 0x{off:x}: Input/output error");
        }

        _decompressed.AsSpan(produced).Clear();
        _decompressedEntry = (long)entry;
        return _decompressed;
    }

    /// <summary>Raw deflate (no zlib header), as qcow2 stores zlib-type compressed clusters.</summary>
    private int Inflate(Span<byte> src, byte[] dest)
    {
        try
        {
            using var ms = new MemoryStream(_compressedBuf!, 0, src.Length, writable: false);
            using var ds = new DeflateStream(ms, CompressionMode.Decompress);
            // Stop once the cluster is full: what follows the stream is sector padding.
            return ds.ReadAtLeast(dest, dest.Length, throwOnEndOfStream: false);
        }
        catch (InvalidDataException)
        {
            return -1;
        }
    }

    /// <summary>Allocation state of one guest cluster in this image alone (backing not consulted).</summary>
    public Qcow2ClusterStatus GetClusterStatus(long vcluster)
    {
        lock (_lock)
        {
            return ClusterStatus(vcluster);
        }
    }

    private Qcow2ClusterStatus ClusterStatus(long vcluster)
    {
        long l1Index = vcluster >> _l2Bits;
        ulong l2Offset = (ulong)l1Index < (ulong)_l1.Length ? _l1[l1Index] & L1OffsetMask : 0;
        if (l2Offset == 0)
        {
            return Qcow2ClusterStatus.Unallocated;
        }

        byte[] l2 = GetL2((long)l2Offset);
        ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan((int)(vcluster & ((1 << _l2Bits) - 1)) * 8));
        if ((entry & OflagCompressed) != 0)
        {
            return Qcow2ClusterStatus.Compressed;
        }

        if ((entry & OflagZero) != 0 && _header.Version >= 3)
        {
            return Qcow2ClusterStatus.Zero;
        }

        return (entry & L2OffsetMask) != 0 ? Qcow2ClusterStatus.Data : Qcow2ClusterStatus.Unallocated;
    }

    // ---- Write path ------------------------------------------------------------------------

    public override void Write(long offset, ReadOnlySpan<byte> buffer)
    {
        CheckWritable();
        CheckRequest(offset, buffer.Length);
        int slot = _tracker.BeginSync(offset, buffer.Length, write: true);
        try
        {
            lock (_lock)
            {
                WriteCore(offset, buffer);
            }
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    /// <summary>
    /// The write itself (caller holds the tracker slot and <see cref="_lock"/>): runs of in-place clusters
    /// back to back in the file take one pwrite each, as in the asynchronous path.
    /// </summary>
    private void WriteCore(long offset, ReadOnlySpan<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            int n = MapWrite(offset, buffer, out long host);
            if (host >= 0)
            {
                _file.Write(host, buffer[..n]);
            }

            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <summary>Where the file allows it, writes to clusters already ours run outside the lock, side by side.</summary>
    public override bool ConcurrentWrites => !ReadOnly && _file.ConcurrentWrites;

    public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            CheckWritable();
            CheckRequest(offset, buffer.Length);
        }
        catch (BlockException e)
        {
            return ValueTask.FromException(e);
        }

        return WriteAsyncCore(offset, buffer, cancellationToken);
    }

    /// <summary>
    /// Runs of clusters that are allocated, ours alone (COPIED) and plain data are written in place with
    /// one pwrite each outside the lock, as many requests side by side as the caller keeps in flight.
    /// Anything else (allocation, copy-on-write, zero or compressed clusters) is done under the lock
    /// with the synchronous path's ordering: data, then refcounts, then L2, then L1.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteAsyncCore(long offset, ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        int slot = _tracker.Begin(offset, buffer.Length, write: true, out Task? wait);
        try
        {
            if (wait != null)
            {
                await wait.ConfigureAwait(false);
            }

            while (buffer.Length > 0)
            {
                int n;
                long host;
                lock (_lock)
                {
                    n = MapWrite(offset, buffer.Span, out host);
                }

                if (host >= 0)
                {
                    await _file.WriteAsync(host, buffer[..n], cancellationToken).ConfigureAwait(false);
                }

                buffer = buffer[n..];
                offset += n;
            }
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    /// <summary>
    /// Maps the start of a write (caller holds <see cref="_lock"/>): for a run of in-place clusters back to
    /// back in the file it returns the run's length and host offset for the caller to write; anything else
    /// is written here for the rest of its cluster and <paramref name="host"/> is -1.
    /// </summary>
    private int MapWrite(long offset, ReadOnlySpan<byte> data, out long host)
    {
        int inCluster = (int)(offset & (_clusterSize - 1));
        int n = Math.Min(_clusterSize - inCluster, data.Length);
        long start = InPlaceHost(offset >> _clusterBits);
        if (start < 0)
        {
            WriteInCluster(offset, inCluster, data[..n]);
            host = -1;
            return n;
        }

        host = start + inCluster;
        long next = start + _clusterSize;
        while (n < data.Length && InPlaceHost((offset + n) >> _clusterBits) == next)
        {
            n += Math.Min(_clusterSize, data.Length - n);
            next += _clusterSize;
        }

        return n;
    }

    /// <summary>Host offset of a cluster a write may overwrite in place (no metadata change), or -1.</summary>
    private long InPlaceHost(long vcluster)
    {
        long l1Index = vcluster >> _l2Bits;
        ulong l1e = (ulong)l1Index < (ulong)_l1.Length ? _l1[l1Index] : 0;
        if ((l1e & OflagCopied) == 0 || (l1e & L1OffsetMask) == 0)
        {
            return -1;
        }

        byte[] l2 = GetL2((long)(l1e & L1OffsetMask));
        ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan((int)(vcluster & ((1 << _l2Bits) - 1)) * 8));
        ulong host = entry & L2OffsetMask;
        if ((entry & (OflagCompressed | OflagCopied)) != OflagCopied || (entry & OflagZero) != 0 || host == 0)
        {
            return -1;
        }

        CheckDataCluster(host, entry);
        return (long)host;
    }

    private void WriteInCluster(long guestOffset, int inCluster, ReadOnlySpan<byte> data)
    {
        long vcluster = guestOffset >> _clusterBits;
        (byte[] l2, long l2Offset) = GetL2ForWrite(vcluster >> _l2Bits);
        int l2Index = (int)(vcluster & ((1 << _l2Bits) - 1));
        ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(l2Index * 8));
        bool compressed = (entry & OflagCompressed) != 0;
        bool zero = !compressed && (entry & OflagZero) != 0 && _header.Version >= 3;
        ulong host = compressed ? 0 : entry & L2OffsetMask;

        if (host != 0 && !zero && (entry & OflagCopied) != 0)
        {
            // Allocated and exclusively ours: overwrite in place.
            CheckDataCluster(host, entry);
            _file.Write((long)host + inCluster, data);
            return;
        }

        // Copy-on-write: build the whole new cluster from its current contents plus the new data.
        _scratch ??= new byte[_clusterSize];
        Span<byte> cluster = _scratch;
        if (data.Length < _clusterSize)
        {
            ReadInCluster(guestOffset - inCluster, 0, cluster);
        }

        data.CopyTo(cluster[inCluster..]);

        ulong newHost;
        if (zero && host != 0 && (entry & OflagCopied) != 0)
        {
            // Preallocated zero cluster: reuse its host cluster.
            CheckDataCluster(host, entry & ~OflagZero);
            newHost = host;
        }
        else
        {
            newHost = (ulong)AllocateClusters(1);
        }

        _file.Write((long)newHost, cluster);
        GrewTo((long)newHost + _clusterSize);
        SetL2Entry(l2, l2Offset, l2Index, newHost | OflagCopied);
        if (newHost != host)
        {
            ReleaseEntry(entry);
        }
    }

    private void SetL2Entry(byte[] l2, long l2Offset, int l2Index, ulong value)
    {
        BinaryPrimitives.WriteUInt64BigEndian(l2.AsSpan(l2Index * 8), value);
        _file.Write(l2Offset + (l2Index * 8), l2.AsSpan(l2Index * 8, 8));
    }

    /// <summary>Drops the references an old L2 entry held (after the entry itself was replaced).</summary>
    private void ReleaseEntry(ulong entry)
    {
        if ((entry & OflagCompressed) != 0)
        {
            (long off, int len) = CompressedRange(entry);
            long first = off >> _clusterBits;
            long last = (off + len - 1) >> _clusterBits;
            for (long c = first; c <= last; c++)
            {
                DecrementRefcount(c);
            }

            _decompressedEntry = -1;
            return;
        }

        ulong host = entry & L2OffsetMask;
        if (host != 0)
        {
            DecrementRefcount((long)(host >> _clusterBits));
        }
    }

    private (byte[] Table, long Offset) GetL2ForWrite(long l1Index)
    {
        ulong l1e = _l1[l1Index];
        ulong l2Offset = l1e & L1OffsetMask;
        if (l2Offset != 0)
        {
            if ((l1e & OflagCopied) == 0)
            {
                // Shared with a snapshot, or a flag lost by a crash: only the latter is safe to fix here.
                if (GetRefcount((long)(l2Offset >> _clusterBits)) != 1)
                {
                    throw new BlockException("Copy-on-write of shared L2 tables (internal snapshots) is not supported by Colo");
                }

                SetL1Entry(l1Index, l1e | OflagCopied);
            }

            return (GetL2((long)l2Offset), (long)l2Offset);
        }

        long newOffset = AllocateClusters(1);
        byte[] table = _l2Cache.GetEmpty(newOffset);
        _file.Write(newOffset, table);
        GrewTo(newOffset + _clusterSize);
        _l2Validated.Add(newOffset);
        SetL1Entry(l1Index, (ulong)newOffset | OflagCopied);
        return (table, newOffset);
    }

    private void SetL1Entry(long index, ulong value)
    {
        _l1[index] = value;
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        _file.Write((long)_header.L1TableOffset + (index * 8), b);
    }

    public override void Flush() => _file.Flush();

    private Deflate4K? _deflater;
    private byte[]? _compressOut;
    private long _compressCursor; // next free byte in the host cluster used for packing compressed data

    /// <summary>
    /// Writes one whole guest cluster compressed (qemu-img convert -c). The cluster must still be
    /// unallocated, as in QEMU. Data that does not shrink is written uncompressed instead.
    /// Compressed data is packed at 512-byte granularity; each host cluster's refcount counts the
    /// compressed clusters touching it.
    /// </summary>
    public void WriteCompressed(long vcluster, ReadOnlySpan<byte> data)
    {
        CheckWritable();
        if (data.Length != _clusterSize)
        {
            throw new BlockException("Compressed writes must cover exactly one cluster");
        }

        long guestOffset = vcluster << _clusterBits;
        CheckRequest(guestOffset, Math.Min(_clusterSize, Size - guestOffset));
        int slot = _tracker.BeginSync(guestOffset, _clusterSize, write: true);
        try
        {
            lock (_lock)
            {
                WriteCompressedCore(vcluster, guestOffset, data);
            }
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    private void WriteCompressedCore(long vcluster, long guestOffset, ReadOnlySpan<byte> data)
    {
        if (_header.CompressionType != 0)
        {
            throw new BlockException("Writing zstd-compressed clusters is not supported by Colo");
        }

        (byte[] l2, long l2Offset) = GetL2ForWrite(vcluster >> _l2Bits);
        int l2Index = (int)(vcluster & ((1 << _l2Bits) - 1));
        ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(l2Index * 8));
        if (entry != 0)
        {
            throw new BlockException("Compressed writes are only possible to unallocated clusters");
        }

        _deflater ??= new Deflate4K();
        _compressOut ??= new byte[_clusterSize + 64];
        int len = _deflater.Compress(data, _compressOut, _clusterSize - 512);
        if (len < 0)
        {
            WriteCore(guestOffset, data[..(int)Math.Min(_clusterSize, Size - guestOffset)]);
            return;
        }

        long off;
        long cs = _clusterSize;
        if (_compressCursor != 0 && (_compressCursor & (cs - 1)) != 0 && (_compressCursor & (cs - 1)) + len <= cs
            && GetRefcount(_compressCursor >> _clusterBits) is > 0 and var rc && rc < MaxRefcount)
        {
            off = _compressCursor;
            SetRefcount(off >> _clusterBits, rc + 1);
        }
        else
        {
            off = AllocateClusters((int)((len + cs - 1) / cs));
        }

        _file.Write(off, _compressOut.AsSpan(0, len));
        GrewTo(off + len);
        _compressCursor = (off + len + 511) & ~511L;
        ulong sectors = (ulong)(((off + len - 1) >> 9) - (off >> 9));
        SetL2Entry(l2, l2Offset, l2Index, OflagCompressed | (sectors << _csizeShift) | (ulong)off);
    }

    /// <summary>
    /// Guest discard of whole clusters: the range then reads as zeroes (v3 with a backing file) or
    /// as unallocated. Partial clusters are ignored, as discard is advisory.
    /// </summary>
    public override void Discard(long offset, long length)
    {
        CheckWritable();
        CheckRequest(offset, length);
        // Waits for the reads and writes of the range in flight: the clusters it frees are theirs.
        int slot = _tracker.BeginSync(offset, length, write: true);
        try
        {
            lock (_lock)
            {
                ClearClusters(offset, length, _backing != null && _header.Version >= 3 ? OflagZero : 0, wholeOnly: true);
            }
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    /// <summary>Drops every cluster so the image reads through to its backing file (QEMU's make_empty).</summary>
    public void MakeEmpty()
    {
        CheckWritable();
        int slot = _tracker.BeginSync(0, long.MaxValue, write: true);
        try
        {
            lock (_lock)
            {
                ClearClusters(0, Size, 0, wholeOnly: true);
                Flush();
            }
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    public override void WriteZeroes(long offset, long length)
    {
        CheckWritable();
        CheckRequest(offset, length);
        int slot = _tracker.BeginSync(offset, length, write: true);
        try
        {
            lock (_lock)
            {
                WriteZeroesCore(offset, length);
            }
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    private void WriteZeroesCore(long offset, long length)
    {
        if (_header.Version < 3 && _backing != null)
        {
            ZeroFill(offset, length); // v2 has no zero flag; unallocating would expose the backing file
            return;
        }

        long cs = _clusterSize;
        long headEnd = Math.Min(offset + length, (offset + cs - 1) & ~(cs - 1));
        if (headEnd > offset)
        {
            ZeroFill(offset, headEnd - offset);
            length -= headEnd - offset;
            offset = headEnd;
        }

        long whole = length & ~(cs - 1);
        if (offset + length == Size)
        {
            whole = length; // a partial last cluster is whole as far as the guest can see
        }

        ClearClusters(offset, whole, _header.Version >= 3 ? OflagZero : 0, wholeOnly: false);
        if (length > whole)
        {
            ZeroFill(offset + whole, length - whole);
        }
    }

    /// <summary>Writes zero bytes (caller holds the tracker slot and the lock).</summary>
    private void ZeroFill(long offset, long length)
    {
        Span<byte> zeros = stackalloc byte[4096];
        zeros.Clear();
        while (length > 0)
        {
            int n = (int)Math.Min(length, zeros.Length);
            WriteCore(offset, zeros[..n]);
            offset += n;
            length -= n;
        }
    }

    private void ClearClusters(long offset, long length, ulong newEntry, bool wholeOnly)
    {
        long cs = _clusterSize;
        long start = (offset + cs - 1) >> _clusterBits;
        long end = offset + length == Size ? (offset + length + cs - 1) >> _clusterBits : (offset + length) >> _clusterBits;
        if (!wholeOnly)
        {
            start = offset >> _clusterBits;
        }

        for (long vc = start; vc < end; vc++)
        {
            long l1Index = vc >> _l2Bits;
            ulong l1e = _l1[l1Index];
            if ((l1e & L1OffsetMask) == 0)
            {
                if (newEntry == 0)
                {
                    vc = ((l1Index + 1) << _l2Bits) - 1; // the whole L2 range is already unallocated
                    continue;
                }
            }

            (byte[] l2, long l2Offset) = GetL2ForWrite(l1Index);
            int l2Index = (int)(vc & ((1 << _l2Bits) - 1));
            ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(l2Index * 8));
            if (entry == newEntry)
            {
                continue;
            }

            SetL2Entry(l2, l2Offset, l2Index, newEntry);
            ReleaseEntry(entry);
        }
    }

    /// <summary>Grows the virtual disk (shrinking is refused: it would need data relocation checks).</summary>
    public override void Truncate(long size)
    {
        CheckWritable();
        int slot = _tracker.BeginSync(0, long.MaxValue, write: true); // after every request in flight
        try
        {
            lock (_lock)
            {
                TruncateCore(size);
            }
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    private void TruncateCore(long size)
    {
        if (size % 512 != 0)
        {
            throw new BlockException("The new size must be a multiple of 512");
        }

        if (size < Size)
        {
            Shrink(size);
            return;
        }

        long l2Coverage = (long)_clusterSize << _l2Bits;
        long needL1 = (size + l2Coverage - 1) / l2Coverage;
        if (needL1 * 8 > MaxL1Bytes)
        {
            throw new BlockException("Active L1 table too large");
        }

        if (needL1 > _l1.Length)
        {
            GrowL1((int)needL1);
        }

        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, (ulong)size);
        _file.Flush();
        _file.Write(Qcow2Header.OffsetSize, b);
        _header.Size = (ulong)size;
    }

    /// <summary>
    /// Shrinks the virtual disk: clusters wholly past the new end are freed first, then the size
    /// field changes (a crash in between only leaks). A partly kept last cluster keeps its data,
    /// which the guest can no longer see. The L1 keeps its length, which the format allows.
    /// </summary>
    private void Shrink(long size)
    {
        if (_header.NbSnapshots > 0)
        {
            throw new BlockException("Can't resize an image which has snapshots");
        }

        long firstDropped = (size + _clusterSize - 1) >> _clusterBits;
        long oldSize = Size;
        if ((firstDropped << _clusterBits) < oldSize)
        {
            ClearClusters(firstDropped << _clusterBits, oldSize - (firstDropped << _clusterBits), 0, wholeOnly: true);
        }

        _file.Flush();
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, (ulong)size);
        _file.Write(Qcow2Header.OffsetSize, b);
        _header.Size = (ulong)size;
    }

    private void GrowL1(int entries)
    {
        long bytes = RoundUp((long)entries * 8);
        int clusters = (int)(bytes >> _clusterBits);
        long newOffset = AllocateClusters(clusters);
        var table = new byte[bytes];
        for (int i = 0; i < _l1.Length; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(i * 8), _l1[i]);
        }

        _file.Write(newOffset, table);
        GrewTo(newOffset + bytes);
        _file.Flush();

        // L1 size (u32 at 36) and offset (u64 at 40) are adjacent: one write switches tables.
        Span<byte> hdr = stackalloc byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(hdr, (uint)entries);
        BinaryPrimitives.WriteUInt64BigEndian(hdr[4..], (ulong)newOffset);
        _file.Write(Qcow2Header.OffsetL1Size, hdr);
        long oldOffset = (long)_header.L1TableOffset;
        long oldBytes = RoundUp((long)_header.L1Size * 8);
        _header.L1Size = (uint)entries;
        _header.L1TableOffset = (ulong)newOffset;
        var l1 = new ulong[entries];
        _l1.CopyTo(l1, 0);
        _l1 = l1;
        for (long c = oldOffset >> _clusterBits; oldBytes > 0 && c < (oldOffset + oldBytes) >> _clusterBits; c++)
        {
            DecrementRefcount(c);
        }
    }

    internal void SetIncompatibleFeatures(ulong value)
    {
        _header.IncompatibleFeatures = value;
        if (_header.Version >= 3 && !ReadOnly)
        {
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(b, value);
            _file.Write(Qcow2Header.OffsetIncompatibleFeatures, b);
            _file.Flush();
        }
    }

    /// <summary>Flags the image corrupt (v3, writable) and returns the exception to throw.</summary>
    private BlockException Corrupt(string message)
    {
        if (!ReadOnly && _header.Version >= 3 && !IsCorrupt)
        {
            SetIncompatibleFeatures(_header.IncompatibleFeatures | Qcow2Header.IncompatCorrupt);
            return new BlockException($"qcow2: Marking image as corrupt: {message}; further corruption events will be suppressed");
        }

        return new BlockException($"qcow2: Image is corrupt: {message}");
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _backing?.Dispose();
            _file.Dispose();
        }

        base.Dispose(disposing);
    }
}
