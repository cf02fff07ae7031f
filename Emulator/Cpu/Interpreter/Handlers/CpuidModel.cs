using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter;

/// <summary>
/// CPUID of the <c>qemu64</c> model (vendor AuthenticAMD, family 15 model 107 stepping 1) with the feature words the
/// machine resolved from <c>-cpu</c> (by default the PPro set plus SSE3/CX16, long mode, NX, SYSCALL, LAHF in long
/// mode). Leaves past the maxima read as zero, as on AMD.
/// </summary>
internal static class CpuidModel
{
    public const uint Signature = 0x0006_0FB1;
    private const uint MaxBasic = 0xD;
    private const uint MaxExtended = 0x8000_000A;
    private const uint VendorEbx = 0x6874_7541; // "Auth"
    private const uint VendorEdx = 0x6974_6E65; // "enti"
    private const uint VendorEcx = 0x444D_4163; // "cAMD"
    private const uint Hypervisor = 1u << 31;
    private const uint AmdAliasMask = 0x0183_F3FF;

    /// <summary>
    /// The feature bits this interpreter executes (QEMU's TCG equivalent): what <c>-cpu max</c> reports and the limit
    /// any <c>+feat</c> is held to. MMX and SSE to SSE3, CX8/CX16, CMOV, FXSR, SYSCALL/SYSENTER, NX, long mode.
    /// </summary>
    public static CpuidFeatures Supported { get; } = new(
        Leaf1Ecx: (1u << 0) | (1u << 13),
        Leaf1Edx: 0x078B_FBFD,
        Ext1Ecx: 1u << 0,
        Ext1Edx: (1u << 11) | (1u << 20) | (1u << 29));

    private static readonly uint[] Brand = PackBrand("QEMU Virtual CPU version 2.5+");

    public static void Query(int apicId, in CpuidFeatures features, uint leaf, uint subleaf, out uint eax, out uint ebx, out uint ecx, out uint edx)
    {
        _ = subleaf;
        eax = ebx = ecx = edx = 0;
        switch (leaf)
        {
            case 0:
                eax = MaxBasic;
                ebx = VendorEbx;
                edx = VendorEdx;
                ecx = VendorEcx;
                break;
            case 1:
                eax = Signature;
                // CLFLUSH line 8 qwords, one logical processor, initial APIC ID.
                ebx = (8u << 8) | (1u << 16) | ((uint)apicId << 24);
                ecx = features.Leaf1Ecx | Hypervisor;
                edx = features.Leaf1Edx;
                break;
            case 0x8000_0000:
                eax = MaxExtended;
                ebx = VendorEbx;
                edx = VendorEdx;
                ecx = VendorEcx;
                break;
            case 0x8000_0001:
                eax = Signature;
                ecx = features.Ext1Ecx;
                // AMD mirrors most leaf-1 EDX bits here.
                edx = (features.Leaf1Edx & AmdAliasMask) | features.Ext1Edx;
                break;
            case 0x8000_0002:
            case 0x8000_0003:
            case 0x8000_0004:
                int i = (int)(leaf - 0x8000_0002) * 4;
                eax = Brand[i];
                ebx = Brand[i + 1];
                ecx = Brand[i + 2];
                edx = Brand[i + 3];
                break;
            case 0x8000_0008:
                eax = 0x3028; // 40 physical, 48 linear address bits
                break;
            default:
                break;
        }
    }

    private static uint[] PackBrand(string text)
    {
        uint[] words = new uint[12];
        for (int i = 0; i < text.Length && i < 47; i++)
        {
            words[i / 4] |= (uint)text[i] << (8 * (i % 4));
        }
        return words;
    }
}
