namespace Colo.Block.Replication;

/// <summary>
/// The secondary's copy-before-write (QEMU's backup job with sync=none from the secondary disk into the
/// hidden disk): placed in front of the secondary disk for its NBD export, it copies each cluster's old
/// contents into the hidden disk before the primary's first write to it since the last checkpoint, so the
/// secondary VM (reading active → hidden → secondary) keeps seeing the checkpoint's data.
/// </summary>
/// <remarks>
/// The export's requests arrive on NBD connection tasks while the secondary VM reads the same chain
/// through the replication node; both take the replication node's gate (lock order: export gate, then
/// this gate). The granularity is QEMU's backup cluster: 64 KiB or the hidden disk's cluster if larger.
/// The copy path allocates nothing: one cluster buffer and a bitmap, sized at start.
/// </remarks>
public sealed class ReplicationCopyBeforeWrite : BlockNode
{
    /// <summary>QEMU's BACKUP_CLUSTER_SIZE_DEFAULT.</summary>
    public const int DefaultGranularity = 64 << 10;

    private readonly Lock _gate;
    private readonly BlockNode _hidden;
    private readonly int _granularityBits;
    private readonly ulong[] _copied;
    private readonly byte[] _buffer;

    /// <param name="target">The secondary disk (the node the export names).</param>
    /// <param name="hidden">The hidden disk that receives the old contents.</param>
    /// <param name="gate">The replication node's lock, shared with the secondary VM's I/O.</param>
    public ReplicationCopyBeforeWrite(BlockNode target, BlockNode hidden, int hiddenClusterSize, Lock gate)
        : base(target.NodeName, target.ReadOnly)
    {
        Target = target;
        _hidden = hidden;
        _gate = gate;
        int granularity = Math.Max(DefaultGranularity, hiddenClusterSize);
        _granularityBits = System.Numerics.BitOperations.Log2((uint)granularity);
        long clusters = (target.Size + granularity - 1) >> _granularityBits;
        _copied = new ulong[(clusters + 63) / 64];
        _buffer = GC.AllocateUninitializedArray<byte>(granularity);
    }

    /// <summary>The secondary disk.</summary>
    public BlockNode Target { get; }

    public int Granularity => 1 << _granularityBits;

    /// <summary>
    /// False once replication stopped: the filter then only passes requests on, still under the gate, so the
    /// export and the VM (now both on the secondary disk) stay serialised.
    /// </summary>
    public bool Copying { get; internal set; } = true;

    /// <summary>Clusters copied into the hidden disk since the last <see cref="Reset"/>.</summary>
    public long CopiedClusters { get; private set; }

    public override string DriverName => Target.DriverName;

    public override string Filename => Target.Filename;

    public override long Size => Target.Size;

    public override IReadOnlyList<BlockChild> Children => Target.Children;

    /// <summary>A checkpoint: the hidden disk is emptied, so every cluster must be copied again.</summary>
    /// <remarks>Caller holds the gate.</remarks>
    public void Reset()
    {
        Array.Clear(_copied);
        CopiedClusters = 0;
    }

    public override void Read(long offset, Span<byte> buffer)
    {
        lock (_gate)
        {
            Target.Read(offset, buffer);
        }
    }

    public override void Write(long offset, ReadOnlySpan<byte> buffer)
    {
        lock (_gate)
        {
            CopyOld(offset, buffer.Length);
            Target.Write(offset, buffer);
        }
    }

    public override void WriteZeroes(long offset, long length)
    {
        lock (_gate)
        {
            CopyOld(offset, length);
            Target.WriteZeroes(offset, length);
        }
    }

    public override void Discard(long offset, long length)
    {
        lock (_gate)
        {
            CopyOld(offset, length);
            Target.Discard(offset, length);
        }
    }

    public override void Flush()
    {
        lock (_gate)
        {
            Target.Flush();
        }
    }

    /// <summary>
    /// Copies the clusters of [offset, offset+length) not yet copied since the checkpoint. A failed copy
    /// fails the write (QEMU's on-cbw-error=break-guest-write): the old data must never be lost.
    /// </summary>
    private void CopyOld(long offset, long length)
    {
        long size = Target.Size;
        if (!Copying || length <= 0 || offset < 0 || offset >= size)
        {
            return;
        }
        long first = offset >> _granularityBits;
        long last = (Math.Min(offset + length, size) - 1) >> _granularityBits;
        for (long c = first; c <= last; c++)
        {
            ref ulong word = ref _copied[c >> 6];
            ulong bit = 1UL << (int)(c & 63);
            if ((word & bit) != 0)
            {
                continue;
            }
            long start = c << _granularityBits;
            int n = (int)Math.Min(_buffer.Length, size - start);
            Span<byte> old = _buffer.AsSpan(0, n);
            Target.Read(start, old);
            _hidden.Write(start, old);
            word |= bit;
            CopiedClusters++;
        }
    }
}
