using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>Flag instructions, HLT, port I/O, CPUID, RDTSC and the #UD fallback.</summary>
internal static class SystemOps
{
    private const ExecStatus Ok = ExecStatus.Continue;

    /// <summary>Every code without an implementation maps here: the guest sees #UD, never a silent no-op.</summary>
    public static ExecStatus Ud(InterpreterVcpu c, ref DecodedOp op) => c.Raise(Vector.UD);

    public static ExecStatus Nop(InterpreterVcpu c, ref DecodedOp op) => Ok;

    public static ExecStatus Mfence(InterpreterVcpu c, ref DecodedOp op)
    {
        Interlocked.MemoryBarrier();
        return ExecStatus.Continue;
    }

    public static ExecStatus Hlt(InterpreterVcpu c, ref DecodedOp op) => c.State.Cpl != 0 ? c.Raise(Vector.GP, 0) : ExecStatus.Halt;

    public static ExecStatus Clc(InterpreterVcpu c, ref DecodedOp op)
    {
        c.SetFlags(0, X86CpuState.FlagCf);
        return Ok;
    }

    public static ExecStatus Stc(InterpreterVcpu c, ref DecodedOp op)
    {
        c.SetFlags(X86CpuState.FlagCf, X86CpuState.FlagCf);
        return Ok;
    }

    public static ExecStatus Cmc(InterpreterVcpu c, ref DecodedOp op)
    {
        c.SetFlags(c.MaterializeFlags() ^ X86CpuState.FlagCf, X86CpuState.FlagCf);
        return Ok;
    }

    public static ExecStatus Cld(InterpreterVcpu c, ref DecodedOp op)
    {
        c.State.Rflags &= ~X86CpuState.FlagDf;
        return Ok;
    }

    public static ExecStatus Std(InterpreterVcpu c, ref DecodedOp op)
    {
        c.State.Rflags |= X86CpuState.FlagDf;
        return Ok;
    }

    public static ExecStatus Cli(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!c.IoPrivileged())
        {
            return c.Raise(Vector.GP, 0);
        }
        c.State.Rflags &= ~X86CpuState.FlagIf;
        return Ok;
    }

    public static ExecStatus Sti(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!c.IoPrivileged())
        {
            return c.Raise(Vector.GP, 0);
        }
        if ((c.State.Rflags & X86CpuState.FlagIf) == 0)
        {
            // STI that enables interrupts holds them off until after the next instruction: end the block here so
            // the run loop sees the shadow before that instruction.
            c.State.InterruptShadow = true;
            c.ExitBlock = true;
        }
        c.State.Rflags |= X86CpuState.FlagIf;
        return Ok;
    }

    public static ExecStatus Lahf(InterpreterVcpu c, ref DecodedOp op)
    {
        ulong f = c.MaterializeFlags();
        c.SetReg(DecodedOp.HighByteBase, 1, (f & 0xD5) | 0x02);
        return Ok;
    }

    public static ExecStatus Sahf(InterpreterVcpu c, ref DecodedOp op)
    {
        ulong ah = c.GetReg(DecodedOp.HighByteBase, 1);
        c.SetFlags(ah, 0xD5);
        return Ok;
    }

    public static ExecStatus In(InterpreterVcpu c, ref DecodedOp op)
    {
        ushort port = (ushort)(op.K1 == OperandKind.Imm ? op.Imm : c.GetReg(2, 2));
        ExecStatus s = c.CheckIoPermission(port, op.Size);
        if (s != Ok)
        {
            return s;
        }
        c.SetReg(0, op.Size, c.PortRead(port, op.Size));
        return Ok;
    }

    public static ExecStatus Out(InterpreterVcpu c, ref DecodedOp op)
    {
        ushort port = (ushort)(op.K0 == OperandKind.Imm ? op.Imm : c.GetReg(2, 2));
        int size = op.SrcSize;
        ExecStatus s = c.CheckIoPermission(port, size);
        if (s != Ok)
        {
            return s;
        }
        c.PortWrite(port, size, c.GetReg(0, size));
        return Ok;
    }

    public static ExecStatus Cpuid(InterpreterVcpu c, ref DecodedOp op)
    {
        CpuidModel.Query(c.Index, c.Features, (uint)c.Gpr(0), (uint)c.Gpr(1), out uint a, out uint b, out uint cx, out uint d);
        c.Gpr(0) = a;
        c.Gpr(3) = b;
        c.Gpr(1) = cx;
        c.Gpr(2) = d;
        return Ok;
    }

    public static ExecStatus Rdtsc(InterpreterVcpu c, ref DecodedOp op)
    {
        // CR4.TSD restricts RDTSC to ring 0.
        if ((c.State.Cr4 & (1UL << 2)) != 0 && c.State.Cpl != 0)
        {
            return c.Raise(Vector.GP, 0);
        }
        ulong tsc = c.ReadTsc(ref op);
        c.Gpr(0) = (uint)tsc;
        c.Gpr(2) = tsc >> 32;
        return Ok;
    }
}
