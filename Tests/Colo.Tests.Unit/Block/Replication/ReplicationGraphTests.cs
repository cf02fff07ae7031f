using System.Diagnostics;
using System.Text.Json;
using Colo.Block;
using Colo.Block.File;
using Colo.Block.Graph;
using Colo.Block.Nbd;
using Colo.Block.Qcow2;
using Colo.Block.Qmp;
using Colo.Block.Replication;
using Colo.Core.Options;
using Colo.Core.Qmp;

namespace Colo.Tests.Unit.Block.Replication;

/// <summary>
/// driver=replication in the graph: QEMU 7.2's option and state texts, and the COLO document's block flow
/// without a guest (two graphs in one process, the primary's replication child an NBD client of the
/// secondary's export of its disk).
/// </summary>
[TestFixture]
public sealed class ReplicationGraphTests
{
    private const int Size = 4 << 20;
    private const int K64 = 64 << 10;
    private string _dir = null!;
    private BlockGraph _secondary = null!;
    private BlockGraph _primary = null!;
    private QmpCommandRegistry _registry = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "replication-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        foreach (string n in new[] { "primary", "secondary", "secondary-active", "secondary-hidden" })
        {
            Qcow2Creator.Create(P(n + ".qcow2"), new Qcow2CreateOptions { Size = Size });
        }
        // Both disks start identical (the document copies the primary's image to the secondary).
        foreach (string n in new[] { "primary", "secondary" })
        {
            using FileNode file = FileNode.Open(P(n + ".qcow2"), false);
            using Qcow2Node q = Qcow2Node.Open(file, false);
            q.Write(0, Pattern(0x11, 2 * Size / 4));
        }
        _secondary = new BlockGraph { HasIdeController = true };
        _primary = new BlockGraph { HasIdeController = true };
        _registry = new QmpCommandRegistry();
        BlockQmpCommands.Register(_registry, _secondary, new QmpEventBus());
        _registry.Freeze();
    }

    [TearDown]
    public void TearDown()
    {
        _primary.Dispose();
        _secondary.Dispose();
        Directory.Delete(_dir, true);
    }

    private string P(string name) => Path.Combine(_dir, name);

    private static byte[] Pattern(byte value, int length) => Enumerable.Repeat(value, length).ToArray();

    private static BlockBackend Drive(BlockGraph g, string spec) => g.AddDrive([.. KeyValParser.Parse(spec, null).Pairs]);

    private string Run(string name, string args)
    {
        _registry.TryGet(name, out QmpCommand c);
        return c.Invoke(JsonDocument.Parse(args).RootElement, new QmpContext(null));
    }

    /// <summary>The document's three secondary -drive lines (colo-disk0 on the IDE controller).</summary>
    private ReplicationNode SecondaryDrives(string topId = "colo-disk0")
    {
        Drive(_secondary, $"if=none,id=parent0,file.filename={P("secondary.qcow2")},driver=qcow2");
        Drive(_secondary, $"if=none,id=childs0,driver=replication,mode=secondary,file.driver=qcow2,top-id={topId},file.file.filename={P("secondary-active.qcow2")},file.backing.driver=qcow2,file.backing.file.filename={P("secondary-hidden.qcow2")},file.backing.backing=parent0");
        Drive(_secondary, "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0=childs0");
        return (ReplicationNode)_secondary.FindBackend("childs0")!.Root;
    }

    /// <summary>The secondary's NBD export of parent0 and the primary's quorum with its replication child.</summary>
    private ReplicationNode PrimaryWithReplicationChild()
    {
        _secondary.Nbd.StartTcp("127.0.0.1", "0", 0);
        _secondary.Nbd.AddExport("parent0", null, true, null, null);
        int port = _secondary.Nbd.Server!.Port;
        Drive(_primary, $"if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.file.filename={P("primary.qcow2")},children.0.driver=qcow2");
        var node = (ReplicationNode)_primary.AddNode([.. KeyValParser.Parse($"driver=replication,mode=primary,file.driver=nbd,file.host=127.0.0.1,file.port={port},file.export=parent0,node-name=replication0", null).Pairs]);
        _primary.ChangeChild("colo-disk0", null, "replication0");
        return node;
    }

    private Qcow2Node Active => (Qcow2Node)_secondary.Nodes.Single(n => n.Filename == P("secondary-active.qcow2") && n is Qcow2Node);

    private Qcow2Node Hidden => (Qcow2Node)_secondary.Nodes.Single(n => n.Filename == P("secondary-hidden.qcow2") && n is Qcow2Node);

    private BlockNode Parent0 => _secondary.FindBackend("parent0")!.Root;

    private static byte[] ReadBack(BlockNode node, long offset, int length)
    {
        byte[] b = new byte[length];
        node.Read(offset, b);
        return b;
    }

    private static int Allocated(Qcow2Node q)
    {
        int n = 0;
        for (long c = 0; c < q.Size / q.ClusterSize; c++)
        {
            n += q.GetClusterStatus(c) == Qcow2ClusterStatus.Unallocated ? 0 : 1;
        }
        return n;
    }

    // ---- Options (texts checked against qemu-system-x86_64 7.2) --------------------------------

    [TestCase("mode=secondary,file.driver=qcow2,file.file.filename={0}", "Missing the option top-id")]
    [TestCase("file.driver=qcow2,file.file.filename={0}", "Missing the option mode")]
    [TestCase("mode=primary,top-id=x,file.driver=qcow2,file.file.filename={0}", "The primary side does not support option top-id")]
    [TestCase("mode=foo,file.driver=qcow2,file.file.filename={0}", "The option mode's value should be primary or secondary")]
    [TestCase("mode=primary", "A block device must be specified for \"file\"")]
    [TestCase("mode=primary,foo=1,file.driver=qcow2,file.file.filename={0}", "Block format 'replication' does not support the option 'foo'")]
    public void Open_BadOptions_QemuText(string options, string message)
    {
        string spec = "if=none,id=r0,driver=replication," + string.Format(System.Globalization.CultureInfo.InvariantCulture, options, P("secondary-active.qcow2"));
        BlockException e = Assert.Throws<BlockException>(() => Drive(_secondary, spec))!;
        Assert.That(e.Message, Is.EqualTo(message));
        Assert.That(_secondary.Nodes, Is.Empty, "nothing stays open after a failed -drive");
    }

    [Test]
    public void Open_Primary_JsonFilenameAsQemu()
    {
        BlockBackend d = Drive(_secondary, $"if=none,id=r0,driver=replication,mode=primary,file.driver=qcow2,file.file.filename={P("secondary-active.qcow2")}");
        Assert.That(d.Root.DriverName, Is.EqualTo("replication"));
        Assert.That(d.Root.Filename, Is.EqualTo($"json:{{\"driver\": \"replication\", \"mode\": \"primary\", \"file\": {{\"driver\": \"qcow2\", \"file\": {{\"driver\": \"file\", \"filename\": \"{P("secondary-active.qcow2")}\"}}}}}}"));
        Assert.That(BlockGraph.PlannedDrivers, Does.Not.Contain("replication"));
    }

    // ---- Primary -------------------------------------------------------------------------------

    [Test]
    public void Primary_BeforeStart_ReadsAndWritesFail_QuorumStillWrites()
    {
        SecondaryDrives();
        ReplicationNode r = PrimaryWithReplicationChild();
        Assert.That(() => r.Read(0, new byte[512]), Throws.TypeOf<BlockException>().With.Message.EqualTo("Input/output error"));
        Assert.That(() => r.Write(0, new byte[512]), Throws.TypeOf<BlockException>().With.Message.EqualTo("Input/output error"));
        BlockNode quorum = _primary.FindBackend("colo-disk0")!.Root;
        quorum.Write(0, Pattern(0x22, 512)); // threshold 1: the local child carries it
        Assert.That(ReadBack(Parent0, 0, 512), Is.EqualTo(Pattern(0x11, 512)), "nothing forwarded before start");
        Assert.That(r.GetError(), Is.EqualTo("Block replication is not running"));
    }

    [Test]
    public void Primary_StateMachine_QemuTexts()
    {
        SecondaryDrives();
        ReplicationNode r = PrimaryWithReplicationChild();
        Assert.That(() => r.Stop(false), Throws.TypeOf<BlockException>().With.Message.EqualTo("Block replication is not running"));
        Assert.That(() => r.Start(ReplicationMode.Secondary), Throws.TypeOf<BlockException>().With.Message.EqualTo("The parameter mode's value is invalid, needs 0, but got 1"));
        r.DoCheckpoint(); // the primary has nothing to do at a checkpoint, running or not
        r.Start(ReplicationMode.Primary);
        Assert.That(r.GetError(), Is.Null);
        Assert.That(() => r.Start(ReplicationMode.Primary), Throws.TypeOf<BlockException>().With.Message.EqualTo("Block replication is running or done"));
        r.Stop(false);
        Assert.That(r.Stage, Is.EqualTo(ReplicationStage.Done));
        r.Stop(false); // done: ignored, as QEMU does
        r.Start(ReplicationMode.Primary); // likewise
        Assert.That(() => r.Write(0, new byte[512]), Throws.TypeOf<BlockException>());
        Assert.That(r.GetError(), Is.Null);
    }

    [Test]
    public void Primary_LostSecondary_WriteSucceedsAndErrorIsReported()
    {
        SecondaryDrives();
        ReplicationNode r = PrimaryWithReplicationChild();
        r.Start(ReplicationMode.Primary);
        _secondary.Nbd.Stop(); // the secondary goes away
        BlockNode quorum = _primary.FindBackend("colo-disk0")!.Root;
        Assert.DoesNotThrow(() => r.Write(0, Pattern(0x33, 512)));
        Assert.DoesNotThrow(() => quorum.Write(0, Pattern(0x33, 512)));
        Assert.That(r.GetError(), Is.EqualTo("I/O error occurred"));
    }

    // ---- Secondary -----------------------------------------------------------------------------

    [Test]
    public void Secondary_StartChecks_QemuTexts()
    {
        ReplicationNode r = SecondaryDrives(topId: "nosuch");
        Assert.That(() => r.DoCheckpoint(), Throws.TypeOf<BlockException>().With.Message.EqualTo("Backup job was cancelled unexpectedly"));
        Assert.That(() => r.Read(0, new byte[512]), Throws.TypeOf<BlockException>().With.Message.EqualTo("Input/output error"));
        Assert.That(() => r.Start(ReplicationMode.Primary), Throws.TypeOf<BlockException>().With.Message.EqualTo("The parameter mode's value is invalid, needs 1, but got 0"));
        Assert.That(() => r.Start(ReplicationMode.Secondary), Throws.TypeOf<BlockException>().With.Message.EqualTo("No top_bs or it is invalid"));
        Assert.That(r.Stage, Is.EqualTo(ReplicationStage.None));
    }

    [Test]
    public void Secondary_DiskWithoutBackend_Refused()
    {
        Drive(_secondary, $"if=none,id=childs0,driver=replication,mode=secondary,top-id=childs0,file.driver=qcow2,file.file.filename={P("secondary-active.qcow2")},file.backing.driver=qcow2,file.backing.file.filename={P("secondary-hidden.qcow2")},file.backing.backing.driver=qcow2,file.backing.backing.file.filename={P("secondary.qcow2")}");
        var r = (ReplicationNode)_secondary.FindBackend("childs0")!.Root;
        Assert.That(() => r.Start(ReplicationMode.Secondary), Throws.TypeOf<BlockException>().With.Message.EqualTo("The secondary disk doesn't have block backend"));
    }

    [Test]
    public void Secondary_NoHiddenDisk_Refused()
    {
        Drive(_secondary, $"if=none,id=childs0,driver=replication,mode=secondary,top-id=childs0,file.driver=qcow2,file.file.filename={P("secondary-active.qcow2")}");
        var r = (ReplicationNode)_secondary.FindBackend("childs0")!.Root;
        Assert.That(() => r.Start(ReplicationMode.Secondary), Throws.TypeOf<BlockException>().With.Message.EqualTo("Active disk doesn't have backing file"));
    }

    [Test]
    public void Secondary_StopWithoutFailover_AsQemu_ErrorAndDone()
    {
        ReplicationNode r = SecondaryDrives();
        r.Start(ReplicationMode.Secondary);
        Assert.That(() => r.Stop(false), Throws.TypeOf<BlockException>().With.Message.EqualTo("Backup job was cancelled unexpectedly"));
        Assert.That(r.Stage, Is.EqualTo(ReplicationStage.Done));
        Assert.That(r.GetError(), Is.EqualTo("I/O error occurred"));
    }

    [Test]
    public void Secondary_CopyBeforeWrite_OncePerClusterPerCheckpoint()
    {
        ReplicationNode r = SecondaryDrives();
        _secondary.Nbd.StartTcp("127.0.0.1", "0", 0);
        _secondary.Nbd.AddExport("parent0", null, true, null, null);
        r.Start(ReplicationMode.Secondary);
        BlockNode front = _secondary.Nbd.Exports[0].Node;
        Assert.That(front, Is.SameAs(r.CopyBeforeWrite), "the export writes through the filter once started");
        front.Write(100, Pattern(0x44, 512));
        front.Write(K64 - 10, Pattern(0x44, 20)); // straddles clusters 0 and 1
        front.Write(200, Pattern(0x45, 512));
        Assert.That(r.Status.CopiedClusters, Is.EqualTo(2));
        Assert.That(ReadBack(Hidden, 0, 2 * K64), Is.EqualTo(Pattern(0x11, 2 * K64)), "hidden keeps the checkpoint's data");
        r.DoCheckpoint();
        Assert.That(r.Status.CopiedClusters, Is.Zero);
        front.Write(0, Pattern(0x46, 512));
        Assert.That(r.Status.CopiedClusters, Is.EqualTo(1));
        byte[] expected = Pattern(0x11, K64);
        Pattern(0x44, 512).CopyTo(expected, 100);
        Pattern(0x45, 512).CopyTo(expected, 200);
        Pattern(0x44, 10).CopyTo(expected, K64 - 10);
        Assert.That(ReadBack(Hidden, 0, K64), Is.EqualTo(expected), "after a checkpoint the copy is the checkpoint's data again");
        r.Stop(true);
        Assert.That(r.WaitForFailover(TimeSpan.FromSeconds(30)), Is.True);
        Assert.That(r.CopyBeforeWrite, Is.Null);
        front.Write(5 * K64, Pattern(0x47, 512)); // after failover: straight to the disk, nothing copied
        Assert.That(ReadBack(Parent0, 5 * K64, 512), Is.EqualTo(Pattern(0x47, 512)));
        Assert.That(((ReplicationCopyBeforeWrite)front).Copying, Is.False);
        Assert.That(((ReplicationCopyBeforeWrite)front).CopiedClusters, Is.EqualTo(1));
        _secondary.DeleteDrive("colo-disk0");
        _secondary.DeleteDrive("childs0");
        Assert.That(NbdServerHost.Underlying(_secondary.Nbd.Exports[0].Node), Is.SameAs(Parent0), "the filter leaves with the replication node");
    }

    [Test]
    public void Secondary_ExportAddedWhileRunning_GoesThroughFilter()
    {
        ReplicationNode r = SecondaryDrives();
        r.Start(ReplicationMode.Secondary);
        _secondary.Nbd.StartTcp("127.0.0.1", "0", 0);
        _secondary.Nbd.AddExport("parent0", null, true, null, null);
        Assert.That(_secondary.Nbd.Exports[0].Node, Is.SameAs(r.CopyBeforeWrite));
        Assert.That(_secondary.Nbd.Exports[0].Node.NodeName, Is.EqualTo(Parent0.NodeName));
    }

    /// <summary>The document's block flow, end to end in one process.</summary>
    [Test]
    public void DocumentFlow_WritesReplicate_HiddenHoldsOld_CheckpointEmpties_FailoverCommits()
    {
        ReplicationNode secondary = SecondaryDrives();
        ReplicationNode primary = PrimaryWithReplicationChild();
        BlockNode primaryDisk = _primary.FindBackend("colo-disk0")!.Root;
        BlockNode secondaryVmDisk = _secondary.FindBackend("colo-disk0")!.Root;

        _secondary.Replication.StartAll(ReplicationMode.Secondary);
        _primary.Replication.StartAll(ReplicationMode.Primary);
        Assert.That(_secondary.Replication.GetErrorAll(), Is.Null);
        Assert.That(_primary.Replication.GetErrorAll(), Is.Null);

        // The primary writes: it reaches the secondary disk; the hidden disk keeps the old contents;
        // the secondary VM still sees the checkpoint's data.
        primaryDisk.Write(0, Pattern(0xab, K64));
        Assert.That(ReadBack(Parent0, 0, K64), Is.EqualTo(Pattern(0xab, K64)));
        Assert.That(Hidden.GetClusterStatus(0), Is.EqualTo(Qcow2ClusterStatus.Data));
        Assert.That(ReadBack(Hidden, 0, K64), Is.EqualTo(Pattern(0x11, K64)));
        Assert.That(ReadBack(secondaryVmDisk, 0, K64), Is.EqualTo(Pattern(0x11, K64)));

        // The secondary VM writes into its active disk only.
        secondaryVmDisk.Write(K64, Pattern(0xcd, K64));
        Assert.That(Active.GetClusterStatus(1), Is.EqualTo(Qcow2ClusterStatus.Data));
        Assert.That(ReadBack(Parent0, K64, K64), Is.EqualTo(Pattern(0x11, K64)));

        // Checkpoint: active and hidden empty; the secondary VM now sees the primary's disk.
        _secondary.Replication.DoCheckpointAll();
        _primary.Replication.DoCheckpointAll();
        Assert.That(Allocated(Active), Is.Zero);
        Assert.That(Allocated(Hidden), Is.Zero);
        Assert.That(ReadBack(secondaryVmDisk, 0, K64), Is.EqualTo(Pattern(0xab, K64)));
        Assert.That(ReadBack(secondaryVmDisk, K64, K64), Is.EqualTo(Pattern(0x11, K64)));

        // Another interval, then failover: the secondary disk takes the secondary VM's view (its own
        // writes, and the hidden disk's copy where the primary wrote since the checkpoint).
        primaryDisk.Write(0, Pattern(0xef, K64));
        secondaryVmDisk.Write(2 * K64, Pattern(0x77, K64));
        _primary.Replication.StopAll(false);
        _secondary.Replication.StopAll(true);
        Assert.That(secondary.WaitForFailover(TimeSpan.FromSeconds(30)), Is.True);
        Assert.That(secondary.Stage, Is.EqualTo(ReplicationStage.Done));
        Assert.That(primary.Stage, Is.EqualTo(ReplicationStage.Done));
        Assert.That(_secondary.Replication.GetErrorAll(), Is.Null);
        Assert.That(ReadBack(Parent0, 0, K64), Is.EqualTo(Pattern(0xab, K64)));
        Assert.That(ReadBack(Parent0, 2 * K64, K64), Is.EqualTo(Pattern(0x77, K64)));
        Assert.That(_secondary.ChildrenOf(secondary).Single().Node, Is.SameAs(Parent0), "the secondary disk took the active disk's place");
        Assert.That(_secondary.Nodes.Any(n => n is not ReplicationNode && (n.Filename.Contains("secondary-active", StringComparison.Ordinal) || n.Filename.Contains("secondary-hidden", StringComparison.Ordinal))), Is.False);

        // The secondary VM goes on, on the secondary disk itself.
        secondaryVmDisk.Write(3 * K64, Pattern(0x99, 512));
        Assert.That(ReadBack(Parent0, 3 * K64, 512), Is.EqualTo(Pattern(0x99, 512)));

        _primary.Dispose();
        _secondary.Dispose();
        foreach (string n in new[] { "primary", "secondary", "secondary-active", "secondary-hidden" })
        {
            QemuImgCheck(P(n + ".qcow2"));
        }
    }

    [Test]
    public void Qmp_XenSetReplication_AsQemu()
    {
        SecondaryDrives();
        Assert.That(Run("query-xen-replication-status", "{}"), Is.EqualTo("{\"error\":true,\"desc\":\"Block replication is not running\"}"));
        Assert.That(() => Run("xen-colo-do-checkpoint", "{}"), Throws.TypeOf<BlockException>().With.Message.EqualTo("Backup job was cancelled unexpectedly"));
        Assert.That(() => Run("xen-set-replication", "{\"enable\":true,\"primary\":false,\"failover\":true}"), Throws.TypeOf<BlockException>().With.Message.EqualTo("Parameter 'failover' is only for stopping replication"));
        Assert.That(() => Run("xen-set-replication", "{\"enable\":false,\"primary\":false}"), Throws.TypeOf<BlockException>().With.Message.EqualTo("Block replication is not running"));
        Assert.That(() => Run("xen-set-replication", "{\"enable\":true,\"primary\":true}"), Throws.TypeOf<BlockException>().With.Message.EqualTo("The parameter mode's value is invalid, needs 1, but got 0"));
        Run("xen-set-replication", "{\"enable\":true,\"primary\":false}");
        Assert.That(Run("query-xen-replication-status", "{}"), Is.EqualTo("{\"error\":false}"));
        Run("xen-colo-do-checkpoint", "{}");
        Run("xen-set-replication", "{\"enable\":false,\"primary\":false,\"failover\":true}");
        Assert.That(Run("query-xen-replication-status", "{}"), Is.EqualTo("{\"error\":false}"));
    }

    [Test]
    public void DeleteDrive_WhileRunning_ExportBackOnDisk()
    {
        ReplicationNode r = SecondaryDrives();
        _secondary.Nbd.StartTcp("127.0.0.1", "0", 0);
        _secondary.Nbd.AddExport("parent0", null, true, null, null);
        r.Start(ReplicationMode.Secondary);
        _secondary.DeleteDrive("colo-disk0");
        _secondary.DeleteDrive("childs0");
        Assert.That(NbdServerHost.Underlying(_secondary.Nbd.Exports[0].Node), Is.SameAs(Parent0));
        Assert.DoesNotThrow(() => Parent0.Write(0, Pattern(1, 512)));
    }

    /// <summary>Real qemu-img check, when installed, must find no corruption (leaks allowed).</summary>
    private static void QemuImgCheck(string path)
    {
        string? qemuImg = new[] { "/usr/bin/qemu-img", "/usr/local/bin/qemu-img" }.FirstOrDefault(System.IO.File.Exists);
        if (qemuImg is null)
        {
            return;
        }
        var psi = new ProcessStartInfo(qemuImg, ["check", "-f", "qcow2", path]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using Process p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.That(p.ExitCode, Is.EqualTo(0).Or.EqualTo(3), $"{path}: {output}");
    }
}
