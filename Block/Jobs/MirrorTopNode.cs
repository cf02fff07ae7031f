namespace Colo.Block.Jobs;

/// <summary>
/// The filter a mirror job puts above its source while it runs (QEMU's mirror_top): every request of the
/// drive's users passes through it, under one lock shared with the job's copy, and each write marks the
/// chunks it touches dirty so the job copies them again. After the pivot it forwards to the target.
/// </summary>
internal sealed class MirrorTopNode : BlockNode
{
    private readonly DirtyBitmap _dirty;
    private readonly Action<long> _dirtied;
    private BlockNode _active;
    private bool _tracking = true;

    public MirrorTopNode(BlockNode source, DirtyBitmap dirty, Action<long> dirtied)
        : base(source.NodeName, source.ReadOnly)
    {
        Source = source;
        _active = source;
        _dirty = dirty;
        _dirtied = dirtied;
    }

    /// <summary>Held by the job while it reads the source and looks at the bitmap.</summary>
    public Lock Gate { get; } = new();

    public BlockNode Source { get; }

    public override string DriverName => _active.DriverName;

    public override string Filename => _active.Filename;

    public override long Size => _active.Size;

    public override IReadOnlyList<BlockChild> Children => _active.Children;

    /// <summary>From now on requests go to <paramref name="target"/> (block-job-complete). Caller holds <see cref="Gate"/>.</summary>
    public void Pivot(BlockNode target)
    {
        _active = target;
        _tracking = false;
    }

    /// <summary>Stops dirty tracking (the job ended without pivoting). Caller holds <see cref="Gate"/>.</summary>
    public void StopTracking() => _tracking = false;

    public override void Read(long offset, Span<byte> buffer)
    {
        lock (Gate)
        {
            _active.Read(offset, buffer);
        }
    }

    public override void Write(long offset, ReadOnlySpan<byte> buffer)
    {
        lock (Gate)
        {
            _active.Write(offset, buffer);
            Dirty(offset, buffer.Length);
        }
    }

    public override void WriteZeroes(long offset, long length)
    {
        lock (Gate)
        {
            _active.WriteZeroes(offset, length);
            Dirty(offset, length);
        }
    }

    public override void Discard(long offset, long length)
    {
        lock (Gate)
        {
            _active.Discard(offset, length);
            Dirty(offset, length);
        }
    }

    public override void Flush()
    {
        lock (Gate)
        {
            _active.Flush();
        }
    }

    public override void Truncate(long size) =>
        throw new BlockException($"Node '{Source.NodeName}' is busy: block device is in use by block job: mirror");

    private void Dirty(long offset, long length)
    {
        if (_tracking)
        {
            _dirtied(_dirty.Set(offset, length));
        }
    }
}
