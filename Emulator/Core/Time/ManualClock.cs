namespace Colo.Core.Time;

/// <summary>
/// A clock that moves only when told (tests, and qtest's <c>clock_step</c>/<c>clock_set</c>). Advancing fires
/// due timers in order with <see cref="NowNs"/> at each one's deadline, then settles at the target.
/// </summary>
public sealed class ManualClock : TimerClock
{
    private long _now;

    public ManualClock(long startNs = 0)
    {
        _now = startNs;
    }

    /// <inheritdoc/>
    public override long NowNs => _now;

    /// <summary>Advances by <paramref name="deltaNs"/> (negative values are treated as zero); returns timers fired.</summary>
    public int Advance(long deltaNs) => AdvanceTo(_now + Math.Max(0, deltaNs));

    /// <summary>Advances to <paramref name="targetNs"/> (never backwards); returns timers fired.</summary>
    public int AdvanceTo(long targetNs)
    {
        int fired = RunDueTimers(targetNs);
        if (targetNs > _now)
        {
            _now = targetNs;
        }
        return fired;
    }

    /// <summary>Advances to the next deadline, if any, firing it; returns false when no timer is armed.</summary>
    public bool StepToNextDeadline()
    {
        long next = NextDeadlineNs;
        if (next == long.MaxValue)
        {
            return false;
        }
        AdvanceTo(Math.Max(next, _now));
        return true;
    }

    /// <inheritdoc/>
    protected override void SetNow(long ns) => _now = ns;
}
