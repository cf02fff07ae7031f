using System.Diagnostics;

namespace Colo.Core.Time;

/// <summary>
/// QEMU's QEMU_CLOCK_VIRTUAL for a machine whose vCPUs run: host monotonic time that advances only while the VM
/// runs, so a paused guest sees no time pass (and, later, migrates its notion of now). Timers fire on whoever calls
/// <see cref="RunDue"/> (the machine's timer thread, under the board lock); <see cref="DeadlineChanged"/> tells that
/// thread to wake earlier when a device arms a nearer timer. Not thread-safe: callers hold the board lock.
/// </summary>
public sealed class VirtualClock : TimerClock
{
    private long _baseNs;
    private long _runningSinceTicks = -1;

    /// <summary>Raised when a new earliest deadline appears or the clock starts or stops.</summary>
    public event Action? DeadlineChanged;

    /// <summary>Whether time is passing.</summary>
    public bool IsRunning => _runningSinceTicks >= 0;

    /// <inheritdoc/>
    public override long NowNs => _runningSinceTicks < 0 ? _baseNs : _baseNs + ElapsedNs(_runningSinceTicks);

    /// <summary>Lets time pass (the VM starts or resumes).</summary>
    public void Start()
    {
        if (_runningSinceTicks < 0)
        {
            _runningSinceTicks = Stopwatch.GetTimestamp();
            DeadlineChanged?.Invoke();
        }
    }

    /// <summary>Freezes time (the VM stops).</summary>
    public void Stop()
    {
        if (_runningSinceTicks >= 0)
        {
            _baseNs += ElapsedNs(_runningSinceTicks);
            _runningSinceTicks = -1;
            DeadlineChanged?.Invoke();
        }
    }

    /// <summary>Fires every timer due by now; returns how many fired.</summary>
    public int RunDue() => RunDueTimers(NowNs);

    /// <inheritdoc/>
    protected override void SetNow(long ns)
    {
        // Time comes from the host: a timer that fires late sees the later time, never an earlier one.
    }

    /// <inheritdoc/>
    protected override void OnEarliestDeadlineChanged() => DeadlineChanged?.Invoke();

    private static long ElapsedNs(long sinceTicks) =>
        (long)((Stopwatch.GetTimestamp() - sinceTicks) * (1_000_000_000.0 / Stopwatch.Frequency));
}
