using System.Buffers;

namespace Colo.Block.Quorum;

/// <summary>How a quorum node reads: vote over every child, or take the first child that answers.</summary>
public enum QuorumReadPattern
{
    Quorum,
    Fifo,
}

/// <summary>QUORUM_FAILURE: no version of the data reached the vote threshold.</summary>
/// <param name="Reference">The drive id when the quorum node is a drive's root, else its node-name (filled by the graph).</param>
public sealed record QuorumFailure(string Reference, long SectorNum, long SectorsCount);

/// <summary>QUORUM_REPORT_BAD: one child failed (<see cref="Error"/> set) or was outvoted (null).</summary>
/// <param name="Type">"read", "write" or "flush" (QAPI QuorumOpType).</param>
public sealed record QuorumReportBad(string Type, string? Error, string NodeName, long SectorNum, long SectorsCount);

/// <summary>
/// The quorum driver: N children holding the same data. Writes go to every child and succeed when at
/// least <see cref="Threshold"/> children succeed; reads either vote on content (majority of identical
/// buffers, which must reach the threshold) or, with <see cref="QuorumReadPattern.Fifo"/>, return the
/// first child that succeeds. COLO's primary uses it with fifo and threshold 1 to mirror its disk to the
/// secondary through a replication child added at run time (<c>x-blockdev-change</c>).
/// </summary>
public sealed class QuorumNode : BlockNode
{
    private const int SectorSize = 512;
    private const string Eio = "Input/output error";

    // Children opened inline are owned (closed with the quorum); references to existing nodes and nodes
    // added at run time are BorrowedNode views, whose disposal leaves the target open.
    private readonly List<BlockChild> _children;
    private int _nextIndex;

    public QuorumNode(IReadOnlyList<BlockChild> children, int threshold, QuorumReadPattern pattern,
        bool rewriteCorrupted, bool blkverify, bool readOnly, string? nodeName)
        : base(nodeName, readOnly)
    {
        _children = [.. children];
        _nextIndex = children.Count;
        Threshold = threshold;
        ReadPattern = pattern;
        RewriteCorrupted = rewriteCorrupted;
        Blkverify = blkverify;
        Size = children[0].Node.Size;
    }

    public override string DriverName => "quorum";

    public override long Size { get; }

    public override string Filename => FilenameText ?? "quorum";

    /// <summary>The <c>json:{...}</c> name the graph computes from the options (QEMU's refreshed filename).</summary>
    public string? FilenameText { get; set; }

    public int Threshold { get; }

    public QuorumReadPattern ReadPattern { get; }

    public bool RewriteCorrupted { get; }

    public bool Blkverify { get; }

    public override IReadOnlyList<BlockChild> Children => _children;

    /// <summary>Receives QUORUM_FAILURE (the reference is filled in by whoever knows the drive id).</summary>
    public Action<QuorumNode, long, long>? Failure { get; set; }

    /// <summary>Receives QUORUM_REPORT_BAD.</summary>
    public Action<QuorumReportBad>? ReportBad { get; set; }

    /// <summary>
    /// x-blockdev-change's add: the node becomes <c>children.N</c> with N one past the highest index ever
    /// used, as QEMU numbers them. The quorum does not own an added node: it stays the graph's.
    /// </summary>
    public string AddChild(BlockNode node)
    {
        if (Blkverify)
        {
            throw new BlockException("Cannot add a child to a quorum in blkverify mode");
        }
        if (node.Size != Size)
        {
            throw new BlockException($"Cannot add node '{node.NodeName}' to quorum '{NodeName}': its size {node.Size} differs from {Size}");
        }
        string name = $"children.{_nextIndex++}";
        _children.Add(new BlockChild(name, new Graph.BorrowedNode(node, false)));
        return name;
    }

    /// <summary>x-blockdev-change's delete: returns the detached node, and whether the quorum owned (should close) it.</summary>
    public (BlockNode Node, bool Owned) RemoveChild(string childName)
    {
        int index = _children.FindIndex(c => c.Name == childName);
        if (index < 0)
        {
            throw new BlockException($"Node '{NodeName}' does not have child '{childName}'");
        }
        if (_children.Count <= Threshold)
        {
            throw new BlockException($"The number of children cannot be lower than the vote threshold {Threshold}");
        }
        if (Blkverify)
        {
            throw new BlockException("Cannot remove a child from a quorum in blkverify mode");
        }
        BlockNode node = _children[index].Node;
        _children.RemoveAt(index);
        return node is Graph.BorrowedNode b ? (b.Target, false) : (node, true);
    }

    public override void Read(long offset, Span<byte> buffer)
    {
        CheckRequest(offset, buffer.Length);
        if (buffer.Length == 0)
        {
            return;
        }
        if (ReadPattern == QuorumReadPattern.Fifo)
        {
            ReadFifo(offset, buffer);
        }
        else
        {
            ReadVote(offset, buffer);
        }
    }

    private void ReadFifo(long offset, Span<byte> buffer)
    {
        foreach (BlockChild child in _children)
        {
            try
            {
                child.Node.Read(offset, buffer);
                return;
            }
            catch (BlockException)
            {
                Bad("read", Eio, child.Node, offset, buffer.Length);
            }
        }
        throw new BlockException($"Quorum '{NodeName}': no child could read offset {offset}: {Eio}");
    }

    private void ReadVote(long offset, Span<byte> buffer)
    {
        int n = _children.Count;
        byte[][] data = new byte[n][];
        bool[] ok = new bool[n];
        int successes = 0;
        try
        {
            for (int i = 0; i < n; i++)
            {
                data[i] = ArrayPool<byte>.Shared.Rent(buffer.Length);
                try
                {
                    _children[i].Node.Read(offset, data[i].AsSpan(0, buffer.Length));
                    ok[i] = true;
                    successes++;
                }
                catch (BlockException)
                {
                    Bad("read", Eio, _children[i].Node, offset, buffer.Length);
                }
            }
            if (successes < Threshold)
            {
                Failure?.Invoke(this, offset / SectorSize, Sectors(offset, buffer.Length));
                throw new BlockException($"Quorum '{NodeName}': only {successes} of {n} children read offset {offset}: {Eio}");
            }

            // Group the successful children by identical content; the largest group wins (the first such
            // group on a tie).
            int[] version = new int[n];
            int[] votes = new int[n];
            for (int i = 0; i < n; i++)
            {
                version[i] = -1;
                if (!ok[i])
                {
                    continue;
                }
                for (int j = 0; j < i; j++)
                {
                    if (ok[j] && version[j] == j && data[i].AsSpan(0, buffer.Length).SequenceEqual(data[j].AsSpan(0, buffer.Length)))
                    {
                        version[i] = j;
                        break;
                    }
                }
                if (version[i] < 0)
                {
                    version[i] = i;
                }
                votes[version[i]]++;
            }
            int winner = -1;
            for (int i = 0; i < n; i++)
            {
                if (ok[i] && version[i] == i && (winner < 0 || votes[i] > votes[winner]))
                {
                    winner = i;
                }
            }
            if (Blkverify && votes[winner] != successes)
            {
                throw new BlockException($"quorum: offset={offset} bytes={buffer.Length} contents mismatch in sector {offset / SectorSize}");
            }
            for (int i = 0; i < n; i++)
            {
                if (ok[i] && version[i] != winner)
                {
                    Bad("read", null, _children[i].Node, offset, buffer.Length);
                }
            }
            if (votes[winner] < Threshold)
            {
                Failure?.Invoke(this, offset / SectorSize, Sectors(offset, buffer.Length));
                throw new BlockException($"Quorum '{NodeName}': no version of offset {offset} reached the vote threshold {Threshold}: {Eio}");
            }
            data[winner].AsSpan(0, buffer.Length).CopyTo(buffer);
            if (RewriteCorrupted && !ReadOnly)
            {
                Rewrite(offset, buffer, ok, version, winner);
            }
        }
        finally
        {
            foreach (byte[]? d in data)
            {
                if (d is not null)
                {
                    ArrayPool<byte>.Shared.Return(d);
                }
            }
        }
    }

    /// <summary>rewrite-corrupted: children that lost the vote get the winning data; failures are only reported.</summary>
    private void Rewrite(long offset, ReadOnlySpan<byte> winning, bool[] ok, int[] version, int winner)
    {
        for (int i = 0; i < _children.Count; i++)
        {
            if (ok[i] && version[i] != winner)
            {
                try
                {
                    _children[i].Node.Write(offset, winning);
                }
                catch (BlockException)
                {
                    Bad("write", Eio, _children[i].Node, offset, winning.Length);
                }
            }
        }
    }

    public override void Write(long offset, ReadOnlySpan<byte> buffer)
    {
        CheckWritable();
        CheckRequest(offset, buffer.Length);
        int successes = 0;
        foreach (BlockChild child in _children)
        {
            try
            {
                child.Node.Write(offset, buffer);
                successes++;
            }
            catch (BlockException)
            {
                Bad("write", Eio, child.Node, offset, buffer.Length);
            }
        }
        CheckWriteQuorum(successes, offset);
    }

    public override void WriteZeroes(long offset, long length)
    {
        CheckWritable();
        CheckRequest(offset, length);
        int successes = 0;
        foreach (BlockChild child in _children)
        {
            try
            {
                child.Node.WriteZeroes(offset, length);
                successes++;
            }
            catch (BlockException)
            {
                Bad("write", Eio, child.Node, offset, length);
            }
        }
        CheckWriteQuorum(successes, offset);
    }

    public override void Discard(long offset, long length)
    {
        CheckWritable();
        foreach (BlockChild child in _children)
        {
            try
            {
                child.Node.Discard(offset, length);
            }
            catch (BlockException)
            {
                // Discard is advisory; a child that cannot discard still holds valid data.
            }
        }
    }

    public override void Flush()
    {
        int successes = 0;
        foreach (BlockChild child in _children)
        {
            try
            {
                child.Node.Flush();
                successes++;
            }
            catch (BlockException)
            {
                Bad("flush", Eio, child.Node, 0, 0);
            }
        }
        if (successes < Threshold)
        {
            throw new BlockException($"Quorum '{NodeName}': only {successes} of {_children.Count} children flushed: {Eio}");
        }
    }

    private void CheckWriteQuorum(int successes, long offset)
    {
        if (successes < Threshold)
        {
            throw new BlockException($"Quorum '{NodeName}': only {successes} of {_children.Count} children wrote offset {offset}: {Eio}");
        }
    }

    private void Bad(string type, string? error, BlockNode child, long offset, long length) =>
        ReportBad?.Invoke(new QuorumReportBad(type, error, child.NodeName, offset / SectorSize, Sectors(offset, length)));

    /// <summary>Sectors touched by [offset, offset+length), as QEMU counts them for the events.</summary>
    private static long Sectors(long offset, long length) =>
        length == 0 ? 0 : ((offset + length + SectorSize - 1) / SectorSize) - (offset / SectorSize);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (BlockChild child in _children)
            {
                child.Node.Dispose();
            }
        }
        base.Dispose(disposing);
    }
}
