using Colo.Core.Cpu;

namespace Colo.Machine.Runtime;

/// <summary>
/// A vCPU's local APIC as its thread sees it: register accesses, the MSR and the acknowledge cycle change device
/// state shared with the timer thread and the IOAPIC, so each takes the board lock. The base is read without it:
/// only this vCPU's own WRMSR (or a reset while it is paused) changes it, and a 64-bit read is atomic.
/// </summary>
public sealed class LockedLocalApic(ILocalApic inner, Lock boardLock) : ILocalApic
{
    /// <inheritdoc/>
    public ulong MmioBase => inner.MmioBase;

    /// <inheritdoc/>
    public ulong BaseMsr => inner.BaseMsr;

    /// <inheritdoc/>
    public void WriteBaseMsr(ulong value)
    {
        lock (boardLock)
        {
            inner.WriteBaseMsr(value);
        }
    }

    /// <inheritdoc/>
    public ulong Read(uint offset, int size)
    {
        lock (boardLock)
        {
            return inner.Read(offset, size);
        }
    }

    /// <inheritdoc/>
    public void Write(uint offset, int size, ulong value)
    {
        lock (boardLock)
        {
            inner.Write(offset, size, value);
        }
    }

    /// <inheritdoc/>
    public bool TryAcknowledge(out byte vector)
    {
        lock (boardLock)
        {
            return inner.TryAcknowledge(out vector);
        }
    }
}
