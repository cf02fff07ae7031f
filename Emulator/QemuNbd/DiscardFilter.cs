using Colo.Block;

namespace Colo.QemuNbd;

/// <summary>
/// qemu-nbd's <c>--discard</c> policy in front of the exported node. QEMU's default is "ignore":
/// clients may send TRIM, it succeeds, and the image keeps its data (discard is advisory). Only
/// "unmap" passes discards down to the format driver.
/// </summary>
internal sealed class DiscardFilter : BlockNode
{
    private readonly BlockNode _inner;
    private readonly bool _unmap;

    public DiscardFilter(BlockNode inner, bool unmap)
        : base(null, inner.ReadOnly)
    {
        _inner = inner;
        _unmap = unmap;
    }

    public override string DriverName => _inner.DriverName;

    public override long Size => _inner.Size;

    public override string Filename => _inner.Filename;

    public override IReadOnlyList<BlockChild> Children => [new BlockChild("file", _inner)];

    public override void Read(long offset, Span<byte> buffer) => _inner.Read(offset, buffer);

    public override void Write(long offset, ReadOnlySpan<byte> buffer) => _inner.Write(offset, buffer);

    public override void Flush() => _inner.Flush();

    public override void WriteZeroes(long offset, long length) => _inner.WriteZeroes(offset, length);

    public override void Discard(long offset, long length)
    {
        if (_unmap)
        {
            _inner.Discard(offset, length);
        }
    }
}
