using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using Colo.Block;
using Colo.Block.Qcow2;

namespace Colo.Benchmarks.Block;

/// <summary>
/// qcow2 hot path: L2 lookup through the metadata cache plus a 4 KiB pread from the page cache.
/// Must allocate nothing.
/// </summary>
[MemoryDiagnoser]
public class Qcow2Benchmarks
{
    private const long ImageSize = 256L << 20;
    private readonly byte[] _buffer = new byte[4096];
    private string _path = "";
    private Qcow2Node _node = null!;
    private long[] _offsets = [];
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        _path = Path.Combine(Path.GetTempPath(), $"colo-bench-{Environment.ProcessId}.qcow2");
        Qcow2Creator.Create(_path, new Qcow2CreateOptions { Size = ImageSize });
        _node = (Qcow2Node)BlockImage.Open(_path, "qcow2", readOnly: false);
        var chunk = new byte[1 << 20];
        new Random(1).NextBytes(chunk);
        for (long off = 0; off < ImageSize; off += chunk.Length)
        {
            _node.Write(off, chunk);
        }

        var rng = new Random(2);
        _offsets = new long[4096];
        for (int i = 0; i < _offsets.Length; i++)
        {
            _offsets[i] = rng.NextInt64(ImageSize / 4096) * 4096;
        }

        _node.Read(0, _buffer); // warm the L2 cache
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _node.Dispose();
        File.Delete(_path);
    }

    /// <summary>Random 4 KiB read of allocated data (one L2 table covers the whole image).</summary>
    [Benchmark]
    public void RandomRead4K()
    {
        long off = _offsets[_next++ & (_offsets.Length - 1)];
        _node.Read(off, _buffer);
    }

    /// <summary>The L2 lookup alone.</summary>
    [Benchmark]
    public Qcow2ClusterStatus L2Lookup()
    {
        long off = _offsets[_next++ & (_offsets.Length - 1)];
        return _node.GetClusterStatus(off >> 16);
    }

    /// <summary>
    /// The asynchronous path: a 4 KiB read awaited through a pooled block-io request (must allocate nothing:
    /// pooled request object, pooling async builder in qcow2).
    /// </summary>
    [Benchmark]
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask RandomReadAsync4K()
    {
        long off = _offsets[_next++ & (_offsets.Length - 1)];
        await _node.ReadAsync(off, _buffer);
    }

    /// <summary>Eight 128 KiB sequential reads in flight at once (qemu-img bench -d 8), one coalesced pread each.</summary>
    [Benchmark(OperationsPerInvoke = InFlight)]
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SequentialReadAsync128KDepth8()
    {
        for (int i = 0; i < InFlight; i++)
        {
#pragma warning disable CA2012 // kept to be awaited exactly once in the loop below
            _inFlight[i] = _node.ReadAsync(((_next++ & 1023) * (long)Chunk128K) % ImageSize, _big.AsMemory(i * Chunk128K, Chunk128K));
#pragma warning restore CA2012
        }
        for (int i = 0; i < InFlight; i++)
        {
            await _inFlight[i];
        }
    }

    /// <summary>
    /// The asynchronous write path: a 4 KiB in-place write (allocated cluster) through the request tracker,
    /// the metadata lookup under the lock and a pooled block-io pwrite (must allocate nothing).
    /// </summary>
    [Benchmark]
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask RandomWriteAsync4K()
    {
        long off = _offsets[_next++ & (_offsets.Length - 1)];
        await _node.WriteAsync(off, _buffer);
    }

    /// <summary>Eight 128 KiB sequential in-place writes in flight at once (qemu-img bench -w -d 8).</summary>
    [Benchmark(OperationsPerInvoke = InFlight)]
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SequentialWriteAsync128KDepth8()
    {
        for (int i = 0; i < InFlight; i++)
        {
#pragma warning disable CA2012 // kept to be awaited exactly once in the loop below
            _inFlight[i] = _node.WriteAsync(((_next++ & 1023) * (long)Chunk128K) % ImageSize, _big.AsMemory(i * Chunk128K, Chunk128K));
#pragma warning restore CA2012
        }
        for (int i = 0; i < InFlight; i++)
        {
            await _inFlight[i];
        }
    }

    private const int InFlight = 8;
    private const int Chunk128K = 128 << 10;
    private readonly byte[] _big = GC.AllocateUninitializedArray<byte>(InFlight * Chunk128K, pinned: true);
    private readonly ValueTask[] _inFlight = new ValueTask[InFlight];
}
