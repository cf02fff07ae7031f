using Colo.Block.Qcow2;

namespace Colo.Block.Replication;

/// <summary>
/// The secondary's failover commit (QEMU's internal active commit of the replication node's file into
/// the secondary disk): every cluster the active or the hidden disk holds is read through the active
/// disk (so the newest layer wins) and written into the secondary disk, which is then flushed.
/// </summary>
/// <remarks>
/// It runs synchronously under the replication node's gate: the secondary VM is stopped or waits for
/// the few milliseconds a checkpoint interval's worth of clusters takes. Zero clusters are copied as
/// zeroes. A failure leaves the chain as it was (the secondary disk may hold part of the data, which the
/// active chain still covers).
/// </remarks>
public static class ReplicationCommit
{
    /// <summary>Copies active-over-hidden into <paramref name="secondary"/>. Returns the bytes written.</summary>
    public static long Run(Qcow2Node active, Qcow2Node hidden, BlockNode secondary)
    {
        int unit = Math.Min(active.ClusterSize, hidden.ClusterSize);
        long size = Math.Min(active.Size, secondary.Size);
        byte[] buffer = GC.AllocateUninitializedArray<byte>(unit);
        long written = 0;
        for (long offset = 0; offset < size; offset += unit)
        {
            if (!AllocatedAbove(active, hidden, offset))
            {
                continue;
            }
            int n = (int)Math.Min(unit, size - offset);
            active.Read(offset, buffer.AsSpan(0, n));
            secondary.Write(offset, buffer.AsSpan(0, n));
            written += n;
        }
        secondary.Flush();
        return written;
    }

    /// <summary>True when the active or hidden disk itself holds the cluster at <paramref name="offset"/>.</summary>
    public static bool AllocatedAbove(Qcow2Node active, Qcow2Node hidden, long offset) =>
        active.GetClusterStatus(offset / active.ClusterSize) != Qcow2ClusterStatus.Unallocated
        || hidden.GetClusterStatus(offset / hidden.ClusterSize) != Qcow2ClusterStatus.Unallocated;
}
