using System.Runtime.CompilerServices;
using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>
/// x87 control instructions and the FXSAVE/FXRSTOR/LDMXCSR/STMXCSR state instructions. The register file lives in
/// <see cref="X86CpuState.Fx"/> in FXSAVE layout, so FXSAVE is a copy of it.
/// </summary>
internal static class X87
{
    private const ExecStatus Ok = ExecStatus.Continue;

    public static ExecStatus Fninit(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.FpuOff())
        {
            return c.Raise(Vector.NM);
        }
        ref X86CpuState s = ref c.State;
        s.Fcw = 0x037F;
        s.Fsw = 0;
        s.Ftw = 0;
        Unsafe.As<byte, ushort>(ref s.Fx[X86CpuState.FxFop]) = 0;
        Unsafe.As<byte, ulong>(ref s.Fx[X86CpuState.FxFip]) = 0;
        Unsafe.As<byte, ulong>(ref s.Fx[X86CpuState.FxFdp]) = 0;
        return Ok;
    }

    /// <summary>FNENI/FNDISI/FNSETPM: non-waiting no-ops on a 387 and later (#NM with CR0.EM or CR0.TS).</summary>
    public static ExecStatus NoWaitNop(InterpreterVcpu c, ref DecodedOp op) => c.FpuOff() ? c.Raise(Vector.NM) : Ok;

    /// <summary>FNCLEX: clears the exception flags, stack fault, error summary and busy bits of FSW.</summary>
    public static ExecStatus Fnclex(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.FpuOff())
        {
            return c.Raise(Vector.NM);
        }
        c.State.Fsw &= 0x7F00;
        return Ok;
    }

    /// <summary>
    /// FILD m16/m32/m64: pushes the signed integer, converted exactly to extended precision. A push onto a full
    /// register is a stack overflow: IE, SF and C1 set and, with IE masked, the real indefinite is pushed instead.
    /// </summary>
    public static ExecStatus Fild(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.FpuOff())
        {
            return c.Raise(Vector.NM);
        }
        c.RecordX87Pointers(ref op);
        int size = op.Size;
        ExecStatus st = c.ReadMemOp(ref op, size, out ulong raw);
        if (st != Ok)
        {
            return st;
        }
        long value = size switch
        {
            2 => (short)raw,
            4 => (int)raw,
            _ => (long)raw,
        };
        ref X86CpuState s = ref c.State;
        int top = (s.Fsw >> 11) & 7;
        int newTop = (top - 1) & 7;
        bool overflow = (s.Ftw & (1 << newTop)) != 0;
        ulong mantissa;
        ushort signExponent;
        if (overflow)
        {
            s.Fsw |= 0x0241; // IE, SF, C1 (overflow)
            if ((s.Fcw & 1) == 0)
            {
                s.Fsw |= 0x8080; // unmasked: error summary and busy; nothing is pushed
                return Ok;
            }
            mantissa = 0xC000_0000_0000_0000; // the real indefinite: negative quiet NaN
            signExponent = 0xFFFF;
        }
        else
        {
            s.Fsw &= unchecked((ushort)~0x0200);
            ToExtended(value, out mantissa, out signExponent);
        }
        // ST(i) are kept in stack order: make room at ST(0) by moving ST(0..6) down one slot.
        Span<byte> stack = ((Span<byte>)s.Fx).Slice(X86CpuState.FxSt0, 128);
        stack[..112].CopyTo(stack[16..]);
        Unsafe.As<byte, ulong>(ref stack[0]) = mantissa;
        Unsafe.As<byte, ushort>(ref stack[8]) = signExponent;
        stack.Slice(10, 6).Clear();
        s.Fsw = (ushort)((s.Fsw & ~0x3800) | (newTop << 11));
        s.Ftw |= (byte)(1 << newTop);
        return Ok;
    }

    /// <summary>The 80-bit extended form of an integer (exact: the significand has 64 bits).</summary>
    internal static void ToExtended(long value, out ulong mantissa, out ushort signExponent)
    {
        if (value == 0)
        {
            mantissa = 0;
            signExponent = 0;
            return;
        }
        ulong magnitude = value < 0 ? (ulong)(-(value + 1)) + 1 : (ulong)value;
        int shift = System.Numerics.BitOperations.LeadingZeroCount(magnitude);
        mantissa = magnitude << shift;
        signExponent = (ushort)((value < 0 ? 0x8000 : 0) | (16383 + 63 - shift));
    }

    /// <summary>FNSTSW AX / m16.</summary>
    public static ExecStatus Fnstsw(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.FpuOff())
        {
            return c.Raise(Vector.NM);
        }
        return c.WriteOperand(ref op, op.K0, op.R0, 2, c.State.Fsw);
    }

    public static ExecStatus Fnstcw(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.FpuOff())
        {
            return c.Raise(Vector.NM);
        }
        return c.WriteMemOp(ref op, 2, c.State.Fcw);
    }

    public static ExecStatus Fldcw(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.FpuOff())
        {
            return c.Raise(Vector.NM);
        }
        ExecStatus st = c.ReadMemOp(ref op, 2, out ulong v);
        if (st != Ok)
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        s.Fcw = (ushort)v;
        UpdateErrorSummary(ref s);
        return Ok;
    }

    /// <summary>WAIT/FWAIT: #NM when CR0.TS and CR0.MP are both set; #MF for a pending unmasked x87 exception (CR0.NE).</summary>
    public static ExecStatus Wait(InterpreterVcpu c, ref DecodedOp op)
    {
        ref X86CpuState s = ref c.State;
        if ((s.Cr0 & (X86CpuState.Cr0Ts | X86CpuState.Cr0Mp)) == (X86CpuState.Cr0Ts | X86CpuState.Cr0Mp))
        {
            return c.Raise(Vector.NM);
        }
        if ((s.Fsw & 0x80) != 0 && (s.Cr0 & (1UL << 5)) != 0)
        {
            return c.Raise(Vector.MF);
        }
        return Ok;
    }

    /// <summary>FSW.ES and FSW.B mirror "some exception flag is set that FCW does not mask".</summary>
    private static void UpdateErrorSummary(ref X86CpuState s)
    {
        bool es = (s.Fsw & ~s.Fcw & 0x3F) != 0;
        s.Fsw = (ushort)(es ? s.Fsw | 0x8080 : s.Fsw & ~0x8080);
    }

    public static ExecStatus Stmxcsr(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        return c.WriteMemOp(ref op, 4, c.State.Mxcsr);
    }

    public static ExecStatus Ldmxcsr(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus st = c.ReadMemOp(ref op, 4, out ulong v);
        if (st != Ok)
        {
            return st;
        }
        if ((v & ~(ulong)X86CpuState.MxcsrMask) != 0)
        {
            return c.Raise(Vector.GP, 0);
        }
        c.State.Mxcsr = (uint)v;
        return Ok;
    }

    public static ExecStatus Fxsave(InterpreterVcpu c, ref DecodedOp op) => Save(c, ref op, wide: false);

    public static ExecStatus Fxsave64(InterpreterVcpu c, ref DecodedOp op) => Save(c, ref op, wide: true);

    public static ExecStatus Fxrstor(InterpreterVcpu c, ref DecodedOp op) => Restore(c, ref op, wide: false);

    public static ExecStatus Fxrstor64(InterpreterVcpu c, ref DecodedOp op) => Restore(c, ref op, wide: true);

    /// <summary>
    /// Bytes FXSAVE writes: the header, ST0–ST7 and XMM0–XMM7, plus XMM8–XMM15 in 64-bit mode. Bytes 416–511 are
    /// never written (reserved and software-available).
    /// </summary>
    private static int ImageLength(InterpreterVcpu c) => X86CpuState.FxXmm0 + (c.Bitness == 64 ? 16 : 8) * 16;

    [SkipLocalsInit]
    private static ExecStatus Save(InterpreterVcpu c, ref DecodedOp op, bool wide)
    {
        if (c.FpuOff())
        {
            return c.Raise(Vector.NM);
        }
        ExecStatus sg = c.OperandLinear(ref op, 512, InterpreterVcpu.AccessWrite, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        if ((linear & 15) != 0)
        {
            return c.Raise(Vector.GP, 0);
        }
        int length = ImageLength(c);
        Span<byte> image = stackalloc byte[512];
        ref X86CpuState s = ref c.State;
        ((ReadOnlySpan<byte>)s.Fx)[..length].CopyTo(image);
        image[5] = 0;
        if (!wide)
        {
            // 32-bit format: FIP/FDP are 32 bits followed by FCS/FDS, which this model stores as zero (the
            // "FCS and FDS deprecated" behaviour CPUID.7:EBX[13] describes).
            image.Slice(12, 4).Clear();
            image.Slice(20, 4).Clear();
        }
        return c.WriteBlock(linear, image[..length]);
    }

    [SkipLocalsInit]
    private static ExecStatus Restore(InterpreterVcpu c, ref DecodedOp op, bool wide)
    {
        if (c.FpuOff())
        {
            return c.Raise(Vector.NM);
        }
        ExecStatus sg = c.OperandLinear(ref op, 512, InterpreterVcpu.AccessRead, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        if ((linear & 15) != 0)
        {
            return c.Raise(Vector.GP, 0);
        }
        int length = ImageLength(c);
        Span<byte> image = stackalloc byte[512];
        ExecStatus st = c.ReadBlock(linear, image[..length]);
        if (st != Ok)
        {
            return st;
        }
        uint mxcsr = Unsafe.ReadUnaligned<uint>(in image[X86CpuState.FxMxcsr]);
        if ((mxcsr & ~X86CpuState.MxcsrMask) != 0)
        {
            return c.Raise(Vector.GP, 0);
        }
        if (!wide)
        {
            image.Slice(12, 4).Clear();
            image.Slice(20, 4).Clear();
        }
        ref X86CpuState s = ref c.State;
        Span<byte> fx = s.Fx;
        image[..24].CopyTo(fx);
        fx[5] = 0;
        s.Mxcsr = mxcsr;
        for (int i = 0; i < 8; i++)
        {
            int at = X86CpuState.FxSt0 + i * 16;
            image.Slice(at, 10).CopyTo(fx[at..]);
            fx.Slice(at + 10, 6).Clear();
        }
        image[X86CpuState.FxXmm0..length].CopyTo(fx[X86CpuState.FxXmm0..]);
        return Ok;
    }
}
