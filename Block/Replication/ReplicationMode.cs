namespace Colo.Block.Replication;

/// <summary>QAPI ReplicationMode. The values are QEMU's enum numbers, which its mode-mismatch message prints.</summary>
public enum ReplicationMode
{
    Primary = 0,
    Secondary = 1,
}

/// <summary>Where a replication node is in its life (QEMU's ReplicationStage).</summary>
public enum ReplicationStage
{
    /// <summary>Opened, not started: all I/O fails.</summary>
    None,

    /// <summary>Started: the primary forwards writes, the secondary buffers in active/hidden disks.</summary>
    Running,

    /// <summary>Secondary committing active and hidden into the secondary disk.</summary>
    Failover,

    /// <summary>The failover commit failed: writes go to the active disk only where it holds the cluster.</summary>
    FailoverFailed,

    /// <summary>Stopped. The secondary then works on its file child directly; the primary fails all I/O.</summary>
    Done,
}

/// <summary>A replication node's observable state, for tests and status queries.</summary>
/// <param name="CopiedClusters">Clusters the secondary copied into the hidden disk since the last checkpoint.</param>
public sealed record ReplicationStatus(ReplicationMode Mode, ReplicationStage Stage, bool Error, long CopiedClusters);
