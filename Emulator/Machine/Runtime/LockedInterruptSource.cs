using Colo.Core.Cpu;

namespace Colo.Machine.Runtime;

/// <summary>
/// The interrupt controller as the vCPU thread sees it: the acknowledge cycle changes controller state, so it
/// takes the board lock like any other device access from a vCPU.
/// </summary>
public sealed class LockedInterruptSource(IInterruptSource inner, Lock boardLock) : IInterruptSource
{
    /// <inheritdoc/>
    public bool TryAcknowledge(out byte vector)
    {
        lock (boardLock)
        {
            return inner.TryAcknowledge(out vector);
        }
    }
}
