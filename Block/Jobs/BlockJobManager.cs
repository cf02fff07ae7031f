using Colo.Core.Loop;

namespace Colo.Block.Jobs;

/// <summary>
/// The VM's block jobs by id (QEMU's job list). Jobs run on their own threads; what they do to the
/// graph at the end is posted to <see cref="Loop"/>, the main loop that owns the graph. Without a loop
/// (unit tests, tools) that work runs at once on the job's thread, serialised by a lock.
/// </summary>
public sealed class BlockJobManager
{
    private readonly Lock _lock = new();
    private readonly List<BlockJob> _jobs = [];
    private readonly Lock _inlineLock = new();

    /// <summary>The loop that owns the block graph; set by the machine.</summary>
    public IEventLoop? Loop { get; set; }

    /// <summary>Receives status changes and job events (QMP).</summary>
    public IBlockJobListener? Listener { get; set; }

    /// <summary>The jobs, in creation order.</summary>
    public BlockJob[] Jobs
    {
        get
        {
            lock (_lock)
            {
                return [.. _jobs];
            }
        }
    }

    public BlockJob? Find(string id)
    {
        lock (_lock)
        {
            return _jobs.Find(j => j.Id == id);
        }
    }

    /// <summary>QMP's block-job-* lookup: DeviceNotActive "Block job 'x' not found".</summary>
    public BlockJob Get(string id) =>
        Find(id) ?? throw new BlockException(Core.Qmp.QmpErrorClass.DeviceNotActive, $"Block job '{id}' not found");

    /// <summary>QMP's job-* lookup: "Job not found".</summary>
    public BlockJob GetJob(string id) =>
        Find(id) ?? throw new BlockException("Job not found");

    /// <summary>Checks an id as QEMU's job_create does.</summary>
    public void CheckNewId(string id)
    {
        if (!Nbd.NbdServerHost.IsWellFormedId(id))
        {
            throw new BlockException($"Invalid job ID '{id}'");
        }
        if (Find(id) is not null)
        {
            throw new BlockException($"Job ID '{id}' already in use");
        }
    }

    /// <summary>Registers and starts a job; the caller built it and checked its id.</summary>
    public void Start(BlockJob job)
    {
        lock (_lock)
        {
            CheckNewId(job.Id);
            _jobs.Add(job);
        }
        job.Start();
    }

    /// <summary>Runs graph work on the owning loop (or inline under a lock when there is none).</summary>
    public void Post(Action work)
    {
        if (Loop is { } loop)
        {
            if (loop.IsLoopThread)
            {
                work();
            }
            else
            {
                loop.Post(work);
            }
            return;
        }
        lock (_inlineLock)
        {
            work();
        }
    }

    internal void Remove(BlockJob job)
    {
        lock (_lock)
        {
            _jobs.Remove(job);
        }
        // The thread is past its last wait (it posted its end before this runs), so the handles can go.
        job.Join(TimeSpan.FromSeconds(5));
        job.Dispose();
    }

    /// <summary>
    /// Shutdown, as QEMU 7.2 ends jobs at quit: every job is drained (running → paused → running, ready →
    /// standby → ready), then each is hard-cancelled and waited for (aborting, BLOCK_JOB_CANCELLED,
    /// concluded, null), all announced through <see cref="Listener"/>.
    /// </summary>
    public void CancelAll(TimeSpan timeout)
    {
        BlockJob[] jobs = Jobs;
        foreach (BlockJob job in jobs)
        {
            job.BeginDrain();
        }
        foreach (BlockJob job in jobs)
        {
            job.WaitDrained(timeout);
        }
        foreach (BlockJob job in jobs)
        {
            job.EndDrain();
        }
        foreach (BlockJob job in jobs)
        {
            try
            {
                job.Cancel(force: true);
            }
            catch (BlockException)
            {
                // Already past the point where it can be cancelled.
            }
            job.Join(timeout);
        }
    }
}
