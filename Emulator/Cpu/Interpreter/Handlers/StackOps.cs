using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>PUSH, POP, PUSHF, POPF, LEAVE.</summary>
internal static class StackOps
{
    private const ExecStatus Ok = ExecStatus.Continue;

    public static ExecStatus Push(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.StackSize;
        // Immediates are already sign-extended by the decoder; PUSH RSP pushes the value before the decrement.
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, size, out ulong v);
        return s != Ok ? s : c.Push(v, size);
    }

    public static ExecStatus Pop(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.StackSize;
        ulong oldRsp = c.Gpr(4);
        ExecStatus s = c.Pop(size, out ulong v);
        if (s != Ok)
        {
            return s;
        }
        // A memory destination addressed through RSP uses the incremented RSP.
        s = c.WriteOperand(ref op, op.K0, op.R0, size, v);
        if (s != Ok)
        {
            c.Gpr(4) = oldRsp;
        }
        return s;
    }

    public static ExecStatus Pushf(InterpreterVcpu c, ref DecodedOp op)
    {
        // VM and RF read as zero in the pushed image.
        ulong flags = c.MaterializeFlags() & ~((1UL << 16) | (1UL << 17));
        return c.Push(flags, op.StackSize);
    }

    public static ExecStatus Popf(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.StackSize;
        ExecStatus s = c.Pop(size, out ulong v);
        if (s != Ok)
        {
            return s;
        }
        c.WriteFlagsFromGuest(v, size);
        return Ok;
    }

    private static ExecStatus Leave(InterpreterVcpu c, int size)
    {
        ref ulong rsp = ref c.Gpr(4);
        ulong old = rsp;
        rsp = (rsp & ~c.StackMask) | (c.Gpr(5) & c.StackMask);
        ExecStatus s = c.Pop(size, out ulong v);
        if (s != Ok)
        {
            c.Gpr(4) = old;
            return s;
        }
        c.SetReg(5, size, v);
        return Ok;
    }

    public static ExecStatus Leave16(InterpreterVcpu c, ref DecodedOp op) => Leave(c, 2);

    public static ExecStatus Leave32(InterpreterVcpu c, ref DecodedOp op) => Leave(c, 4);

    public static ExecStatus Leave64(InterpreterVcpu c, ref DecodedOp op) => Leave(c, 8);
}
