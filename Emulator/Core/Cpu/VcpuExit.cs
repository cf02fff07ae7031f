namespace Colo.Core.Cpu;

/// <summary>
/// Why <see cref="IVcpu.Run"/> returned. Deliberately small: PIO/MMIO are handled inside the backend through
/// <see cref="IIoBus"/>, and details (exception vector, error text) live in the vCPU's fields so an exit allocates nothing.
/// </summary>
public enum VcpuExit
{
    /// <summary>The guest executed HLT with nothing pending.</summary>
    Halted,
    /// <summary>Triple fault or a shutdown request: the machine should reset or quit per its policy.</summary>
    Shutdown,
    /// <summary>The guest asked for a system reset.</summary>
    Reset,
    /// <summary>Another thread called <see cref="IVcpu.Kick"/>.</summary>
    Kicked,
    /// <summary>A guest-debug event (breakpoint, single step).</summary>
    Debug,
    /// <summary>The backend hit a condition it cannot model; see the vCPU's error detail.</summary>
    InternalError,
    /// <summary>The backend refused to enter the guest with the current state.</summary>
    FailEntry,
}
