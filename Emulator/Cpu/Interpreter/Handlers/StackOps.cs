using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>PUSH, POP, PUSHA, POPA, PUSHF, POPF, ENTER, LEAVE.</summary>
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

    /// <summary>
    /// ENTER alloc, level (SDM vol. 2): push rBP; for level &gt; 1 copy level-1 frame pointers from the enclosing frame
    /// ([SS:rBP] stepping down by the operand size, in the stack's address width); for level &gt; 0 push the new frame
    /// pointer; rBP (by operand size) takes the frame pointer and rSP drops by alloc. All or nothing on a fault.
    /// </summary>
    private static ExecStatus Enter(InterpreterVcpu c, ref DecodedOp op, int size)
    {
        ulong alloc = op.Instr.Immediate16;
        int level = op.Instr.Immediate8_2nd & 31;
        ulong mask = c.StackMask;
        ulong oldRsp = c.Gpr(4);
        ulong oldRbp = c.Gpr(5);
        ExecStatus s = c.Push(oldRbp, size);
        ulong frame = c.Gpr(4) & mask;
        ulong bp = oldRbp;
        for (int i = 1; i < level && s == Ok; i++)
        {
            bp = (bp & ~mask) | ((bp - (ulong)size) & mask);
            s = c.ReadStack(bp & mask, size, out ulong v);
            if (s == Ok)
            {
                s = c.Push(v, size);
            }
        }
        if (s == Ok && level > 0)
        {
            s = c.Push(frame, size);
        }
        ulong rsp = c.Gpr(4);
        ulong newSp = (rsp & ~mask) | ((rsp - alloc) & mask);
        if (s == Ok)
        {
            // The new stack top must lie within SS (#SS(0)).
            s = c.CheckStackTop(newSp & mask);
        }
        if (s != Ok)
        {
            c.Gpr(4) = oldRsp;
            c.Gpr(5) = oldRbp;
            return s;
        }
        c.SetReg(5, size, frame);
        c.Gpr(4) = newSp;
        return Ok;
    }

    public static ExecStatus Enter16(InterpreterVcpu c, ref DecodedOp op) => Enter(c, ref op, 2);

    public static ExecStatus Enter32(InterpreterVcpu c, ref DecodedOp op) => Enter(c, ref op, 4);

    public static ExecStatus Enter64(InterpreterVcpu c, ref DecodedOp op) => Enter(c, ref op, 8);

    public static ExecStatus Leave16(InterpreterVcpu c, ref DecodedOp op) => Leave(c, 2);

    public static ExecStatus Leave32(InterpreterVcpu c, ref DecodedOp op) => Leave(c, 4);

    public static ExecStatus Leave64(InterpreterVcpu c, ref DecodedOp op) => Leave(c, 8);

    /// <summary>PUSHA/PUSHAD: AX, CX, DX, BX, the SP before the instruction, BP, SI, DI; all or nothing on a fault.</summary>
    private static ExecStatus PushAll(InterpreterVcpu c, int size)
    {
        ulong old = c.Gpr(4);
        for (int r = 0; r < 8; r++)
        {
            ulong v = r == 4 ? old : c.Gpr(r);
            ExecStatus s = c.Push(v, size);
            if (s != Ok)
            {
                c.Gpr(4) = old;
                return s;
            }
        }
        return Ok;
    }

    /// <summary>POPA/POPAD: the reverse of PUSHA, the stored SP skipped; registers change only if every pop succeeds.</summary>
    private static ExecStatus PopAll(InterpreterVcpu c, int size)
    {
        ulong old = c.Gpr(4);
        Span<ulong> values = stackalloc ulong[8];
        for (int r = 7; r >= 0; r--)
        {
            ExecStatus s = c.Pop(size, out values[r]);
            if (s != Ok)
            {
                c.Gpr(4) = old;
                return s;
            }
        }
        for (int r = 0; r < 8; r++)
        {
            if (r != 4)
            {
                c.SetReg(r, size, values[r]);
            }
        }
        return Ok;
    }

    public static ExecStatus Pusha16(InterpreterVcpu c, ref DecodedOp op) => PushAll(c, 2);

    public static ExecStatus Pusha32(InterpreterVcpu c, ref DecodedOp op) => PushAll(c, 4);

    public static ExecStatus Popa16(InterpreterVcpu c, ref DecodedOp op) => PopAll(c, 2);

    public static ExecStatus Popa32(InterpreterVcpu c, ref DecodedOp op) => PopAll(c, 4);
}
