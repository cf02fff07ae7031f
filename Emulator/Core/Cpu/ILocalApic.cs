namespace Colo.Core.Cpu;

/// <summary>
/// A vCPU's own local APIC as its backend sees it: the per-CPU MMIO page (checked before the shared bus, since
/// every CPU sees its own APIC at the same address), the IA32_APIC_BASE MSR, and the interrupt acknowledge cycle.
/// The implementation lives in Devices; the Machine wraps it so every call runs under the board lock.
/// </summary>
public interface ILocalApic : IInterruptSource
{
    /// <summary>Physical address of the 4 KiB APIC page, or <see cref="ulong.MaxValue"/> while hardware-disabled.</summary>
    ulong MmioBase { get; }

    /// <summary>IA32_APIC_BASE (MSR 0x1B): base, global enable (bit 11), BSP (bit 8).</summary>
    ulong BaseMsr { get; }

    /// <summary>WRMSR to IA32_APIC_BASE (BSP is read-only; clearing the enable bit hardware-disables the APIC).</summary>
    void WriteBaseMsr(ulong value);

    /// <summary>Reads <paramref name="size"/> bytes at <paramref name="offset"/> in the APIC page.</summary>
    ulong Read(uint offset, int size);

    /// <summary>Writes <paramref name="size"/> bytes at <paramref name="offset"/> in the APIC page.</summary>
    void Write(uint offset, int size, ulong value);
}
