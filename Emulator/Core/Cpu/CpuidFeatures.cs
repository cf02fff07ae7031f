namespace Colo.Core.Cpu;

/// <summary>
/// The CPUID feature words a vCPU reports: leaf 1 ECX/EDX and leaf 0x80000001 ECX/EDX, after <c>-cpu</c>'s model and
/// its <c>+feat</c>/<c>-feat</c>/<c>feat=on|off</c> settings.
/// </summary>
public readonly record struct CpuidFeatures(uint Leaf1Ecx, uint Leaf1Edx, uint Ext1Ecx, uint Ext1Edx)
{
    /// <summary>QEMU's <c>qemu64</c>: the PPro set plus SSE3 and CX16 (leaf 1), LAHF-LM, SYSCALL, NX and LM (0x80000001).</summary>
    public static CpuidFeatures Qemu64 { get; } = new(
        Leaf1Ecx: (1u << 0) | (1u << 13),
        Leaf1Edx: 0x078B_FBFD,
        Ext1Ecx: 1u << 0,
        Ext1Edx: (1u << 11) | (1u << 20) | (1u << 29));

    /// <summary>The feature words with <paramref name="other"/>'s bits kept only where this one has them too.</summary>
    public CpuidFeatures Intersect(CpuidFeatures other) =>
        new(Leaf1Ecx & other.Leaf1Ecx, Leaf1Edx & other.Leaf1Edx, Ext1Ecx & other.Ext1Ecx, Ext1Edx & other.Ext1Edx);
}
