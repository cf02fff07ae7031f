namespace Colo.Block.Graph;

/// <summary>
/// A non-owning view of a node that already belongs to the graph, handed to a driver that takes
/// ownership of its children (raw, qcow2 dispose their children). <c>backing=parent0</c> must not let
/// the new node close <c>parent0</c> when it goes away; the graph shows <see cref="Target"/>, never this.
/// </summary>
internal sealed class BorrowedNode : BlockNode
{
    public BorrowedNode(BlockNode target, bool readOnly)
        : base(target.NodeName, readOnly || target.ReadOnly)
    {
        Target = target;
    }

    public BlockNode Target { get; }

    public override string DriverName => Target.DriverName;

    public override string Filename => Target.Filename;

    public override long Size => Target.Size;

    public override IReadOnlyList<BlockChild> Children => Target.Children;

    public override void Read(long offset, Span<byte> buffer) => Target.Read(offset, buffer);

    public override void Write(long offset, ReadOnlySpan<byte> buffer)
    {
        CheckWritable();
        Target.Write(offset, buffer);
    }

    public override void Flush() => Target.Flush();

    public override void Discard(long offset, long length)
    {
        CheckWritable();
        Target.Discard(offset, length);
    }

    public override void WriteZeroes(long offset, long length)
    {
        CheckWritable();
        Target.WriteZeroes(offset, length);
    }
}
