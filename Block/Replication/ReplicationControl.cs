using Colo.Block.Graph;

namespace Colo.Block.Replication;

/// <summary>
/// What COLO (Migration) calls on the block layer: QEMU's replication_*_all over every replication node.
/// Each operation visits the nodes newest first, as QEMU's list does, and stops at the first error.
/// </summary>
public interface IReplicationControl
{
    /// <summary>Starts every replication node in <paramref name="mode"/> (shared-disk is not supported).</summary>
    void StartAll(ReplicationMode mode);

    /// <summary>A checkpoint: every secondary empties its active and hidden disks.</summary>
    void DoCheckpointAll();

    /// <summary>The first node's error text ("Block replication is not running", "I/O error occurred"), or null.</summary>
    string? GetErrorAll();

    /// <summary>Stops every node; with <paramref name="failover"/> a secondary commits into its secondary disk.</summary>
    void StopAll(bool failover);
}

/// <summary>The graph's <see cref="IReplicationControl"/>.</summary>
public sealed class ReplicationControl : IReplicationControl
{
    private readonly BlockGraph _graph;

    public ReplicationControl(BlockGraph graph)
    {
        _graph = graph;
    }

    /// <summary>The replication nodes, newest first.</summary>
    public IReadOnlyList<ReplicationNode> Nodes
    {
        get
        {
            var list = new List<ReplicationNode>();
            for (int i = _graph.Nodes.Count - 1; i >= 0; i--)
            {
                if (_graph.Nodes[i] is ReplicationNode r)
                {
                    list.Add(r);
                }
            }
            return list;
        }
    }

    public void StartAll(ReplicationMode mode)
    {
        foreach (ReplicationNode r in Nodes)
        {
            r.Start(mode);
        }
    }

    public void DoCheckpointAll()
    {
        foreach (ReplicationNode r in Nodes)
        {
            r.DoCheckpoint();
        }
    }

    public string? GetErrorAll()
    {
        foreach (ReplicationNode r in Nodes)
        {
            if (r.GetError() is { } error)
            {
                return error;
            }
        }
        return null;
    }

    public void StopAll(bool failover)
    {
        foreach (ReplicationNode r in Nodes)
        {
            r.Stop(failover);
        }
    }
}
