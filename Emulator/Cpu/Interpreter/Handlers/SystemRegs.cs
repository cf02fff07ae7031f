using Colo.Core.Cpu;
using Iced.Intel;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>System registers: segment and control registers, descriptor tables, MSRs, far jumps.</summary>
internal static class SystemRegs
{
    private const ExecStatus Ok = ExecStatus.Continue;

    private static bool Ring0(InterpreterVcpu c) => c.State.Cpl == 0;

    public static ExecStatus MovSreg(InterpreterVcpu c, ref DecodedOp op)
    {
        if (op.R0 >= DecodedOp.SegRegBase && op.K0 == OperandKind.Reg)
        {
            int seg = op.R0 - DecodedOp.SegRegBase;
            if (seg == (int)SegmentIndex.Cs)
            {
                return c.Raise(Vector.UD);
            }
            ExecStatus s = c.ReadOperand(ref op, op.K1, op.R1, 2, out ulong selector);
            if (s != Ok)
            {
                return s;
            }
            s = c.LoadDataSegment(seg, (ushort)selector);
            if (s != Ok || seg != (int)SegmentIndex.Ss)
            {
                return s;
            }
            // A new SS changes the stack size the decoded block assumed, and blocks interrupts for one instruction.
            c.State.InterruptShadow = true;
            return ExecStatus.Branch;
        }
        ulong value = c.State.Segments[op.R1 - DecodedOp.SegRegBase].Selector;
        return c.WriteOperand(ref op, op.K0, op.R0, op.K0 == OperandKind.Mem ? 2 : op.Size, value);
    }

    public static ExecStatus MovCr(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Ring0(c))
        {
            return c.Raise(Vector.GP, 0);
        }
        if (op.R0 >= DecodedOp.CrBase)
        {
            return c.WriteControlRegister(op.R0 - DecodedOp.CrBase, c.GetReg(op.R1, op.SrcSize));
        }
        if (!c.TryReadControlRegister(op.R1 - DecodedOp.CrBase, out ulong value))
        {
            return c.Raise(Vector.UD);
        }
        c.SetReg(op.R0, op.Size, value);
        return Ok;
    }

    /// <summary>
    /// MOV to/from DR0–DR7 (SDM 17.2): ring 0 only; DR4/DR5 alias DR6/DR7 unless CR4.DE makes them #UD; #GP for
    /// bits 63:32 of DR6/DR7 in 64-bit mode. Breakpoints fire through <c>InterpreterVcpu.StepDebug</c>.
    /// </summary>
    public static ExecStatus MovDr(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Ring0(c))
        {
            return c.Raise(Vector.GP, 0);
        }
        bool write = op.R0 >= DecodedOp.DrBase;
        int dr = (write ? op.R0 : op.R1) - DecodedOp.DrBase;
        if (dr is 4 or 5)
        {
            if ((c.State.Cr4 & X86CpuState.Cr4De) != 0)
            {
                return c.Raise(Vector.UD);
            }
            dr += 2;
        }
        if (dr > 7)
        {
            return c.Raise(Vector.UD);
        }
        ref X86CpuState s = ref c.State;
        if (!write)
        {
            ulong value = dr switch
            {
                0 => s.Dr0,
                1 => s.Dr1,
                2 => s.Dr2,
                3 => s.Dr3,
                6 => s.Dr6,
                _ => s.Dr7,
            };
            c.SetReg(op.R0, op.Size, value);
            return Ok;
        }
        ulong v = c.GetReg(op.R1, op.SrcSize);
        if (dr >= 6 && (v >> 32) != 0 && c.Bitness == 64)
        {
            return c.Raise(Vector.GP, 0); // the upper halves of DR6/DR7 are reserved
        }
        switch (dr)
        {
            case 0: s.Dr0 = v; break;
            case 1: s.Dr1 = v; break;
            case 2: s.Dr2 = v; break;
            case 3: s.Dr3 = v; break;
            case 6: s.Dr6 = (v & 0xE00F) | 0xFFFF_0FF0; break;
            default: s.Dr7 = (v & 0xFFFF_2BFF) | 0x400; break;
        }
        // Breakpoints may have been armed: the run loop decides between blocks whether to step with debug checks.
        c.ExitBlock = true;
        return Ok;
    }

    public static ExecStatus PushSreg(InterpreterVcpu c, ref DecodedOp op) =>
        c.Push(c.State.Segments[op.R0 - DecodedOp.SegRegBase].Selector, op.StackSize);

    /// <summary>LDS/LES/LFS/LGS/LSS: loads offset and selector of a far pointer; the register changes only if the segment loads.</summary>
    private static ExecStatus LoadFarPointer(InterpreterVcpu c, ref DecodedOp op, SegmentIndex seg)
    {
        int size = op.Size;
        ExecStatus sg = c.OperandLinear(ref op, size + 2, InterpreterVcpu.AccessRead, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        ExecStatus s = c.ReadMem(linear, size, out ulong offset);
        if (s != Ok)
        {
            return s;
        }
        s = c.ReadMem(linear + (ulong)size, 2, out ulong selector);
        if (s != Ok)
        {
            return s;
        }
        s = c.LoadDataSegment((int)seg, (ushort)selector);
        if (s != Ok)
        {
            return s;
        }
        c.SetReg(op.R0, size, offset);
        if (seg != SegmentIndex.Ss)
        {
            return Ok;
        }
        c.State.InterruptShadow = true;
        return ExecStatus.Branch;
    }

    public static ExecStatus Lds(InterpreterVcpu c, ref DecodedOp op) => LoadFarPointer(c, ref op, SegmentIndex.Ds);

    public static ExecStatus Les(InterpreterVcpu c, ref DecodedOp op) => LoadFarPointer(c, ref op, SegmentIndex.Es);

    public static ExecStatus Lfs(InterpreterVcpu c, ref DecodedOp op) => LoadFarPointer(c, ref op, SegmentIndex.Fs);

    public static ExecStatus Lgs(InterpreterVcpu c, ref DecodedOp op) => LoadFarPointer(c, ref op, SegmentIndex.Gs);

    public static ExecStatus Lss(InterpreterVcpu c, ref DecodedOp op) => LoadFarPointer(c, ref op, SegmentIndex.Ss);

    public static ExecStatus PopSreg(InterpreterVcpu c, ref DecodedOp op)
    {
        ulong oldRsp = c.Gpr(4);
        ExecStatus s = c.Pop(op.StackSize, out ulong v);
        if (s != Ok)
        {
            return s;
        }
        int seg = op.R0 - DecodedOp.SegRegBase;
        s = c.LoadDataSegment(seg, (ushort)v);
        if (s != Ok)
        {
            c.Gpr(4) = oldRsp;
            return s;
        }
        if (seg != (int)SegmentIndex.Ss)
        {
            return Ok;
        }
        c.State.InterruptShadow = true;
        return ExecStatus.Branch;
    }

    private static ExecStatus LoadTable(InterpreterVcpu c, ref DecodedOp op, bool idt)
    {
        if (!Ring0(c))
        {
            return c.Raise(Vector.GP, 0);
        }
        ExecStatus sg = c.OperandLinear(ref op, 2 + (c.Bitness == 64 ? 8 : 4), InterpreterVcpu.AccessRead, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        ExecStatus s = c.ReadMem(linear, 2, out ulong limit);
        if (s != Ok)
        {
            return s;
        }
        s = c.ReadMem(linear + 2, c.Bitness == 64 ? 8 : 4, out ulong tableBase);
        if (s != Ok)
        {
            return s;
        }
        if (op.Instr.Code is Code.Lgdt_m1632_16 or Code.Lidt_m1632_16)
        {
            tableBase &= 0xFF_FFFF;
        }
        var value = new DescriptorTableRegister { Base = tableBase, Limit = (ushort)limit };
        if (idt)
        {
            c.State.Idtr = value;
        }
        else
        {
            c.State.Gdtr = value;
        }
        return Ok;
    }

    public static ExecStatus Lgdt(InterpreterVcpu c, ref DecodedOp op) => LoadTable(c, ref op, idt: false);

    public static ExecStatus Lidt(InterpreterVcpu c, ref DecodedOp op) => LoadTable(c, ref op, idt: true);

    private static ExecStatus StoreTable(InterpreterVcpu c, ref DecodedOp op, DescriptorTableRegister table)
    {
        ExecStatus sg = c.OperandLinear(ref op, 2 + (c.Bitness == 64 ? 8 : 4), InterpreterVcpu.AccessWrite, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        ExecStatus s = c.WriteMem(linear, 2, table.Limit);
        return s != Ok ? s : c.WriteMem(linear + 2, c.Bitness == 64 ? 8 : 4, table.Base);
    }

    public static ExecStatus Sgdt(InterpreterVcpu c, ref DecodedOp op) => StoreTable(c, ref op, c.State.Gdtr);

    public static ExecStatus Sidt(InterpreterVcpu c, ref DecodedOp op) => StoreTable(c, ref op, c.State.Idtr);

    private static ExecStatus LoadSystem(InterpreterVcpu c, ref DecodedOp op, bool task)
    {
        if (!c.ProtectedMode)
        {
            return c.Raise(Vector.UD);
        }
        if (!Ring0(c))
        {
            return c.Raise(Vector.GP, 0);
        }
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, 2, out ulong selector);
        return s != Ok ? s : c.LoadSystemSegment(task, (ushort)selector);
    }

    public static ExecStatus Lldt(InterpreterVcpu c, ref DecodedOp op) => LoadSystem(c, ref op, task: false);

    public static ExecStatus Ltr(InterpreterVcpu c, ref DecodedOp op) => LoadSystem(c, ref op, task: true);

    public static ExecStatus Rdmsr(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Ring0(c))
        {
            return c.Raise(Vector.GP, 0);
        }
        // An MSR the model lacks reads as zero, and a write to one (or a value it refuses) is dropped: QEMU's TCG
        // does the same, and guests probing MSRs behave as they do there.
        if (!c.TryReadMsr((uint)c.Gpr(1), out ulong value))
        {
            value = 0;
        }
        c.Gpr(0) = (uint)value;
        c.Gpr(2) = value >> 32;
        return Ok;
    }

    public static ExecStatus Wrmsr(InterpreterVcpu c, ref DecodedOp op)
    {
        ulong value = ((c.Gpr(2) & 0xFFFF_FFFF) << 32) | (c.Gpr(0) & 0xFFFF_FFFF);
        if (!Ring0(c))
        {
            return c.Raise(Vector.GP, 0);
        }
        c.TryWriteMsr((uint)c.Gpr(1), value);
        // EFER.NXE/LME and segment bases feed decoded state: refetch.
        return ExecStatus.Branch;
    }

    public static ExecStatus Invlpg(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Ring0(c))
        {
            return c.Raise(Vector.GP, 0);
        }
        c.FlushTlbPage(c.LinearAddress(ref op));
        return Ok;
    }

    public static ExecStatus Swapgs(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.Bitness != 64)
        {
            return c.Raise(Vector.UD);
        }
        if (!Ring0(c))
        {
            return c.Raise(Vector.GP, 0);
        }
        ref X86CpuState st = ref c.State;
        (st.Segments[(int)SegmentIndex.Gs].Base, st.KernelGsBase) = (st.KernelGsBase, st.Segments[(int)SegmentIndex.Gs].Base);
        return Ok;
    }

    public static ExecStatus Clts(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Ring0(c))
        {
            return c.Raise(Vector.GP, 0);
        }
        c.State.Cr0 &= ~8UL;
        return Ok;
    }

    /// <summary>Cache-control instructions: no architectural effect in an interpreter beyond the privilege check.</summary>
    public static ExecStatus Privileged(InterpreterVcpu c, ref DecodedOp op) => Ring0(c) ? Ok : c.Raise(Vector.GP, 0);

    public static ExecStatus FarJmpImmediate(InterpreterVcpu c, ref DecodedOp op) => c.FarJump((ushort)op.Imm, op.Target);

    private static ExecStatus FarJmpMem(InterpreterVcpu c, ref DecodedOp op, int offsetSize)
    {
        ExecStatus sg = c.OperandLinear(ref op, offsetSize + 2, InterpreterVcpu.AccessRead, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        ExecStatus s = c.ReadMem(linear, offsetSize, out ulong offset);
        if (s != Ok)
        {
            return s;
        }
        s = c.ReadMem(linear + (ulong)offsetSize, 2, out ulong selector);
        return s != Ok ? s : c.FarJump((ushort)selector, offset);
    }

    public static ExecStatus FarJmpMem16(InterpreterVcpu c, ref DecodedOp op) => FarJmpMem(c, ref op, 2);

    public static ExecStatus FarJmpMem32(InterpreterVcpu c, ref DecodedOp op) => FarJmpMem(c, ref op, 4);

    public static ExecStatus FarJmpMem64(InterpreterVcpu c, ref DecodedOp op) => FarJmpMem(c, ref op, 8);

    /// <summary>Far CALL to a code segment at the same privilege (call gates are not modelled: they raise #GP).</summary>
    private static ExecStatus FarCall(InterpreterVcpu c, ushort selector, ulong offset, int size)
    {
        ulong oldRsp = c.Gpr(4);
        ExecStatus s = c.Push(c.State.Segments[(int)SegmentIndex.Cs].Selector, size);
        if (s == Ok)
        {
            s = c.Push(c.State.Rip, size);
        }
        if (s == Ok)
        {
            s = c.FarJump(selector, offset);
        }
        if (s == ExecStatus.Fault)
        {
            c.Gpr(4) = oldRsp;
        }
        return s;
    }

    private static ExecStatus FarCallMem(InterpreterVcpu c, ref DecodedOp op, int size)
    {
        ExecStatus sg = c.OperandLinear(ref op, size + 2, InterpreterVcpu.AccessRead, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        ExecStatus s = c.ReadMem(linear, size, out ulong offset);
        if (s != Ok)
        {
            return s;
        }
        s = c.ReadMem(linear + (ulong)size, 2, out ulong selector);
        return s != Ok ? s : FarCall(c, (ushort)selector, offset, size);
    }

    public static ExecStatus FarCallImmediate16(InterpreterVcpu c, ref DecodedOp op) => FarCall(c, (ushort)op.Imm, op.Target, 2);

    public static ExecStatus FarCallImmediate32(InterpreterVcpu c, ref DecodedOp op) => FarCall(c, (ushort)op.Imm, op.Target, 4);

    public static ExecStatus FarCallMem16(InterpreterVcpu c, ref DecodedOp op) => FarCallMem(c, ref op, 2);

    public static ExecStatus FarCallMem32(InterpreterVcpu c, ref DecodedOp op) => FarCallMem(c, ref op, 4);

    public static ExecStatus FarCallMem64(InterpreterVcpu c, ref DecodedOp op) => FarCallMem(c, ref op, 8);

    /// <summary>RETF [imm16]: real mode; protected mode outside 64-bit code through <see cref="InterpreterVcpu.FarReturnProtected"/>; 64-bit code to the same privilege level only (an outer-level return raises #GP).</summary>
    private static ExecStatus FarReturn(InterpreterVcpu c, ref DecodedOp op, int size)
    {
        if (c.ProtectedMode && c.Bitness != 64)
        {
            return c.FarReturnProtected(size, false, op.K0 == OperandKind.Imm ? op.Imm : 0);
        }
        ulong oldRsp = c.Gpr(4);
        ExecStatus s = c.Pop(size, out ulong offset);
        ulong selector = 0;
        if (s == Ok)
        {
            s = c.Pop(size, out selector);
        }
        if (s == Ok && c.ProtectedMode && (int)(selector & 3) != c.State.Cpl)
        {
            s = c.Raise(Vector.GP, (uint)(selector & ~3UL));
        }
        if (s == Ok)
        {
            s = c.FarJump((ushort)selector, offset);
        }
        if (s == ExecStatus.Fault)
        {
            c.Gpr(4) = oldRsp;
            return s;
        }
        if (op.K0 == OperandKind.Imm)
        {
            ref ulong rsp = ref c.Gpr(4);
            rsp = (rsp & ~c.StackMask) | ((rsp + op.Imm) & c.StackMask);
        }
        return s;
    }

    public static ExecStatus Retf16(InterpreterVcpu c, ref DecodedOp op) => FarReturn(c, ref op, 2);

    public static ExecStatus Retf32(InterpreterVcpu c, ref DecodedOp op) => FarReturn(c, ref op, 4);

    public static ExecStatus Retf64(InterpreterVcpu c, ref DecodedOp op) => FarReturn(c, ref op, 8);

    /// <summary>IRETW/IRETD: real mode here, protected mode (same or outer privilege) in <see cref="InterpreterVcpu.FarReturnProtected"/>.</summary>
    public static ExecStatus IretReal(InterpreterVcpu c, ref DecodedOp op)
    {
        c.State.NmiBlocked = false; // any IRET ends NMI blocking, even one that faults
        int size = op.Instr.Code == Code.Iretd ? 4 : 2;
        if (c.Bitness == 64)
        {
            // 64-bit IRETW/IRETD always pop SS:RSP; only IRETQ is modelled there.
            return c.Raise(Vector.UD);
        }
        if (c.ProtectedMode)
        {
            return c.FarReturnProtected(size, true, 0);
        }
        ulong oldRsp = c.Gpr(4);
        ExecStatus s = c.Pop(size, out ulong ip);
        ulong cs = 0;
        ulong flags = 0;
        if (s == Ok)
        {
            s = c.Pop(size, out cs);
        }
        if (s == Ok)
        {
            s = c.Pop(size, out flags);
        }
        if (s != Ok)
        {
            c.Gpr(4) = oldRsp;
            return s;
        }
        c.WriteFlagsFromGuest(flags, size, iret: true);
        ref SegmentRegister seg = ref c.State.Segments[(int)SegmentIndex.Cs];
        seg.Selector = (ushort)cs;
        seg.Base = (cs & 0xFFFF) << 4;
        c.State.Rip = size == 2 ? (ushort)ip : (uint)ip;
        return ExecStatus.Branch;
    }
}

/// <summary>Software interrupts and the fast system-call pair.</summary>
internal static class SystemCalls
{
    private const ulong RflagsRf = 1UL << 16;

    public static ExecStatus Int(InterpreterVcpu c, ref DecodedOp op) => c.SoftwareInterrupt((byte)op.Imm);

    public static ExecStatus Int3(InterpreterVcpu c, ref DecodedOp op) => c.SoftwareInterrupt(Vector.BP);

    public static ExecStatus Into(InterpreterVcpu c, ref DecodedOp op) => c.Condition(1) ? c.SoftwareInterrupt(4) : ExecStatus.Continue;

    /// <summary>
    /// INT1 / ICEBP (F1): a #DB delivered like a hardware exception (no gate DPL check), past the instruction; DR6 is
    /// left alone.
    /// </summary>
    public static ExecStatus Int1(InterpreterVcpu c, ref DecodedOp op) => c.DebugTrapInstruction();

    /// <summary>SYSCALL in long mode: RCX/R11 take RIP/RFLAGS, CS/SS come from STAR, RIP from LSTAR.</summary>
    public static ExecStatus Syscall(InterpreterVcpu c, ref DecodedOp op)
    {
        ref X86CpuState st = ref c.State;
        if ((st.Efer & 1) == 0 || c.Bitness != 64)
        {
            // Legacy-mode SYSCALL (CSTAR/STAR.EIP targets) is not modelled.
            return c.Raise(Vector.UD);
        }
        ulong flags = c.MaterializeFlags();
        st.Gpr[1] = st.Rip;
        st.Gpr[11] = flags;
        st.Rflags = (flags & ~st.Sfmask & ~RflagsRf) | X86CpuState.FlagReserved1;
        ushort selector = (ushort)((st.Star >> 32) & 0xFFFC);
        st.Segments[(int)SegmentIndex.Cs] = new SegmentRegister
        {
            Selector = selector,
            Limit = 0xFFFF_FFFF,
            Attributes = SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.L | 0xB,
        };
        st.Segments[(int)SegmentIndex.Ss] = new SegmentRegister
        {
            Selector = (ushort)(selector + 8),
            Limit = 0xFFFF_FFFF,
            Attributes = SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | 3,
        };
        st.Rip = st.Lstar;
        c.UpdateMode();
        return ExecStatus.Branch;
    }

    /// <summary>SYSRET to 64-bit (SYSRETQ) or compatibility-mode (SYSRETD) ring 3.</summary>
    public static ExecStatus Sysret(InterpreterVcpu c, ref DecodedOp op)
    {
        ref X86CpuState st = ref c.State;
        if ((st.Efer & 1) == 0 || c.Bitness != 64)
        {
            return c.Raise(Vector.UD);
        }
        if (st.Cpl != 0)
        {
            return c.Raise(Vector.GP, 0);
        }
        bool to64 = op.Instr.Code == Iced.Intel.Code.Sysretq;
        ulong rip = to64 ? st.Gpr[1] : (uint)st.Gpr[1];
        if (to64 && (ulong)(((long)rip << 16) >> 16) != rip)
        {
            return c.Raise(Vector.GP, 0);
        }
        ushort baseSelector = (ushort)(st.Star >> 48);
        c.WriteFlagsFromGuest(st.Gpr[11], 8);
        st.Rflags = (st.Rflags & ~RflagsRf) | X86CpuState.FlagReserved1;
        st.Segments[(int)SegmentIndex.Cs] = new SegmentRegister
        {
            Selector = (ushort)((to64 ? baseSelector + 16 : baseSelector) | 3),
            Limit = 0xFFFF_FFFF,
            Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | 0xB | (3 << 5) | (to64 ? SegmentRegister.L : SegmentRegister.DB)),
        };
        st.Segments[(int)SegmentIndex.Ss] = new SegmentRegister
        {
            Selector = (ushort)((baseSelector + 8) | 3),
            Limit = 0xFFFF_FFFF,
            Attributes = SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | 3 | (3 << 5),
        };
        st.Rip = rip;
        c.UpdateMode();
        return ExecStatus.Branch;
    }

    /// <summary>
    /// SYSENTER: flat ring-0 CS/SS from IA32_SYSENTER_CS (64-bit CS in IA-32e mode), RSP/RIP from the ESP/EIP MSRs;
    /// clears VM, IF and RF. #GP(0) in real mode or with a null SYSENTER_CS.
    /// </summary>
    public static ExecStatus Sysenter(InterpreterVcpu c, ref DecodedOp op)
    {
        ref X86CpuState st = ref c.State;
        if ((st.Cr0 & X86CpuState.Cr0Pe) == 0 || (st.SysenterCs & 0xFFFC) == 0)
        {
            return c.Raise(Vector.GP, 0);
        }
        bool longMode = (st.Efer & X86CpuState.EferLma) != 0;
        ulong flags = c.MaterializeFlags();
        st.Rflags = (flags & ~(X86CpuState.FlagIf | RflagsRf | (1UL << 17))) | X86CpuState.FlagReserved1;
        ushort selector = (ushort)(st.SysenterCs & 0xFFFC);
        st.Segments[(int)SegmentIndex.Cs] = new SegmentRegister
        {
            Selector = selector,
            Limit = 0xFFFF_FFFF,
            Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | 0xB | (longMode ? SegmentRegister.L : SegmentRegister.DB)),
        };
        st.Segments[(int)SegmentIndex.Ss] = new SegmentRegister
        {
            Selector = (ushort)(selector + 8),
            Limit = 0xFFFF_FFFF,
            Attributes = SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | 3,
        };
        st.Gpr[4] = longMode ? st.SysenterEsp : (uint)st.SysenterEsp;
        st.Rip = longMode ? st.SysenterEip : (uint)st.SysenterEip;
        c.UpdateMode();
        return ExecStatus.Branch;
    }

    /// <summary>
    /// SYSEXIT (to 32-bit ring 3: CS = SYSENTER_CS+16) or SYSEXITQ (to 64-bit ring 3: CS = SYSENTER_CS+32); RSP from
    /// RCX, RIP from RDX. #GP(0) outside ring 0, in real mode, with a null SYSENTER_CS or a non-canonical target.
    /// </summary>
    public static ExecStatus Sysexit(InterpreterVcpu c, ref DecodedOp op)
    {
        ref X86CpuState st = ref c.State;
        if ((st.Cr0 & X86CpuState.Cr0Pe) == 0 || (st.SysenterCs & 0xFFFC) == 0 || st.Cpl != 0)
        {
            return c.Raise(Vector.GP, 0);
        }
        bool to64 = op.Instr.Code == Iced.Intel.Code.Sysexitq;
        ulong rip = to64 ? st.Gpr[2] : (uint)st.Gpr[2];
        ulong rsp = to64 ? st.Gpr[1] : (uint)st.Gpr[1];
        if (to64 && ((ulong)(((long)rip << 16) >> 16) != rip || (ulong)(((long)rsp << 16) >> 16) != rsp))
        {
            return c.Raise(Vector.GP, 0);
        }
        ushort baseSelector = (ushort)st.SysenterCs;
        st.Segments[(int)SegmentIndex.Cs] = new SegmentRegister
        {
            Selector = (ushort)(((baseSelector + (to64 ? 32 : 16)) & 0xFFFC) | 3),
            Limit = 0xFFFF_FFFF,
            Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | 0xB | (3 << 5) | (to64 ? SegmentRegister.L : SegmentRegister.DB)),
        };
        st.Segments[(int)SegmentIndex.Ss] = new SegmentRegister
        {
            Selector = (ushort)(((baseSelector + (to64 ? 40 : 24)) & 0xFFFC) | 3),
            Limit = 0xFFFF_FFFF,
            Attributes = SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | 3 | (3 << 5),
        };
        st.Gpr[4] = rsp;
        st.Rip = rip;
        c.UpdateMode();
        return ExecStatus.Branch;
    }
}
