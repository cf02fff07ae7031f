namespace Colo.Block;

/// <summary>A named edge of the block graph ("file", "backing", "children.0").</summary>
public sealed record BlockChild(string Name, BlockNode Node);

/// <summary>
/// One node of the block graph (QEMU's BlockDriverState): a driver instance with a node-name,
/// children and a byte-addressed I/O interface.
/// </summary>
/// <remarks>
/// The synchronous span API (pread/pwrite underneath, allocation-free on the cached path) serves
/// callers with synchronous expectations. <see cref="ReadAsync"/> and <see cref="WriteAsync"/> are
/// asynchronous for file, raw and qcow2 (pooled block-io worker preads/pwrites, no allocation per request)
/// and may have several requests in flight, from any thread, where <see cref="ConcurrentReads"/> and
/// <see cref="ConcurrentWrites"/> say so. Such nodes order overlapping requests themselves (a
/// <see cref="RequestTracker"/>), also against their synchronous calls. Other nodes are not thread-safe:
/// callers serialise requests (QEMU's AioContext rule).
/// </remarks>
public abstract class BlockNode : IDisposable
{
    private static int s_autoNameCounter;
    private bool _disposed;

    protected BlockNode(string? nodeName, bool readOnly)
    {
        // QEMU names anonymous nodes "#block<N>"; keep the same shape for query output.
        NodeName = nodeName ?? $"#block{Interlocked.Increment(ref s_autoNameCounter) * 100 % 1000:D3}";
        ReadOnly = readOnly;
    }

    public string NodeName { get; }

    /// <summary>Driver name as QEMU prints it ("qcow2", "raw", "file").</summary>
    public abstract string DriverName { get; }

    public bool ReadOnly { get; }

    public virtual IReadOnlyList<BlockChild> Children => [];

    /// <summary>Length in bytes of what this node exposes to its parent.</summary>
    public abstract long Size { get; }

    /// <summary>Filename this node was opened from, for messages and query output.</summary>
    public abstract string Filename { get; }

    public abstract void Read(long offset, Span<byte> buffer);

    public abstract void Write(long offset, ReadOnlySpan<byte> buffer);

    public abstract void Flush();

    /// <summary>Advisory: after a discard the range reads as zeroes or as the backing file.</summary>
    public virtual void Discard(long offset, long length)
    {
    }

    /// <summary>Makes the range read as zeroes. Default: write zero-filled chunks.</summary>
    public virtual void WriteZeroes(long offset, long length)
    {
        Span<byte> zeros = stackalloc byte[4096];
        zeros.Clear();
        while (length > 0)
        {
            int n = (int)Math.Min(length, zeros.Length);
            Write(offset, zeros[..n]);
            offset += n;
            length -= n;
        }
    }

    public virtual void Truncate(long size) =>
        throw new BlockException($"Image format '{DriverName}' does not support resizing");

    /// <summary>
    /// True when <see cref="ReadAsync"/> may be called again before earlier reads completed, from any
    /// thread (several requests in flight, as qemu-img bench -d and an NBD client's pipelined reads), and
    /// beside the node's synchronous calls from other threads.
    /// </summary>
    public virtual bool ConcurrentReads => false;

    /// <summary>
    /// True when <see cref="WriteAsync"/> may, in the same way, run beside other reads and writes in flight
    /// and the synchronous calls. Overlapping requests are then ordered by the node: a later request
    /// overlapping an earlier write sees it complete first, and no range changes under a read in flight.
    /// </summary>
    public virtual bool ConcurrentWrites => false;

    /// <summary>
    /// Reads asynchronously. Drivers with <see cref="ConcurrentReads"/> override it with a truly
    /// asynchronous path; the default runs <see cref="Read"/> on the caller.
    /// </summary>
    public virtual ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            Read(offset, buffer.Span);
            return ValueTask.CompletedTask;
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    /// <summary>
    /// Writes asynchronously. Drivers with <see cref="ConcurrentWrites"/> override it with a truly
    /// asynchronous path; the default runs <see cref="Write"/> on the caller.
    /// </summary>
    public virtual ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            Write(offset, buffer.Span);
            return ValueTask.CompletedTask;
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            Flush();
            return ValueTask.CompletedTask;
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            Dispose(true);
            GC.SuppressFinalize(this);
        }
    }

    protected virtual void Dispose(bool disposing)
    {
    }

    /// <summary>Throws the QEMU-shaped error for requests outside [0, Size).</summary>
    protected void CheckRequest(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Size || length > Size - offset)
        {
            throw new BlockException($"Request out of range: offset {offset}, length {length}, size {Size}");
        }
    }

    protected void CheckWritable()
    {
        if (ReadOnly)
        {
            throw new BlockException($"Block node '{NodeName}' is read-only");
        }
    }
}
