using Colo.Block;
using Colo.Block.Graph;
using Colo.Block.Jobs;

namespace Colo.Tests.Unit.Block.Jobs;

/// <summary>drive-mirror through the block graph on raw files: convergence under concurrent writes, cancel, complete.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class MirrorJobTests
{
    private const int Size = 4 << 20;
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "mirror-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private sealed class Recorder : IBlockJobListener
    {
        private readonly Lock _lock = new();

        public List<string> Events { get; } = [];

        public ManualResetEventSlim ReadySeen { get; } = new();

        public ManualResetEventSlim Gone { get; } = new();

        public void StatusChanged(BlockJob job) => Add("status " + JobStateMachine.Name(job.Status), job.Status == JobStatus.Null ? Gone : null);

        public void Ready(BlockJob job) => Add($"READY {job.Offset}/{job.Length}", ReadySeen);

        public void Completed(BlockJob job, string? error) => Add("COMPLETED" + (error is null ? "" : " " + error), null);

        public void Cancelled(BlockJob job) => Add("CANCELLED", null);

        public void IoError(BlockJob job, string operation, string action) => Add($"ERROR {operation} {action}", null);

        public string[] Snapshot()
        {
            lock (_lock)
            {
                return [.. Events];
            }
        }

        private void Add(string e, ManualResetEventSlim? signal)
        {
            lock (_lock)
            {
                Events.Add(e);
            }
            signal?.Set();
        }
    }

    private (BlockGraph Graph, BlockBackend Drive, Recorder Events) Open(string sourcePath)
    {
        var graph = new BlockGraph();
        BlockBackend drive = graph.AddDrive([new("if", "none"), new("id", "d0"), new("format", "raw"), new("file", sourcePath)]);
        var recorder = new Recorder();
        graph.Jobs.Listener = recorder;
        return (graph, drive, recorder);
    }

    private string Source()
    {
        string path = Path.Combine(_dir, "src.raw");
        byte[] data = new byte[Size];
        new Random(1).NextBytes(data.AsSpan(0, Size / 2));
        System.IO.File.WriteAllBytes(path, data);
        return path;
    }

    private static DriveMirrorRequest Request(string target, string sync = "full", long? granularity = null) =>
        new("d0", null, target, "raw", sync, null, null, granularity, null, null, null, null, null, null, null);

    [Test]
    public void DriveMirror_WritesDuringCopyThenCancelAfterReady_TargetIdenticalAndDriveStaysOnSource()
    {
        string target = Path.Combine(_dir, "dst.raw");
        (BlockGraph graph, BlockBackend drive, Recorder events) = Open(Source());
        using (graph)
        {
            MirrorJob job = graph.StartDriveMirror(Request(target, granularity: 4096));
            Assert.That(job.Id, Is.EqualTo("d0"));

            // The guest's view keeps writing while the job copies: random 4 KiB writes through the drive.
            var rng = new Random(2);
            byte[] block = new byte[4096];
            for (int i = 0; i < 2000; i++)
            {
                rng.NextBytes(block);
                drive.Device.Write(rng.Next(Size / 4096) * 4096L, block);
            }
            Assert.That(events.ReadySeen.Wait(TimeSpan.FromSeconds(30)), Is.True, string.Join(", ", events.Snapshot()));
            for (int i = 0; i < 200; i++)
            {
                rng.NextBytes(block);
                drive.Device.Write(rng.Next(Size / 4096) * 4096L, block);
            }
            job.Cancel(force: false);
            Assert.That(events.Gone.Wait(TimeSpan.FromSeconds(30)), Is.True, string.Join(", ", events.Snapshot()));

            Assert.That(drive.Root, Is.Not.InstanceOf<MirrorJob>());
            Assert.That(drive.Root.Filename, Does.EndWith("src.raw"));
            graph.FlushAll();
            Assert.That(System.IO.File.ReadAllBytes(target), Is.EqualTo(System.IO.File.ReadAllBytes(drive.Root.Filename)));
            Assert.That(events.Snapshot(), Is.EqualTo(new[]
            {
                "status created", "status running", "status ready", events.Snapshot()[3], "status waiting", "status pending",
                "COMPLETED", "status concluded", "status null",
            }));
            Assert.That(events.Snapshot()[3], Does.StartWith("READY "));
            Assert.That(graph.Jobs.Jobs, Is.Empty);
            Assert.That(graph.Nodes.Select(n => n.Filename), Has.None.EndWith("dst.raw"), "the target is closed");

            // After the cancel, writes reach the source only.
            drive.Device.Write(0, new byte[4096]);
        }
    }

    [Test]
    public void DriveMirror_Complete_DriveUsesTargetAndSourceCloses()
    {
        string target = Path.Combine(_dir, "dst.raw");
        string source = Source();
        (BlockGraph graph, BlockBackend drive, Recorder events) = Open(source);
        using (graph)
        {
            MirrorJob job = graph.StartDriveMirror(Request(target));
            Assert.That(events.ReadySeen.Wait(TimeSpan.FromSeconds(30)), Is.True);
            Assert.Throws<BlockException>(() => graph.StartDriveMirror(Request(Path.Combine(_dir, "x.raw"))), "Need a root block node");
            job.Complete();
            Assert.That(events.Gone.Wait(TimeSpan.FromSeconds(30)), Is.True);
            Assert.That(drive.Root.Filename, Is.EqualTo(target));
            byte[] pattern = Enumerable.Repeat((byte)0x5a, 4096).ToArray();
            drive.Device.Write(8192, pattern);
            drive.Device.Flush();
            byte[] back = System.IO.File.ReadAllBytes(target);
            Assert.That(back.AsSpan(8192, 4096).ToArray(), Is.EqualTo(pattern));
            Assert.That(System.IO.File.ReadAllBytes(source).AsSpan(8192, 4096).ToArray(), Is.Not.EqualTo(pattern));
            Assert.That(events.Snapshot(), Does.Contain("COMPLETED"));
        }
    }

    [Test]
    public void DriveMirror_CancelBeforeReady_CancelledAndTargetClosed()
    {
        string target = Path.Combine(_dir, "dst.raw");
        (BlockGraph graph, BlockBackend drive, Recorder events) = Open(Source());
        using (graph)
        {
            // 64 KiB/s over 4 MiB: the job is far from ready when cancelled.
            MirrorJob job = graph.StartDriveMirror(Request(target) with { Speed = 64 << 10 });
            Assert.Throws<BlockException>(job.Complete, "Job 'd0' in state 'running' cannot accept command verb 'complete'");
            job.Cancel(force: false);
            Assert.That(events.Gone.Wait(TimeSpan.FromSeconds(30)), Is.True);
            Assert.That(events.Snapshot(), Is.EqualTo(new[] { "status created", "status running", "status aborting", "CANCELLED", "status concluded", "status null" }));
            Assert.That(drive.Root.Filename, Does.EndWith("src.raw"));
        }
    }

    [Test]
    public void DriveMirror_SyncNone_ReadyAtOnceAndCopiesOnlyNewWrites()
    {
        string target = Path.Combine(_dir, "dst.raw");
        (BlockGraph graph, BlockBackend drive, Recorder events) = Open(Source());
        using (graph)
        {
            MirrorJob job = graph.StartDriveMirror(Request(target, sync: "none"));
            Assert.That(events.ReadySeen.Wait(TimeSpan.FromSeconds(30)), Is.True);
            Assert.That(events.Snapshot(), Does.Contain("READY 0/0"));
            byte[] pattern = Enumerable.Repeat((byte)0xc3, 65536).ToArray();
            drive.Device.Write(1 << 20, pattern);
            job.Cancel(force: false);
            Assert.That(events.Gone.Wait(TimeSpan.FromSeconds(30)), Is.True);
            byte[] t = System.IO.File.ReadAllBytes(target);
            Assert.That(t.AsSpan(1 << 20, 65536).ToArray(), Is.EqualTo(pattern));
            Assert.That(t.AsSpan(0, 4096).ToArray(), Is.All.Zero, "old data is not copied with sync=none");
        }
    }

    [TestCase("nope", "Cannot find device='nope' nor node-name='nope'")]
    public void DriveMirror_UnknownDevice_QemuText(string device, string text)
    {
        (BlockGraph graph, _, _) = Open(Source());
        using (graph)
        {
            var e = Assert.Throws<BlockException>(() => graph.StartDriveMirror(Request(Path.Combine(_dir, "t.raw")) with { Device = device }));
            Assert.That(e!.Message, Is.EqualTo(text));
        }
    }

    [Test]
    public void DriveMirror_BadArguments_QemuTexts()
    {
        (BlockGraph graph, _, _) = Open(Source());
        using (graph)
        {
            string t = Path.Combine(_dir, "t.raw");
            Assert.That(Assert.Throws<BlockException>(() => graph.StartDriveMirror(Request(t) with { Sync = "incremental" }))!.Message, Is.EqualTo("Sync mode 'incremental' not supported"));
            Assert.That(Assert.Throws<BlockException>(() => graph.StartDriveMirror(Request(t) with { Speed = -1 }))!.Message, Is.EqualTo("Parameter 'speed' expects a non-negative value"));
            Assert.That(Assert.Throws<BlockException>(() => graph.StartDriveMirror(Request(t) with { JobId = "1bad" }))!.Message, Is.EqualTo("Invalid job ID '1bad'"));
            Assert.That(Assert.Throws<BlockException>(() => graph.StartDriveMirror(Request(t) with { Granularity = 1000 }))!.Message, Is.EqualTo("Parameter 'granularity' expects a power of 2"));
            Assert.That(Assert.Throws<BlockException>(() => graph.StartDriveMirror(Request(t) with { Format = "vmdkx" }))!.Message, Is.EqualTo("Unknown file format 'vmdkx'"));
            Assert.That(Assert.Throws<BlockException>(() => graph.StartDriveMirror(Request(t) with { Mode = "existing", Target = Path.Combine(_dir, "none.raw") }))!.Message,
                Is.EqualTo($"Could not open '{Path.Combine(_dir, "none.raw")}': No such file or directory"));
            Assert.That(graph.Jobs.Jobs, Is.Empty);
            Assert.That(graph.Nodes, Has.Count.EqualTo(2), "nothing left open by the refused requests");
        }
    }

    [Test]
    public void DriveMirror_SyncTop_CopiesOnlyTopClustersAndTargetBacksOnSourceBacking()
    {
        // base: 1 MiB of 0x11; top (relative backing name): 2 clusters of its own at 128 KiB and 1 MiB.
        string basePath = Path.Combine(_dir, "base.qcow2");
        string topPath = Path.Combine(_dir, "top.qcow2");
        string target = Path.Combine(_dir, "dst.qcow2");
        Colo.Block.Qcow2.Qcow2Creator.Create(basePath, new Colo.Block.Qcow2.Qcow2CreateOptions { Size = Size });
        using (BlockNode b = BlockImage.Open(basePath, "qcow2", readOnly: false))
        {
            b.Write(0, Enumerable.Repeat((byte)0x11, 1 << 20).ToArray());
        }
        Colo.Block.Qcow2.Qcow2Creator.Create(topPath, new Colo.Block.Qcow2.Qcow2CreateOptions { Size = Size, BackingFile = "base.qcow2", BackingFormat = "qcow2" });
        var graph = new BlockGraph();
        BlockBackend drive = graph.AddDrive([new("if", "none"), new("id", "d0"), new("format", "qcow2"), new("file", topPath)]);
        var events = new Recorder();
        graph.Jobs.Listener = events;
        using (graph)
        {
            drive.Device.Write(128 << 10, Enumerable.Repeat((byte)0x22, 4096).ToArray());
            drive.Device.Write(1 << 20, Enumerable.Repeat((byte)0x33, 65536).ToArray());
            MirrorJob job = graph.StartDriveMirror(new("d0", null, target, "qcow2", "top", null, null, null, null, null, null, null, null, null, null));
            Assert.That(events.ReadySeen.Wait(TimeSpan.FromSeconds(30)), Is.True, string.Join(", ", events.Snapshot()));
            Assert.That(events.Snapshot(), Does.Contain("READY 131072/131072"), "two 64 KiB clusters, not the whole disk");
            job.Cancel(force: false);
            Assert.That(events.Gone.Wait(TimeSpan.FromSeconds(30)), Is.True);
        }

        using var t = (Colo.Block.Qcow2.Qcow2Node)BlockImage.Open(target, "qcow2", readOnly: true);
        Assert.That(t.Header.BackingFile, Is.EqualTo(Path.GetFullPath(basePath)), "absolute-paths: the backing node's filename");
        Assert.That(t.GetClusterStatus(0), Is.EqualTo(Colo.Block.Qcow2.Qcow2ClusterStatus.Unallocated), "base-only data is not copied");
        Assert.That(t.GetClusterStatus(2), Is.EqualTo(Colo.Block.Qcow2.Qcow2ClusterStatus.Data));
        using BlockNode src = BlockImage.Open(topPath, "qcow2", readOnly: true);
        byte[] a = new byte[Size];
        byte[] b2 = new byte[Size];
        src.Read(0, a);
        t.Read(0, b2);
        Assert.That(b2, Is.EqualTo(a), "the target over the same backing reads as the source");
    }

    [Test]
    public void CancelJobsAtQuit_RunningJob_DrainedThenCancelledAsQemu()
    {
        (BlockGraph graph, _, Recorder events) = Open(Source());
        using (graph)
        {
            graph.StartDriveMirror(Request(Path.Combine(_dir, "dst.raw")) with { Speed = 64 << 10 });
            graph.CancelJobsAtQuit();
            // QEMU 7.2 at quit: the drain pauses and resumes the job, then it is cancelled.
            Assert.That(events.Snapshot(), Is.EqualTo(new[]
            {
                "status created", "status running", "status paused", "status running", "status aborting", "CANCELLED", "status concluded", "status null",
            }));
            Assert.That(graph.Jobs.Jobs, Is.Empty);
        }
    }

    [Test]
    public void CancelJobsAtQuit_ReadyJob_StandbyReadyThenCancelled()
    {
        (BlockGraph graph, _, Recorder events) = Open(Source());
        using (graph)
        {
            graph.StartDriveMirror(Request(Path.Combine(_dir, "dst.raw")));
            Assert.That(events.ReadySeen.Wait(TimeSpan.FromSeconds(30)), Is.True);
            graph.CancelJobsAtQuit();
            string[] seen = events.Snapshot();
            Assert.That(seen[4..], Is.EqualTo(new[]
            {
                "status standby", "status ready", "status aborting", "CANCELLED", "status concluded", "status null",
            }), string.Join(", ", seen));
        }
    }
}
