namespace Colo.Core.Time;

/// <summary>
/// A source of time in nanoseconds with the timers armed on it. The virtual clock stops while the VM is
/// stopped (and is what devices use, so a paused guest sees no time pass); tests use <see cref="ManualClock"/>.
/// Timers fire from whoever advances the clock (the main loop, qtest's <c>clock_step</c>, a test), never
/// from a thread of their own, so device callbacks run on the thread that owns device state.
/// </summary>
public interface IClock
{
    /// <summary>Current time in nanoseconds since the clock's origin.</summary>
    long NowNs { get; }

    /// <summary>The earliest armed deadline, or <see cref="long.MaxValue"/> when no timer is armed.</summary>
    long NextDeadlineNs { get; }

    /// <summary>Inserts or moves <paramref name="timer"/> in the clock's deadline order.</summary>
    void Arm(ClockTimer timer);

    /// <summary>Removes <paramref name="timer"/> if armed.</summary>
    void Disarm(ClockTimer timer);
}
