using System.Numerics;
using Colo.Block.Graph;
using Colo.Block.Qcow2;

namespace Colo.Block.Jobs;

/// <summary>What drive-mirror asks for, checked (QAPI DriveMirror minus the target, which is already open).</summary>
/// <param name="Sync">full (copy everything), top (only what the source's top image allocates), none (only new writes).</param>
/// <param name="Granularity">Dirty-tracking chunk size in bytes (power of two).</param>
/// <param name="BufSize">Most bytes copied in one step.</param>
/// <param name="OnSourceError">report, ignore, stop or enospc.</param>
/// <param name="OnTargetError">report, ignore, stop or enospc.</param>
public sealed record MirrorOptions(string Sync, long Speed, int Granularity, long BufSize, string OnSourceError, string OnTargetError);

/// <summary>
/// drive-mirror (QEMU's mirror job, background copy mode): a filter above the drive's root records the
/// guest's writes in a dirty bitmap while the job's thread copies dirty chunks to the target. With
/// nothing left to copy the job is READY and stays so, copying new writes as they come. Then
/// block-job-complete switches the drive to the target (pivot) and block-job-cancel leaves the drive on
/// the source with the target identical to it; both happen under the filter's lock at a moment when no
/// chunk is dirty, so the target equals the source at that instant.
/// </summary>
public sealed class MirrorJob : BlockJob
{
    /// <summary>QEMU's default buffer (16 MiB); one step copies at most <see cref="MaxStep"/> of it.</summary>
    public const long DefaultBufSize = 16 << 20;

    private const int MaxStep = 1 << 20;

    private readonly BlockGraph _graph;
    private readonly BlockBackend _backend;
    private readonly BlockNode _source;
    private readonly BlockNode _target;
    private readonly MirrorOptions _options;
    private readonly DirtyBitmap _dirty;
    private readonly MirrorTopNode _filter;
    private readonly DirtyBitmap? _written;
    private readonly Qcow2Node? _sourceTopOnly; // sync=top over a qcow2 with a backing file
    private bool _pivoted;

    /// <param name="targetZeroed">The job created the target without a backing file: it reads as zeroes, so zero
    /// chunks never written to it need no copy (keeps a new qcow2 target sparse, as QEMU's does).</param>
    internal MirrorJob(BlockGraph graph, string id, BlockBackend backend, BlockNode target, MirrorOptions options, bool autoFinalize, bool autoDismiss, bool targetZeroed)
        : base(graph.Jobs, id, "mirror", backend.Name, options.Speed, autoFinalize, autoDismiss)
    {
        _graph = graph;
        _backend = backend;
        _source = backend.Root;
        _target = target;
        _options = options;
        _dirty = new DirtyBitmap(_source.Size, options.Granularity);
        _filter = new MirrorTopNode(_source, _dirty, OnDirtied);
        _written = targetZeroed ? new DirtyBitmap(_source.Size, options.Granularity) : null;
        _sourceTopOnly = options.Sync == "top" && _source is Qcow2Node q && graph.BackingOf(q) is not null ? q : null;
    }

    /// <summary>The node the job copies to.</summary>
    public BlockNode Target => _target;

    /// <summary>The node the job copies from.</summary>
    public BlockNode Source => _source;

    protected override bool SupportsSoftCancel => true;

    protected override bool SupportsComplete => true;

    /// <summary>Puts the filter in place; from here every write of the drive's users is tracked.</summary>
    internal void Insert()
    {
        lock (_filter.Gate)
        {
            if (_options.Sync == "full" || (_options.Sync == "top" && _sourceTopOnly is null))
            {
                SetProgress(0, _dirty.Set(0, _source.Size));
            }
            else if (_options.Sync == "top")
            {
                // Only what the top image itself allocates (data, zero or compressed clusters): the rest the
                // target reads from the same backing file, as QEMU's mirror seeds its bitmap from allocation.
                Qcow2Node top = _sourceTopOnly!;
                long cs = top.ClusterSize;
                long clusters = (top.Size + cs - 1) / cs;
                long bytes = 0;
                for (long vc = 0; vc < clusters; vc++)
                {
                    if (top.GetClusterStatus(vc) != Qcow2ClusterStatus.Unallocated)
                    {
                        bytes += _dirty.Set(vc * cs, Math.Min(cs, top.Size - vc * cs));
                    }
                }
                SetProgress(0, bytes);
            }
        }
        _graph.SetRoot(_backend, _filter);
    }

    protected override void Run()
    {
        byte[] buffer = new byte[(int)Math.Clamp(_options.BufSize, _options.Granularity, MaxStep)];
        long maxChunks = Math.Max(1, buffer.Length / _options.Granularity);
        long cursor = 0;
        long throttleUntil = 0;
        while (true)
        {
            PausePoint();
            Token.ThrowIfCancellationRequested();
            long offset = 0;
            int length = 0;
            bool idle = false;
            bool done = false;
            BlockException? readError = null;
            lock (_filter.Gate)
            {
                long chunk = _dirty.NextDirty(cursor);
                if (chunk < 0)
                {
                    idle = true;
                    if (IsReady && (CompleteRequested || SoftCancelRequested))
                    {
                        // Nothing dirty and the users are held off by the lock: the target equals the source now.
                        _target.Flush();
                        if (CompleteRequested)
                        {
                            _filter.Pivot(_target);
                            _pivoted = true;
                        }
                        else
                        {
                            _filter.StopTracking();
                        }
                        done = true;
                    }
                }
                else
                {
                    long count = _dirty.RunLength(chunk, maxChunks);
                    (offset, long len) = _dirty.Range(chunk, count);
                    length = (int)len;
                    _dirty.Clear(chunk, count);
                    cursor = chunk + count;
                    try
                    {
                        _source.Read(offset, buffer.AsSpan(0, length));
                    }
                    catch (BlockException e)
                    {
                        _dirty.Set(offset, length);
                        readError = e;
                    }
                }
            }
            if (readError is not null)
            {
                // Handled outside the lock: pausing while holding it would stall the guest's I/O too.
                OnError("read", _options.OnSourceError, readError);
                continue;
            }
            if (done)
            {
                return;
            }
            if (idle)
            {
                if (!IsReady)
                {
                    _target.Flush();
                    TransitionToReady();
                }
                // Woken by the next guest write or verb; the timeout is only a safety net.
                Sleep(TimeSpan.FromMilliseconds(500));
                continue;
            }
            if (TryWrite(offset, buffer.AsSpan(0, length)) is { } writeError)
            {
                lock (_filter.Gate)
                {
                    _dirty.Set(offset, length);
                }
                OnError("write", _options.OnTargetError, writeError);
                continue;
            }
            AddOffset(length);
            throttleUntil = Throttle(throttleUntil, length);
        }
    }

    protected override void Commit()
    {
        if (_pivoted)
        {
            // The drive now is the target; the old source tree closes (QEMU drops its last reference).
            _graph.SetRoot(_backend, _target);
            _graph.CloseTree(_source);
        }
        else
        {
            _graph.SetRoot(_backend, _source);
            _graph.CloseTree(_target);
        }
    }

    protected override void Abort()
    {
        lock (_filter.Gate)
        {
            _filter.StopTracking();
        }
        _graph.SetRoot(_backend, _source);
        _graph.CloseTree(_target);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _filter.Dispose();
        }
        base.Dispose(disposing);
    }

    private void OnDirtied(long bytes)
    {
        if (bytes > 0)
        {
            AddLength(bytes);
        }
        Kick();
    }

    private BlockException? TryWrite(long offset, ReadOnlySpan<byte> data)
    {
        try
        {
            // Zero chunks become zero writes (NBD sends WRITE_ZEROES), or nothing where the target still reads as zeroes.
            if (!data.ContainsAnyExcept((byte)0))
            {
                if (_written is not null && !_written.AnySet(offset, data.Length))
                {
                    return null;
                }
                _target.WriteZeroes(offset, data.Length);
            }
            else
            {
                _target.Write(offset, data);
            }
            _written?.Set(offset, data.Length);
            return null;
        }
        catch (BlockException e)
        {
            return e;
        }
    }

    /// <summary>
    /// report: the job fails with the error; ignore: BLOCK_JOB_ERROR and the chunk is retried later;
    /// stop/enospc: BLOCK_JOB_ERROR and the job pauses until resumed (Colo has no errno to tell ENOSPC apart).
    /// </summary>
    private void OnError(string operation, string action, BlockException error)
    {
        if (action == "report")
        {
            Manager.Listener?.IoError(this, operation, "report");
            throw error;
        }
        if (action == "ignore")
        {
            Manager.Listener?.IoError(this, operation, "ignore");
            Sleep(TimeSpan.FromMilliseconds(100));
        }
        else
        {
            PauseOnError(operation);
        }
    }

    /// <summary>Keeps the average rate at <see cref="BlockJob.Speed"/> bytes/s by sleeping ahead of the budget.</summary>
    private long Throttle(long until, int bytes)
    {
        long speed = Speed;
        if (speed <= 0)
        {
            return 0;
        }
        long now = Environment.TickCount64;
        until = Math.Max(until, now) + (bytes * 1000L / speed);
        if (until - now > 10)
        {
            Sleep(TimeSpan.FromMilliseconds(until - now));
        }
        return until;
    }

    /// <summary>QEMU's defaults and checks for granularity and buf-size, with its texts.</summary>
    public static (int Granularity, long BufSize) CheckSizes(long? granularity, long? bufSize, BlockNode target)
    {
        long g = granularity ?? 0;
        if (g != 0)
        {
            if (g is < 512 or > 64L << 20)
            {
                throw new BlockException("Parameter 'granularity' expects a value in range [512B, 64MB]");
            }
            if (!BitOperations.IsPow2(g))
            {
                throw new BlockException("Parameter 'granularity' expects a power of 2");
            }
        }
        else
        {
            // QEMU's default: the target's cluster size, at least 4 KiB; Colo uses 64 KiB where there is no cluster.
            g = target is Qcow2.Qcow2Node q ? Math.Clamp(q.ClusterSize, 4096, 65536) : 65536;
        }
        long b = bufSize ?? 0;
        if (b < 0)
        {
            throw new BlockException("Invalid parameter 'buf-size'");
        }
        return ((int)g, b == 0 ? DefaultBufSize : b);
    }
}
