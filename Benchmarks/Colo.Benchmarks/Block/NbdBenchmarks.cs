using System.Net;
using BenchmarkDotNet.Attributes;
using Colo.Block;
using Colo.Block.Nbd;

namespace Colo.Benchmarks.Block;

/// <summary>
/// 64 KiB NBD reads, Colo's client to Colo's server over loopback TCP, from a RAM-backed export.
/// The server's read path rents pooled buffers and the client reads into the caller's span, so a
/// request should allocate nothing on either side.
/// </summary>
[MemoryDiagnoser]
public class NbdBenchmarks
{
    private const int ExportSize = 64 << 20;
    private readonly byte[] _buffer = new byte[64 << 10];
    private NbdServer _server = null!;
    private NbdClient _structured = null!;
    private RamNode _node = null!;
    private long _offset;

    [GlobalSetup]
    public void Setup()
    {
        _node = RamNode.Create(ExportSize);
        _server = NbdServer.StartTcp(new IPEndPoint(IPAddress.Loopback, 0));
        _server.AddExport("bench", _node, writable: false);
        _structured = NbdClient.ConnectTcp("127.0.0.1", _server.Port, "bench");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _structured.Dispose();
        _server.Dispose();
        _node.Dispose();
    }

    [Benchmark]
    public void Read64K()
    {
        _structured.Read(_offset, _buffer);
        _offset = (_offset + _buffer.Length) % ExportSize;
    }

    private sealed class RamNode(int size) : BlockNode(null, readOnly: true)
    {
        public byte[] Data { get; } = new byte[size];

        public static RamNode Create(int size)
        {
            var n = new RamNode(size);
            new Random(1).NextBytes(n.Data);
            return n;
        }

        public override string DriverName => "ram";

        public override long Size => Data.Length;

        public override string Filename => "ram";

        public override void Read(long offset, Span<byte> buffer) => Data.AsSpan((int)offset, buffer.Length).CopyTo(buffer);

        public override void Write(long offset, ReadOnlySpan<byte> buffer) => throw new BlockException("read-only");

        public override void Flush()
        {
        }
    }
}
