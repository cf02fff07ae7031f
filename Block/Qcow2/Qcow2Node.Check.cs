using System.Buffers.Binary;

namespace Colo.Block.Qcow2;

/// <summary>What <c>qemu-img check -r</c> may repair.</summary>
[Flags]
public enum Qcow2CheckFix
{
    None = 0,
    Leaks = 1,
    Errors = 2,
    All = Leaks | Errors,
}

/// <summary>Result of a consistency check, named after QEMU's BdrvCheckResult/ImageCheck.</summary>
public sealed class Qcow2CheckResult
{
    public long Corruptions { get; set; }
    public long Leaks { get; set; }
    public long CheckErrors { get; set; }
    public long CorruptionsFixed { get; set; }
    public long LeaksFixed { get; set; }
    public long ImageEndOffset { get; set; }
    public long TotalClusters { get; set; }
    public long AllocatedClusters { get; set; }
    public long FragmentedClusters { get; set; }
    public long CompressedClusters { get; set; }
}

public sealed partial class Qcow2Node
{
    /// <summary>
    /// Recounts every reference (header, L1, L2 tables, data and compressed clusters, snapshot
    /// tables, refcount structures), compares with the stored refcounts and checks the COPIED flags.
    /// Diagnostics go to <paramref name="log"/> in QEMU's wording; repairs happen when asked.
    /// </summary>
    public Qcow2CheckResult Check(Qcow2CheckFix fix, TextWriter log)
    {
        var r = new Qcow2CheckResult();
        long cs = _clusterSize;
        long fileSize = _file.Size;
        long nbClusters = (fileSize + cs - 1) >> _clusterBits;
        var refs = new uint[nbClusters];
        r.TotalClusters = (long)((_header.Size + (ulong)cs - 1) >> _clusterBits);

        void Inc(long offset, long length)
        {
            if (length <= 0)
            {
                return;
            }

            if (offset < 0 || offset > (1L << 56))
            {
                log.WriteLine($"ERROR: offset=0x{offset:x}: invalid host offset");
                r.Corruptions++;
                return;
            }

            for (long c = offset >> _clusterBits; c <= (offset + length - 1) >> _clusterBits; c++)
            {
                if (c >= nbClusters)
                {
                    log.WriteLine($"ERROR: cluster {c}: offset=0x{c << _clusterBits:x} is beyond the end of the image file");
                    r.Corruptions++;
                    continue;
                }

                refs[c]++;
            }
        }

        Inc(0, cs);
        CountL1(_l1, (long)_header.L1TableOffset, r, Inc, log, active: true);
        CountSnapshots(r, Inc, log);
        Inc((long)_header.RefcountTableOffset, _header.RefcountTableClusters * cs);
        for (int i = 0; i < _refTable.Length; i++)
        {
            long off = (long)(_refTable[i] & RefTableOffsetMask);
            if (off == 0)
            {
                continue;
            }

            if ((off & (cs - 1)) != 0)
            {
                log.WriteLine($"ERROR refcount block {i} is not cluster aligned; refcount table entry corrupted");
                r.Corruptions++;
                continue;
            }

            if (off >= fileSize)
            {
                log.WriteLine($"ERROR refcount block {i} is outside image");
                r.Corruptions++;
                continue;
            }

            Inc(off, cs);
        }

        CompareRefcounts(refs, fix, r, log);
        CheckCopiedFlags(fix, r, log);

        long highest = -1;
        for (long c = nbClusters - 1; c >= 0; c--)
        {
            if (refs[c] != 0 || GetRefcount(c) != 0)
            {
                highest = c;
                break;
            }
        }

        r.ImageEndOffset = (highest + 1) * cs;
        if (fix != Qcow2CheckFix.None && !ReadOnly)
        {
            if (r.Corruptions == 0 && IsCorrupt)
            {
                // A repair run that leaves no corruption behind makes the image usable again.
                SetIncompatibleFeatures(_header.IncompatibleFeatures & ~Qcow2Header.IncompatCorrupt);
            }

            _file.Flush();
        }

        return r;
    }

    private void CountL1(ulong[] l1, long l1Offset, Qcow2CheckResult r, Action<long, long> inc, TextWriter log, bool active)
    {
        long cs = _clusterSize;
        inc(l1Offset, (long)l1.Length * 8);
        long lastHost = -1;
        var l2 = new byte[cs];
        for (int i = 0; i < l1.Length; i++)
        {
            long l2Offset = (long)(l1[i] & L1OffsetMask);
            if (l2Offset == 0)
            {
                continue;
            }

            if ((l2Offset & (cs - 1)) != 0)
            {
                log.WriteLine($"ERROR l2_offset=0x{l2Offset:x}: Table is not cluster aligned; L1 entry corrupted");
                r.Corruptions++;
                continue;
            }

            inc(l2Offset, cs);
            _file.Read(l2Offset, l2);
            lastHost = -1; // QEMU counts fragmentation within each L2 table
            for (int j = 0; j < cs / 8; j++)
            {
                ulong e = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(j * 8));
                if ((e & OflagCompressed) != 0)
                {
                    if ((e & OflagCopied) != 0)
                    {
                        log.WriteLine($"ERROR: coffset=0x{e & _coffsetMask:x}: copied flag must never be set for compressed clusters");
                        r.Corruptions++;
                    }

                    (long off, int len) = CompressedRange(e);
                    inc(off, len);
                    if (active)
                    {
                        r.AllocatedClusters++;
                        r.CompressedClusters++;
                        r.FragmentedClusters++;
                    }

                    continue;
                }

                long host = (long)(e & L2OffsetMask);
                if (host == 0)
                {
                    continue;
                }

                if ((host & (cs - 1)) != 0)
                {
                    log.WriteLine($"ERROR offset=0x{host:x}: Cluster is not properly aligned; L2 entry corrupted.");
                    r.Corruptions++;
                    continue;
                }

                inc(host, cs);
                if (active && (e & OflagZero) == 0)
                {
                    r.AllocatedClusters++;
                    if (lastHost >= 0 && host != lastHost + cs)
                    {
                        r.FragmentedClusters++;
                    }

                    lastHost = host;
                }
            }
        }
    }

    /// <summary>Counts the snapshot table and each snapshot's L1 and L2 tables.</summary>
    private void CountSnapshots(Qcow2CheckResult r, Action<long, long> inc, TextWriter log)
    {
        if (_header.NbSnapshots == 0)
        {
            return;
        }

        long pos = (long)_header.SnapshotsOffset;
        long start = pos;
        Span<byte> fixedPart = stackalloc byte[40];
        for (uint i = 0; i < _header.NbSnapshots; i++)
        {
            _file.Read(pos, fixedPart);
            long l1Offset = (long)BinaryPrimitives.ReadUInt64BigEndian(fixedPart);
            uint l1Size = BinaryPrimitives.ReadUInt32BigEndian(fixedPart[8..]);
            int idSize = BinaryPrimitives.ReadUInt16BigEndian(fixedPart[12..]);
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(fixedPart[14..]);
            uint extraSize = BinaryPrimitives.ReadUInt32BigEndian(fixedPart[36..]);
            if (extraSize > 1024 || (long)l1Size * 8 > MaxL1Bytes || (l1Offset & (_clusterSize - 1)) != 0)
            {
                log.WriteLine($"ERROR snapshot {i} has an invalid header");
                r.Corruptions++;
                return;
            }

            pos += 40 + extraSize + idSize + nameSize;
            pos = (pos + 7) & ~7L;
            CountL1(ReadTable(l1Offset, (int)l1Size), l1Offset, r, inc, log, active: false);
        }

        inc(start, pos - start);
    }

    private void CompareRefcounts(uint[] refs, Qcow2CheckFix fix, Qcow2CheckResult r, TextWriter log)
    {
        for (long c = 0; c < refs.Length; c++)
        {
            ulong stored;
            try
            {
                stored = GetRefcount(c);
            }
            catch (BlockException e)
            {
                log.WriteLine($"ERROR cluster {c}: {e.Message}");
                r.CheckErrors++;
                continue;
            }

            ulong computed = refs[c];
            if (stored == computed)
            {
                continue;
            }

            bool leak = stored > computed;
            bool repair = !ReadOnly && (leak ? (fix & Qcow2CheckFix.Leaks) != 0 : (fix & Qcow2CheckFix.Errors) != 0);
            log.WriteLine($"{(leak ? "Leaked" : "ERROR")} cluster {c} refcount={stored} reference={computed}");
            if (repair)
            {
                log.WriteLine($"Repairing cluster {c} refcount={stored} reference={computed}");
                SetRefcountForRepair(c, computed);
                if (leak)
                {
                    r.LeaksFixed++;
                }
                else
                {
                    r.CorruptionsFixed++;
                }
            }
            else if (leak)
            {
                r.Leaks++;
            }
            else
            {
                r.Corruptions++;
            }
        }
    }

    /// <summary>
    /// Repair writes must not allocate over clusters the recount found in use, so any refcount block
    /// it needs is placed past the end of the file.
    /// </summary>
    private void SetRefcountForRepair(long cluster, ulong value)
    {
        long block = cluster >> _refBlockBits;
        if (block < _refTable.Length && _refTable[block] != 0)
        {
            SetRefcount(cluster, value);
            return;
        }

        long saveHint = _freeHint;
        _freeHint = (_file.Size + _clusterSize - 1) >> _clusterBits;
        _reservedStart = cluster;
        _reservedCount = 1;
        try
        {
            SetRefcount(cluster, value);
        }
        finally
        {
            _reservedStart = -1;
            _reservedCount = 0;
            _freeHint = saveHint;
        }
    }

    private void CheckCopiedFlags(Qcow2CheckFix fix, Qcow2CheckResult r, TextWriter log)
    {
        long cs = _clusterSize;
        var l2 = new byte[cs];
        for (int i = 0; i < _l1.Length; i++)
        {
            ulong l1e = _l1[i];
            long l2Offset = (long)(l1e & L1OffsetMask);
            if (l2Offset == 0 || (l2Offset & (cs - 1)) != 0 || l2Offset >= _file.Size)
            {
                continue;
            }

            ulong rc = GetRefcount(l2Offset >> _clusterBits);
            if ((rc == 1) != ((l1e & OflagCopied) != 0))
            {
                log.WriteLine($"ERROR OFLAG_COPIED L2 cluster: l1_index={i} l1_entry={l1e:x} refcount={rc}");
                if ((fix & Qcow2CheckFix.Errors) != 0 && !ReadOnly)
                {
                    SetL1Entry(i, rc == 1 ? l1e | OflagCopied : l1e & ~OflagCopied);
                    r.CorruptionsFixed++;
                }
                else
                {
                    r.Corruptions++;
                }
            }

            _file.Read(l2Offset, l2);
            bool dirty = false;
            for (int j = 0; j < cs / 8; j++)
            {
                ulong e = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(j * 8));
                long host = (long)(e & L2OffsetMask);
                if ((e & OflagCompressed) != 0 || host == 0 || (host & (cs - 1)) != 0)
                {
                    continue;
                }

                ulong drc = GetRefcount(host >> _clusterBits);
                if ((drc == 1) != ((e & OflagCopied) != 0))
                {
                    log.WriteLine($"ERROR OFLAG_COPIED data cluster: l2_entry={e:x} refcount={drc}");
                    if ((fix & Qcow2CheckFix.Errors) != 0 && !ReadOnly)
                    {
                        BinaryPrimitives.WriteUInt64BigEndian(l2.AsSpan(j * 8), drc == 1 ? e | OflagCopied : e & ~OflagCopied);
                        dirty = true;
                        r.CorruptionsFixed++;
                    }
                    else
                    {
                        r.Corruptions++;
                    }
                }
            }

            if (dirty)
            {
                _file.Write(l2Offset, l2);
                _l2Cache.Invalidate(l2Offset);
            }
        }
    }
}
