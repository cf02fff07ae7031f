using System.Text.Json;
using Colo.Block;
using Colo.Block.Graph;
using Colo.Block.Qcow2;
using Colo.Block.Qmp;
using Colo.Block.Quorum;
using Colo.Core.Options;
using Colo.Core.Qmp;

namespace Colo.Tests.Unit.Block.Graph;

/// <summary>driver=quorum in the graph: QEMU 7.2's validation texts, COLO's primary drive, x-blockdev-change.</summary>
[TestFixture]
public sealed class QuorumGraphTests
{
    private string _dir = null!;
    private BlockGraph _graph = null!;
    private QmpCommandRegistry _registry = null!;
    private readonly List<QmpEventMessage> _events = [];

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "quorum-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        foreach (string n in new[] { "q1", "q2", "q3" })
        {
            Qcow2Creator.Create(P(n + ".qcow2"), new Qcow2CreateOptions { Size = 1 << 20 });
        }
        _events.Clear();
        _graph = new BlockGraph { HasIdeController = true };
        _registry = new QmpCommandRegistry();
        var bus = new QmpEventBus();
        bus.Subscribe(_events.Add);
        BlockQmpCommands.Register(_registry, _graph, bus);
        _registry.Freeze();
    }

    [TearDown]
    public void TearDown()
    {
        _graph.Dispose();
        Directory.Delete(_dir, true);
    }

    private string P(string name) => Path.Combine(_dir, name);

    private BlockBackend Drive(string spec) => _graph.AddDrive([.. KeyValParser.Parse(spec, null).Pairs]);

    private string Child(int i, string file) => $"children.{i}.file.filename={P(file)},children.{i}.driver=qcow2";

    private string Run(string name, string args)
    {
        _registry.TryGet(name, out QmpCommand c);
        return c.Invoke(JsonDocument.Parse(args).RootElement, new QmpContext(null));
    }

    private string Fails(string name, string args) => Assert.Throws<BlockException>(() => Run(name, args))!.Message;

    [TestCase("driver=quorum", "Number of provided children must be 1 or more")]
    [TestCase("driver=quorum,vote-threshold=1", "Number of provided children must be 1 or more")]
    [TestCase("driver=quorum,{0}", "Parameter 'vote-threshold' expects a value >= 1")]
    [TestCase("driver=quorum,vote-threshold=0,{0}", "Parameter 'vote-threshold' expects a value >= 1")]
    [TestCase("driver=quorum,vote-threshold=x,{0}", "Parameter 'vote-threshold' expects a number")]
    [TestCase("driver=quorum,vote-threshold=2,{0}", "threshold may not exceed children count")]
    [TestCase("driver=quorum,vote-threshold=5,read-pattern=bogus,{0}", "threshold may not exceed children count")]
    [TestCase("driver=quorum,vote-threshold=1,read-pattern=bogus,{0}", "Please set read-pattern as fifo or quorum")]
    [TestCase("driver=quorum,vote-threshold=1,blkverify=on,{0}", "blkverify=on can only be set if there are exactly two files and vote-threshold is 2")]
    [TestCase("driver=quorum,vote-threshold=2,blkverify=on,rewrite-corrupted=on,{0},{1}", "rewrite-corrupted=on cannot be used with blkverify=on")]
    [TestCase("driver=quorum,vote-threshold=1,children.0=nope", "Cannot find device='nope' nor node-name='nope'")]
    [TestCase("driver=quorum,vote-threshold=1,children.1.file.filename=x,children.1.driver=qcow2", "Option children is not a valid array")]
    [TestCase("driver=quorum,vote-threshold=1,{0},bogus=1", "Block format 'quorum' does not support the option 'bogus'")]
    public void Open_BadOptions_QemuText(string spec, string message)
    {
        string text = "if=none,id=d0," + string.Format(System.Globalization.CultureInfo.InvariantCulture, spec, Child(0, "q1.qcow2"), Child(1, "q2.qcow2"));
        Assert.That(Assert.Throws<BlockException>(() => Drive(text))!.Message, Is.EqualTo(message));
        Assert.That(_graph.Nodes, Is.Empty);
    }

    [Test]
    public void Open_FifoIgnoresBlkverifyAndRewrite_AsQemu()
    {
        BlockBackend d = Drive($"if=none,id=d0,driver=quorum,vote-threshold=1,read-pattern=fifo,blkverify=on,rewrite-corrupted=on,{Child(0, "q1.qcow2")}");
        var q = (QuorumNode)d.Root;
        Assert.That(q.Blkverify || q.RewriteCorrupted, Is.False);
    }

    [Test]
    public void ColoPrimaryDrive_OpensAndMirrorsToAnAddedChild()
    {
        // The COLO documentation's primary disk, on an IDE bus.
        BlockBackend d = Drive($"if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.file.filename={P("q1.qcow2")},children.0.driver=qcow2");
        var q = (QuorumNode)d.Root;
        Assert.Multiple(() =>
        {
            Assert.That(q.DriverName, Is.EqualTo("quorum"));
            Assert.That(q.Size, Is.EqualTo(1 << 20));
            Assert.That(q.Filename, Is.EqualTo($"json:{{\"read-pattern\": \"fifo\", \"children\": [{{\"driver\": \"qcow2\", \"file\": {{\"driver\": \"file\", \"filename\": \"{P("q1.qcow2")}\"}}}}], \"driver\": \"quorum\", \"vote-threshold\": \"1\"}}"));
            Assert.That(_graph.Nodes, Has.Count.EqualTo(3));
        });

        // drive_add -n's shape: a free node, then x-blockdev-change adds it (parent by drive id).
        _graph.AddNode([.. KeyValParser.Parse($"driver=qcow2,file.filename={P("q2.qcow2")},node-name=buddy", null).Pairs]);
        Run("x-blockdev-change", """{"parent": "colo-disk0", "node": "buddy"}""");
        Assert.That(q.Children.Select(c => c.Name), Is.EqualTo(new[] { "children.0", "children.1" }));
        q.Write(8192, "mirror"u8);
        byte[] back = new byte[6];
        _graph.FindNode("buddy")!.Read(8192, back);
        Assert.That(back, Is.EqualTo("mirror"u8.ToArray()));
        Assert.That(_graph.ChildrenOf(q)[1].Node, Is.SameAs(_graph.FindNode("buddy")));

        // Removing the added child leaves the node in the graph; removing an inline child closes it.
        Run("x-blockdev-change", """{"parent": "colo-disk0", "child": "children.1"}""");
        Assert.That(_graph.FindNode("buddy"), Is.Not.Null);
        Run("x-blockdev-change", """{"parent": "colo-disk0", "node": "buddy"}""");
        Assert.That(q.Children[^1].Name, Is.EqualTo("children.2"));
        Run("x-blockdev-change", """{"parent": "colo-disk0", "child": "children.0"}""");
        Assert.That(_graph.Nodes, Has.Count.EqualTo(3), "quorum, buddy and buddy's file");
    }

    [Test]
    public void XBlockdevChange_Errors_QemuTexts()
    {
        Drive($"if=none,id=d0,driver=quorum,vote-threshold=1,read-pattern=fifo,{Child(0, "q1.qcow2")},node-name=qn");
        Drive($"if=none,id=d1,driver=qcow2,file.filename={P("q2.qcow2")},node-name=n2");
        Drive($"if=none,id=d2,driver=qcow2,file.filename={P("q3.qcow2")},node-name=n3");
        Assert.Multiple(() =>
        {
            Assert.That(Fails("x-blockdev-change", """{"parent": "qn"}"""), Is.EqualTo("Either child or node must be specified"));
            Assert.That(Fails("x-blockdev-change", """{"parent": "qn", "child": "children.0", "node": "n2"}"""), Is.EqualTo("The parameters child and node are in conflict"));
            Assert.That(Fails("x-blockdev-change", """{"parent": "n2", "node": "n3"}"""), Is.EqualTo("The node d1 does not support adding a child"));
            Assert.That(Fails("x-blockdev-change", """{"parent": "nope", "node": "n3"}"""), Is.EqualTo("Cannot find device='nope' nor node-name='nope'"));
            Assert.That(Fails("x-blockdev-change", """{"parent": "qn", "node": "nope"}"""), Is.EqualTo("Node 'nope' not found"));
            Assert.That(Fails("x-blockdev-change", """{"parent": "qn", "node": "n2"}"""), Is.EqualTo("The node n2 already has a parent"));
            Assert.That(Fails("x-blockdev-change", """{"parent": "qn", "child": "children.5"}"""), Is.EqualTo("Node 'qn' does not have child 'children.5'"));
            Assert.That(Fails("x-blockdev-change", """{"parent": "qn", "child": "children.0"}"""), Is.EqualTo("The number of children cannot be lower than the vote threshold 1"));
            Assert.That(Fails("x-blockdev-change", """{"parent": "n2", "child": "file"}"""), Is.EqualTo("The node d1 does not support removing a child"));
        });
    }

    [Test]
    public void VoteFailure_EmitsQmpEvents_WithDriveIdAsReference()
    {
        // Two children that disagree on the first sector.
        using (BlockNode side = BlockImage.Open(P("q2.qcow2"), "qcow2", false))
        {
            side.Write(0, "different"u8);
        }
        Drive($"if=none,id=d0,driver=quorum,vote-threshold=2,{Child(0, "q1.qcow2")},{Child(1, "q2.qcow2")},node-name=qn");
        var q = (QuorumNode)_graph.FindNode("qn")!;
        Assert.Throws<BlockException>(() => q.Read(0, new byte[512]));
        string[] seen = [.. _events.Select(e => e.Name + " " + e.DataJson)];
        string child1 = _graph.ChildrenOf(q)[1].Node.NodeName;
        Assert.That(seen, Is.EqualTo(new[]
        {
            "QUORUM_REPORT_BAD {\"type\":\"read\",\"node-name\":\"" + child1 + "\",\"sector-num\":0,\"sectors-count\":1}",
            "QUORUM_FAILURE {\"reference\":\"d0\",\"sector-num\":0,\"sectors-count\":1}",
        }));
    }
}
