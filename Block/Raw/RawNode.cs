namespace Colo.Block.Raw;

/// <summary>The "raw" format driver: the guest sees the child's bytes unchanged.</summary>
public sealed class RawNode : BlockNode
{
    private readonly BlockNode _file;

    // The child's length, read once (QEMU caches it the same way): an fstat per request cost as much as a
    // quarter of a 1 MiB cached read. Changed only by Truncate.
    private long _size;

    public RawNode(BlockNode file, bool readOnly, string? nodeName = null)
        : base(nodeName, readOnly)
    {
        _file = file;
        _size = file.Size;
    }

    public override string DriverName => "raw";

    public override string Filename => _file.Filename;

    public override IReadOnlyList<BlockChild> Children => [new BlockChild("file", _file)];

    public BlockNode File => _file;

    public override long Size => Volatile.Read(ref _size);

    public override void Read(long offset, Span<byte> buffer)
    {
        CheckRequest(offset, buffer.Length);
        _file.Read(offset, buffer);
    }

    public override bool ConcurrentReads => _file.ConcurrentReads;

    public override ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        CheckRequest(offset, buffer.Length);
        return _file.ReadAsync(offset, buffer, cancellationToken);
    }

    public override bool ConcurrentWrites => _file.ConcurrentWrites && !ReadOnly;

    public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            CheckWritable();
            CheckRequest(offset, buffer.Length);
        }
        catch (BlockException e)
        {
            return ValueTask.FromException(e);
        }

        return _file.WriteAsync(offset, buffer, cancellationToken);
    }

    public override void Write(long offset, ReadOnlySpan<byte> buffer)
    {
        CheckWritable();
        CheckRequest(offset, buffer.Length);
        _file.Write(offset, buffer);
    }

    public override void Flush() => _file.Flush();

    public override void WriteZeroes(long offset, long length)
    {
        CheckWritable();
        CheckRequest(offset, length);
        _file.WriteZeroes(offset, length);
    }

    /// <summary>Passed to the protocol below (an NBD export can act on it; a plain file ignores it).</summary>
    public override void Discard(long offset, long length)
    {
        CheckWritable();
        CheckRequest(offset, length);
        _file.Discard(offset, length);
    }

    public override void Truncate(long size)
    {
        CheckWritable();
        _file.Truncate(size);
        Volatile.Write(ref _size, _file.Size);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _file.Dispose();
        }

        base.Dispose(disposing);
    }
}
