namespace Colo.Core.Memory;

/// <summary>
/// Guest-physical memory as loaders, DMA-capable devices and tests see it. Writes through this interface keep the
/// code-page tracking exact, so an interpreter never runs stale decoded blocks after a loader or DMA write.
/// </summary>
public interface IPhysicalMemory
{
    /// <summary>Copies guest-physical bytes into <paramref name="destination"/>; non-RAM goes to MMIO.</summary>
    void Read(ulong address, Span<byte> destination);

    /// <summary>Copies <paramref name="source"/> to guest-physical memory; non-RAM goes to MMIO.</summary>
    void Write(ulong address, ReadOnlySpan<byte> source);
}
