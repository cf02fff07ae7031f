using Colo.Block.Graph;
using Colo.Block.Qcow2;

namespace Colo.Block.Replication;

/// <summary>
/// The <c>replication</c> driver (docs/block-replication.txt), a filter over its <c>file</c> child.
/// </summary>
/// <remarks>
/// <para><b>Primary</b>: the file is an NBD client of the secondary's export, added to the primary's quorum.
/// Reads always fail (the quorum reads its local child). Writes fail before start and after stop; while
/// running they are forwarded and a failure is remembered for <see cref="GetError"/> instead of failing
/// the guest's write, so a lost secondary never stops the primary.</para>
/// <para><b>Secondary</b>: the file is the active disk, whose backing is the hidden disk, whose backing is
/// the secondary disk (a drive exported by NBD). Start puts a copy-before-write filter in front of the
/// secondary disk's exports; a checkpoint empties active and hidden; failover commits both into the
/// secondary disk and makes it this node's file.</para>
/// <para>The secondary's chain is touched from NBD tasks (through the filter) and from the VM and the
/// monitor (through this node): every path holds <see cref="_gate"/>. Graph changes (export redirection,
/// closing nodes) happen outside it, since NBD requests hold their export's gate while waiting for ours.</para>
/// </remarks>
public sealed class ReplicationNode : BlockNode
{
    private const string Eio = "Input/output error";

    private readonly Lock _gate = new();
    private readonly BlockGraph _graph;
    private BlockNode _file;
    private ReplicationStage _stage;
    private bool _error;

    // Secondary, from start to the end of failover.
    private Qcow2Node? _active;
    private Qcow2Node? _hidden;
    private BlockNode? _secondary;
    private ReplicationCopyBeforeWrite? _cbw;

    // The filter in front of the secondary disk's exports, from start until this node closes.
    private ReplicationCopyBeforeWrite? _front;

    // Failover: the background commit (QEMU's internal active commit job, which emits no QMP events) and
    // the clusters it still has to copy; the VM's writes during it go to the active disk and are added here.
    private Jobs.DirtyBitmap? _commitDirty;
    private readonly ManualResetEventSlim _commitDone = new(true);
    private volatile bool _closing;

    internal ReplicationNode(BlockGraph graph, BlockNode file, ReplicationMode mode, string? topId, bool readOnly, string? nodeName)
        : base(nodeName, readOnly)
    {
        _graph = graph;
        _file = file;
        Mode = mode;
        TopId = topId;
    }

    public ReplicationMode Mode { get; }

    /// <summary>Secondary only: the drive or node above this one that the VM uses (the quorum).</summary>
    public string? TopId { get; }

    public override string DriverName => "replication";

    /// <summary>The <c>json:{...}</c> name the graph computes from the options.</summary>
    public string? FilenameText { get; init; }

    public override string Filename => FilenameText ?? _file.Filename;

    public override long Size => _file.Size;

    public override IReadOnlyList<BlockChild> Children => [new BlockChild("file", _file)];

    public ReplicationStage Stage => _stage;

    /// <summary>The copy-before-write filter while the secondary runs, else null.</summary>
    public ReplicationCopyBeforeWrite? CopyBeforeWrite => _cbw;

    public ReplicationStatus Status
    {
        get
        {
            lock (_gate)
            {
                return new ReplicationStatus(Mode, _stage, _error, _cbw?.CopiedClusters ?? 0);
            }
        }
    }

    // ---- I/O -------------------------------------------------------------------------------

    public override void Read(long offset, Span<byte> buffer)
    {
        if (Mode == ReplicationMode.Primary)
        {
            throw new BlockException(Eio); // only there to forward the primary's writes
        }
        lock (_gate)
        {
            CheckSecondaryIo();
            _file.Read(offset, buffer);
        }
    }

    public override void Write(long offset, ReadOnlySpan<byte> buffer)
    {
        CheckWritable();
        lock (_gate)
        {
            if (Mode == ReplicationMode.Primary)
            {
                WritePrimary(offset, buffer);
                return;
            }
            CheckSecondaryIo();
            if (_stage == ReplicationStage.FailoverFailed)
            {
                WriteAfterFailedFailover(offset, buffer);
                return;
            }
            _file.Write(offset, buffer);
            _commitDirty?.Set(offset, buffer.Length);
        }
    }

    public override void Flush()
    {
        if (Mode == ReplicationMode.Primary)
        {
            _file.Flush(); // a filter's flush reaches its child whatever the stage, as QEMU's does
            return;
        }
        lock (_gate)
        {
            _file.Flush();
        }
    }

    /// <summary>Forwards while running; a failed forward is remembered, not reported to the guest.</summary>
    private void WritePrimary(long offset, ReadOnlySpan<byte> buffer)
    {
        if (_stage != ReplicationStage.Running)
        {
            throw new BlockException(Eio);
        }
        try
        {
            _file.Write(offset, buffer);
        }
        catch (BlockException)
        {
            _error = true;
        }
    }

    /// <summary>QEMU's replication_get_io_status for the secondary: nothing works before start.</summary>
    private void CheckSecondaryIo()
    {
        if (_stage == ReplicationStage.None)
        {
            throw new BlockException(Eio);
        }
    }

    /// <summary>
    /// After a failed commit: a cluster the active or hidden disk holds is written there (the secondary disk
    /// has stale data under it), any other cluster straight into the secondary disk.
    /// </summary>
    private void WriteAfterFailedFailover(long offset, ReadOnlySpan<byte> buffer)
    {
        Qcow2Node active = _active!;
        Qcow2Node hidden = _hidden!;
        int unit = Math.Min(active.ClusterSize, hidden.ClusterSize);
        while (buffer.Length > 0)
        {
            int n = (int)Math.Min(buffer.Length, unit - (offset & (unit - 1)));
            bool above = ReplicationCommit.AllocatedAbove(active, hidden, offset);
            (above ? _file : _secondary!).Write(offset, buffer[..n]);
            offset += n;
            buffer = buffer[n..];
        }
    }

    // ---- Operations COLO calls (replication_start/do_checkpoint/get_error/stop) --------------

    /// <summary>Starts replication. <paramref name="mode"/> must be this node's.</summary>
    /// <exception cref="BlockException">QEMU's text for a bad state or an unusable chain.</exception>
    public void Start(ReplicationMode mode)
    {
        ReplicationCopyBeforeWrite? cbw = null;
        lock (_gate)
        {
            if (_stage is ReplicationStage.Done or ReplicationStage.Failover)
            {
                return; // a secondary promoted to primary: nothing to do any more
            }
            if (_stage != ReplicationStage.None)
            {
                throw new BlockException("Block replication is running or done");
            }
            if (mode != Mode)
            {
                throw new BlockException($"The parameter mode's value is invalid, needs {(int)Mode}, but got {(int)mode}");
            }
            if (Mode == ReplicationMode.Secondary)
            {
                cbw = PrepareSecondary();
            }
        }
        if (cbw is not null)
        {
            // Outside the gate: redirecting waits for in-flight export requests, which may wait for the gate.
            _graph.SetWriteFront(cbw.Target, cbw);
        }
        lock (_gate)
        {
            _cbw = cbw;
            _front = cbw;
            _stage = ReplicationStage.Running;
            try
            {
                if (Mode == ReplicationMode.Secondary)
                {
                    SecondaryCheckpoint();
                }
            }
            finally
            {
                _error = false;
            }
        }
    }

    /// <summary>QEMU's checks of the active → hidden → secondary chain and of top-id, then the filter.</summary>
    private ReplicationCopyBeforeWrite PrepareSecondary()
    {
        BlockNode active = Unwrap(_file);
        BlockNode hidden = _graph.BackingOf(active) ?? throw new BlockException("Active disk doesn't have backing file");
        BlockNode secondary = _graph.BackingOf(hidden) ?? throw new BlockException("Hidden disk doesn't have backing file");
        if (!_graph.HasBackend(secondary))
        {
            throw new BlockException("The secondary disk doesn't have block backend");
        }
        if (active.Size != hidden.Size || hidden.Size != secondary.Size)
        {
            throw new BlockException("Active disk, hidden disk, secondary disk's length are not the same");
        }
        if (active is not Qcow2Node activeQcow2 || hidden is not Qcow2Node hiddenQcow2)
        {
            throw new BlockException("Active disk or hidden disk doesn't support make_empty");
        }
        if (hidden.ReadOnly || active.ReadOnly)
        {
            throw new BlockException($"Block node '{(active.ReadOnly ? active : hidden).NodeName}' is read-only");
        }
        BlockNode? top = TopId is null ? null : _graph.FindNodeOrDevice(TopId);
        if (top is null || !_graph.IsRootNode(top) || !Contains(top, this))
        {
            throw new BlockException("No top_bs or it is invalid");
        }
        _active = activeQcow2;
        _hidden = hiddenQcow2;
        _secondary = secondary;
        return new ReplicationCopyBeforeWrite(secondary, hidden, hiddenQcow2.ClusterSize, _gate);
    }

    /// <summary>QEMU's do_checkpoint: the secondary empties its active and hidden disks.</summary>
    public void DoCheckpoint()
    {
        lock (_gate)
        {
            if (_stage is ReplicationStage.Done or ReplicationStage.Failover)
            {
                return;
            }
            if (Mode == ReplicationMode.Secondary)
            {
                SecondaryCheckpoint();
            }
        }
    }

    /// <summary>Caller holds the gate. The copy bitmap restarts, then active and hidden become empty.</summary>
    private void SecondaryCheckpoint()
    {
        if (_cbw is null)
        {
            throw new BlockException("Backup job was cancelled unexpectedly");
        }
        _cbw.Reset();
        _active!.MakeEmpty();
        _hidden!.MakeEmpty();
    }

    /// <summary>QEMU's get_error: null when replication runs (or ran) without an I/O error.</summary>
    public string? GetError()
    {
        lock (_gate)
        {
            if (_stage == ReplicationStage.None)
            {
                return "Block replication is not running";
            }
            return _error ? "I/O error occurred" : null;
        }
    }

    /// <summary>
    /// Stops replication. The secondary's copy-before-write stops copying; with <paramref name="failover"/>
    /// it then commits active and hidden into the secondary disk, which becomes this node's file.
    /// </summary>
    /// <exception cref="BlockException">Not running; or, without failover on the secondary, QEMU's
    /// "Backup job was cancelled unexpectedly" (its checkpoint runs after the backup job is gone).</exception>
    public void Stop(bool failover)
    {
        lock (_gate)
        {
            if (_stage is ReplicationStage.Done or ReplicationStage.Failover)
            {
                return;
            }
            if (_stage != ReplicationStage.Running)
            {
                throw new BlockException("Block replication is not running");
            }
            if (Mode == ReplicationMode.Primary)
            {
                _stage = ReplicationStage.Done;
                _error = false;
                return;
            }
            // The backup job ends: the filter stays in front of the export, passing requests on under the gate.
            if (_cbw is not null)
            {
                _cbw.Copying = false;
            }
            _cbw = null;
            if (!failover)
            {
                // As in QEMU: the backup job ends before the checkpoint, which then finds it gone.
                _stage = ReplicationStage.Done;
                _error = true;
                SecondaryCheckpoint();
                return;
            }
            // Failover: the commit runs in the background, as QEMU's internal commit job; the VM goes on
            // meanwhile, reading and writing through the active disk. Stage stays failover until it ends.
            _stage = ReplicationStage.Failover;
            Qcow2Node active = _active!;
            Qcow2Node hidden = _hidden!;
            int unit = Math.Min(active.ClusterSize, hidden.ClusterSize);
            var dirty = new Jobs.DirtyBitmap(Size, unit);
            for (long offset = 0; offset < Size; offset += unit)
            {
                if (ReplicationCommit.AllocatedAbove(active, hidden, offset))
                {
                    dirty.Set(offset, unit);
                }
            }
            _commitDirty = dirty;
            _commitDone.Reset();
        }
        new Thread(CommitMain) { IsBackground = true, Name = $"replication-commit {NodeName}" }.Start();
    }

    /// <summary>Waits for a failover's background commit to end (at once when none runs). False on timeout.</summary>
    public bool WaitForFailover(TimeSpan timeout) => _commitDone.Wait(timeout);

    /// <summary>
    /// The failover commit: one cluster at a time under the gate (so the VM's I/O interleaves), read through
    /// the active disk (newest layer wins) into the secondary disk, until no cluster is left; then, still under
    /// the gate, the secondary disk takes the active disk's place. A failure leaves the chain as it was.
    /// </summary>
    private void CommitMain()
    {
        Qcow2Node? dropped = null;
        try
        {
            byte[] buffer = GC.AllocateUninitializedArray<byte>(_commitDirty!.Granularity);
            long cursor = 0;
            while (true)
            {
                lock (_gate)
                {
                    if (_closing)
                    {
                        return;
                    }
                    Jobs.DirtyBitmap dirty = _commitDirty!;
                    long chunk = dirty.NextDirty(cursor);
                    if (chunk < 0 && cursor > 0)
                    {
                        chunk = dirty.NextDirty(0);
                    }
                    if (chunk < 0)
                    {
                        _secondary!.Flush();
                        // The active disk's place goes to the secondary disk (QEMU's active commit replaces the node).
                        dropped = _file is BorrowedNode ? null : _active;
                        _file = new BorrowedNode(_secondary!, ReadOnly);
                        _active = null;
                        _hidden = null;
                        _secondary = null;
                        _commitDirty = null;
                        _stage = ReplicationStage.Done;
                        _error = false;
                        break;
                    }
                    (long offset, long length) = dirty.Range(chunk, 1);
                    dirty.Clear(chunk, 1);
                    cursor = chunk + 1;
                    Span<byte> data = buffer.AsSpan(0, (int)length);
                    _active!.Read(offset, data);
                    _secondary!.Write(offset, data);
                }
            }
        }
        catch (Exception e) when (e is BlockException or IOException or ObjectDisposedException)
        {
            lock (_gate)
            {
                _commitDirty = null;
                _stage = ReplicationStage.FailoverFailed;
                _error = true;
            }
        }
        finally
        {
            if (dropped is not null)
            {
                // Graph changes belong to the loop that owns the graph (inline under the jobs' lock without one).
                Qcow2Node d = dropped;
                _graph.Jobs.Post(() => _graph.CloseSubtree(d));
            }
            _commitDone.Set();
        }
    }

    private bool Contains(BlockNode top, BlockNode node)
    {
        if (top == node)
        {
            return true;
        }
        foreach (BlockChild c in _graph.ChildrenOf(top))
        {
            if (Contains(c.Node, node))
            {
                return true;
            }
        }
        return false;
    }

    private static BlockNode Unwrap(BlockNode node) => node is BorrowedNode b ? b.Target : node;

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            // A failover commit still running is let finish (the secondary disk must get the VM's data), within reason.
            bool ended = _commitDone.Wait(TimeSpan.FromSeconds(60));
            if (!ended)
            {
                _closing = true;
                ended = _commitDone.Wait(TimeSpan.FromSeconds(5));
            }
            if (ended)
            {
                _commitDone.Dispose(); // else the commit thread still sets it when it stops
            }
            _cbw = null;
            if (_front is { } front)
            {
                _front = null;
                front.Copying = false;
                _graph.SetWriteFront(front.Target, null);
            }
            _file.Dispose();
        }
        base.Dispose(disposing);
    }
}
