using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>Branches, calls, returns and loops. Targets were resolved by iced at decode time.</summary>
internal static class Flow
{
    private const ExecStatus Ok = ExecStatus.Continue;

    public static ExecStatus Jcc(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!c.Condition(op.Cond))
        {
            return Ok;
        }
        c.State.Rip = op.Target;
        return ExecStatus.Branch;
    }

    public static ExecStatus JmpRel(InterpreterVcpu c, ref DecodedOp op)
    {
        c.State.Rip = op.Target;
        return ExecStatus.Branch;
    }

    public static ExecStatus JmpIndirect(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, op.Size, out ulong target);
        if (s != Ok)
        {
            return s;
        }
        c.State.Rip = target;
        return ExecStatus.Branch;
    }

    public static ExecStatus CallRel(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.Push(op.NextIp, op.StackSize);
        if (s != Ok)
        {
            return s;
        }
        c.State.Rip = op.Target;
        return ExecStatus.Branch;
    }

    public static ExecStatus CallIndirect(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, op.Size, out ulong target);
        if (s != Ok)
        {
            return s;
        }
        s = c.Push(op.NextIp, op.StackSize);
        if (s != Ok)
        {
            return s;
        }
        c.State.Rip = target;
        return ExecStatus.Branch;
    }

    public static ExecStatus Ret(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.K0 == OperandKind.Imm ? op.StackSize - (int)op.Imm : op.StackSize;
        ExecStatus s = c.Pop(size, out ulong target);
        if (s != Ok)
        {
            return s;
        }
        if (op.K0 == OperandKind.Imm)
        {
            ref ulong rsp = ref c.Gpr(4);
            rsp = (rsp & ~c.StackMask) | ((rsp + op.Imm) & c.StackMask);
        }
        c.State.Rip = size == 2 ? (ushort)target : size == 4 ? (uint)target : target;
        return ExecStatus.Branch;
    }

    private static ExecStatus Loop(InterpreterVcpu c, ref DecodedOp op, int countSize, int kind)
    {
        ulong count = (c.GetReg(1, countSize) - 1) & InterpreterVcpu.SizeMask(countSize);
        c.SetReg(1, countSize, count);
        bool taken = count != 0 && kind switch
        {
            1 => c.Condition(5),
            2 => c.Condition(6),
            _ => true,
        };
        if (!taken)
        {
            return Ok;
        }
        c.State.Rip = op.Target;
        return ExecStatus.Branch;
    }

    public static ExecStatus Loop16(InterpreterVcpu c, ref DecodedOp op) => Loop(c, ref op, 2, 0);

    public static ExecStatus Loop32(InterpreterVcpu c, ref DecodedOp op) => Loop(c, ref op, 4, 0);

    public static ExecStatus Loop64(InterpreterVcpu c, ref DecodedOp op) => Loop(c, ref op, 8, 0);

    public static ExecStatus Loope16(InterpreterVcpu c, ref DecodedOp op) => Loop(c, ref op, 2, 1);

    public static ExecStatus Loope32(InterpreterVcpu c, ref DecodedOp op) => Loop(c, ref op, 4, 1);

    public static ExecStatus Loope64(InterpreterVcpu c, ref DecodedOp op) => Loop(c, ref op, 8, 1);

    public static ExecStatus Loopne16(InterpreterVcpu c, ref DecodedOp op) => Loop(c, ref op, 2, 2);

    public static ExecStatus Loopne32(InterpreterVcpu c, ref DecodedOp op) => Loop(c, ref op, 4, 2);

    public static ExecStatus Loopne64(InterpreterVcpu c, ref DecodedOp op) => Loop(c, ref op, 8, 2);

    private static ExecStatus JumpIfCountZero(InterpreterVcpu c, ref DecodedOp op, int countSize)
    {
        if (c.GetReg(1, countSize) != 0)
        {
            return Ok;
        }
        c.State.Rip = op.Target;
        return ExecStatus.Branch;
    }

    public static ExecStatus Jcxz(InterpreterVcpu c, ref DecodedOp op) => JumpIfCountZero(c, ref op, 2);

    public static ExecStatus Jecxz(InterpreterVcpu c, ref DecodedOp op) => JumpIfCountZero(c, ref op, 4);

    public static ExecStatus Jrcxz(InterpreterVcpu c, ref DecodedOp op) => JumpIfCountZero(c, ref op, 8);

    /// <summary>IRETQ (64-bit mode): pops RIP, CS, RFLAGS, RSP, SS; same or outer privilege.</summary>
    public static ExecStatus Iretq(InterpreterVcpu c, ref DecodedOp op)
    {
        c.State.NmiBlocked = false; // any IRET ends NMI blocking, even one that faults
        if (c.Bitness != 64)
        {
            return c.Raise(Vector.UD);
        }
        ref X86CpuState st = ref c.State;
        ulong rsp = st.Gpr[4];
        ExecStatus s = c.ReadMem(rsp, 8, out ulong rip);
        if (s == Ok)
        {
            s = c.ReadMem(rsp + 8, 8, out ulong cs);
            if (s == Ok)
            {
                s = c.ReadMem(rsp + 16, 8, out ulong flags);
                if (s == Ok)
                {
                    s = c.ReadMem(rsp + 24, 8, out ulong newRsp);
                    if (s == Ok)
                    {
                        s = c.ReadMem(rsp + 32, 8, out ulong ss);
                        if (s == Ok)
                        {
                            return c.FinishIret(rip, (ushort)cs, flags, newRsp, (ushort)ss);
                        }
                    }
                }
            }
        }
        return s;
    }
}
