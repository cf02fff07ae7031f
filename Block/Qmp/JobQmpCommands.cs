using Colo.Block.Graph;
using Colo.Block.Jobs;
using Colo.Core.Qmp;

namespace Colo.Block.Qmp;

/// <summary>The block-job QMP commands and events: drive-mirror, block-job-*, job-*, query-block-jobs, query-jobs.</summary>
public static class JobQmpCommands
{
    public static void Register(QmpCommandRegistry r, BlockGraph graph, QmpEventBus events)
    {
        JobQmpJsonContext j = JobQmpJsonContext.Default;
        BlockJobManager jobs = graph.Jobs;
        jobs.Listener = new EventListener(events);
        r.Register("drive-mirror", j.DriveMirrorArgs, j.QmpEmpty, a => Done(() => graph.StartDriveMirror(Request(a))));
        r.Register("query-block-jobs", j.QmpNoArgs, j.BlockJobInfoArray, _ => QueryBlockJobs(jobs));
        r.Register("query-jobs", j.QmpNoArgs, j.JobInfoArray, _ => QueryJobs(jobs));
        r.Register("block-job-cancel", j.BlockJobCancelArgs, j.QmpEmpty, a => Done(() => jobs.Get(a.Device).Cancel(a.Force ?? false)));
        r.Register("block-job-complete", j.BlockJobDeviceArgs, j.QmpEmpty, a => Done(() => jobs.Get(a.Device).Complete()));
        r.Register("block-job-pause", j.BlockJobDeviceArgs, j.QmpEmpty, a => Done(() => jobs.Get(a.Device).Pause()));
        r.Register("block-job-resume", j.BlockJobDeviceArgs, j.QmpEmpty, a => Done(() => jobs.Get(a.Device).Resume()));
        r.Register("block-job-set-speed", j.BlockJobSetSpeedArgs, j.QmpEmpty, a => Done(() => jobs.Get(a.Device).SetSpeed(a.Speed)));
        r.Register("block-job-dismiss", j.BlockJobDeviceArgs, j.QmpEmpty, a => Done(() => jobs.Get(a.Device).Dismiss()));
        r.Register("block-job-finalize", j.BlockJobDeviceArgs, j.QmpEmpty, a => Done(() => jobs.Get(a.Device).FinalizeJob()));
        r.Register("job-cancel", j.JobIdArgs, j.QmpEmpty, a => Done(() => jobs.GetJob(a.Id).Cancel(force: true)));
        r.Register("job-complete", j.JobIdArgs, j.QmpEmpty, a => Done(() => jobs.GetJob(a.Id).Complete()));
        r.Register("job-pause", j.JobIdArgs, j.QmpEmpty, a => Done(() => jobs.GetJob(a.Id).Pause()));
        r.Register("job-resume", j.JobIdArgs, j.QmpEmpty, a => Done(() => jobs.GetJob(a.Id).Resume()));
        r.Register("job-dismiss", j.JobIdArgs, j.QmpEmpty, a => Done(() => jobs.GetJob(a.Id).Dismiss()));
        r.Register("job-finalize", j.JobIdArgs, j.QmpEmpty, a => Done(() => jobs.GetJob(a.Id).FinalizeJob()));
    }

    public static BlockJobInfo[] QueryBlockJobs(BlockJobManager jobs)
    {
        BlockJob[] all = jobs.Jobs;
        var list = new BlockJobInfo[all.Length];
        for (int i = 0; i < all.Length; i++)
        {
            BlockJob b = all[i];
            list[i] = new BlockJobInfo(b.Type, b.Id, b.Length, b.Offset, b.Busy, b.Paused, b.Speed, "ok", b.IsReady,
                JobStateMachine.Name(b.Status), b.AutoFinalize, b.AutoDismiss, b.Error);
        }
        return list;
    }

    public static JobInfo[] QueryJobs(BlockJobManager jobs)
    {
        BlockJob[] all = jobs.Jobs;
        var list = new JobInfo[all.Length];
        for (int i = 0; i < all.Length; i++)
        {
            BlockJob b = all[i];
            list[i] = new JobInfo(b.Id, b.Type, JobStateMachine.Name(b.Status), b.Offset, b.Length, b.Error);
        }
        return list;
    }

    private static DriveMirrorRequest Request(DriveMirrorArgs a)
    {
        if (a.NodeName is not null || a.Replaces is not null)
        {
            throw new BlockException(a.NodeName is not null
                ? "drive-mirror's 'node-name' is not implemented yet in Colo"
                : "drive-mirror's 'replaces' is not implemented yet in Colo");
        }
        return new DriveMirrorRequest(a.Device, a.JobId, a.Target, a.Format, a.Sync, a.Mode, a.Speed, a.Granularity, a.BufSize,
            a.OnSourceError, a.OnTargetError, a.Unmap, a.CopyMode, a.AutoFinalize, a.AutoDismiss);
    }

    private static QmpEmpty Done(Action action)
    {
        action();
        return QmpEmpty.Instance;
    }

    /// <summary>Job news as QMP events, with QEMU's names and members.</summary>
    private sealed class EventListener(QmpEventBus events) : IBlockJobListener
    {
        private readonly JobQmpJsonContext _j = JobQmpJsonContext.Default;

        public void StatusChanged(BlockJob job) =>
            events.Emit("JOB_STATUS_CHANGE", new JobStatusChangeEvent(job.Id, JobStateMachine.Name(job.Status)), _j.JobStatusChangeEvent);

        public void Ready(BlockJob job) => events.Emit("BLOCK_JOB_READY", Event(job, null), _j.BlockJobEvent);

        public void Completed(BlockJob job, string? error) => events.Emit("BLOCK_JOB_COMPLETED", Event(job, error), _j.BlockJobEvent);

        public void Cancelled(BlockJob job) => events.Emit("BLOCK_JOB_CANCELLED", Event(job, null), _j.BlockJobEvent);

        public void IoError(BlockJob job, string operation, string action) =>
            events.Emit("BLOCK_JOB_ERROR", new BlockJobErrorEvent(job.Id, operation, action), _j.BlockJobErrorEvent);

        private static BlockJobEvent Event(BlockJob job, string? error) => new(job.Type, job.Id, job.Length, job.Offset, job.Speed, error);
    }
}
