namespace Colo.Core.Irq;

/// <summary>
/// One interrupt wire from a device output to a single sink (a PIC input, an IOAPIC pin, a KVM GSI).
/// Level semantics: the line remembers its level, and the sink hears only changes, so a device may call
/// <see cref="Set"/> with its current output as often as it likes (after a register write, on restore)
/// without producing spurious edges at an edge-triggered sink. Not thread-safe: device state, and hence
/// its lines, belong to the main loop.
/// </summary>
public sealed class IrqLine
{
    private Action<bool>? _sink;

    /// <summary>Creates a line that delivers level changes to <paramref name="sink"/> (null: unconnected).</summary>
    public IrqLine(Action<bool>? sink = null)
    {
        _sink = sink;
    }

    /// <summary>The connected sink (null: unconnected); qtest's output interception wraps it.</summary>
    public Action<bool>? Sink => _sink;

    /// <summary>The level the driving device last set.</summary>
    public bool Level { get; private set; }

    /// <summary>
    /// Connects (or replaces) the sink. The board wires lines after creating both ends; a line already high
    /// is delivered to the new sink at once so it does not miss the level.
    /// </summary>
    public void Connect(Action<bool>? sink)
    {
        _sink = sink;
        if (Level)
        {
            sink?.Invoke(true);
        }
    }

    /// <summary>Drives the line to <paramref name="level"/>; the sink is called only when the level changes.</summary>
    public void Set(bool level)
    {
        if (level == Level)
        {
            return;
        }
        Level = level;
        _sink?.Invoke(level);
    }

    /// <summary>Drives the line high.</summary>
    public void Raise() => Set(true);

    /// <summary>Drives the line low.</summary>
    public void Lower() => Set(false);

    /// <summary>A rising then a falling edge (what an edge-triggered device such as the i8042 emits).</summary>
    public void Pulse()
    {
        Set(true);
        Set(false);
    }
}
