using Colo.Core.Qmp;

namespace Colo.Block.Jobs;

/// <summary>What a job tells the outside world: QMP turns these into JOB_STATUS_CHANGE and BLOCK_JOB_* events.</summary>
public interface IBlockJobListener
{
    void StatusChanged(BlockJob job);

    void Ready(BlockJob job);

    /// <summary>BLOCK_JOB_COMPLETED: success (error null) or failure.</summary>
    void Completed(BlockJob job, string? error);

    void Cancelled(BlockJob job);

    /// <summary>BLOCK_JOB_ERROR: an I/O error met on <paramref name="operation"/> ("read"/"write") and what was done.</summary>
    void IoError(BlockJob job, string operation, string action);
}

/// <summary>
/// A background job with QEMU's life cycle (job.c): created → running → ready → waiting → pending →
/// concluded → null, with aborting on failure or cancel, paused/standby on request. The work runs on a
/// thread of its own so the monitor stays free; everything that touches the block graph afterwards
/// (commit, abort, clean) runs through <see cref="BlockJobManager.Post"/>, i.e. on the main loop.
/// </summary>
public abstract class BlockJob : IDisposable
{
    private readonly Lock _lock = new();
    private readonly ManualResetEventSlim _wake = new(false);
    private readonly CancellationTokenSource _cancel = new();
    private Thread? _thread;
    private JobStatus _status = JobStatus.Undefined;
    private bool _pauseRequested;
    private bool _drainPause; // the pause is the quit drain's, not the user's
    private readonly ManualResetEventSlim _parked = new(false);
    private bool _softCancel;
    private bool _completeRequested;
    private long _speed;
    private volatile bool _disposed;

    protected BlockJob(BlockJobManager manager, string id, string type, string device, long speed, bool autoFinalize, bool autoDismiss)
    {
        Manager = manager;
        Id = id;
        Type = type;
        Device = device;
        _speed = speed;
        AutoFinalize = autoFinalize;
        AutoDismiss = autoDismiss;
    }

    public BlockJobManager Manager { get; }

    /// <summary>The job id (QMP's <c>device</c> member in block-job events, for compatibility).</summary>
    public string Id { get; }

    /// <summary>QAPI JobType name: "mirror", "commit", "backup".</summary>
    public string Type { get; }

    /// <summary>The device or node the job works on.</summary>
    public string Device { get; }

    public bool AutoFinalize { get; }

    public bool AutoDismiss { get; }

    public JobStatus Status
    {
        get
        {
            lock (_lock)
            {
                return _status;
            }
        }
    }

    /// <summary>QEMU's job_is_ready: the job could complete now.</summary>
    public bool IsReady => Status is JobStatus.Ready or JobStatus.Standby;

    public bool Paused => Status is JobStatus.Paused or JobStatus.Standby;

    /// <summary>False while the job sleeps (throttled, waiting for work, paused).</summary>
    public bool Busy { get; protected set; }

    /// <summary>Progress: bytes done out of <see cref="Length"/> (which grows as guest writes dirty the source).</summary>
    public long Offset => Interlocked.Read(ref _offset);

    public long Length => Interlocked.Read(ref _length);

    /// <summary>Bytes per second, 0 for unlimited.</summary>
    public long Speed => Interlocked.Read(ref _speed);

    /// <summary>The failure's text once the job failed, as query-jobs reports it.</summary>
    public string? Error { get; private set; }

    private long _offset;
    private long _length;

    /// <summary>True once block-job-cancel asked a ready job to stop without pivoting (QEMU's soft cancel).</summary>
    protected bool SoftCancelRequested => Volatile.Read(ref _softCancel);

    /// <summary>True once block-job-complete was accepted.</summary>
    protected bool CompleteRequested => Volatile.Read(ref _completeRequested);

    /// <summary>Cancelled on a hard cancel.</summary>
    protected CancellationToken Token => _cancel.Token;

    /// <summary>Creates the job (status created) and starts its thread (status running).</summary>
    internal void Start()
    {
        Move(JobStatus.Created);
        Move(JobStatus.Running);
        Busy = true;
        _thread = new Thread(Main) { IsBackground = true, Name = $"block-job {Id}" };
        _thread.Start();
    }

    /// <summary>Checks a verb against the state machine with QEMU's error text.</summary>
    public void CheckVerb(JobVerb verb)
    {
        JobStatus s = Status;
        if (!JobStateMachine.Accepts(s, verb))
        {
            throw new BlockException($"Job '{Id}' in state '{JobStateMachine.Name(s)}' cannot accept command verb '{JobStateMachine.Name(verb)}'");
        }
    }

    /// <summary>
    /// block-job-cancel. A ready job asked without <paramref name="force"/> finishes cleanly instead (for mirror:
    /// the target is left in sync, no pivot), reporting BLOCK_JOB_COMPLETED as QEMU does.
    /// </summary>
    public void Cancel(bool force)
    {
        lock (_lock)
        {
            CheckVerb(JobVerb.Cancel);
            if (_status == JobStatus.Pending)
            {
                // Waiting for job-finalize: the work is done, so cancelling means aborting its result.
                Manager.Post(FinishCancelled);
                return;
            }
            if (!force && _status is JobStatus.Ready or JobStatus.Standby && SupportsSoftCancel)
            {
                _softCancel = true;
                _pauseRequested = false;
            }
            else
            {
                _cancel.Cancel();
                _pauseRequested = false;
            }
        }
        Kick();
    }

    /// <summary>block-job-complete: only a ready job accepts it.</summary>
    public void Complete()
    {
        lock (_lock)
        {
            CheckVerb(JobVerb.Complete);
            if (!SupportsComplete)
            {
                throw new BlockException($"The active block job '{Id}' cannot be completed");
            }
            _completeRequested = true;
        }
        Kick();
    }

    public void Pause()
    {
        lock (_lock)
        {
            CheckVerb(JobVerb.Pause);
            _pauseRequested = true;
        }
        Kick();
    }

    public void Resume()
    {
        lock (_lock)
        {
            CheckVerb(JobVerb.Resume);
            _pauseRequested = false;
        }
        Kick();
    }

    /// <summary>
    /// The first half of QEMU's drain at quit: a running or ready job stops at its pause point (status
    /// paused or standby) so no copy is in flight; a job the user paused stays as it is. Returns at once;
    /// <see cref="WaitDrained"/> waits for the job to get there.
    /// </summary>
    internal void BeginDrain()
    {
        lock (_lock)
        {
            if (_pauseRequested || _status is not (JobStatus.Running or JobStatus.Ready) || _thread is null)
            {
                return;
            }
            _drainPause = true;
            _pauseRequested = true;
        }
        Kick();
    }

    internal void WaitDrained(TimeSpan timeout)
    {
        if (_drainPause)
        {
            _parked.Wait(timeout);
        }
    }

    /// <summary>The drain's end: the job leaves its pause point (running or ready again).</summary>
    internal void EndDrain()
    {
        lock (_lock)
        {
            if (!_drainPause)
            {
                return;
            }
            _drainPause = false;
            _pauseRequested = false;
        }
        Kick();
    }

    public void SetSpeed(long speed)
    {
        CheckVerb(JobVerb.SetSpeed);
        if (speed < 0)
        {
            throw new BlockException("Parameter 'speed' expects a non-negative value");
        }
        Interlocked.Exchange(ref _speed, speed);
        Kick();
    }

    /// <summary>job-finalize for a job created with auto-finalize=false, waiting in pending.</summary>
    public void FinalizeJob()
    {
        CheckVerb(JobVerb.Finalize);
        Manager.Post(() => FinishSuccess());
    }

    /// <summary>job-dismiss for a job created with auto-dismiss=false, waiting in concluded.</summary>
    public void Dismiss()
    {
        CheckVerb(JobVerb.Dismiss);
        Move(JobStatus.Null);
        Manager.Remove(this);
    }

    /// <summary>Waits for the job's thread to end (tests, shutdown).</summary>
    public bool Join(TimeSpan timeout) => _thread is null || _thread == Thread.CurrentThread || _thread.Join(timeout);

    /// <summary>Whether a ready job's soft cancel means "finish cleanly" (mirror) rather than abort.</summary>
    protected virtual bool SupportsSoftCancel => false;

    protected virtual bool SupportsComplete => false;

    /// <summary>The work, on the job's thread. Return to succeed; throw to fail; honour <see cref="Token"/>.</summary>
    protected abstract void Run();

    /// <summary>On the main loop after success: make the result visible (mirror: pivot in the graph).</summary>
    protected virtual void Commit()
    {
    }

    /// <summary>On the main loop after failure or cancel: undo what the job put in the graph.</summary>
    protected virtual void Abort()
    {
    }

    protected void SetProgress(long offset, long length)
    {
        Interlocked.Exchange(ref _offset, offset);
        Interlocked.Exchange(ref _length, length);
    }

    protected void AddLength(long bytes) => Interlocked.Add(ref _length, bytes);

    protected void AddOffset(long bytes) => Interlocked.Add(ref _offset, bytes);

    /// <summary>Running → ready, with BLOCK_JOB_READY after the status change (QEMU's order).</summary>
    protected void TransitionToReady()
    {
        lock (_lock)
        {
            if (_status != JobStatus.Running)
            {
                return;
            }
            Move(JobStatus.Ready);
        }
        Manager.Listener?.Ready(this);
    }

    /// <summary>Wakes the job's thread (new dirty data, a verb).</summary>
    public void Kick()
    {
        if (!_disposed)
        {
            _wake.Set();
        }
    }

    /// <summary>Frees the wait handles once the job is gone (status null); called by the manager.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            _wake.Dispose();
            _parked.Dispose();
            _cancel.Dispose();
        }
    }

    /// <summary>
    /// The job's pause point: stops here while paused (status paused, or standby when ready), and sleeps up
    /// to <paramref name="timeout"/> (throttling, waiting for work) unless kicked or cancelled.
    /// </summary>
    protected void Sleep(TimeSpan timeout)
    {
        Busy = false;
        try
        {
            PausePoint();
            if (timeout > TimeSpan.Zero && !_cancel.IsCancellationRequested)
            {
                _wake.Wait(timeout, _cancel.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            _wake.Reset();
            Busy = true;
        }
    }

    /// <summary>Blocks while a pause is requested, moving to paused/standby and back.</summary>
    protected void PausePoint()
    {
        JobStatus resumeTo;
        lock (_lock)
        {
            if (!_pauseRequested || _cancel.IsCancellationRequested)
            {
                return;
            }
            resumeTo = _status;
            Move(_status == JobStatus.Ready ? JobStatus.Standby : JobStatus.Paused);
            _parked.Set();
        }
        bool wasBusy = Busy;
        Busy = false;
        while (true)
        {
            lock (_lock)
            {
                if (!_pauseRequested || _cancel.IsCancellationRequested)
                {
                    _parked.Reset();
                    Move(resumeTo);
                    break;
                }
            }
            try
            {
                _wake.Wait(Timeout.Infinite, _cancel.Token);
            }
            catch (OperationCanceledException)
            {
            }
            _wake.Reset();
        }
        Busy = wasBusy;
    }

    /// <summary>Pauses on an I/O error (on-*-error=stop): BLOCK_JOB_ERROR then paused until resumed.</summary>
    protected void PauseOnError(string operation)
    {
        lock (_lock)
        {
            _pauseRequested = true;
        }
        Manager.Listener?.IoError(this, operation, "stop");
        PausePoint();
    }

    private void Main()
    {
        Exception? failure = null;
        try
        {
            Run();
        }
        catch (OperationCanceledException) when (_cancel.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            failure = e;
        }
        Busy = false;
        if (_cancel.IsCancellationRequested && failure is null)
        {
            Manager.Post(FinishCancelled);
        }
        else if (failure is not null)
        {
            string text = failure is QmpException ? failure.Message : $"{failure.GetType().Name}: {failure.Message}";
            Manager.Post(() => FinishFailed(text));
        }
        else
        {
            Manager.Post(() =>
            {
                Move(JobStatus.Waiting);
                Move(JobStatus.Pending);
                if (AutoFinalize)
                {
                    FinishSuccess();
                }
            });
        }
    }

    private void FinishSuccess()
    {
        try
        {
            Commit();
        }
        catch (Exception e) when (e is BlockException or IOException)
        {
            FinishFailed(e.Message);
            return;
        }
        Manager.Listener?.Completed(this, null);
        Conclude();
    }

    private void FinishFailed(string error)
    {
        Error = error;
        Move(JobStatus.Aborting);
        AbortQuietly();
        Manager.Listener?.Completed(this, error);
        Conclude();
    }

    private void FinishCancelled()
    {
        Move(JobStatus.Aborting);
        AbortQuietly();
        Manager.Listener?.Cancelled(this);
        Conclude();
    }

    private void AbortQuietly()
    {
        try
        {
            Abort();
        }
        catch (Exception e) when (e is BlockException or IOException or ObjectDisposedException)
        {
            // Undoing is best effort; the failure that brought us here is what gets reported.
        }
    }

    private void Conclude()
    {
        Move(JobStatus.Concluded);
        if (AutoDismiss)
        {
            Move(JobStatus.Null);
            Manager.Remove(this);
        }
    }

    /// <summary>Changes status (the table must allow it) and announces it.</summary>
    private void Move(JobStatus to)
    {
        lock (_lock)
        {
            if (!JobStateMachine.CanTransition(_status, to))
            {
                throw new InvalidOperationException($"job {Id}: {JobStateMachine.Name(_status)} → {JobStateMachine.Name(to)} is not a job transition");
            }
            _status = to;
            // Undefined → created is QEMU's silent first step: it announces "created" like any other.
            Manager.Listener?.StatusChanged(this);
        }
    }
}
