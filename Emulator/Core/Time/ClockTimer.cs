namespace Colo.Core.Time;

/// <summary>
/// A one-shot deadline on an <see cref="IClock"/> (QEMU's QEMUTimer). Named <c>ClockTimer</c> rather than
/// <c>Timer</c> because <c>System.Threading.Timer</c> is in every file's implicit usings and
/// <c>Colo.Devices.Timer</c> is a namespace: a bare <c>Timer</c> would be ambiguous in both places.
/// Periodic devices re-arm from their callback, computing the next deadline from the device state.
/// </summary>
public sealed class ClockTimer
{
    private readonly Action _callback;

    public ClockTimer(IClock clock, Action callback)
    {
        Clock = clock;
        _callback = callback;
    }

    public IClock Clock { get; }

    /// <summary>Deadline in the clock's nanoseconds; meaningful only while <see cref="IsPending"/>.</summary>
    public long DeadlineNs { get; internal set; }

    /// <summary>True while armed and not yet fired.</summary>
    public bool IsPending { get; internal set; }

    /// <summary>Arms (or re-arms) the timer for <paramref name="deadlineNs"/>; a past deadline fires on the next advance.</summary>
    public void Modify(long deadlineNs)
    {
        DeadlineNs = deadlineNs;
        Clock.Arm(this);
    }

    /// <summary>Disarms the timer; harmless when not armed.</summary>
    public void Cancel() => Clock.Disarm(this);

    internal void Fire() => _callback();

    /// <summary>Debug aid: the callback's declaring type and method.</summary>
    internal string CallbackName => $"{_callback.Method.DeclaringType?.Name}.{_callback.Method.Name}";
}
