namespace Colo.Block.Graph;

/// <summary>
/// What a device or an export of a drive holds instead of the drive's root node: every request goes to
/// the backend's current <see cref="BlockBackend.Root"/>, so a block job can put a filter above the root
/// (mirror's dirty tracking) and swap the root for another node (block-job-complete's pivot) without the
/// users noticing — QEMU's BlockBackend indirection. It is never in the graph's node list.
/// </summary>
public sealed class BackendNode : BlockNode
{
    internal BackendNode(BlockBackend backend)
        : base(backend.Root.NodeName, backend.Root.ReadOnly)
    {
        Backend = backend;
    }

    public BlockBackend Backend { get; }

    public override string DriverName => Backend.Root.DriverName;

    public override string Filename => Backend.Root.Filename;

    public override long Size => Backend.Root.Size;

    public override IReadOnlyList<BlockChild> Children => Backend.Root.Children;

    public override void Read(long offset, Span<byte> buffer) => Backend.Root.Read(offset, buffer);

    public override void Write(long offset, ReadOnlySpan<byte> buffer) => Backend.Root.Write(offset, buffer);

    public override void Flush() => Backend.Root.Flush();

    public override void Discard(long offset, long length) => Backend.Root.Discard(offset, length);

    public override void WriteZeroes(long offset, long length) => Backend.Root.WriteZeroes(offset, length);

    public override void Truncate(long size) => Backend.Root.Truncate(size);
}
