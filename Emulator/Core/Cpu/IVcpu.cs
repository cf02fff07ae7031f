namespace Colo.Core.Cpu;

/// <summary>One virtual CPU, whatever runs it (KVM or the interpreter). Run it on one dedicated thread.</summary>
public interface IVcpu
{
    /// <summary>The CPU index (APIC ID for the PC machine).</summary>
    int Index { get; }

    /// <summary>
    /// The architectural state. Read or write it only while <see cref="Run"/> is not executing on the vCPU thread.
    /// </summary>
    ref X86CpuState State { get; }

    /// <summary>Runs the guest until something needs the caller's attention.</summary>
    VcpuExit Run();

    /// <summary>Makes a concurrent or the next <see cref="Run"/> return <see cref="VcpuExit.Kicked"/> soon. Thread-safe.</summary>
    void Kick();

    /// <summary>Raises the NMI line (thread-safe): delivered through vector 2 at the next instruction boundary, waking a halted CPU.</summary>
    void InjectNmi();
}
