using Colo.Block;

namespace Colo.Tests.Unit.Block;

/// <summary>
/// A pass-through node whose asynchronous reads wait at a gate while it is closed: holds a read "in flight"
/// below a format driver for as long as a test needs (after the driver has mapped it).
/// </summary>
internal sealed class GatedNode(BlockNode inner) : BlockNode(null, inner.ReadOnly)
{
    private volatile TaskCompletionSource? _gate;
    private int _held;

    public override string DriverName => inner.DriverName;

    public override string Filename => inner.Filename;

    public override long Size => inner.Size;

    public override bool ConcurrentReads => inner.ConcurrentReads;

    public override bool ConcurrentWrites => inner.ConcurrentWrites;

    /// <summary>Asynchronous reads held at the gate now.</summary>
    public int Held => Volatile.Read(ref _held);

    public void Close() => _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Open() => Interlocked.Exchange(ref _gate, null)?.SetResult();

    public override void Read(long offset, Span<byte> buffer) => inner.Read(offset, buffer);

    public override async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_gate is { } g)
        {
            Interlocked.Increment(ref _held);
            await g.Task.ConfigureAwait(false);
            Interlocked.Decrement(ref _held);
        }
        await inner.ReadAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
    }

    public override void Write(long offset, ReadOnlySpan<byte> buffer) => inner.Write(offset, buffer);

    public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        inner.WriteAsync(offset, buffer, cancellationToken);

    public override void Flush() => inner.Flush();

    public override void Truncate(long size) => inner.Truncate(size);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }
        base.Dispose(disposing);
    }
}
