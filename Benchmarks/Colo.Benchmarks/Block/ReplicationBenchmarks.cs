using BenchmarkDotNet.Attributes;
using Colo.Block;
using Colo.Block.Graph;
using Colo.Block.Qcow2;
using Colo.Block.Replication;
using Colo.Core.Options;

namespace Colo.Benchmarks.Block;

/// <summary>
/// The replication secondary's write path: a 64 KiB write of the primary's arriving at the secondary disk
/// through the copy-before-write filter (what the NBD export calls), against the same write straight to
/// the disk. A first write to a cluster since the checkpoint reads 64 KiB and writes it into the hidden
/// disk first; a repeat write only checks the copy bitmap.
/// </summary>
[MemoryDiagnoser]
#pragma warning disable CA1001 // BenchmarkDotNet's GlobalCleanup disposes the graph
public class ReplicationBenchmarks
{
    private const long ImageSize = 256L << 20;
    private const int Chunk = 64 << 10;
    private readonly byte[] _data = new byte[Chunk];
    private string _dir = "";
    private BlockGraph _graph = null!;
    private ReplicationNode _replication = null!;
    private BlockNode _disk = null!;
    private BlockNode _front = null!;
    private long _next;

    [GlobalSetup]
    public void Setup()
    {
        _dir = Path.Combine(Path.GetTempPath(), $"colo-bench-replication-{Environment.ProcessId}");
        Directory.CreateDirectory(_dir);
        foreach (string n in new[] { "secondary", "active", "hidden" })
        {
            Qcow2Creator.Create(Path.Combine(_dir, n + ".qcow2"), new Qcow2CreateOptions { Size = ImageSize });
        }
        _graph = new BlockGraph();
        Drive($"if=none,id=parent0,driver=qcow2,file.filename={_dir}/secondary.qcow2");
        Drive($"if=none,id=childs0,driver=replication,mode=secondary,top-id=colo-disk0,file.driver=qcow2,file.file.filename={_dir}/active.qcow2,file.backing.driver=qcow2,file.backing.file.filename={_dir}/hidden.qcow2,file.backing.backing=parent0");
        Drive("if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0=childs0");
        _disk = _graph.FindBackend("parent0")!.Root;
        new Random(1).NextBytes(_data);
        for (long off = 0; off < ImageSize; off += Chunk)
        {
            _disk.Write(off, _data); // the secondary disk is fully allocated, as a used guest disk is
        }
        _replication = (ReplicationNode)_graph.FindBackend("childs0")!.Root;
        _replication.Start(ReplicationMode.Secondary);
        _front = _replication.CopyBeforeWrite!;
    }

    private void Drive(string spec) => _graph.AddDrive([.. KeyValParser.Parse(spec, null).Pairs]);

    [GlobalCleanup]
    public void Cleanup()
    {
        _graph.Dispose();
        Directory.Delete(_dir, true);
    }

    /// <summary>Baseline: the 64 KiB write straight to the (allocated) secondary disk.</summary>
    [Benchmark(Baseline = true)]
    public void DiskWrite64K()
    {
        _disk.Write(NextOffset(), _data);
    }

    /// <summary>
    /// First write to a cluster since the checkpoint: copy 64 KiB into the hidden disk, then write. Every
    /// 4096 writes (the whole image) a checkpoint empties the hidden disk again, amortised in the figure.
    /// </summary>
    [Benchmark]
    public void CopyBeforeWrite64K_FirstWrite()
    {
        long off = NextOffset();
        if (off == 0)
        {
            _replication.DoCheckpoint();
        }
        _front.Write(off, _data);
    }

    /// <summary>Repeat write to a cluster already copied in this interval: only the bitmap check.</summary>
    [Benchmark]
    public void CopyBeforeWrite64K_AlreadyCopied()
    {
        _front.Write(0, _data);
    }

    private long NextOffset()
    {
        long off = _next;
        _next = (_next + Chunk) % ImageSize;
        return off;
    }
}
#pragma warning restore CA1001
