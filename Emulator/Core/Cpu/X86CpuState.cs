using System.Runtime.CompilerServices;
using static Colo.Core.Cpu.SegmentRegister;

namespace Colo.Core.Cpu;

/// <summary>The sixteen general-purpose registers in encoding order (iced <c>Register.RAX</c>…<c>R15</c>).</summary>
[InlineArray(16)]
public struct GprArray
{
    private ulong _element0;
}

/// <summary>ES, CS, SS, DS, FS, GS in encoding order (the order of iced's <c>Register.ES</c>…<c>GS</c>).</summary>
[InlineArray(6)]
public struct SegmentArray
{
    private SegmentRegister _element0;
}

/// <summary>
/// The x87/SSE register file in the FXSAVE / XSAVE legacy-region layout (512 bytes): FCW at 0, FSW at 2 (TOP in bits
/// 13:11), abridged tag byte at 4, FOP at 6, FIP at 8 and FDP at 16 (64-bit forms), MXCSR at 24, MXCSR_MASK at 28,
/// ST(0)…ST(7) at 32 + 16·i (stack order, 80-bit values), XMM0…XMM15 at 160 + 16·i. KVM's <c>kvm_fxsave</c> and the
/// first 512 bytes of an XSAVE image use exactly this layout, so backends and migration copy it as is.
/// </summary>
[InlineArray(512)]
public struct FxSaveArea
{
    private byte _element0;
}

/// <summary>
/// The MTRRs: the 11 fixed-range registers (64K_00000, 16K_80000, 16K_A0000, 4K_C0000 … 4K_F8000) then the 8
/// variable-range base/mask pairs (KVM's MSR list order), so migration copies them as a block.
/// </summary>
[InlineArray(27)]
public struct MtrrArray
{
    private ulong _element0;
}

/// <summary>Machine-check banks: CTL, STATUS, ADDR, MISC for each of the 10 banks QEMU's models have (MSR 0x400 on).</summary>
[InlineArray(40)]
public struct McBankArray
{
    private ulong _element0;
}

/// <summary>Index of a segment register in <see cref="X86CpuState.Segments"/> (the ModRM/prefix encoding order).</summary>
public enum SegmentIndex
{
    /// <summary>ES.</summary>
    Es = 0,
    /// <summary>CS.</summary>
    Cs = 1,
    /// <summary>SS.</summary>
    Ss = 2,
    /// <summary>DS.</summary>
    Ds = 3,
    /// <summary>FS.</summary>
    Fs = 4,
    /// <summary>GS.</summary>
    Gs = 5,
}

/// <summary>
/// A segment register: the visible selector plus the hidden descriptor cache the CPU loaded with it.
/// <see cref="Attributes"/> uses the VMX access-rights layout (type 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15)
/// because it is what KVM and the descriptor format both map onto with shifts only.
/// </summary>
public struct SegmentRegister
{
    /// <summary>Type field (bits 3:0).</summary>
    public const ushort TypeMask = 0x000F;
    /// <summary>Code/data (1) versus system (0) descriptor.</summary>
    public const ushort S = 1 << 4;
    /// <summary>Present.</summary>
    public const ushort P = 1 << 7;
    /// <summary>64-bit code segment.</summary>
    public const ushort L = 1 << 13;
    /// <summary>Default operand size (code) / big stack (data).</summary>
    public const ushort DB = 1 << 14;
    /// <summary>Limit granularity is 4 KiB.</summary>
    public const ushort G = 1 << 15;

    /// <summary>The visible selector.</summary>
    public ushort Selector;
    /// <summary>Cached attributes (see the type comment for the layout).</summary>
    public ushort Attributes;
    /// <summary>Cached limit, already scaled by granularity.</summary>
    public uint Limit;
    /// <summary>Cached linear base.</summary>
    public ulong Base;

    /// <summary>Descriptor privilege level from the cached attributes.</summary>
    public readonly int Dpl => (Attributes >> 5) & 3;
}

/// <summary>GDTR or IDTR.</summary>
public struct DescriptorTableRegister
{
    /// <summary>Linear base.</summary>
    public ulong Base;
    /// <summary>Limit in bytes (inclusive).</summary>
    public ushort Limit;
}

/// <summary>
/// Architectural state of one x86-64 vCPU, shared by every backend (KVM, interpreter), migration and QMP. A plain
/// struct so that a snapshot is a copy and a restore is an assignment; backends expose it by <c>ref</c>.
/// </summary>
public struct X86CpuState
{
    /// <summary>RFLAGS.CF.</summary>
    public const ulong FlagCf = 1UL << 0;
    /// <summary>RFLAGS bit 1, which always reads as one.</summary>
    public const ulong FlagReserved1 = 1UL << 1;
    /// <summary>RFLAGS.PF.</summary>
    public const ulong FlagPf = 1UL << 2;
    /// <summary>RFLAGS.AF.</summary>
    public const ulong FlagAf = 1UL << 4;
    /// <summary>RFLAGS.ZF.</summary>
    public const ulong FlagZf = 1UL << 6;
    /// <summary>RFLAGS.SF.</summary>
    public const ulong FlagSf = 1UL << 7;
    /// <summary>RFLAGS.TF.</summary>
    public const ulong FlagTf = 1UL << 8;
    /// <summary>RFLAGS.IF.</summary>
    public const ulong FlagIf = 1UL << 9;
    /// <summary>RFLAGS.DF.</summary>
    public const ulong FlagDf = 1UL << 10;
    /// <summary>RFLAGS.OF.</summary>
    public const ulong FlagOf = 1UL << 11;
    /// <summary>The six arithmetic status flags.</summary>
    public const ulong ArithmeticFlags = FlagCf | FlagPf | FlagAf | FlagZf | FlagSf | FlagOf;

    /// <summary>CR0.PE.</summary>
    public const ulong Cr0Pe = 1UL << 0;
    /// <summary>CR0.MP (WAIT honours TS).</summary>
    public const ulong Cr0Mp = 1UL << 1;
    /// <summary>CR0.EM (no x87/SSE: x87 raises #NM, SSE raises #UD).</summary>
    public const ulong Cr0Em = 1UL << 2;
    /// <summary>CR0.TS (task switched: the next FPU/SSE instruction raises #NM).</summary>
    public const ulong Cr0Ts = 1UL << 3;
    /// <summary>CR4.OSFXSR (the OS saves SSE state with FXSAVE: SSE instructions are enabled).</summary>
    public const ulong Cr4Osfxsr = 1UL << 9;
    /// <summary>CR4.OSXMMEXCPT (unmasked SIMD floating-point exceptions raise #XM rather than #UD).</summary>
    public const ulong Cr4Osxmmexcpt = 1UL << 10;
    /// <summary>CR0.PG.</summary>
    public const ulong Cr0Pg = 1UL << 31;
    /// <summary>CR4.PAE.</summary>
    public const ulong Cr4Pae = 1UL << 5;
    /// <summary>CR4.DE: debugging extensions (DR4/DR5 are reserved instead of aliases).</summary>
    public const ulong Cr4De = 1UL << 3;
    /// <summary>EFER.LME.</summary>
    public const ulong EferLme = 1UL << 8;
    /// <summary>EFER.LMA.</summary>
    public const ulong EferLma = 1UL << 10;
    /// <summary>EFER.NXE.</summary>
    public const ulong EferNxe = 1UL << 11;

    /// <summary>RAX…R15 in encoding order.</summary>
    public GprArray Gpr;
    /// <summary>Instruction pointer.</summary>
    public ulong Rip;
    /// <summary>Flags register; always materialized while the vCPU is outside <c>Run</c>.</summary>
    public ulong Rflags;
    /// <summary>ES, CS, SS, DS, FS, GS.</summary>
    public SegmentArray Segments;
    /// <summary>Local descriptor table register.</summary>
    public SegmentRegister Ldtr;
    /// <summary>Task register.</summary>
    public SegmentRegister Tr;
    /// <summary>Global descriptor table register.</summary>
    public DescriptorTableRegister Gdtr;
    /// <summary>Interrupt descriptor table register.</summary>
    public DescriptorTableRegister Idtr;
    /// <summary>Control register 0.</summary>
    public ulong Cr0;
    /// <summary>Control register 2 (page-fault linear address).</summary>
    public ulong Cr2;
    /// <summary>Control register 3 (page-table root).</summary>
    public ulong Cr3;
    /// <summary>Control register 4.</summary>
    public ulong Cr4;
    /// <summary>Control register 8 (task priority).</summary>
    public ulong Cr8;
    /// <summary>Extended feature enable register (MSR C000_0080).</summary>
    public ulong Efer;
    /// <summary>Debug registers DR0–DR3.</summary>
    public ulong Dr0, Dr1, Dr2, Dr3;
    /// <summary>Debug status and control.</summary>
    public ulong Dr6, Dr7;
    /// <summary>SYSCALL MSRs.</summary>
    public ulong Star, Lstar, Cstar, Sfmask;
    /// <summary>SWAPGS shadow of GS.base.</summary>
    public ulong KernelGsBase;
    /// <summary>SYSENTER MSRs.</summary>
    public ulong SysenterCs, SysenterEsp, SysenterEip;
    /// <summary>Page attribute table MSR.</summary>
    public ulong Pat;
    /// <summary>IA32_APIC_BASE.</summary>
    public ulong ApicBase;
    /// <summary>IA32_TSC_AUX.</summary>
    public ulong TscAux;
    /// <summary>IA32_MCG_STATUS and IA32_MCG_CTL.</summary>
    public ulong McgStatus, McgCtl;
    /// <summary>The machine-check bank registers (see <see cref="McBankArray"/>).</summary>
    public McBankArray McBanks;
    /// <summary>IA32_MTRR_DEF_TYPE.</summary>
    public ulong MtrrDefType;
    /// <summary>Fixed then variable MTRRs (see <see cref="MtrrArray"/>).</summary>
    public MtrrArray Mtrr;
    /// <summary>Added to the backend's cycle count to form the guest TSC.</summary>
    public ulong TscOffset;

    /// <summary>x87, MXCSR and XMM registers in the FXSAVE layout (see <see cref="FxSaveArea"/>).</summary>
    public FxSaveArea Fx;

    /// <summary>Byte offsets into <see cref="Fx"/>.</summary>
    public const int FxFcw = 0, FxFsw = 2, FxFtw = 4, FxFop = 6, FxFip = 8, FxFdp = 16, FxMxcsr = 24, FxMxcsrMask = 28, FxSt0 = 32, FxXmm0 = 160;

    /// <summary>The MXCSR bits this model implements (DAZ included); the value FXSAVE reports as MXCSR_MASK.</summary>
    public const uint MxcsrMask = 0xFFFF;

    /// <summary>x87 control word.</summary>
    [System.Diagnostics.CodeAnalysis.UnscopedRef]
    public ref ushort Fcw => ref Unsafe.As<byte, ushort>(ref Fx[FxFcw]);

    /// <summary>x87 status word (TOP in bits 13:11).</summary>
    [System.Diagnostics.CodeAnalysis.UnscopedRef]
    public ref ushort Fsw => ref Unsafe.As<byte, ushort>(ref Fx[FxFsw]);

    /// <summary>Abridged x87 tag byte (bit i set: physical register i is valid).</summary>
    [System.Diagnostics.CodeAnalysis.UnscopedRef]
    public ref byte Ftw => ref Fx[FxFtw];

    /// <summary>SSE control/status register.</summary>
    [System.Diagnostics.CodeAnalysis.UnscopedRef]
    public ref uint Mxcsr => ref Unsafe.As<byte, uint>(ref Fx[FxMxcsr]);

    /// <summary>Quadword <paramref name="half"/> (0 low, 1 high) of XMM<paramref name="index"/>.</summary>
    [System.Diagnostics.CodeAnalysis.UnscopedRef]
    public ref ulong XmmQword(int index, int half) => ref Unsafe.As<byte, ulong>(ref Fx[FxXmm0 + index * 16 + half * 8]);

    /// <summary>An exception is raised but not yet delivered (or could not be delivered when the vCPU stopped).</summary>
    public bool ExceptionPending;
    /// <summary>Vector of the pending or last raised exception.</summary>
    public byte ExceptionVector;
    /// <summary>Whether the exception pushes an error code.</summary>
    public bool ExceptionHasErrorCode;
    /// <summary>The error code pushed with the exception.</summary>
    public uint ExceptionErrorCode;
    /// <summary>
    /// STI / MOV SS / POP SS interrupt shadow: external interrupts are held off until one more instruction has run
    /// (KVM's <c>interrupt.shadow</c>).
    /// </summary>
    public bool InterruptShadow;
    /// <summary>The vCPU is halted waiting for an interrupt (MP state).</summary>
    public bool Halted;
    /// <summary>An NMI handler runs: further NMIs wait until the next IRET (KVM's <c>nmi.masked</c>).</summary>
    public bool NmiBlocked;

    /// <summary>Current privilege level (from the cached SS DPL, which equals CS.RPL outside conforming transitions).</summary>
    public readonly int Cpl => Segments[(int)SegmentIndex.Ss].Dpl;

    /// <summary>
    /// Puts the state in the architectural power-on/INIT reset values (real mode at F000:FFF0, CS base FFFF_0000).
    /// </summary>
    public void Reset()
    {
        this = default;
        Rflags = FlagReserved1;
        Rip = 0xFFF0;
        Cr0 = 0x6000_0010;
        Dr6 = 0xFFFF_0FF0;
        Dr7 = 0x400;
        Pat = 0x0007_0406_0007_0406;
        // EDX holds the family/model/stepping signature after reset (the qemu64 model's CPUID.1:EAX).
        Gpr[2] = 0x0006_0FB1;
        for (int i = 0; i < 6; i++)
        {
            Segments[i] = new SegmentRegister { Selector = 0, Base = 0, Limit = 0xFFFF, Attributes = S | P | 3 };
        }
        Segments[(int)SegmentIndex.Cs] = new SegmentRegister { Selector = 0xF000, Base = 0xFFFF_0000, Limit = 0xFFFF, Attributes = S | P | 0xB };
        Ldtr = new SegmentRegister { Limit = 0xFFFF, Attributes = P | 2 };
        Tr = new SegmentRegister { Limit = 0xFFFF, Attributes = P | 0xB };
        Gdtr.Limit = 0xFFFF;
        Idtr.Limit = 0xFFFF;
        // QEMU's reset x87 control word (the FNINIT value; Intel documents 0x0040 after RESET) and the MXCSR reset value.
        Fcw = 0x037F;
        Mxcsr = 0x1F80;
        McgCtl = ulong.MaxValue;
        for (int i = 0; i < 40; i += 4)
        {
            McBanks[i] = ulong.MaxValue; // MCi_CTL: all error reporting enabled, as QEMU's reset
        }
        Unsafe.As<byte, uint>(ref Fx[FxMxcsrMask]) = MxcsrMask;
    }

    /// <summary>
    /// Loads a flat 64-bit ring-0 environment (CS.L, flat data segments, long mode active, paging with the given
    /// CR3), as a loader entering a 64-bit kernel or a test harness would leave it. With <paramref name="cr3"/> zero,
    /// paging stays off: not reachable on hardware, but an interpreter can run long-mode code on identity-mapped
    /// physical memory that way, which keeps CPU tests free of page-table setup.
    /// </summary>
    public void SetFlatLongMode(ulong rip, ulong rsp, ulong cr3 = 0)
    {
        Reset();
        Rip = rip;
        Gpr[4] = rsp;
        Gpr[2] = 0;
        Cr0 = 0x8000_0011 & (cr3 == 0 ? ~Cr0Pg : ulong.MaxValue);
        Cr3 = cr3;
        Cr4 = Cr4Pae;
        Efer = EferLme | EferLma | EferNxe;
        for (int i = 0; i < 6; i++)
        {
            Segments[i] = new SegmentRegister { Selector = 0x10, Base = 0, Limit = 0xFFFF_FFFF, Attributes = S | P | G | DB | 3 };
        }
        Segments[(int)SegmentIndex.Cs] = new SegmentRegister { Selector = 0x08, Base = 0, Limit = 0xFFFF_FFFF, Attributes = S | P | G | L | 0xB };
    }
}
