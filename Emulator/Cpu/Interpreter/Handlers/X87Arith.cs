using System.Runtime.CompilerServices;
using Colo.Core.Cpu;
using Colo.Cpu.Interpreter.Float;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>
/// x87 loads, stores, arithmetic, comparisons and stack management on the 80-bit register file in
/// <see cref="X86CpuState.Fx"/> (ST(i) kept in stack order, as FXSAVE lays them out). Arithmetic is exact IEEE-754
/// double-extended through <see cref="SoftFloat"/>, with FCW's rounding and precision control, the FSW exception
/// flags, C0–C3, the stack fault bit and the tag word. An unmasked exception sets FSW.ES/B (and leaves the destination
/// untouched for IE, DE and ZE); the next waiting x87 instruction then raises #MF when CR0.NE is set. With CR0.NE
/// clear the FERR#/IRQ13 path is not modelled: the exception stays pending in FSW. Unmasked overflow/underflow store
/// the masked response instead of the exponent-wrapped value.
/// </summary>
internal static class X87Arith
{
    private const ExecStatus Ok = ExecStatus.Continue;
    private const int C0 = 0x100, C1 = 0x200, C2 = 0x400, C3 = 0x4000;
    private const int StackFault = 0x40, ErrorSummary = 0x80, Busy = 0x8000;
    private const ulong Cr0Ne = 1UL << 5;

    private static readonly FpFormat Extended24 = new(24, -16382, 16383);
    private static readonly FpFormat Extended53 = new(53, -16382, 16383);

    // ---------------- register file ----------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Top(ref X86CpuState s) => (s.Fsw >> 11) & 7;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ref ulong Sig(ref X86CpuState s, int i) => ref Unsafe.As<byte, ulong>(ref s.Fx[X86CpuState.FxSt0 + i * 16]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ref ushort SignExp(ref X86CpuState s, int i) => ref Unsafe.As<byte, ushort>(ref s.Fx[X86CpuState.FxSt0 + i * 16 + 8]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Empty(ref X86CpuState s, int i) => (s.Ftw & (1 << ((Top(ref s) + i) & 7))) == 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static FpNum Get(ref X86CpuState s, int i) => SoftFloat.Unpack80(Sig(ref s, i), SignExp(ref s, i));

    private static void Set(ref X86CpuState s, int i, in FpResult r)
    {
        SoftFloat.Pack80(r, out ulong sig, out ushort se);
        SetRaw(ref s, i, sig, se);
    }

    private static void SetRaw(ref X86CpuState s, int i, ulong sig, ushort se)
    {
        Sig(ref s, i) = sig;
        SignExp(ref s, i) = se;
        s.Ftw |= (byte)(1 << ((Top(ref s) + i) & 7));
    }

    /// <summary>Rotates the stack-ordered slots: ST(i) ← ST(i+1) (pop) or ST(i) ← ST(i-1) (push); contents stay in their physical registers.</summary>
    private static void Rotate(ref X86CpuState s, bool pop)
    {
        Span<byte> stack = ((Span<byte>)s.Fx).Slice(X86CpuState.FxSt0, 128);
        ulong sig, se;
        if (pop)
        {
            sig = Unsafe.As<byte, ulong>(ref stack[0]);
            se = Unsafe.As<byte, ulong>(ref stack[8]);
            stack[16..].CopyTo(stack);
            Unsafe.As<byte, ulong>(ref stack[112]) = sig;
            Unsafe.As<byte, ulong>(ref stack[120]) = se;
        }
        else
        {
            sig = Unsafe.As<byte, ulong>(ref stack[112]);
            se = Unsafe.As<byte, ulong>(ref stack[120]);
            stack[..112].CopyTo(stack[16..]);
            Unsafe.As<byte, ulong>(ref stack[0]) = sig;
            Unsafe.As<byte, ulong>(ref stack[8]) = se;
        }
    }

    private static void Pop(ref X86CpuState s)
    {
        int top = Top(ref s);
        s.Ftw &= (byte)~(1 << top);
        Rotate(ref s, pop: true);
        s.Fsw = (ushort)((s.Fsw & ~0x3800) | (((top + 1) & 7) << 11));
    }

    /// <summary>Makes room at ST(0) (the caller writes it). False on stack overflow (the new top is in use).</summary>
    private static bool Push(ref X86CpuState s)
    {
        int top = (Top(ref s) - 1) & 7;
        bool free = (s.Ftw & (1 << top)) == 0;
        Rotate(ref s, pop: false);
        s.Fsw = (ushort)((s.Fsw & ~0x3800) | (top << 11));
        return free;
    }

    // ---------------- environment ----------------

    /// <summary>The checks every waiting x87 instruction makes: #NM for CR0.EM/TS, then #MF for a pending unmasked exception (CR0.NE).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Enter(InterpreterVcpu c, ref DecodedOp op, out ExecStatus status)
    {
        if (c.FpuOff())
        {
            status = c.Raise(Vector.NM);
            return false;
        }
        ref X86CpuState s = ref c.State;
        if ((s.Fsw & ErrorSummary) != 0 && (s.Cr0 & Cr0Ne) != 0)
        {
            status = c.Raise(Vector.MF);
            return false;
        }
        c.RecordX87Pointers(ref op);
        status = Ok;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static FpEnv Env(ref X86CpuState s) => new() { Rounding = (s.Fcw >> 10) & 3, UnderflowUnmasked = (s.Fcw & 0x10) == 0 };

    /// <summary>The precision FCW.PC selects for add/sub/mul/div/sqrt (the exponent range stays extended).</summary>
    private static FpFormat Precision(ref X86CpuState s) => ((s.Fcw >> 8) & 3) switch
    {
        0 => Extended24,
        2 => Extended53,
        _ => FpFormat.Extended,
    };

    /// <summary>
    /// Merges flags (and the stack-fault bit) into FSW, C1 = "rounded up" (or the caller's <paramref name="c1"/>),
    /// ES/B when something is unmasked. False when an unmasked IE/DE/ZE forbids writing the destination.
    /// </summary>
    private static bool Commit(ref X86CpuState s, in FpEnv env, bool c1 = false)
    {
        int flags = env.Flags;
        int fsw = s.Fsw & ~C1;
        if ((env.RoundedUp && (flags & FpFlags.Precision) != 0) || c1)
        {
            fsw |= C1;
        }
        fsw |= flags & 0x7F;
        int unmasked = flags & ~s.Fcw & 0x3F;
        if (unmasked != 0)
        {
            fsw |= ErrorSummary | Busy;
        }
        s.Fsw = (ushort)fsw;
        return (unmasked & 7) == 0;
    }

    private static FpNum ToNum(in FpResult r) => new() { Class = r.Class, Sign = r.Sign, Exp = r.Exp, Sig = r.Sig };

    /// <summary>Reads a memory operand of the instruction as an exact extended value: m32/m64 real or m16/m32/m64 integer.</summary>
    private static ExecStatus ReadOperand(InterpreterVcpu c, ref DecodedOp op, bool integer, out FpNum value)
    {
        value = default;
        ExecStatus st = c.ReadMemOp(ref op, op.Size, out ulong raw);
        if (st != Ok)
        {
            return st;
        }
        if (integer)
        {
            long v = op.Size switch
            {
                2 => (short)raw,
                4 => (int)raw,
                _ => (long)raw,
            };
            FpEnv exact = default;
            value = ToNum(SoftFloat.FromInt(v, FpFormat.Extended, ref exact));
        }
        else
        {
            value = op.Size == 4 ? SoftFloat.Unpack32((uint)raw, false) : SoftFloat.Unpack64(raw, false);
        }
        return Ok;
    }

    private static int StIndex(byte reg) => reg - DecodedOp.StBase;

    // ---------------- arithmetic ----------------

    /// <summary>kind: 0 add, 1 mul, 2 sub, 3 subr, 4 div, 5 divr.</summary>
    private static FpResult Compute(int kind, FpNum a, FpNum b, in FpFormat f, ref FpEnv env)
    {
        if (kind is 3 or 5)
        {
            (a, b) = (b, a);
        }
        if (a.IsNaN || b.IsNaN)
        {
            return SoftFloat.PropagateX87(a, b, ref env);
        }
        return kind switch
        {
            0 => SoftFloat.Add(a, b, false, f, ref env),
            1 => SoftFloat.Mul(a, b, f, ref env),
            2 or 3 => SoftFloat.Add(a, b, true, f, ref env),
            _ => SoftFloat.Div(a, b, f, ref env),
        };
    }

    private static ExecStatus Arith(InterpreterVcpu c, ref DecodedOp op, int kind, bool pop, bool integer)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        int dst;
        bool empty;
        FpNum a, b;
        if (op.K0 == OperandKind.Mem)
        {
            st = ReadOperand(c, ref op, integer, out b);
            if (st != Ok)
            {
                return st;
            }
            dst = 0;
            empty = Empty(ref s, 0);
            a = Get(ref s, 0);
        }
        else
        {
            dst = StIndex(op.R0);
            int src = StIndex(op.R1);
            empty = Empty(ref s, dst) || Empty(ref s, src);
            a = Get(ref s, dst);
            b = Get(ref s, src);
        }
        FpEnv env = Env(ref s);
        FpResult r;
        if (empty)
        {
            env.Flags |= FpFlags.Invalid | StackFault;
            r = SoftFloat.DefaultNaN;
        }
        else
        {
            r = Compute(kind, a, b, Precision(ref s), ref env);
        }
        if (Commit(ref s, env))
        {
            Set(ref s, dst, r);
            if (pop)
            {
                Pop(ref s);
            }
        }
        return Ok;
    }

    public static ExecStatus Fadd(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 0, false, false);

    public static ExecStatus Faddp(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 0, true, false);

    public static ExecStatus Fiadd(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 0, false, true);

    public static ExecStatus Fmul(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 1, false, false);

    public static ExecStatus Fmulp(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 1, true, false);

    public static ExecStatus Fimul(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 1, false, true);

    public static ExecStatus Fsub(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 2, false, false);

    public static ExecStatus Fsubp(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 2, true, false);

    public static ExecStatus Fisub(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 2, false, true);

    public static ExecStatus Fsubr(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 3, false, false);

    public static ExecStatus Fsubrp(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 3, true, false);

    public static ExecStatus Fisubr(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 3, false, true);

    public static ExecStatus Fdiv(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 4, false, false);

    public static ExecStatus Fdivp(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 4, true, false);

    public static ExecStatus Fidiv(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 4, false, true);

    public static ExecStatus Fdivr(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 5, false, false);

    public static ExecStatus Fdivrp(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 5, true, false);

    public static ExecStatus Fidivr(InterpreterVcpu c, ref DecodedOp op) => Arith(c, ref op, 5, false, true);

    // ---------------- loads and stores ----------------

    /// <summary>FLD m32/m64/m80/ST(i). m32/m64 are widened exactly (DE for denormals, IE and quieting for SNaN).</summary>
    public static ExecStatus Fld(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        FpEnv env = Env(ref s);
        ulong sig;
        ushort se;
        if (op.K0 == OperandKind.Mem)
        {
            ExecStatus sg = c.OperandLinear(ref op, op.Size, InterpreterVcpu.AccessRead, out ulong linear);
            if (sg != Ok)
            {
                return sg;
            }
            if (op.Size == 10)
            {
                st = c.ReadMem(linear, 8, out sig);
                if (st != Ok)
                {
                    return st;
                }
                st = c.ReadMem(c.WrapAddress(linear + 8), 2, out ulong hi);
                if (st != Ok)
                {
                    return st;
                }
                se = (ushort)hi;
            }
            else
            {
                st = ReadOperand(c, ref op, false, out FpNum v);
                if (st != Ok)
                {
                    return st;
                }
                if (v.Denormal)
                {
                    env.Flags |= FpFlags.Denormal;
                }
                FpResult r = v.Class == FpClass.SNaN ? SoftFloat.FromNum(v, FpFormat.Extended, ref env) : SoftFloat.Exact(v);
                SoftFloat.Pack80(r, out sig, out se);
            }
        }
        else
        {
            int i = StIndex(op.R0);
            if (Empty(ref s, i))
            {
                env.Flags |= FpFlags.Invalid | StackFault;
                SoftFloat.Pack80(SoftFloat.DefaultNaN, out sig, out se);
            }
            else
            {
                sig = Sig(ref s, i);
                se = SignExp(ref s, i);
            }
        }
        return PushValue(ref s, env, sig, se);
    }

    /// <summary>Pushes a value, or handles stack overflow (IE, SF, C1; the indefinite when IE is masked).</summary>
    private static ExecStatus PushValue(ref X86CpuState s, FpEnv env, ulong sig, ushort se)
    {
        bool overflow = !Empty(ref s, 7);
        if (overflow)
        {
            // A push onto a full stack reports the stack fault alone (no DE for the lost operand).
            env.Flags = (env.Flags & ~FpFlags.Denormal) | FpFlags.Invalid | StackFault;
            SoftFloat.Pack80(SoftFloat.DefaultNaN, out sig, out se);
        }
        if (!Commit(ref s, env, c1: overflow))
        {
            return Ok;
        }
        Push(ref s);
        SetRaw(ref s, 0, sig, se);
        return Ok;
    }

    public static ExecStatus Fst(InterpreterVcpu c, ref DecodedOp op) => Store(c, ref op, false);

    public static ExecStatus Fstp(InterpreterVcpu c, ref DecodedOp op) => Store(c, ref op, true);

    /// <summary>FST/FSTP m32/m64 (rounded per FCW.RC, PC ignored), FSTP m80 and FST(P) ST(i) (exact copies).</summary>
    private static ExecStatus Store(InterpreterVcpu c, ref DecodedOp op, bool pop)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        FpEnv env = Env(ref s);
        bool empty = Empty(ref s, 0);
        if (empty)
        {
            env.Flags |= FpFlags.Invalid | StackFault;
        }
        if (op.K0 == OperandKind.Reg)
        {
            ulong sig = Sig(ref s, 0);
            ushort se = SignExp(ref s, 0);
            if (empty)
            {
                SoftFloat.Pack80(SoftFloat.DefaultNaN, out sig, out se);
            }
            if (Commit(ref s, env))
            {
                SetRaw(ref s, StIndex(op.R0), sig, se);
                if (pop)
                {
                    Pop(ref s);
                }
            }
            return Ok;
        }
        ExecStatus sg = c.OperandLinear(ref op, op.Size, InterpreterVcpu.AccessWrite, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        if (op.Size == 10)
        {
            ulong sig = Sig(ref s, 0);
            ushort se = SignExp(ref s, 0);
            if (empty)
            {
                SoftFloat.Pack80(SoftFloat.DefaultNaN, out sig, out se);
            }
            if (!c.ProbeWritable(linear) || !c.ProbeWritable(c.WrapAddress(linear + 9)))
            {
                return ExecStatus.Fault;
            }
            if (!Commit(ref s, env))
            {
                return Ok;
            }
            st = c.WriteMem(linear, 8, sig);
            if (st != Ok)
            {
                return st;
            }
            st = c.WriteMem(c.WrapAddress(linear + 8), 2, se);
            if (st != Ok)
            {
                return st;
            }
        }
        else
        {
            FpResult r;
            if (empty)
            {
                r = SoftFloat.DefaultNaN;
            }
            else
            {
                FpNum a = Get(ref s, 0);
                r = a.IsNaN ? SoftFloat.PropagateX87(a, a, ref env) : SoftFloat.FromNum(a, op.Size == 4 ? FpFormat.Single : FpFormat.Double, ref env);
            }
            ulong bits = op.Size == 4 ? SoftFloat.Pack32(r) : SoftFloat.Pack64(r);
            if (!c.ProbeWritable(linear) || !c.ProbeWritable(c.WrapAddress(linear + (ulong)op.Size - 1)))
            {
                return ExecStatus.Fault;
            }
            // An unmasked exception of a store to memory leaves memory and the stack unchanged.
            bool unmasked = (env.Flags & ~s.Fcw & 0x3F) != 0;
            Commit(ref s, env);
            if (unmasked)
            {
                return Ok;
            }
            st = c.WriteMem(linear, op.Size, bits);
            if (st != Ok)
            {
                return st;
            }
        }
        if (pop)
        {
            Pop(ref s);
        }
        return Ok;
    }

    public static ExecStatus Fist(InterpreterVcpu c, ref DecodedOp op) => StoreInt(c, ref op, false, false);

    public static ExecStatus Fistp(InterpreterVcpu c, ref DecodedOp op) => StoreInt(c, ref op, true, false);

    public static ExecStatus Fisttp(InterpreterVcpu c, ref DecodedOp op) => StoreInt(c, ref op, true, true);

    /// <summary>FIST/FISTP (FCW rounding) and FISTTP (truncation) to m16/m32/m64; NaN, infinity and overflow store the integer indefinite.</summary>
    private static ExecStatus StoreInt(InterpreterVcpu c, ref DecodedOp op, bool pop, bool truncate)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        FpEnv env = Env(ref s);
        long v;
        bool roundedUp = false;
        if (Empty(ref s, 0))
        {
            env.Flags |= FpFlags.Invalid | StackFault;
            v = op.Size == 2 ? short.MinValue : op.Size == 4 ? int.MinValue : long.MinValue;
        }
        else
        {
            FpNum a = Get(ref s, 0);
            if (a.IsNaN)
            {
                env.Flags |= FpFlags.Invalid;
            }
            v = SoftFloat.ToInt(a, op.Size * 8, truncate ? 3 : env.Rounding, ref env);
            if ((env.Flags & FpFlags.Precision) != 0 && a.Class == FpClass.Finite)
            {
                // C1 = the stored magnitude exceeds the exact one.
                roundedUp = (ulong)(v < 0 ? -v : v) > 0 && Magnitude(a) < (ulong)(v < 0 ? -v : v);
            }
        }
        ExecStatus sg = c.OperandLinear(ref op, op.Size, InterpreterVcpu.AccessWrite, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        if (!c.ProbeWritable(linear) || !c.ProbeWritable(c.WrapAddress(linear + (ulong)op.Size - 1)))
        {
            return ExecStatus.Fault;
        }
        bool unmasked = (env.Flags & ~s.Fcw & 0x3F) != 0;
        Commit(ref s, env, roundedUp);
        if (unmasked)
        {
            return Ok;
        }
        st = c.WriteMem(linear, op.Size, (ulong)v);
        if (st != Ok)
        {
            return st;
        }
        if (pop)
        {
            Pop(ref s);
        }
        return Ok;
    }

    /// <summary>floor(|a|) for a finite value below 2^64.</summary>
    private static ulong Magnitude(in FpNum a) => a.Exp < 0 ? 0 : a.Exp >= 63 ? a.Sig : a.Sig >> (63 - a.Exp);

    /// <summary>FBLD m80: pushes an 18-digit packed-BCD integer (sign in bit 79), exactly. Invalid digits are not checked (undefined on hardware).</summary>
    public static ExecStatus Fbld(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ExecStatus sg = c.OperandLinear(ref op, 10, InterpreterVcpu.AccessRead, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        st = c.ReadMem(linear, 8, out ulong lo);
        if (st != Ok)
        {
            return st;
        }
        st = c.ReadMem(c.WrapAddress(linear + 8), 2, out ulong hi);
        if (st != Ok)
        {
            return st;
        }
        long value = 0;
        for (int i = 8; i >= 0; i--)
        {
            int pair = (int)(i == 8 ? hi & 0xFF : (lo >> (8 * i)) & 0xFF);
            value = value * 100 + ((pair >> 4) * 10) + (pair & 0xF);
        }
        bool negative = (hi & 0x8000) != 0;
        ref X86CpuState s = ref c.State;
        FpEnv exact = default;
        FpResult r = SoftFloat.FromInt(value, FpFormat.Extended, ref exact);
        if (value == 0)
        {
            r.Class = FpClass.Zero;
        }
        r.Sign = negative;
        SoftFloat.Pack80(r, out ulong sig, out ushort se);
        return PushValue(ref s, Env(ref s), sig, se);
    }

    /// <summary>FBSTP m80: ST(0) rounded per FCW.RC to an 18-digit packed-BCD integer, then pop; out of range or NaN stores the BCD indefinite.</summary>
    public static ExecStatus Fbstp(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        FpEnv env = Env(ref s);
        ulong lo = 0, hi;
        bool invalid;
        long v = 0;
        bool negative = false;
        if (Empty(ref s, 0))
        {
            env.Flags |= FpFlags.Invalid | StackFault;
            invalid = true;
        }
        else
        {
            FpNum a = Get(ref s, 0);
            negative = a.Sign;
            v = SoftFloat.ToInt(a, 64, env.Rounding, ref env);
            invalid = (env.Flags & FpFlags.Invalid) != 0 || v > 999_999_999_999_999_999L || v < -999_999_999_999_999_999L;
            if (invalid)
            {
                env.Flags = (env.Flags & ~FpFlags.Precision) | FpFlags.Invalid;
            }
        }
        if (invalid)
        {
            lo = 0xC000_0000_0000_0000;
            hi = 0xFFFF;
        }
        else
        {
            ulong m = (ulong)(v < 0 ? -v : v);
            for (int i = 0; i < 8; i++)
            {
                lo |= ((m % 10) | ((m / 10 % 10) << 4)) << (8 * i);
                m /= 100;
            }
            hi = (m % 10) | ((m / 10 % 10) << 4);
            hi |= negative ? 0x8000UL : 0;
        }
        ExecStatus sg = c.OperandLinear(ref op, 10, InterpreterVcpu.AccessWrite, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        if (!c.ProbeWritable(linear) || !c.ProbeWritable(c.WrapAddress(linear + 9)))
        {
            return ExecStatus.Fault;
        }
        bool unmasked = (env.Flags & ~s.Fcw & 0x3F) != 0;
        Commit(ref s, env);
        if (unmasked)
        {
            return Ok;
        }
        st = c.WriteMem(linear, 8, lo);
        if (st != Ok)
        {
            return st;
        }
        st = c.WriteMem(c.WrapAddress(linear + 8), 2, hi);
        if (st != Ok)
        {
            return st;
        }
        Pop(ref s);
        return Ok;
    }

    // ---------------- comparisons ----------------

    public static ExecStatus Fcom(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, false, 0, false, false);

    public static ExecStatus Fcomp(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, false, 1, false, false);

    public static ExecStatus Fcompp(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, false, 2, false, false);

    public static ExecStatus Fucom(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, true, 0, false, false);

    public static ExecStatus Fucomp(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, true, 1, false, false);

    public static ExecStatus Fucompp(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, true, 2, false, false);

    public static ExecStatus Ficom(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, false, 0, false, true);

    public static ExecStatus Ficomp(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, false, 1, false, true);

    public static ExecStatus Fcomi(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, false, 0, true, false);

    public static ExecStatus Fcomip(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, false, 1, true, false);

    public static ExecStatus Fucomi(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, true, 0, true, false);

    public static ExecStatus Fucomip(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, true, 1, true, false);

    public static ExecStatus Ftst(InterpreterVcpu c, ref DecodedOp op) => Compare(c, ref op, false, 0, false, false, zero: true);

    /// <summary>
    /// ST(0) against ST(i), ST(1), a memory real/integer, or 0.0 (FTST): C3,C2,C0 (or ZF,PF,CF) = 000 greater, 001
    /// less, 100 equal, 111 unordered. The ordered forms raise IE on any NaN, the unordered ones only on SNaN.
    /// </summary>
    private static ExecStatus Compare(InterpreterVcpu c, ref DecodedOp op, bool quiet, int pops, bool eflags, bool integer, bool zero = false)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        FpNum b;
        bool empty = Empty(ref s, 0);
        if (zero)
        {
            b = default;
        }
        else if (op.K0 == OperandKind.Mem)
        {
            st = ReadOperand(c, ref op, integer, out b);
            if (st != Ok)
            {
                return st;
            }
        }
        else
        {
            int j = op.K1 == OperandKind.Reg ? StIndex(op.R1) : op.K0 == OperandKind.Reg && StIndex(op.R0) != 0 ? StIndex(op.R0) : 1;
            empty |= Empty(ref s, j);
            b = Get(ref s, j);
        }
        FpNum a = Get(ref s, 0);
        FpEnv env = Env(ref s);
        int cmp;
        if (empty)
        {
            env.Flags |= FpFlags.Invalid | StackFault;
            cmp = 2;
        }
        else
        {
            if (a.Class == FpClass.SNaN || b.Class == FpClass.SNaN || (!quiet && (a.IsNaN || b.IsNaN)))
            {
                env.Flags |= FpFlags.Invalid;
            }
            else if ((a.Denormal || b.Denormal) && !a.IsNaN && !b.IsNaN)
            {
                env.Flags |= FpFlags.Denormal;
            }
            cmp = SoftFloat.Compare(a, b);
        }
        bool write = Commit(ref s, env);
        if (!write)
        {
            return Ok;
        }
        if (eflags)
        {
            ulong f = cmp switch
            {
                2 => 0x45UL,
                -1 => 0x01UL,
                0 => 0x40UL,
                _ => 0UL,
            };
            c.SetFlags(f, 0x8D5);
        }
        else
        {
            int cc = cmp switch
            {
                2 => C3 | C2 | C0,
                -1 => C0,
                0 => C3,
                _ => 0,
            };
            s.Fsw = (ushort)((s.Fsw & ~(C3 | C2 | C1 | C0)) | cc);
        }
        for (int i = 0; i < pops; i++)
        {
            Pop(ref s);
        }
        return Ok;
    }

    /// <summary>FXAM: C3,C2,C0 classify ST(0) (even when empty), C1 = its sign.</summary>
    public static ExecStatus Fxam(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        ulong sig = Sig(ref s, 0);
        ushort se = SignExp(ref s, 0);
        int e = se & 0x7FFF;
        int cc;
        if (Empty(ref s, 0))
        {
            cc = C3 | C0;
        }
        else if (e == 0x7FFF)
        {
            cc = (sig & (1UL << 63)) == 0 ? 0 : (sig << 1) == 0 ? C2 | C0 : C0;
        }
        else if (e == 0)
        {
            cc = sig == 0 ? C3 : C3 | C2;
        }
        else
        {
            cc = (sig & (1UL << 63)) == 0 ? 0 : C2;
        }
        if ((se & 0x8000) != 0)
        {
            cc |= C1;
        }
        s.Fsw = (ushort)((s.Fsw & ~(C3 | C2 | C1 | C0)) | cc);
        return Ok;
    }

    // ---------------- one-operand ops on ST(0) ----------------

    /// <summary>Runs <paramref name="f"/> on ST(0) with the stack-underflow and commit protocol.</summary>
    private static ExecStatus Unary(InterpreterVcpu c, ref DecodedOp op, int kind)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        FpEnv env = Env(ref s);
        FpResult r;
        if (Empty(ref s, 0))
        {
            env.Flags |= FpFlags.Invalid | StackFault;
            r = SoftFloat.DefaultNaN;
        }
        else
        {
            FpNum a = Get(ref s, 0);
            switch (kind)
            {
                case 0: // FCHS
                case 1: // FABS
                    SignExp(ref s, 0) = (ushort)(kind == 0 ? SignExp(ref s, 0) ^ 0x8000 : SignExp(ref s, 0) & 0x7FFF);
                    Commit(ref s, env);
                    return Ok;
                case 2: // FSQRT
                    r = a.IsNaN ? SoftFloat.PropagateX87(a, a, ref env) : SoftFloat.Sqrt(a, Precision(ref s), ref env);
                    break;
                default: // FRNDINT
                    r = a.IsNaN ? SoftFloat.PropagateX87(a, a, ref env) : RoundToIntegral(a, env.Rounding, ref env);
                    break;
            }
        }
        if (Commit(ref s, env))
        {
            Set(ref s, 0, r);
        }
        return Ok;
    }

    public static ExecStatus Fchs(InterpreterVcpu c, ref DecodedOp op) => Unary(c, ref op, 0);

    public static ExecStatus Fabs(InterpreterVcpu c, ref DecodedOp op) => Unary(c, ref op, 1);

    public static ExecStatus Fsqrt(InterpreterVcpu c, ref DecodedOp op) => Unary(c, ref op, 2);

    public static ExecStatus Frndint(InterpreterVcpu c, ref DecodedOp op) => Unary(c, ref op, 3);

    /// <summary>Rounds to an integral value per <paramref name="rounding"/> (exact in extended; PE and C1 when it changed).</summary>
    private static FpResult RoundToIntegral(in FpNum a, int rounding, ref FpEnv env)
    {
        if (a.Class != FpClass.Finite || a.Exp >= 63)
        {
            if (a.Denormal)
            {
                env.Flags |= FpFlags.Denormal;
            }
            return SoftFloat.Exact(a);
        }
        if (a.Denormal)
        {
            env.Flags |= FpFlags.Denormal;
        }
        ulong intPart;
        ulong frac;
        if (a.Exp < 0)
        {
            intPart = 0;
            int sh = -a.Exp - 1;
            frac = sh == 0 ? a.Sig : sh >= 64 ? 1UL : (a.Sig >> sh) | ((a.Sig & ((1UL << sh) - 1)) != 0 ? 1UL : 0);
        }
        else
        {
            int sh = 63 - a.Exp;
            intPart = a.Sig >> sh;
            frac = a.Sig << (64 - sh);
        }
        bool up = rounding switch
        {
            0 => frac > (1UL << 63) || (frac == (1UL << 63) && (intPart & 1) != 0),
            1 => a.Sign && frac != 0,
            2 => !a.Sign && frac != 0,
            _ => false,
        };
        if (frac != 0)
        {
            env.Flags |= FpFlags.Precision;
            env.RoundedUp = up;
        }
        ulong mag = intPart + (up ? 1UL : 0);
        if (mag == 0)
        {
            return new FpResult { Class = FpClass.Zero, Sign = a.Sign };
        }
        FpEnv exact = default;
        FpResult r = SoftFloat.FromInt((long)mag, FpFormat.Extended, ref exact);
        r.Sign = a.Sign;
        return r;
    }

    // ---------------- constants ----------------

    public static ExecStatus Fld1(InterpreterVcpu c, ref DecodedOp op) => LoadConstant(c, ref op, 0, 0x8000_0000_0000_0000, 0);

    public static ExecStatus Fldz(InterpreterVcpu c, ref DecodedOp op) => LoadConstant(c, ref op, 0, 0, 0, zero: true);

    public static ExecStatus Fldpi(InterpreterVcpu c, ref DecodedOp op) => LoadConstant(c, ref op, 1, 0xC90F_DAA2_2168_C234, 0xC4C6_628B_80DC_1CD1);

    public static ExecStatus Fldl2e(InterpreterVcpu c, ref DecodedOp op) => LoadConstant(c, ref op, 0, 0xB8AA_3B29_5C17_F0BB, 0xBE87_FED0_691D_3E89);

    public static ExecStatus Fldl2t(InterpreterVcpu c, ref DecodedOp op) => LoadConstant(c, ref op, 1, 0xD49A_784B_CD1B_8AFE, 0x492B_F6FF_4DAF_DB4C);

    public static ExecStatus Fldlg2(InterpreterVcpu c, ref DecodedOp op) => LoadConstant(c, ref op, -2, 0x9A20_9A84_FBCF_F798, 0x8F89_59AC_0B7C_9178);

    public static ExecStatus Fldln2(InterpreterVcpu c, ref DecodedOp op) => LoadConstant(c, ref op, -1, 0xB172_17F7_D1CF_79AB, 0xC9E3_B398_03F2_F6AF);

    /// <summary>Pushes a constant given to 128 bits, rounded to 64 per FCW.RC (no precision exception, as on hardware).</summary>
    private static ExecStatus LoadConstant(InterpreterVcpu c, ref DecodedOp op, int exp, ulong hi, ulong lo, bool zero = false)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        FpEnv env = Env(ref s);
        FpEnv scratch = env;
        FpResult r = zero ? default : SoftFloat.Round(false, exp, ((UInt128)hi << 64) | lo, FpFormat.Extended, ref scratch);
        SoftFloat.Pack80(r, out ulong sig, out ushort se);
        return PushValue(ref s, env, sig, se);
    }

    // ---------------- stack management ----------------

    /// <summary>FXCH ST(i): swaps with ST(0); an empty register reads as the indefinite (IE, SF).</summary>
    public static ExecStatus Fxch(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        int i = op.K1 == OperandKind.Reg ? StIndex(op.R1) : op.K0 == OperandKind.Reg ? StIndex(op.R0) : 1;
        FpEnv env = Env(ref s);
        bool e0 = Empty(ref s, 0);
        bool ei = Empty(ref s, i);
        SoftFloat.Pack80(SoftFloat.DefaultNaN, out ulong nanSig, out ushort nanSe);
        ulong s0 = e0 ? nanSig : Sig(ref s, 0);
        ushort x0 = e0 ? nanSe : SignExp(ref s, 0);
        ulong si = ei ? nanSig : Sig(ref s, i);
        ushort xi = ei ? nanSe : SignExp(ref s, i);
        if (e0 || ei)
        {
            env.Flags |= FpFlags.Invalid | StackFault;
        }
        if (Commit(ref s, env))
        {
            SetRaw(ref s, 0, si, xi);
            SetRaw(ref s, i, s0, x0);
        }
        return Ok;
    }

    /// <summary>FFREE ST(i): tags the register empty (TOP unchanged).</summary>
    public static ExecStatus Ffree(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        s.Ftw &= (byte)~(1 << ((Top(ref s) + StIndex(op.R0)) & 7));
        return Ok;
    }

    /// <summary>FFREEP ST(i): FFREE then pop.</summary>
    public static ExecStatus Ffreep(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus st = Ffree(c, ref op);
        if (st == Ok)
        {
            Pop(ref c.State);
        }
        return st;
    }

    public static ExecStatus Fincstp(InterpreterVcpu c, ref DecodedOp op) => MoveTop(c, ref op, 1);

    public static ExecStatus Fdecstp(InterpreterVcpu c, ref DecodedOp op) => MoveTop(c, ref op, -1);

    private static ExecStatus MoveTop(InterpreterVcpu c, ref DecodedOp op, int delta)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        Rotate(ref s, pop: delta > 0);
        s.Fsw = (ushort)((s.Fsw & ~(0x3800 | C1)) | (((Top(ref s) + delta) & 7) << 11));
        return Ok;
    }

    /// <summary>FNOP (and the obsolete FENI/FDISI/FSETPM encodings): only the #NM/#MF checks.</summary>
    public static ExecStatus Fnop(InterpreterVcpu c, ref DecodedOp op) => Enter(c, ref op, out ExecStatus st) ? Ok : st;

    // iced reports no ConditionCode for FCMOVcc, so each gets its own entry (iced numbering: 3 b, 4 ae, 5 e, 6 ne, 7 be, 8 a, 11 p, 12 np).
    public static ExecStatus Fcmovb(InterpreterVcpu c, ref DecodedOp op) => Fcmov(c, ref op, 3);

    public static ExecStatus Fcmovnb(InterpreterVcpu c, ref DecodedOp op) => Fcmov(c, ref op, 4);

    public static ExecStatus Fcmove(InterpreterVcpu c, ref DecodedOp op) => Fcmov(c, ref op, 5);

    public static ExecStatus Fcmovne(InterpreterVcpu c, ref DecodedOp op) => Fcmov(c, ref op, 6);

    public static ExecStatus Fcmovbe(InterpreterVcpu c, ref DecodedOp op) => Fcmov(c, ref op, 7);

    public static ExecStatus Fcmovnbe(InterpreterVcpu c, ref DecodedOp op) => Fcmov(c, ref op, 8);

    public static ExecStatus Fcmovu(InterpreterVcpu c, ref DecodedOp op) => Fcmov(c, ref op, 11);

    public static ExecStatus Fcmovnu(InterpreterVcpu c, ref DecodedOp op) => Fcmov(c, ref op, 12);

    /// <summary>FCMOVcc ST(0), ST(i).</summary>
    private static ExecStatus Fcmov(InterpreterVcpu c, ref DecodedOp op, int cc)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        int i = StIndex(op.R1);
        FpEnv env = Env(ref s);
        if (Empty(ref s, 0) || Empty(ref s, i))
        {
            env.Flags |= FpFlags.Invalid | StackFault;
            if (Commit(ref s, env))
            {
                Set(ref s, 0, SoftFloat.DefaultNaN);
            }
            return Ok;
        }
        s.Fsw = (ushort)(s.Fsw & ~C1);
        if (c.Condition(cc))
        {
            SetRaw(ref s, 0, Sig(ref s, i), SignExp(ref s, i));
        }
        return Ok;
    }

    // ---------------- FSCALE, FXTRACT, FPREM ----------------

    /// <summary>FSCALE: ST(0) × 2^trunc(ST(1)).</summary>
    public static ExecStatus Fscale(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        FpEnv env = Env(ref s);
        FpResult r;
        if (Empty(ref s, 0) || Empty(ref s, 1))
        {
            env.Flags |= FpFlags.Invalid | StackFault;
            r = SoftFloat.DefaultNaN;
        }
        else
        {
            FpNum a = Get(ref s, 0);
            FpNum b = Get(ref s, 1);
            if (a.IsNaN || b.IsNaN)
            {
                r = SoftFloat.PropagateX87(a, b, ref env);
            }
            else
            {
                if (a.Denormal || b.Denormal)
                {
                    env.Flags |= FpFlags.Denormal;
                }
                if (b.Class == FpClass.Inf)
                {
                    bool bad = b.Sign ? a.Class == FpClass.Inf : a.Class == FpClass.Zero;
                    if (bad)
                    {
                        env.Flags |= FpFlags.Invalid;
                        r = SoftFloat.DefaultNaN;
                    }
                    else
                    {
                        r = new FpResult { Class = a.Class == FpClass.Zero ? FpClass.Zero : b.Sign && a.Class != FpClass.Inf ? FpClass.Zero : FpClass.Inf, Sign = a.Sign };
                    }
                }
                else if (a.Class != FpClass.Finite)
                {
                    r = SoftFloat.Exact(a);
                }
                else
                {
                    int n = b.Class == FpClass.Zero || b.Exp < 0 ? 0 : b.Exp >= 20 ? 1 << 20 : (int)(b.Sig >> (63 - b.Exp));
                    n = b.Sign ? -n : n;
                    r = SoftFloat.Round(a.Sign, a.Exp + n, (UInt128)a.Sig << 64, FpFormat.Extended, ref env);
                }
            }
        }
        if (Commit(ref s, env))
        {
            Set(ref s, 0, r);
        }
        return Ok;
    }

    /// <summary>FXTRACT: ST(0) becomes its significand (exponent 0) and its unbiased exponent is pushed beneath... above it.</summary>
    public static ExecStatus Fxtract(InterpreterVcpu c, ref DecodedOp op)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        FpEnv env = Env(ref s);
        FpResult exponent, significand;
        if (Empty(ref s, 0))
        {
            env.Flags |= FpFlags.Invalid | StackFault;
            exponent = significand = SoftFloat.DefaultNaN;
        }
        else if (!Empty(ref s, 7))
        {
            env.Flags |= FpFlags.Invalid | StackFault;
            exponent = significand = SoftFloat.DefaultNaN;
            if (Commit(ref s, env, c1: true))
            {
                Set(ref s, 0, exponent);
                Push(ref s);
                Set(ref s, 0, significand);
            }
            return Ok;
        }
        else
        {
            FpNum a = Get(ref s, 0);
            if (a.IsNaN)
            {
                exponent = significand = SoftFloat.PropagateX87(a, a, ref env);
            }
            else if (a.Class == FpClass.Zero)
            {
                env.Flags |= FpFlags.ZeroDivide;
                exponent = new FpResult { Class = FpClass.Inf, Sign = true };
                significand = SoftFloat.Exact(a);
            }
            else if (a.Class == FpClass.Inf)
            {
                exponent = new FpResult { Class = FpClass.Inf };
                significand = SoftFloat.Exact(a);
            }
            else
            {
                if (a.Denormal)
                {
                    env.Flags |= FpFlags.Denormal;
                }
                FpEnv exact = default;
                exponent = SoftFloat.FromInt(a.Exp, FpFormat.Extended, ref exact);
                significand = new FpResult { Class = FpClass.Finite, Sign = a.Sign, Exp = 0, Sig = a.Sig };
            }
        }
        if (Commit(ref s, env))
        {
            Set(ref s, 0, exponent);
            Push(ref s);
            Set(ref s, 0, significand);
        }
        return Ok;
    }

    public static ExecStatus Fprem(InterpreterVcpu c, ref DecodedOp op) => Remainder(c, ref op, nearest: false);

    public static ExecStatus Fprem1(InterpreterVcpu c, ref DecodedOp op) => Remainder(c, ref op, nearest: true);

    /// <summary>
    /// FPREM (truncating quotient) / FPREM1 (IEEE, nearest-even quotient): ST(0) ← ST(0) − q × ST(1), exact. With an
    /// exponent difference of 64 or more only a partial reduction is done (C2 = 1): by 2^(d − n) with n = 32 + (d mod 32),
    /// QEMU's choice. Otherwise C0, C3, C1 receive quotient bits 2, 1, 0 and C2 = 0.
    /// </summary>
    private static ExecStatus Remainder(InterpreterVcpu c, ref DecodedOp op, bool nearest)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        FpEnv env = Env(ref s);
        FpResult r;
        int cc = 0;
        if (Empty(ref s, 0) || Empty(ref s, 1))
        {
            env.Flags |= FpFlags.Invalid | StackFault;
            r = SoftFloat.DefaultNaN;
        }
        else
        {
            FpNum a = Get(ref s, 0);
            FpNum b = Get(ref s, 1);
            if (a.IsNaN || b.IsNaN)
            {
                r = SoftFloat.PropagateX87(a, b, ref env);
            }
            else if (a.Class == FpClass.Inf || b.Class == FpClass.Zero)
            {
                env.Flags |= FpFlags.Invalid;
                r = SoftFloat.DefaultNaN;
            }
            else
            {
                if (a.Denormal || b.Denormal)
                {
                    env.Flags |= FpFlags.Denormal;
                }
                if (a.Class == FpClass.Zero || b.Class == FpClass.Inf)
                {
                    r = SoftFloat.Exact(a);
                }
                else
                {
                    int d = a.Exp - b.Exp;
                    if (d < 0)
                    {
                        // |a| < |b|: the quotient is 0 (or ±1 for FPREM1 when |a| > |b|/2).
                        if (nearest && d == -1 && a.Sig > b.Sig)
                        {
                            // |a| > |b|/2: remainder = a - sign*b.
                            FpNum nb = b;
                            nb.Sign = a.Sign;
                            r = SoftFloat.Add(a, nb, true, FpFormat.Extended, ref env);
                            cc = C1;
                        }
                        else
                        {
                            r = SoftFloat.Exact(a);
                        }
                    }
                    else if (d >= 64)
                    {
                        int n = 32 + (d % 32);
                        int shift = d - n; // reduce by b × 2^shift, quotient truncated
                        // a' = A·2^(ea) , work at exponent scale: A << n  vs  B (n < 64)
                        UInt128 num = (UInt128)a.Sig << n;
                        UInt128 rem = num % b.Sig;
                        // remainder value = rem × 2^(b.Exp + shift − 63)
                        r = rem == 0
                            ? new FpResult { Class = FpClass.Zero, Sign = a.Sign }
                            : SoftFloat.NormalizeRound(a.Sign, b.Exp + shift - 63, rem, FpFormat.Extended, ref env);
                        cc = C2;
                    }
                    else
                    {
                        UInt128 num = (UInt128)a.Sig << d;
                        UInt128 q = num / b.Sig;
                        UInt128 rem = num - q * b.Sig;
                        bool sign = a.Sign;
                        if (nearest && (rem * 2 > b.Sig || (rem * 2 == b.Sig && (q & 1) != 0)))
                        {
                            q++;
                            rem = b.Sig - rem;
                            sign = !sign;
                        }
                        r = rem == 0
                            ? new FpResult { Class = FpClass.Zero, Sign = a.Sign }
                            : SoftFloat.NormalizeRound(sign, b.Exp - 63, rem, FpFormat.Extended, ref env);
                        ulong qb = (ulong)q;
                        cc = ((qb & 4) != 0 ? C0 : 0) | ((qb & 2) != 0 ? C3 : 0) | ((qb & 1) != 0 ? C1 : 0);
                    }
                }
            }
        }
        if (Commit(ref s, env))
        {
            Set(ref s, 0, r);
            s.Fsw = (ushort)((s.Fsw & ~(C3 | C2 | C1 | C0)) | cc);
        }
        return Ok;
    }

    // ---------------- transcendental ----------------

    /// <summary>ST(0) as a double (nearest), for the transcendental functions.</summary>
    private static double ToDouble(in FpNum a)
    {
        FpEnv scratch = default;
        return BitConverter.UInt64BitsToDouble(SoftFloat.Pack64(a.IsNaN ? SoftFloat.Quiet(a) : SoftFloat.FromNum(a, FpFormat.Double, ref scratch)));
    }

    /// <summary>A double result rounded to FCW's precision; PE is raised (these results are inexact).</summary>
    private static FpResult FromDouble(double v, ref X86CpuState s, ref FpEnv env)
    {
        FpNum n = SoftFloat.Unpack64(BitConverter.DoubleToUInt64Bits(v), false);
        FpResult r = n.Class == FpClass.Finite ? SoftFloat.Round(n.Sign, n.Exp, (UInt128)n.Sig << 64, Precision(ref s), ref env) : SoftFloat.Exact(n);
        if (n.Class == FpClass.Finite)
        {
            env.Flags |= FpFlags.Precision;
        }
        return r;
    }

    /// <summary>
    /// FSIN, FCOS, FSINCOS, FPTAN, F2XM1, FYL2X, FYL2XP1, FPATAN: evaluated in double precision (ST operands rounded to
    /// double first, results widened back), so they are as accurate as the host's double libm — not the x87's 64-bit
    /// accuracy. Operands beyond ±2^63 leave FSIN/FCOS/FSINCOS/FPTAN with C2 = 1 and ST(0) unchanged, as on hardware.
    /// </summary>
    private static ExecStatus Transcendental(InterpreterVcpu c, ref DecodedOp op, int kind)
    {
        if (!Enter(c, ref op, out ExecStatus st))
        {
            return st;
        }
        ref X86CpuState s = ref c.State;
        FpEnv env = Env(ref s);
        bool binary = kind >= 5; // FYL2X, FYL2XP1, FPATAN use ST(1) and pop
        bool pushes = kind is 2 or 3; // FSINCOS, FPTAN
        if (Empty(ref s, 0) || (binary && Empty(ref s, 1)) || (pushes && !Empty(ref s, 7)))
        {
            env.Flags |= FpFlags.Invalid | StackFault;
            if (Commit(ref s, env, c1: pushes && !Empty(ref s, 0)))
            {
                if (binary)
                {
                    Set(ref s, 1, SoftFloat.DefaultNaN);
                    Pop(ref s);
                }
                else
                {
                    Set(ref s, 0, SoftFloat.DefaultNaN);
                    if (pushes)
                    {
                        Push(ref s);
                        Set(ref s, 0, SoftFloat.DefaultNaN);
                    }
                }
            }
            return Ok;
        }
        FpNum a = Get(ref s, 0);
        FpNum b = binary ? Get(ref s, 1) : default;
        if (a.IsNaN || (binary && b.IsNaN))
        {
            FpResult nan = SoftFloat.PropagateX87(a, binary ? b : a, ref env);
            if (Commit(ref s, env))
            {
                if (binary)
                {
                    Set(ref s, 1, nan);
                    Pop(ref s);
                }
                else
                {
                    Set(ref s, 0, nan);
                    if (pushes)
                    {
                        Push(ref s);
                        Set(ref s, 0, nan);
                    }
                }
            }
            return Ok;
        }
        if (a.Denormal || (binary && b.Denormal))
        {
            env.Flags |= FpFlags.Denormal;
        }
        if (kind <= 3 && a.Class == FpClass.Finite && a.Exp >= 63)
        {
            s.Fsw = (ushort)(s.Fsw | C2);
            return Ok;
        }
        s.Fsw = (ushort)(s.Fsw & ~C2);
        double x = ToDouble(a);
        double y = binary ? ToDouble(b) : 0;
        FpResult r0, r1 = default;
        switch (kind)
        {
            case 0: // FSIN
            case 1: // FCOS
            case 2: // FSINCOS: ST(1) = sin, ST(0) = cos
            case 3: // FPTAN: ST(0) = tan, push 1.0
                if (a.Class == FpClass.Inf)
                {
                    env.Flags |= FpFlags.Invalid;
                    r0 = r1 = SoftFloat.DefaultNaN;
                }
                else if (a.Class == FpClass.Zero && kind != 1)
                {
                    r0 = SoftFloat.Exact(a);
                    r1 = kind == 2 ? FromDouble(1.0, ref s, ref env) : FromDouble(1.0, ref s, ref env);
                    env.Flags &= ~FpFlags.Precision;
                    if (kind == 2)
                    {
                        (r0, r1) = (r1, r0);
                    }
                }
                else
                {
                    r0 = kind switch
                    {
                        0 => FromDouble(Math.Sin(x), ref s, ref env),
                        1 => FromDouble(Math.Cos(x), ref s, ref env),
                        2 => FromDouble(Math.Cos(x), ref s, ref env),
                        _ => FromDouble(Math.Tan(x), ref s, ref env),
                    };
                    r1 = kind == 2 ? FromDouble(Math.Sin(x), ref s, ref env) : kind == 3 ? FromDouble(1.0, ref s, ref env) : default;
                }
                break;
            case 4: // F2XM1
                r0 = a.Class == FpClass.Zero ? SoftFloat.Exact(a)
                    : a.Class == FpClass.Inf ? (a.Sign ? FromDouble(-1.0, ref s, ref env) : SoftFloat.Exact(a))
                    : FromDouble(Exp2M1(x), ref s, ref env);
                break;
            case 5: // FYL2X: ST(1) × log2(ST(0))
                r0 = Yl2x(a, b, x, y, false, ref s, ref env);
                break;
            case 6: // FYL2XP1: ST(1) × log2(ST(0) + 1)
                r0 = Yl2x(a, b, x, y, true, ref s, ref env);
                break;
            default: // FPATAN: atan2(ST(1), ST(0))
                r0 = FromDouble(Math.Atan2(y, x), ref s, ref env);
                break;
        }
        if (!Commit(ref s, env))
        {
            return Ok;
        }
        if (binary)
        {
            Set(ref s, 1, r0);
            Pop(ref s);
            return Ok;
        }
        if (kind == 2)
        {
            // FSINCOS: sin replaces ST(0), cos is pushed.
            Set(ref s, 0, r1);
            Push(ref s);
            Set(ref s, 0, r0);
            return Ok;
        }
        Set(ref s, 0, r0);
        if (kind == 3)
        {
            Push(ref s);
            Set(ref s, 0, r1);
        }
        return Ok;
    }

    private static FpResult Yl2x(in FpNum a, in FpNum b, double x, double y, bool plusOne, ref X86CpuState s, ref FpEnv env)
    {
        if (!plusOne && a.Class == FpClass.Zero && b.Class != FpClass.Zero && b.Class != FpClass.Inf)
        {
            env.Flags |= FpFlags.ZeroDivide;
            return new FpResult { Class = FpClass.Inf, Sign = !b.Sign };
        }
        double l = plusOne ? Log1p(x) / Math.Log(2) : Math.Log2(x);
        double v = y * l;
        if (double.IsNaN(v))
        {
            env.Flags |= FpFlags.Invalid;
            return SoftFloat.DefaultNaN;
        }
        return FromDouble(v, ref s, ref env);
    }

    /// <summary>2^x − 1 without cancellation for small x (Kahan's expm1 trick on exp(x·ln 2)).</summary>
    private static double Exp2M1(double x)
    {
        double y = x * 0.69314718055994530942;
        double u = Math.Exp(y);
        if (u == 1.0)
        {
            return y;
        }
        double um1 = u - 1.0;
        return um1 == -1.0 ? -1.0 : um1 * y / Math.Log(u);
    }

    /// <summary>ln(1 + x) without cancellation for small x.</summary>
    private static double Log1p(double x)
    {
        double u = 1.0 + x;
        return u == 1.0 ? x : Math.Log(u) * x / (u - 1.0);
    }

    public static ExecStatus Fsin(InterpreterVcpu c, ref DecodedOp op) => Transcendental(c, ref op, 0);

    public static ExecStatus Fcos(InterpreterVcpu c, ref DecodedOp op) => Transcendental(c, ref op, 1);

    public static ExecStatus Fsincos(InterpreterVcpu c, ref DecodedOp op) => Transcendental(c, ref op, 2);

    public static ExecStatus Fptan(InterpreterVcpu c, ref DecodedOp op) => Transcendental(c, ref op, 3);

    public static ExecStatus F2xm1(InterpreterVcpu c, ref DecodedOp op) => Transcendental(c, ref op, 4);

    public static ExecStatus Fyl2x(InterpreterVcpu c, ref DecodedOp op) => Transcendental(c, ref op, 5);

    public static ExecStatus Fyl2xp1(InterpreterVcpu c, ref DecodedOp op) => Transcendental(c, ref op, 6);

    public static ExecStatus Fpatan(InterpreterVcpu c, ref DecodedOp op) => Transcendental(c, ref op, 7);

    // ---------------- environment save/restore ----------------

    /// <summary>The full 16-bit tag word (00 valid, 01 zero, 10 special, 11 empty per physical register).</summary>
    internal static ushort FullTagWord(ref X86CpuState s)
    {
        int top = Top(ref s);
        int tw = 0;
        for (int p = 0; p < 8; p++)
        {
            int tag;
            if ((s.Ftw & (1 << p)) == 0)
            {
                tag = 3;
            }
            else
            {
                int i = (p - top) & 7;
                ulong sig = Sig(ref s, i);
                int e = SignExp(ref s, i) & 0x7FFF;
                tag = e == 0x7FFF || (e == 0 && sig != 0) || (e != 0 && (sig & (1UL << 63)) == 0) ? 2 : e == 0 ? 1 : 0;
            }
            tw |= tag << (2 * p);
        }
        return (ushort)tw;
    }

    public static ExecStatus Fnstenv(InterpreterVcpu c, ref DecodedOp op) => SaveEnv(c, ref op, full: false);

    public static ExecStatus Fnsave(InterpreterVcpu c, ref DecodedOp op) => SaveEnv(c, ref op, full: true);

    /// <summary>
    /// FNSTENV/FNSAVE: the 14-byte (16-bit operand size) or 28-byte environment, then for FNSAVE the eight registers
    /// in stack order and an FNINIT; FNSTENV masks every exception afterwards. FIP/FOP/FDP are those of the last
    /// non-control x87 instruction (<see cref="InterpreterVcpu.RecordX87Pointers"/>).
    /// </summary>
    [SkipLocalsInit]
    private static ExecStatus SaveEnv(InterpreterVcpu c, ref DecodedOp op, bool full)
    {
        if (c.FpuOff())
        {
            return c.Raise(Vector.NM);
        }
        ref X86CpuState s = ref c.State;
        bool wide = op.Size is 28 or 108;
        int envSize = wide ? 28 : 14;
        Span<byte> image = stackalloc byte[108];
        image.Clear();
        int step = wide ? 4 : 2;
        Unsafe.WriteUnaligned(ref image[0], s.Fcw);
        Unsafe.WriteUnaligned(ref image[step], s.Fsw);
        Unsafe.WriteUnaligned(ref image[2 * step], FullTagWord(ref s));
        if (wide)
        {
            // The unused upper halves of the control, status and tag dwords read as ones, as on hardware.
            Unsafe.WriteUnaligned(ref image[2], (ushort)0xFFFF);
            Unsafe.WriteUnaligned(ref image[6], (ushort)0xFFFF);
            Unsafe.WriteUnaligned(ref image[10], (ushort)0xFFFF);
        }
        WritePointers(c, ref s, image, wide);
        int length = envSize;
        if (full)
        {
            for (int i = 0; i < 8; i++)
            {
                ((ReadOnlySpan<byte>)s.Fx).Slice(X86CpuState.FxSt0 + i * 16, 10).CopyTo(image[(envSize + i * 10)..]);
            }
            length += 80;
        }
        ExecStatus st = c.OperandLinear(ref op, length, InterpreterVcpu.AccessWrite, out ulong linear);
        if (st == Ok)
        {
            st = c.WriteBlockBytes(linear, image[..length]);
        }
        if (st != Ok)
        {
            return st;
        }
        if (full)
        {
            // FNSAVE ends with an FNINIT, which also clears the pointers and opcode.
            s.Fcw = 0x037F;
            s.Fsw = 0;
            s.Ftw = 0;
            ((Span<byte>)s.Fx)[X86CpuState.FxFop..X86CpuState.FxMxcsr].Clear();
        }
        else
        {
            s.Fcw |= 0x3F;
        }
        return Ok;
    }

    /// <summary>
    /// FIP, FOP and FDP in the environment image (SDM vol. 1 figs. 8-9 to 8-12). Protected mode: FIP offset, FCS with
    /// FOP in bits 26:16 (32-bit form only), FDP offset, FDS; the selectors are the current CS and DS (the model keeps
    /// no per-instruction selectors). Real mode: the 16-bit FIP/FDP with their bits 31:16 (19:16) in bits 31:12
    /// (15:12) of the next field, FOP in bits 10:0 — built from the offsets, not linear addresses.
    /// </summary>
    private static void WritePointers(InterpreterVcpu c, ref X86CpuState s, Span<byte> image, bool wide)
    {
        ulong fip = Unsafe.ReadUnaligned<ulong>(ref s.Fx[X86CpuState.FxFip]);
        ulong fdp = Unsafe.ReadUnaligned<ulong>(ref s.Fx[X86CpuState.FxFdp]);
        uint fop = Unsafe.ReadUnaligned<ushort>(ref s.Fx[X86CpuState.FxFop]) & 0x7FFu;
        bool real = (s.Cr0 & X86CpuState.Cr0Pe) == 0;
        ushort fcs = s.Segments[(int)SegmentIndex.Cs].Selector;
        ushort fds = s.Segments[(int)SegmentIndex.Ds].Selector;
        if (wide)
        {
            Unsafe.WriteUnaligned(ref image[12], real ? (uint)(fip & 0xFFFF) : (uint)fip);
            Unsafe.WriteUnaligned(ref image[16], real ? (uint)(((fip >> 16) & 0xFFFF) << 12) | fop : fcs | (fop << 16));
            Unsafe.WriteUnaligned(ref image[20], real ? (uint)(fdp & 0xFFFF) : (uint)fdp);
            Unsafe.WriteUnaligned(ref image[24], real ? (uint)(((fdp >> 16) & 0xFFFF) << 12) : 0xFFFF_0000u | fds);
        }
        else
        {
            Unsafe.WriteUnaligned(ref image[6], (ushort)fip);
            Unsafe.WriteUnaligned(ref image[8], real ? (ushort)((((fip >> 16) & 0xF) << 12) | fop) : fcs);
            Unsafe.WriteUnaligned(ref image[10], (ushort)fdp);
            Unsafe.WriteUnaligned(ref image[12], real ? (ushort)(((fdp >> 16) & 0xF) << 12) : fds);
        }
    }

    /// <summary>FLDENV/FRSTOR: the pointers and opcode back from the image (the selectors are dropped).</summary>
    private static void ReadPointers(ref X86CpuState s, ReadOnlySpan<byte> image, bool wide)
    {
        bool real = (s.Cr0 & X86CpuState.Cr0Pe) == 0;
        ulong fip, fdp;
        uint fop;
        if (wide)
        {
            uint w12 = Unsafe.ReadUnaligned<uint>(in image[12]);
            uint w16 = Unsafe.ReadUnaligned<uint>(in image[16]);
            uint w20 = Unsafe.ReadUnaligned<uint>(in image[20]);
            uint w24 = Unsafe.ReadUnaligned<uint>(in image[24]);
            fip = real ? (w12 & 0xFFFF) | ((ulong)(w16 >> 12) << 16) : w12;
            fop = real ? w16 & 0x7FF : (w16 >> 16) & 0x7FF;
            fdp = real ? (w20 & 0xFFFF) | ((ulong)(w24 >> 12) << 16) : w20;
        }
        else
        {
            ushort w8 = Unsafe.ReadUnaligned<ushort>(in image[8]);
            ushort w12 = Unsafe.ReadUnaligned<ushort>(in image[12]);
            fip = Unsafe.ReadUnaligned<ushort>(in image[6]) | (real ? (ulong)(w8 >> 12) << 16 : 0);
            fop = real ? w8 & 0x7FFu : Unsafe.ReadUnaligned<ushort>(ref s.Fx[X86CpuState.FxFop]);
            fdp = Unsafe.ReadUnaligned<ushort>(in image[10]) | (real ? (ulong)(w12 >> 12) << 16 : 0);
        }
        Unsafe.WriteUnaligned(ref s.Fx[X86CpuState.FxFop], (ushort)fop);
        Unsafe.WriteUnaligned(ref s.Fx[X86CpuState.FxFip], fip);
        Unsafe.WriteUnaligned(ref s.Fx[X86CpuState.FxFdp], fdp);
    }

    public static ExecStatus Fldenv(InterpreterVcpu c, ref DecodedOp op) => LoadEnv(c, ref op, full: false);

    public static ExecStatus Frstor(InterpreterVcpu c, ref DecodedOp op) => LoadEnv(c, ref op, full: true);

    /// <summary>FLDENV/FRSTOR: control, status (with TOP) and tag word (empty or not), then for FRSTOR the registers.</summary>
    [SkipLocalsInit]
    private static ExecStatus LoadEnv(InterpreterVcpu c, ref DecodedOp op, bool full)
    {
        if (c.FpuOff())
        {
            return c.Raise(Vector.NM);
        }
        ref X86CpuState s = ref c.State;
        bool wide = op.Size is 28 or 108;
        int envSize = wide ? 28 : 14;
        int length = envSize + (full ? 80 : 0);
        Span<byte> image = stackalloc byte[112];
        ExecStatus sg = c.OperandLinear(ref op, length, InterpreterVcpu.AccessRead, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        for (int i = 0; i < length; i += 2)
        {
            ExecStatus st = c.ReadMem(c.WrapAddress(linear + (ulong)i), 2, out ulong v);
            if (st != Ok)
            {
                return st;
            }
            Unsafe.WriteUnaligned(ref image[i], (ushort)v);
        }
        int step = wide ? 4 : 2;
        s.Fcw = Unsafe.ReadUnaligned<ushort>(ref image[0]);
        s.Fsw = Unsafe.ReadUnaligned<ushort>(ref image[step]);
        ushort tw = Unsafe.ReadUnaligned<ushort>(ref image[2 * step]);
        byte abridged = 0;
        for (int p = 0; p < 8; p++)
        {
            if (((tw >> (2 * p)) & 3) != 3)
            {
                abridged |= (byte)(1 << p);
            }
        }
        s.Ftw = abridged;
        ReadPointers(ref s, image, wide);
        if (full)
        {
            for (int i = 0; i < 8; i++)
            {
                Span<byte> slot = ((Span<byte>)s.Fx).Slice(X86CpuState.FxSt0 + i * 16, 16);
                image.Slice(envSize + i * 10, 10).CopyTo(slot);
                slot[10..].Clear();
            }
        }
        return Ok;
    }
}
