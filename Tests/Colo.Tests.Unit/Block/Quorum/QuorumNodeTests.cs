using Colo.Block;
using Colo.Block.Quorum;
using Colo.Tests.Unit.Block.Nbd;

namespace Colo.Tests.Unit.Block.Quorum;

[TestFixture]
public sealed class QuorumNodeTests
{
    private const int Size = 64 << 10;

    /// <summary>A child whose reads and/or writes fail, like a disk with a dead sector.</summary>
    private sealed class FailingNode(int size, bool failReads, bool failWrites, string name) : BlockNode(name, false)
    {
        public MemoryNode Inner { get; } = new(size);

        public override string DriverName => "failing";

        public override long Size => Inner.Size;

        public override string Filename => "failing";

        public override void Read(long offset, Span<byte> buffer)
        {
            if (failReads)
            {
                throw new BlockException("injected read error");
            }
            Inner.Read(offset, buffer);
        }

        public override void Write(long offset, ReadOnlySpan<byte> buffer)
        {
            if (failWrites)
            {
                throw new BlockException("injected write error");
            }
            Inner.Write(offset, buffer);
        }

        public override void Flush()
        {
        }
    }

    private readonly List<QuorumReportBad> _bad = [];
    private readonly List<(long, long)> _failures = [];

    [SetUp]
    public void SetUp()
    {
        _bad.Clear();
        _failures.Clear();
    }

    private QuorumNode Quorum(int threshold, QuorumReadPattern pattern, bool rewrite, params BlockNode[] children)
    {
        var q = new QuorumNode([.. children.Select((c, i) => new BlockChild($"children.{i}", c))], threshold, pattern, rewrite, false, false, "q");
        q.ReportBad = _bad.Add;
        q.Failure = (_, s, n) => _failures.Add((s, n));
        return q;
    }

    private static MemoryNode Mem(string name, byte fill)
    {
        var m = new MemoryNode(Size, name: name);
        m.Data.AsSpan().Fill(fill);
        return m;
    }

    [Test]
    public void Vote_MajorityWins_LoserReported()
    {
        using QuorumNode q = Quorum(2, QuorumReadPattern.Quorum, false, Mem("a", 1), Mem("b", 2), Mem("c", 1));
        byte[] buf = new byte[1024];
        q.Read(1536, buf);
        Assert.Multiple(() =>
        {
            Assert.That(buf.All(b => b == 1), Is.True);
            Assert.That(_bad, Is.EqualTo(new[] { new QuorumReportBad("read", null, "b", 3, 2) }));
            Assert.That(_failures, Is.Empty);
        });
    }

    [Test]
    public void Vote_NoVersionReachesThreshold_QuorumFailureAndError()
    {
        using QuorumNode q = Quorum(2, QuorumReadPattern.Quorum, false, Mem("a", 1), Mem("b", 2), Mem("c", 3));
        Assert.Throws<BlockException>(() => q.Read(0, new byte[512]));
        Assert.That(_failures, Is.EqualTo(new[] { (0L, 1L) }));
        Assert.That(_bad, Has.Count.EqualTo(2), "the two outvoted children");
    }

    [Test]
    public void Vote_FailedChildReportedWithError_TooFewSuccessesFail()
    {
        var broken = new FailingNode(Size, failReads: true, failWrites: false, "x");
        using QuorumNode q = Quorum(2, QuorumReadPattern.Quorum, false, Mem("a", 7), broken, Mem("c", 7));
        byte[] buf = new byte[512];
        q.Read(0, buf);
        Assert.That(buf[0], Is.EqualTo(7));
        Assert.That(_bad.Single(), Is.EqualTo(new QuorumReportBad("read", "Input/output error", "x", 0, 1)));

        using QuorumNode q2 = Quorum(2, QuorumReadPattern.Quorum, false, Mem("a", 7), new FailingNode(Size, true, false, "y"));
        Assert.Throws<BlockException>(() => q2.Read(0, buf));
        Assert.That(_failures, Has.Count.EqualTo(1));
    }

    [Test]
    public void Vote_RewriteCorrupted_RepairsTheLoser()
    {
        MemoryNode b = Mem("b", 9);
        using QuorumNode q = Quorum(2, QuorumReadPattern.Quorum, true, Mem("a", 4), b, Mem("c", 4));
        q.Read(0, new byte[4096]);
        Assert.That(b.Data.AsSpan(0, 4096).ToArray().All(x => x == 4), Is.True);
        Assert.That(b.Data[4096], Is.EqualTo(9), "only the range read is rewritten");
    }

    [Test]
    public void Fifo_FirstSuccessfulChildAnswers_NoVote()
    {
        var broken = new FailingNode(Size, failReads: true, failWrites: false, "x");
        using QuorumNode q = Quorum(1, QuorumReadPattern.Fifo, false, broken, Mem("b", 5), Mem("c", 6));
        byte[] buf = new byte[512];
        q.Read(512, buf);
        Assert.That(buf[0], Is.EqualTo(5));
        Assert.That(_bad.Single(), Is.EqualTo(new QuorumReportBad("read", "Input/output error", "x", 1, 1)));
    }

    [Test]
    public void Write_AllChildren_SucceedsAtThreshold_FailsBelow()
    {
        MemoryNode a = Mem("a", 0);
        var broken = new FailingNode(Size, failReads: false, failWrites: true, "x");
        using QuorumNode q = Quorum(1, QuorumReadPattern.Fifo, false, a, broken);
        q.Write(100, "abc"u8);
        Assert.That(a.Data.AsSpan(100, 3).ToArray(), Is.EqualTo("abc"u8.ToArray()));
        Assert.That(_bad.Single(), Is.EqualTo(new QuorumReportBad("write", "Input/output error", "x", 0, 1)));

        using QuorumNode q2 = Quorum(2, QuorumReadPattern.Quorum, false, Mem("a", 0), new FailingNode(Size, false, true, "y"));
        Assert.Throws<BlockException>(() => q2.Write(0, "z"u8));
    }

    [Test]
    public void AddAndRemoveChild_NamesAndThresholdRule()
    {
        using QuorumNode q = Quorum(1, QuorumReadPattern.Fifo, false, Mem("a", 1));
        using MemoryNode added = Mem("n", 1);
        Assert.That(q.AddChild(added), Is.EqualTo("children.1"));
        q.Write(0, "w"u8);
        Assert.That(added.Data[0], Is.EqualTo((byte)'w'), "writes reach the added child");
        (BlockNode node, bool owned) = q.RemoveChild("children.1");
        Assert.That(node, Is.SameAs(added));
        Assert.That(owned, Is.False);
        Assert.That(Assert.Throws<BlockException>(() => q.RemoveChild("children.0"))!.Message, Is.EqualTo("The number of children cannot be lower than the vote threshold 1"));
        Assert.That(Assert.Throws<BlockException>(() => q.RemoveChild("children.7"))!.Message, Is.EqualTo("Node 'q' does not have child 'children.7'"));
        Assert.That(q.AddChild(added), Is.EqualTo("children.2"), "indexes are never reused");
    }
}
