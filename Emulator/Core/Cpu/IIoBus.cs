namespace Colo.Core.Cpu;

/// <summary>
/// Port and memory-mapped I/O as the vCPU backends see it: one callback interface (cloud-hypervisor's <c>VmOps</c>
/// shape), so neither KVM nor the interpreter knows the devices. The data length is the access size.
/// </summary>
public interface IIoBus
{
    /// <summary>An IN from <paramref name="port"/>; fill <paramref name="data"/> (unclaimed ports read all-ones).</summary>
    void PioRead(ushort port, Span<byte> data);

    /// <summary>An OUT to <paramref name="port"/>.</summary>
    void PioWrite(ushort port, ReadOnlySpan<byte> data);

    /// <summary>A read from a guest-physical address that is not RAM.</summary>
    void MmioRead(ulong address, Span<byte> data);

    /// <summary>A write to a guest-physical address that is not RAM.</summary>
    void MmioWrite(ulong address, ReadOnlySpan<byte> data);
}
