using Colo.Block.File;
using Colo.Block.Jobs;
using Colo.Block.Nbd;
using Colo.Block.Qcow2;
using Colo.Core.Options;

namespace Colo.Block.Graph;

/// <summary>QMP drive-mirror's arguments, as the block layer takes them (QAPI DriveMirror).</summary>
public sealed record DriveMirrorRequest(
    string Device,
    string? JobId,
    string Target,
    string? Format,
    string Sync,
    string? Mode,
    long? Speed,
    long? Granularity,
    long? BufSize,
    string? OnSourceError,
    string? OnTargetError,
    bool? Unmap,
    string? CopyMode,
    bool? AutoFinalize,
    bool? AutoDismiss);

// The graph's side of block jobs: opening a job's target, swapping a drive's root, closing trees.
public sealed partial class BlockGraph
{
    private static readonly string[] s_onErrorValues = ["report", "ignore", "enospc", "stop", "auto"];

    /// <summary>The VM's block jobs.</summary>
    public BlockJobManager Jobs { get; } = new();

    /// <summary>
    /// QMP drive-mirror: checks the request in QEMU's order, creates the target unless mode=existing (nbd
    /// targets are always opened as they are), opens it and starts the job.
    /// </summary>
    public MirrorJob StartDriveMirror(DriveMirrorRequest r)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string mode = r.Mode ?? "absolute-paths";
        if (mode is not ("existing" or "absolute-paths"))
        {
            throw new BlockException($"Parameter 'mode' does not accept value '{mode}'");
        }
        if (r.Sync is not ("full" or "top" or "none" or "incremental" or "bitmap"))
        {
            throw new BlockException($"Parameter 'sync' does not accept value '{r.Sync}'");
        }
        CheckOnError("on-source-error", r.OnSourceError);
        CheckOnError("on-target-error", r.OnTargetError);
        if (r.CopyMode is not (null or "background" or "write-blocking"))
        {
            throw new BlockException($"Parameter 'copy-mode' does not accept value '{r.CopyMode}'");
        }

        BlockNode source = FindNodeOrDevice(r.Device) ?? throw new BlockException($"Cannot find device='{r.Device}' nor node-name='{r.Device}'");
        // A drive's root under a running job has the job's filter above it: no longer a root, as in QEMU.
        bool busy = source is MirrorTopNode || Array.Exists(Jobs.Jobs, j => j is MirrorJob m && (m.Source == source || m.Target == source));
        BlockBackend? backend = busy ? null : _backends.Find(b => b.Root == source);
        if (backend is null)
        {
            throw new BlockException(busy || HasParent(source)
                ? "Need a root block node"
                : $"drive-mirror of node '{source.NodeName}', which no drive uses, is not implemented yet in Colo");
        }
        if (r.Sync is "incremental" or "bitmap")
        {
            throw new BlockException($"Sync mode '{r.Sync}' not supported");
        }
        if (r.Speed is < 0)
        {
            throw new BlockException("Parameter 'speed' expects a non-negative value");
        }
        string jobId = r.JobId ?? backend.Name;
        Jobs.CheckNewId(jobId);
        if (r.CopyMode == "write-blocking")
        {
            throw new BlockException("copy-mode 'write-blocking' is not implemented yet in Colo (background copying is)");
        }

        string format = r.Format ?? (source.DriverName is "qcow2" ? "qcow2" : "raw");
        if (format is not ("raw" or "qcow2"))
        {
            throw new BlockException(BlockImage.KnownFormats.Contains(format) || PlannedDrivers.Contains(format)
                ? $"Image format '{format}' for drive-mirror targets is not implemented yet in Colo"
                : $"Unknown file format '{format}'");
        }
        bool nbdTarget = IsNbdFilename(r.Target);
        bool created = mode == "absolute-paths" && !nbdTarget;
        if (created)
        {
            CreateMirrorTarget(r.Target, format, r.Sync, source);
        }

        var opened = new List<BlockNode>();
        BlockNode target;
        try
        {
            var options = OptionTree.FromFlat([new("filename", r.Target)]);
            target = OpenTop(options, r.Format ?? (mode == "existing" ? null : format), readOnly: false, aio: null, BlockNodeSettings.Default, opened);
        }
        catch
        {
            Discard(opened);
            throw;
        }
        _nodes.AddRange(opened);
        try
        {
            if (target.Size < source.Size)
            {
                target.Truncate(source.Size);
            }
            (int granularity, long bufSize) = MirrorJob.CheckSizes(r.Granularity, r.BufSize, target);
            var mirrorOptions = new MirrorOptions(r.Sync, r.Speed ?? 0, granularity, bufSize, r.OnSourceError ?? "report", r.OnTargetError ?? "report");
            var job = new MirrorJob(this, jobId, backend, target, mirrorOptions, r.AutoFinalize ?? true, r.AutoDismiss ?? true,
                targetZeroed: created && BackingOf(target) is null);
            job.Insert();
            Jobs.Start(job);
            return job;
        }
        catch
        {
            SetRoot(backend, source);
            CloseTree(target);
            throw;
        }
    }

    /// <summary>Points a drive at another node (a job's filter, its target, or back at its source).</summary>
    internal void SetRoot(BlockBackend backend, BlockNode root) => backend.Root = root;

    /// <summary>Closes a node and the children it owns, dropping exports of them and forgetting them.</summary>
    internal void CloseTree(BlockNode top)
    {
        var owned = new List<BlockNode>();
        CollectOwned(top, owned);
        Nbd.RemoveExportsOf(owned.Contains);
        FlushQuietly(top);
        top.Dispose();
        foreach (BlockNode n in owned)
        {
            _nodes.Remove(n);
            _settings.Remove(n);
        }
    }

    /// <summary>drive_del and friends refuse a drive a job works on, as QEMU's op blockers do.</summary>
    private void CheckNoJob(BlockBackend backend)
    {
        foreach (BlockJob job in Jobs.Jobs)
        {
            if (job.Device == backend.Name)
            {
                throw new BlockException($"Node '{backend.Name}' is busy: block device is in use by block job: {job.Type}");
            }
        }
    }

    private static void CheckOnError(string name, string? value)
    {
        if (value is not null && Array.IndexOf(s_onErrorValues, value) < 0)
        {
            throw new BlockException($"Parameter '{name}' does not accept value '{value}'");
        }
    }

    /// <summary>
    /// mode=absolute-paths: a new image of the source's size; sync=top backs it with the source's backing file,
    /// sync=none with the source itself, as QEMU's drive-mirror does (a raw target has no backing: it gets the
    /// size only).
    /// </summary>
    private void CreateMirrorTarget(string filename, string format, string sync, BlockNode source)
    {
        string? backingFile = null;
        string? backingFormat = null;
        if (sync == "top" && BackingOf(source) is { } backing)
        {
            // absolute-paths: the backing node's own filename (resolved), not the source header's possibly relative name.
            backingFile = backing.Filename;
            backingFormat = backing.DriverName;
        }
        else if (sync == "none")
        {
            backingFile = source.Filename;
            backingFormat = source.DriverName is "qcow2" ? "qcow2" : "raw";
        }
        if (format == "raw")
        {
            FileNode.Create(filename, source.Size);
        }
        else
        {
            Qcow2Creator.Create(filename, new Qcow2CreateOptions { Size = source.Size, BackingFile = backingFile, BackingFormat = backingFormat });
        }
    }
}
