using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter;

public sealed unsafe partial class InterpreterVcpu
{
    internal const uint MsrTsc = 0x10;
    internal const uint MsrApicBase = 0x1B;
    internal const uint MsrSysenterCs = 0x174;
    internal const uint MsrSysenterEsp = 0x175;
    internal const uint MsrSysenterEip = 0x176;
    internal const uint MsrPat = 0x277;
    internal const uint MsrEfer = 0xC000_0080;
    internal const uint MsrStar = 0xC000_0081;
    internal const uint MsrLstar = 0xC000_0082;
    internal const uint MsrCstar = 0xC000_0083;
    internal const uint MsrSfmask = 0xC000_0084;
    internal const uint MsrFsBase = 0xC000_0100;
    internal const uint MsrGsBase = 0xC000_0101;
    internal const uint MsrKernelGsBase = 0xC000_0102;
    internal const uint MsrTscAux = 0xC000_0103;

    internal bool ProtectedMode => (_state.Cr0 & X86CpuState.Cr0Pe) != 0 && (_state.Rflags & (1UL << 17)) == 0;

    /// <summary>MOV/POP to a data or stack segment register, with the protected-mode descriptor checks.</summary>
    internal ExecStatus LoadDataSegment(int seg, ushort selector)
    {
        ref SegmentRegister s = ref _state.Segments[seg];
        if (!ProtectedMode)
        {
            // Real mode keeps the cached limit and attributes (unreal mode), so the checks stay as they were.
            s.Selector = selector;
            s.Base = (ulong)selector << 4;
            return ExecStatus.Continue;
        }
        int cpl = _state.Cpl;
        if ((selector & ~3) == 0)
        {
            if (seg == (int)SegmentIndex.Ss && !(Bitness == 64 && cpl < 3))
            {
                return Raise(Vector.GP, 0);
            }
            // A null selector loads an unusable segment; in long mode FS/GS keep no base either.
            s = new SegmentRegister { Selector = selector, Attributes = seg == (int)SegmentIndex.Ss ? (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.DB | 3 | (cpl << 5)) : (ushort)0 };
            UpdateSegmentChecks();
            return ExecStatus.Continue;
        }
        if (!ReadDescriptor(selector, out ulong desc))
        {
            return ExecStatus.Fault;
        }
        bool isCodeData = ((desc >> 44) & 1) != 0;
        bool isCode = ((desc >> 43) & 1) != 0;
        bool writable = ((desc >> 41) & 1) != 0;
        int dpl = (int)(desc >> 45) & 3;
        bool present = ((desc >> 47) & 1) != 0;
        uint error = (uint)(selector & ~3);
        if (seg == (int)SegmentIndex.Ss)
        {
            if (!isCodeData || isCode || !writable || (selector & 3) != cpl || dpl != cpl)
            {
                return Raise(Vector.GP, error);
            }
            if (!present)
            {
                return Raise(Vector.SS, error);
            }
        }
        else
        {
            bool readableCode = isCode && writable;
            if (!isCodeData || (isCode && !readableCode))
            {
                return Raise(Vector.GP, error);
            }
            if (!present)
            {
                return Raise(Vector.NP, error);
            }
        }
        LoadCodeSegmentCache(ref s, selector, desc);
        if (seg == (int)SegmentIndex.Ss)
        {
            UpdateMode();
        }
        else
        {
            UpdateSegmentChecks();
        }
        return ExecStatus.Continue;
    }

    /// <summary>Far JMP: loads CS (real mode: selector × 16; protected: a code descriptor at the same CPL).</summary>
    internal ExecStatus FarJump(ushort selector, ulong offset)
    {
        ref SegmentRegister cs = ref _state.Segments[(int)SegmentIndex.Cs];
        if (!ProtectedMode)
        {
            cs.Selector = selector;
            cs.Base = (ulong)selector << 4;
            _state.Rip = offset & 0xFFFF_FFFF;
            UpdateMode();
            return ExecStatus.Branch;
        }
        if (!ReadDescriptor(selector, out ulong desc))
        {
            return ExecStatus.Fault;
        }
        uint error = (uint)(selector & ~3);
        bool isCode = ((desc >> 43) & 3) == 3;
        if (!isCode)
        {
            // Call gates and task switches are not modelled.
            return Raise(Vector.GP, error);
        }
        if (((desc >> 47) & 1) == 0)
        {
            return Raise(Vector.NP, error);
        }
        int cpl = _state.Cpl;
        LoadCodeSegmentCache(ref cs, (ushort)((selector & ~3) | cpl), desc);
        UpdateMode();
        _state.Rip = Bitness == 64 ? offset : Bitness == 32 ? (uint)offset : (ushort)offset;
        return ExecStatus.Branch;
    }

    /// <summary>
    /// Protected-mode (not 64-bit) IRET and RETF [imm16]: pops IP, CS (and FLAGS for IRET), to the same privilege
    /// level or, when CS.RPL &gt; CPL, to an outer one, popping SS:SP too and nulling data segments the new CPL may
    /// not use (SDM vol. 2 IRET/RET). <paramref name="release"/> is RETF's imm16. RSP is untouched on a fault.
    /// </summary>
    internal ExecStatus FarReturnProtected(int size, bool iret, ulong release)
    {
        ulong oldRsp = _state.Gpr[4];
        ExecStatus s = FarReturnProtectedCore(size, iret, release);
        if (s == ExecStatus.Fault)
        {
            _state.Gpr[4] = oldRsp;
        }
        return s;
    }

    private ExecStatus FarReturnProtectedCore(int size, bool iret, ulong release)
    {
        ulong flags = 0;
        ExecStatus s = Pop(size, out ulong ip);
        if (s != ExecStatus.Continue || (s = Pop(size, out ulong popped)) != ExecStatus.Continue ||
            (iret && (s = Pop(size, out flags)) != ExecStatus.Continue))
        {
            return s;
        }
        int cpl = _state.Cpl;
        if (iret && (MaterializeFlags() & (1UL << 14)) != 0)
        {
            // NT set: a return through the TSS back-link (task switch), which is not modelled.
            return Raise(Vector.GP, 0);
        }
        if (iret && size == 4 && cpl == 0 && (flags & (1UL << 17)) != 0)
        {
            // Return to virtual-8086 mode is not modelled.
            return Raise(Vector.GP, 0);
        }
        ushort selector = (ushort)popped;
        uint error = (uint)(selector & ~3);
        int rpl = selector & 3;
        if ((selector & ~3) == 0)
        {
            return Raise(Vector.GP, 0);
        }
        if (!ReadDescriptor(selector, out ulong desc))
        {
            return ExecStatus.Fault;
        }
        int dpl = (int)(desc >> 45) & 3;
        bool conforming = ((desc >> 42) & 1) != 0;
        if (((desc >> 43) & 3) != 3 || rpl < cpl || (conforming ? dpl > rpl : dpl != rpl))
        {
            return Raise(Vector.GP, error);
        }
        if (((desc >> 47) & 1) == 0)
        {
            return Raise(Vector.NP, error);
        }
        ulong target = size == 2 ? ip & 0xFFFF : ip & 0xFFFF_FFFF;
        uint limit = (uint)(desc & 0xFFFF) | (uint)((desc >> 32) & 0xF_0000);
        if (((desc >> 55) & 1) != 0)
        {
            limit = (limit << 12) | 0xFFF;
        }
        if (target > limit)
        {
            return Raise(Vector.GP, 0);
        }
        ref SegmentRegister cs = ref _state.Segments[(int)SegmentIndex.Cs];
        ref SegmentRegister ss = ref _state.Segments[(int)SegmentIndex.Ss];
        if (rpl == cpl)
        {
            if (iret)
            {
                WriteFlagsFromGuest(flags, size, iret: true);
            }
            LoadCodeSegmentCache(ref cs, selector, desc);
            ulong rsp = _state.Gpr[4];
            _state.Gpr[4] = (rsp & ~StackMask) | ((rsp + release) & StackMask);
            _state.Rip = target;
            UpdateMode();
            return ExecStatus.Branch;
        }
        // Outer level: RETF releases its parameters from the inner stack before SS:SP are popped.
        ulong innerRsp = _state.Gpr[4];
        _state.Gpr[4] = (innerRsp & ~StackMask) | ((innerRsp + release) & StackMask);
        if ((s = Pop(size, out ulong newSp)) != ExecStatus.Continue || (s = Pop(size, out ulong ssPopped)) != ExecStatus.Continue)
        {
            return s;
        }
        ushort ssSelector = (ushort)ssPopped;
        uint ssError = (uint)(ssSelector & ~3);
        if ((ssSelector & ~3) == 0)
        {
            return Raise(Vector.GP, 0);
        }
        if (!ReadDescriptor(ssSelector, out ulong ssDesc))
        {
            return ExecStatus.Fault;
        }
        bool writableData = ((ssDesc >> 43) & 3) == 2 && ((ssDesc >> 41) & 1) != 0;
        if ((ssSelector & 3) != rpl || !writableData || (int)((ssDesc >> 45) & 3) != rpl)
        {
            return Raise(Vector.GP, ssError);
        }
        if (((ssDesc >> 47) & 1) == 0)
        {
            return Raise(Vector.SS, ssError);
        }
        if (iret)
        {
            // The flag rules apply with the privilege the IRET ran at, before CS/SS change it.
            WriteFlagsFromGuest(flags, size, iret: true);
        }
        LoadCodeSegmentCache(ref cs, selector, desc);
        LoadCodeSegmentCache(ref ss, ssSelector, ssDesc);
        ulong sp = size == 2 ? newSp & 0xFFFF : newSp & 0xFFFF_FFFF;
        if ((ss.Attributes & SegmentRegister.DB) == 0)
        {
            sp = (_state.Gpr[4] & ~0xFFFFUL) | (sp & 0xFFFF);
        }
        UpdateMode();
        _state.Gpr[4] = (sp & ~StackMask) | ((sp + (iret ? 0 : release)) & StackMask);
        _state.Rip = target;
        NullSegmentsAboveCpl(rpl);
        return ExecStatus.Branch;
    }

    /// <summary>After a return to an outer level: data segments (and non-conforming code) more privileged than the new CPL become null.</summary>
    private void NullSegmentsAboveCpl(int newCpl)
    {
        ReadOnlySpan<int> segments = [(int)SegmentIndex.Es, (int)SegmentIndex.Ds, (int)SegmentIndex.Fs, (int)SegmentIndex.Gs];
        foreach (int i in segments)
        {
            ref SegmentRegister seg = ref _state.Segments[i];
            bool conformingCode = (seg.Attributes & 0xC) == 0xC;
            if ((seg.Attributes & SegmentRegister.S) != 0 && !conformingCode && seg.Dpl < newCpl)
            {
                seg = new SegmentRegister { Selector = 0 };
            }
        }
        UpdateSegmentChecks();
    }

    /// <summary>MOV to CRn, with the mode and TLB consequences.</summary>
    internal ExecStatus WriteControlRegister(int n, ulong value)
    {
        switch (n)
        {
            case 0:
            {
                value |= 0x10; // ET is hardwired to 1.
                bool pg = (value & X86CpuState.Cr0Pg) != 0;
                if (pg && (value & X86CpuState.Cr0Pe) == 0)
                {
                    return Raise(Vector.GP, 0);
                }
                if (pg && (_state.Cr0 & X86CpuState.Cr0Pg) == 0 && (_state.Efer & X86CpuState.EferLme) != 0)
                {
                    if ((_state.Cr4 & X86CpuState.Cr4Pae) == 0)
                    {
                        return Raise(Vector.GP, 0);
                    }
                    _state.Efer |= X86CpuState.EferLma;
                }
                else if (!pg)
                {
                    _state.Efer &= ~X86CpuState.EferLma;
                }
                _state.Cr0 = value;
                break;
            }
            case 2:
                _state.Cr2 = value;
                return ExecStatus.Continue;
            case 3:
                _state.Cr3 = value;
                break;
            case 4:
                if ((value & X86CpuState.Cr4Pae) == 0 && (_state.Efer & X86CpuState.EferLma) != 0)
                {
                    return Raise(Vector.GP, 0);
                }
                if ((value & ~Cr4Writable()) != 0)
                {
                    return Raise(Vector.GP, 0);
                }
                _state.Cr4 = value;
                break;
            case 8:
                // CR8 is the APIC's TPR bits 7:4 (SDM 10.8.6.5); lowering it may unblock an interrupt.
                _state.Cr8 = value & 0xF;
                LocalApic?.Write(0x80, 4, (value & 0xF) << 4);
                return ExecStatus.Continue;
            default:
                return Raise(Vector.UD);
        }
        FlushTlb();
        UpdateMode();
        // Paging or mode may have changed under the decoded block: refetch at the next instruction.
        return ExecStatus.Branch;
    }

    /// <summary>CR4 bits this CPU model has (VME … OSXMMEXCPT, and PCIDE/OSXSAVE when CPUID claims them); others are reserved (#GP).</summary>
    private ulong Cr4Writable()
    {
        ulong bits = 0x7FF;
        if ((Features.Leaf1Ecx & (1u << 17)) != 0)
        {
            bits |= 1UL << 17;
        }
        if ((Features.Leaf1Ecx & (1u << 26)) != 0)
        {
            bits |= 1UL << 18;
        }
        return bits;
    }

    internal bool TryReadControlRegister(int n, out ulong value)
    {
        value = n switch
        {
            0 => _state.Cr0,
            2 => _state.Cr2,
            3 => _state.Cr3,
            4 => _state.Cr4,
            8 => LocalApic is { } apic ? (apic.Read(0x80, 4) >> 4) & 0xF : _state.Cr8,
            _ => 0,
        };
        return n is 0 or 2 or 3 or 4 or 8;
    }

    private const uint MsrMcgCap = 0x179;
    private const uint MsrMcgStatus = 0x17A;
    private const uint MsrMcgCtl = 0x17B;
    private const uint MsrMc0Ctl = 0x400;

    /// <summary>MCG_CAP: MCG_CTL present, 10 banks (QEMU's default machine-check model).</summary>
    private const ulong McgCapValue = 0x10A;

    /// <summary>MTRRcap as QEMU reports it: 8 variable ranges, fixed ranges and write-combining supported.</summary>
    private const ulong MtrrCapValue = 0x508;

    /// <summary>
    /// Slot of an MTRR MSR in <see cref="X86CpuState.Mtrr"/>: 0–10 fixed, 11–26 variable base/mask; -1 MTRRcap,
    /// -2 MTRRdefType; null for other MSRs.
    /// </summary>
    private static int? MtrrIndex(uint msr) => msr switch
    {
        0xFE => -1,
        0x2FF => -2,
        0x250 => 0,
        0x258 => 1,
        0x259 => 2,
        >= 0x268 and <= 0x26F => 3 + (int)(msr - 0x268),
        >= 0x200 and <= 0x20F => 11 + (int)(msr - 0x200),
        _ => null,
    };

    internal bool TryReadMsr(uint msr, out ulong value)
    {
        switch (msr)
        {
            case MsrMcgCap:
                value = McgCapValue;
                return true;
            case MsrMcgStatus:
                value = _state.McgStatus;
                return true;
            case MsrMcgCtl:
                value = _state.McgCtl;
                return true;
            case >= MsrMc0Ctl and < MsrMc0Ctl + 40:
                value = _state.McBanks[(int)(msr - MsrMc0Ctl)];
                return true;
        }
        if (MtrrIndex(msr) is int mtrr)
        {
            value = mtrr < 0 ? (mtrr == -1 ? MtrrCapValue : _state.MtrrDefType) : _state.Mtrr[mtrr];
            return true;
        }
        value = msr switch
        {
            MsrTsc => _state.TscOffset + TscBase,
            MsrApicBase => LocalApic?.BaseMsr ?? _state.ApicBase,
            MsrSysenterCs => _state.SysenterCs,
            MsrSysenterEsp => _state.SysenterEsp,
            MsrSysenterEip => _state.SysenterEip,
            MsrPat => _state.Pat,
            MsrEfer => _state.Efer,
            MsrStar => _state.Star,
            MsrLstar => _state.Lstar,
            MsrCstar => _state.Cstar,
            MsrSfmask => _state.Sfmask,
            MsrFsBase => _state.Segments[(int)SegmentIndex.Fs].Base,
            MsrGsBase => _state.Segments[(int)SegmentIndex.Gs].Base,
            MsrKernelGsBase => _state.KernelGsBase,
            MsrTscAux => _state.TscAux,
            _ => 0,
        };
        return msr is MsrTsc or MsrApicBase or MsrSysenterCs or MsrSysenterEsp or MsrSysenterEip or MsrPat or MsrEfer
            or MsrStar or MsrLstar or MsrCstar or MsrSfmask or MsrFsBase or MsrGsBase or MsrKernelGsBase or MsrTscAux;
    }

    /// <summary>WRMSR; false for MSRs the model lacks or values it refuses (the caller drops the write, as QEMU's TCG).</summary>
    internal bool TryWriteMsr(uint msr, ulong value)
    {
        switch (msr)
        {
            case MsrMcgCap:
                return false;
            case MsrMcgStatus:
                _state.McgStatus = value;
                return true;
            case MsrMcgCtl:
                // Only all-ones or all-zeros, as the SDM allows (and QEMU enforces).
                if (value is not (0 or ulong.MaxValue))
                {
                    return false;
                }
                _state.McgCtl = value;
                return true;
            case >= MsrMc0Ctl and < MsrMc0Ctl + 40:
                int bank = (int)(msr - MsrMc0Ctl);
                // MCi_STATUS accepts only zero (clearing a logged error); no errors are ever injected here.
                if ((bank & 3) == 1 && value != 0)
                {
                    return false;
                }
                _state.McBanks[bank] = value;
                return true;
        }
        if (MtrrIndex(msr) is int mtrr)
        {
            // Memory types have no effect on an interpreter; the registers only hold what firmware and the OS wrote.
            if (mtrr == -1)
            {
                return false; // MTRRcap is read-only
            }
            if (mtrr == -2)
            {
                _state.MtrrDefType = value & 0xCFF;
            }
            else
            {
                _state.Mtrr[mtrr] = value;
            }
            return true;
        }
        switch (msr)
        {
            case MsrTsc:
                _state.TscOffset = value - TscBase;
                return true;
            case MsrApicBase:
                LocalApic?.WriteBaseMsr(value);
                _state.ApicBase = LocalApic?.BaseMsr ?? value;
                return true;
            case MsrSysenterCs:
                _state.SysenterCs = value;
                return true;
            case MsrSysenterEsp:
                _state.SysenterEsp = value;
                return true;
            case MsrSysenterEip:
                _state.SysenterEip = value;
                return true;
            case MsrPat:
                _state.Pat = value;
                return true;
            case MsrEfer:
                // LMA is read-only; SCE, LME, NXE are writable.
                _state.Efer = (value & 0xD01) | (_state.Efer & X86CpuState.EferLma);
                FlushTlb();
                return true;
            case MsrStar:
                _state.Star = value;
                return true;
            case MsrLstar:
                _state.Lstar = value;
                return true;
            case MsrCstar:
                _state.Cstar = value;
                return true;
            case MsrSfmask:
                _state.Sfmask = value;
                return true;
            case MsrFsBase:
                _state.Segments[(int)SegmentIndex.Fs].Base = value;
                return true;
            case MsrGsBase:
                _state.Segments[(int)SegmentIndex.Gs].Base = value;
                return true;
            case MsrKernelGsBase:
                _state.KernelGsBase = value;
                return true;
            case MsrTscAux:
                _state.TscAux = value;
                return true;
            default:
                return false;
        }
    }

    /// <summary>LTR/LLDT: loads a system-segment register from a GDT descriptor (16 bytes in long mode).</summary>
    internal ExecStatus LoadSystemSegment(bool task, ushort selector)
    {
        ref SegmentRegister target = ref task ? ref _state.Tr : ref _state.Ldtr;
        if ((selector & ~3) == 0)
        {
            if (task)
            {
                return Raise(Vector.GP, 0);
            }
            target = new SegmentRegister { Selector = selector };
            return ExecStatus.Continue;
        }
        if ((selector & 4) != 0 || (ulong)(selector & ~7) + (Bitness == 64 ? 15u : 7u) > _state.Gdtr.Limit)
        {
            return Raise(Vector.GP, (uint)(selector & ~3));
        }
        ulong address = _state.Gdtr.Base + (ulong)(selector & ~7);
        if (ReadMem(address, 8, out ulong desc) != ExecStatus.Continue)
        {
            return ExecStatus.Fault;
        }
        ulong high = 0;
        if (Bitness == 64 && ReadMem(address + 8, 8, out high) != ExecStatus.Continue)
        {
            return ExecStatus.Fault;
        }
        int type = (int)(desc >> 40) & 0x1F;
        bool ok = task ? type is 0x09 or 0x01 : type == 0x02;
        if (!ok)
        {
            return Raise(Vector.GP, (uint)(selector & ~3));
        }
        if (((desc >> 47) & 1) == 0)
        {
            return Raise(Vector.NP, (uint)(selector & ~3));
        }
        LoadCodeSegmentCache(ref target, selector, desc);
        target.Base |= (high & 0xFFFF_FFFF) << 32;
        if (task)
        {
            // Mark the TSS busy, as the hardware does.
            WriteMem(address, 8, desc | (1UL << 41));
            target.Attributes |= 2;
        }
        return ExecStatus.Continue;
    }
}
