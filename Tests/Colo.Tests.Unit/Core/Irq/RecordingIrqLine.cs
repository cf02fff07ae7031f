using Colo.Core.Irq;

namespace Colo.Tests.Unit.Core.Irq;

/// <summary>An <see cref="IrqLine"/> whose sink records every level change, for device tests.</summary>
public sealed class RecordingIrqLine
{
    public RecordingIrqLine()
    {
        Line = new IrqLine(level => Changes.Add(level));
    }

    public IrqLine Line { get; }

    /// <summary>Levels the sink saw, in order.</summary>
    public List<bool> Changes { get; } = [];

    public bool Level => Line.Level;

    /// <summary>Rising edges seen so far.</summary>
    public int RisingEdges
    {
        get
        {
            int n = 0;
            foreach (bool level in Changes)
            {
                if (level)
                {
                    n++;
                }
            }
            return n;
        }
    }

    public void Clear() => Changes.Clear();
}
