namespace Colo.Core.Time;

/// <summary>
/// Deadline bookkeeping shared by clock implementations: armed timers kept sorted by deadline (a machine
/// arms a handful, so a sorted list beats a heap that cannot remove), and <see cref="RunDueTimers"/>
/// firing them in deadline order with <see cref="NowNs"/> set to each deadline, so a device sees
/// every edge at its exact time even when the clock is advanced by a large step.
/// </summary>
public abstract class TimerClock : IClock
{
    private readonly List<ClockTimer> _armed = [];

    /// <inheritdoc/>
    public abstract long NowNs { get; }

    /// <inheritdoc/>
    public long NextDeadlineNs => _armed.Count == 0 ? long.MaxValue : _armed[0].DeadlineNs;

    /// <summary>
    /// Debug aid (COLO_TRACE_CLOCK=1): tells whether the caller holds the lock that must guard this clock's timers;
    /// a list change without it is reported with its stack on stderr.
    /// </summary>
    public Func<bool>? OwnerCheck { get; set; }

    private static readonly bool TraceOwner = Environment.GetEnvironmentVariable("COLO_TRACE_CLOCK") == "1";

    private void CheckOwner(string what)
    {
        if (TraceOwner && OwnerCheck is { } check && !check())
        {
            Console.Error.WriteLine($"colo-clock: {what} without the board lock on thread '{Thread.CurrentThread.Name}':\n{Environment.StackTrace}");
        }
    }

    /// <inheritdoc/>
    public void Arm(ClockTimer timer)
    {
        CheckOwner("arm");
        if (timer.IsPending)
        {
            _armed.Remove(timer);
        }
        // Insert after timers with an equal deadline: equal deadlines fire in arming order.
        int i = _armed.Count;
        while (i > 0 && _armed[i - 1].DeadlineNs > timer.DeadlineNs)
        {
            i--;
        }
        _armed.Insert(i, timer);
        timer.IsPending = true;
        if (i == 0)
        {
            OnEarliestDeadlineChanged();
        }
    }

    /// <summary>Debug aid: the armed timers in list order, as "deadline:callback" pairs.</summary>
    public string DescribeArmed() => string.Join(' ', _armed.Select(t => $"{t.DeadlineNs}:{t.CallbackName}"));

    /// <summary>Called when an arming made a new earliest deadline (a waiting timer thread must wake earlier).</summary>
    protected virtual void OnEarliestDeadlineChanged()
    {
    }

    /// <inheritdoc/>
    public void Disarm(ClockTimer timer)
    {
        CheckOwner("disarm");
        if (timer.IsPending)
        {
            _armed.Remove(timer);
            timer.IsPending = false;
        }
    }

    /// <summary>
    /// Fires every timer whose deadline is at or before <paramref name="limitNs"/>, earliest first, calling
    /// <see cref="SetNow"/> with each deadline before its callback. Timers armed by a callback within the limit
    /// also fire. Returns the number fired.
    /// </summary>
    protected int RunDueTimers(long limitNs)
    {
        CheckOwner("run");
        int fired = 0;
        while (_armed.Count > 0 && _armed[0].DeadlineNs <= limitNs)
        {
            ClockTimer timer = _armed[0];
            _armed.RemoveAt(0);
            timer.IsPending = false;
            if (timer.DeadlineNs > NowNs)
            {
                SetNow(timer.DeadlineNs);
            }
            timer.Fire();
            fired++;
        }
        return fired;
    }

    /// <summary>Moves the clock's notion of now forward (never backward) while timers fire.</summary>
    protected abstract void SetNow(long ns);
}
