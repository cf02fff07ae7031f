using Colo.Block;

namespace Colo.Tests.Unit.Block.Nbd;

/// <summary>A RAM-backed block node that counts flushes and discards.</summary>
internal sealed class MemoryNode(int size, bool readOnly = false, string? name = null) : BlockNode(name, readOnly)
{
    public byte[] Data { get; } = new byte[size];

    public int Flushes { get; private set; }

    public int Discards { get; private set; }

    public override string DriverName => "memory";

    public override long Size => Data.Length;

    public override string Filename => "memory";

    public override void Read(long offset, Span<byte> buffer)
    {
        CheckRequest(offset, buffer.Length);
        Data.AsSpan((int)offset, buffer.Length).CopyTo(buffer);
    }

    public override void Write(long offset, ReadOnlySpan<byte> buffer)
    {
        CheckWritable();
        CheckRequest(offset, buffer.Length);
        buffer.CopyTo(Data.AsSpan((int)offset));
    }

    public override void Flush() => Flushes++;

    public override void Discard(long offset, long length)
    {
        Discards++;
        Data.AsSpan((int)offset, (int)length).Clear();
    }
}
