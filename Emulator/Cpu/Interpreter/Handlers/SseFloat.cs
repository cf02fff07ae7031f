using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Colo.Core.Cpu;
using Colo.Cpu.Interpreter.Float;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>One floating-point element operation on raw single (<c>dbl</c> false) or double bits.</summary>
internal interface IFpElem
{
    static abstract ulong Apply(ulong a, ulong b, bool dbl, int imm, ref FpEnv env);
}

/// <summary>
/// SSE/SSE2/SSE3 floating point: arithmetic, min/max, sqrt, compares, conversions, shuffles and horizontal ops. Every
/// element goes through <see cref="SoftFloat"/>, so results, MXCSR rounding, DAZ/FTZ and the sticky flags are exact
/// IEEE-754 as x86 defines them (not whatever the host FPU would do). A result whose flags include an exception
/// MXCSR does not mask leaves the destination unchanged, sets the flags and raises #XM (CR4.OSXMMEXCPT) or #UD.
/// </summary>
internal static class SseFloat
{
    private const ExecStatus Ok = ExecStatus.Continue;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static FpEnv Env(uint mxcsr) => new()
    {
        Rounding = (int)(mxcsr >> 13) & 3,
        // FTZ only acts while underflow is masked.
        Ftz = (mxcsr & 0x8800) == 0x8800,
        Daz = (mxcsr & 0x40) != 0,
        UnderflowUnmasked = (mxcsr & 0x800) == 0,
        HostExact = (mxcsr & 0xFFE0) == 0x1FA0,
    };

    /// <summary>Merges the flags into MXCSR; false (with <paramref name="status"/> set) when one is unmasked.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool Commit(InterpreterVcpu c, int flags, out ExecStatus status)
    {
        ref X86CpuState s = ref c.State;
        uint m = s.Mxcsr;
        int unmasked = flags & ~(int)(m >> 7) & 0x3F;
        if (unmasked == 0)
        {
            s.Mxcsr = m | (uint)flags;
            status = Ok;
            return true;
        }
        // An unmasked pre-computation exception (IE, DE, ZE) suppresses the post-computation ones.
        if ((unmasked & 7) != 0)
        {
            flags &= 7;
        }
        s.Mxcsr = m | (uint)flags;
        status = (s.Cr4 & X86CpuState.Cr4Osxmmexcpt) != 0 ? c.Raise(Vector.XM) : c.Raise(Vector.UD);
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static FpNum Unpack(ulong v, bool dbl, bool daz) => dbl ? SoftFloat.Unpack64(v, daz) : SoftFloat.Unpack32((uint)v, daz);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Pack(in FpResult r, bool dbl) => dbl ? SoftFloat.Pack64(r) : SoftFloat.Pack32(r);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static FpFormat Format(bool dbl) => dbl ? FpFormat.Double : FpFormat.Single;

    // ---------------- element operations ----------------

    /// <summary>imm 0 add, 1 sub, 2 mul, 3 div.</summary>
    internal static ulong Arith(ulong a, ulong b, bool dbl, int kind, ref FpEnv env)
    {
        if (env.HostExact)
        {
            // Fast path (see FpEnv.HostExact): normal operands and a normal result need no software rounding.
            if (dbl)
            {
                if (((a >> 52) & 0x7FF) - 1 < 0x7FE && ((b >> 52) & 0x7FF) - 1 < 0x7FE)
                {
                    double dx = BitConverter.UInt64BitsToDouble(a), dy = BitConverter.UInt64BitsToDouble(b);
                    ulong dr = BitConverter.DoubleToUInt64Bits(kind switch { 0 => dx + dy, 1 => dx - dy, 2 => dx * dy, _ => dx / dy });
                    if (((dr >> 52) & 0x7FF) - 1 < 0x7FE)
                    {
                        return dr;
                    }
                }
            }
            else if (((uint)(a >> 23) & 0xFF) - 1 < 0xFE && ((uint)(b >> 23) & 0xFF) - 1 < 0xFE)
            {
                float sx = BitConverter.UInt32BitsToSingle((uint)a), sy = BitConverter.UInt32BitsToSingle((uint)b);
                uint sr = BitConverter.SingleToUInt32Bits(kind switch { 0 => sx + sy, 1 => sx - sy, 2 => sx * sy, _ => sx / sy });
                if (((sr >> 23) & 0xFF) - 1 < 0xFE)
                {
                    return sr;
                }
            }
        }
        FpNum x = Unpack(a, dbl, env.Daz);
        FpNum y = Unpack(b, dbl, env.Daz);
        FpResult r;
        if (x.IsNaN || y.IsNaN)
        {
            r = SoftFloat.PropagateSse(x, y, ref env);
        }
        else
        {
            FpFormat f = Format(dbl);
            r = kind switch
            {
                0 => SoftFloat.Add(x, y, false, f, ref env),
                1 => SoftFloat.Add(x, y, true, f, ref env),
                2 => SoftFloat.Mul(x, y, f, ref env),
                _ => SoftFloat.Div(x, y, f, ref env),
            };
        }
        return Pack(r, dbl);
    }

    public struct Add : IFpElem
    {
        public static ulong Apply(ulong a, ulong b, bool dbl, int imm, ref FpEnv env) => Arith(a, b, dbl, 0, ref env);
    }

    public struct Sub : IFpElem
    {
        public static ulong Apply(ulong a, ulong b, bool dbl, int imm, ref FpEnv env) => Arith(a, b, dbl, 1, ref env);
    }

    public struct Mul : IFpElem
    {
        public static ulong Apply(ulong a, ulong b, bool dbl, int imm, ref FpEnv env) => Arith(a, b, dbl, 2, ref env);
    }

    public struct Div : IFpElem
    {
        public static ulong Apply(ulong a, ulong b, bool dbl, int imm, ref FpEnv env) => Arith(a, b, dbl, 3, ref env);
    }

    /// <summary>
    /// MIN/MAX: any NaN operand raises IE (even quiet) and, like two zeros of either sign, yields the second operand
    /// unchanged; otherwise the smaller/larger.
    /// </summary>
    private static ulong MinMax(ulong a, ulong b, bool dbl, bool max, ref FpEnv env)
    {
        FpNum x = Unpack(a, dbl, env.Daz);
        FpNum y = Unpack(b, dbl, env.Daz);
        if (env.Daz)
        {
            // DAZ makes a denormal operand read as (signed) zero, also when it is the one returned.
            ulong signBit = dbl ? 0x8000_0000_0000_0000UL : 0x8000_0000UL;
            a = x.Class == FpClass.Zero ? a & signBit : a;
            b = y.Class == FpClass.Zero ? b & signBit : b;
        }
        if (x.IsNaN || y.IsNaN)
        {
            env.Flags |= FpFlags.Invalid;
            return b;
        }
        if (x.Denormal || y.Denormal)
        {
            env.Flags |= FpFlags.Denormal;
        }
        int cmp = SoftFloat.Compare(x, y);
        return (max ? cmp > 0 : cmp < 0) ? a : b;
    }

    public struct Min : IFpElem
    {
        public static ulong Apply(ulong a, ulong b, bool dbl, int imm, ref FpEnv env) => MinMax(a, b, dbl, false, ref env);
    }

    public struct Max : IFpElem
    {
        public static ulong Apply(ulong a, ulong b, bool dbl, int imm, ref FpEnv env) => MinMax(a, b, dbl, true, ref env);
    }

    /// <summary>SQRT of the source (the destination only supplies untouched elements).</summary>
    public struct Sqrt : IFpElem
    {
        public static ulong Apply(ulong a, ulong b, bool dbl, int imm, ref FpEnv env)
        {
            FpNum y = Unpack(b, dbl, env.Daz);
            FpResult r;
            if (y.IsNaN)
            {
                if (y.Class == FpClass.SNaN)
                {
                    env.Flags |= FpFlags.Invalid;
                }
                r = SoftFloat.Quiet(y);
            }
            else
            {
                r = SoftFloat.Sqrt(y, Format(dbl), ref env);
            }
            return Pack(r, dbl);
        }
    }

    /// <summary>
    /// RCP/RSQRT: the exact reciprocal (of the square root) rounded to nearest single, raising no flags, with the
    /// hardware's special rules (denormal sources read as zero, tiny results flush to zero). Hardware returns a 12-bit
    /// approximation that differs between vendors (and QEMU's TCG computes the exact quotient, as here); software may
    /// only rely on |relative error| ≤ 1.5 × 2^-12, which this satisfies.
    /// </summary>
    internal static ulong Approximate(ulong b, bool rsqrt)
    {
        FpNum y = SoftFloat.Unpack32((uint)b, daz: true);
        if (y.IsNaN)
        {
            return SoftFloat.Pack32(SoftFloat.Quiet(y));
        }
        if (y.Class == FpClass.Zero)
        {
            return SoftFloat.Pack32(new FpResult { Class = FpClass.Inf, Sign = y.Sign });
        }
        if (rsqrt && y.Sign)
        {
            return SoftFloat.Pack32(SoftFloat.DefaultNaN);
        }
        FpNum one = SoftFloat.Unpack32(0x3F80_0000, false);
        FpEnv env = new() { Ftz = true };
        if (rsqrt)
        {
            if (y.Class == FpClass.Inf)
            {
                return 0;
            }
            FpResult root = SoftFloat.Sqrt(y, FpFormat.Extended, ref env);
            y = new FpNum { Class = FpClass.Finite, Exp = root.Exp, Sig = root.Sig };
        }
        return SoftFloat.Pack32(SoftFloat.Div(one, y, FpFormat.Single, ref env));
    }

    public struct Rcp : IFpElem
    {
        public static ulong Apply(ulong a, ulong b, bool dbl, int imm, ref FpEnv env) => Approximate(b, false);
    }

    public struct Rsqrt : IFpElem
    {
        public static ulong Apply(ulong a, ulong b, bool dbl, int imm, ref FpEnv env) => Approximate(b, true);
    }

    /// <summary>
    /// CMP*: predicate imm[2:0] = EQ, LT, LE, UNORD, NEQ, NLT, NLE, ORD. LT/LE/NLT/NLE signal IE on any NaN; the others
    /// only on SNaN. The result is an all-ones or all-zeros mask.
    /// </summary>
    public struct Cmp : IFpElem
    {
        public static ulong Apply(ulong a, ulong b, bool dbl, int imm, ref FpEnv env)
        {
            FpNum x = Unpack(a, dbl, env.Daz);
            FpNum y = Unpack(b, dbl, env.Daz);
            int pred = imm & 7;
            bool signaling = pred is 1 or 2 or 5 or 6;
            if (x.Class == FpClass.SNaN || y.Class == FpClass.SNaN || (signaling && (x.IsNaN || y.IsNaN)))
            {
                env.Flags |= FpFlags.Invalid;
            }
            else if ((x.Denormal || y.Denormal) && !x.IsNaN && !y.IsNaN)
            {
                env.Flags |= FpFlags.Denormal;
            }
            int cmp = SoftFloat.Compare(x, y);
            bool r = pred switch
            {
                0 => cmp == 0,
                1 => cmp == -1,
                2 => cmp is -1 or 0,
                3 => cmp == 2,
                4 => cmp != 0,
                5 => cmp is not -1,
                6 => cmp is 1 or 2,
                _ => cmp != 2,
            };
            return r ? ulong.MaxValue : 0;
        }
    }

    // ---------------- handler shapes ----------------

    /// <summary>Packed single: dst[i] = T(dst[i], src[i]) for 4 elements (aligned m128).</summary>
    public static ExecStatus Ps<T>(InterpreterVcpu c, ref DecodedOp op)
        where T : struct, IFpElem
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadVec(ref op, op.K1, op.R1, aligned: true, out Vector128<byte> src);
        if (s != Ok)
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        Vector128<uint> a = dst.AsUInt32();
        Vector128<uint> b = src.AsUInt32();
        FpEnv env = Env(c.State.Mxcsr);
        int imm = (int)op.Imm;
        Vector128<uint> r = Vector128.Create(
            (uint)T.Apply(a.GetElement(0), b.GetElement(0), false, imm, ref env),
            (uint)T.Apply(a.GetElement(1), b.GetElement(1), false, imm, ref env),
            (uint)T.Apply(a.GetElement(2), b.GetElement(2), false, imm, ref env),
            (uint)T.Apply(a.GetElement(3), b.GetElement(3), false, imm, ref env));
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        dst = r.AsByte();
        return Ok;
    }

    /// <summary>Packed double: two elements.</summary>
    public static ExecStatus Pd<T>(InterpreterVcpu c, ref DecodedOp op)
        where T : struct, IFpElem
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadVec(ref op, op.K1, op.R1, aligned: true, out Vector128<byte> src);
        if (s != Ok)
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        Vector128<ulong> a = dst.AsUInt64();
        Vector128<ulong> b = src.AsUInt64();
        FpEnv env = Env(c.State.Mxcsr);
        int imm = (int)op.Imm;
        Vector128<ulong> r = Vector128.Create(
            T.Apply(a.GetElement(0), b.GetElement(0), true, imm, ref env),
            T.Apply(a.GetElement(1), b.GetElement(1), true, imm, ref env));
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        dst = r.AsByte();
        return Ok;
    }

    /// <summary>Reads the low 4 or 8 bytes of an XMM register or of memory (scalar sources have no alignment rule).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ExecStatus ReadScalar(InterpreterVcpu c, ref DecodedOp op, int n, out ulong v)
    {
        if (op.K1 == OperandKind.Reg)
        {
            ulong low = c.Xmm(op.R1).AsUInt64().GetElement(0);
            v = n == 4 ? (uint)low : low;
            return Ok;
        }
        return c.ReadMemOp(ref op, n, out v);
    }

    /// <summary>Scalar single: element 0 = T(dst[0], src[0]); the rest of the destination is kept.</summary>
    public static ExecStatus Ss<T>(InterpreterVcpu c, ref DecodedOp op)
        where T : struct, IFpElem
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = ReadScalar(c, ref op, 4, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        FpEnv env = Env(c.State.Mxcsr);
        uint r = (uint)T.Apply(dst.AsUInt32().GetElement(0), b, false, (int)op.Imm, ref env);
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        dst = dst.AsUInt32().WithElement(0, r).AsByte();
        return Ok;
    }

    /// <summary>Scalar double.</summary>
    public static ExecStatus Sd<T>(InterpreterVcpu c, ref DecodedOp op)
        where T : struct, IFpElem
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = ReadScalar(c, ref op, 8, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        FpEnv env = Env(c.State.Mxcsr);
        ulong r = T.Apply(dst.AsUInt64().GetElement(0), b, true, (int)op.Imm, ref env);
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        dst = dst.AsUInt64().WithElement(0, r).AsByte();
        return Ok;
    }

    // ---------------- SSE3 horizontal and alternating ----------------

    /// <summary>ADDSUBPS: even elements subtract, odd add.</summary>
    public static ExecStatus Addsubps(InterpreterVcpu c, ref DecodedOp op) => Horizontal(c, ref op, false, 0);

    public static ExecStatus Addsubpd(InterpreterVcpu c, ref DecodedOp op) => Horizontal(c, ref op, true, 0);

    public static ExecStatus Haddps(InterpreterVcpu c, ref DecodedOp op) => Horizontal(c, ref op, false, 1);

    public static ExecStatus Haddpd(InterpreterVcpu c, ref DecodedOp op) => Horizontal(c, ref op, true, 1);

    public static ExecStatus Hsubps(InterpreterVcpu c, ref DecodedOp op) => Horizontal(c, ref op, false, 2);

    public static ExecStatus Hsubpd(InterpreterVcpu c, ref DecodedOp op) => Horizontal(c, ref op, true, 2);

    /// <summary>kind 0 ADDSUB, 1 HADD, 2 HSUB.</summary>
    private static ExecStatus Horizontal(InterpreterVcpu c, ref DecodedOp op, bool dbl, int kind)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadVec(ref op, op.K1, op.R1, aligned: true, out Vector128<byte> src);
        if (s != Ok)
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        FpEnv env = Env(c.State.Mxcsr);
        Vector128<byte> result;
        if (dbl)
        {
            Vector128<ulong> a = dst.AsUInt64();
            Vector128<ulong> b = src.AsUInt64();
            ulong r0, r1;
            if (kind == 0)
            {
                r0 = Arith(a.GetElement(0), b.GetElement(0), true, 1, ref env);
                r1 = Arith(a.GetElement(1), b.GetElement(1), true, 0, ref env);
            }
            else
            {
                int k = kind == 1 ? 0 : 1;
                r0 = Arith(a.GetElement(0), a.GetElement(1), true, k, ref env);
                r1 = Arith(b.GetElement(0), b.GetElement(1), true, k, ref env);
            }
            result = Vector128.Create(r0, r1).AsByte();
        }
        else
        {
            Vector128<uint> a = dst.AsUInt32();
            Vector128<uint> b = src.AsUInt32();
            uint r0, r1, r2, r3;
            if (kind == 0)
            {
                r0 = (uint)Arith(a.GetElement(0), b.GetElement(0), false, 1, ref env);
                r1 = (uint)Arith(a.GetElement(1), b.GetElement(1), false, 0, ref env);
                r2 = (uint)Arith(a.GetElement(2), b.GetElement(2), false, 1, ref env);
                r3 = (uint)Arith(a.GetElement(3), b.GetElement(3), false, 0, ref env);
            }
            else
            {
                int k = kind == 1 ? 0 : 1;
                r0 = (uint)Arith(a.GetElement(0), a.GetElement(1), false, k, ref env);
                r1 = (uint)Arith(a.GetElement(2), a.GetElement(3), false, k, ref env);
                r2 = (uint)Arith(b.GetElement(0), b.GetElement(1), false, k, ref env);
                r3 = (uint)Arith(b.GetElement(2), b.GetElement(3), false, k, ref env);
            }
            result = Vector128.Create(r0, r1, r2, r3).AsByte();
        }
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        dst = result;
        return Ok;
    }

    /// <summary>MOVDDUP xmm, xmm/m64: the low double in both halves.</summary>
    public static ExecStatus Movddup(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = ReadScalar(c, ref op, 8, out ulong v);
        if (s != Ok)
        {
            return s;
        }
        c.Xmm(op.R0) = Vector128.Create(v, v).AsByte();
        return Ok;
    }

    /// <summary>MOVSHDUP (odd = 1) / MOVSLDUP (odd = 0): duplicate the odd or even singles.</summary>
    public static ExecStatus Movshdup(InterpreterVcpu c, ref DecodedOp op) => Dup(c, ref op, 1);

    public static ExecStatus Movsldup(InterpreterVcpu c, ref DecodedOp op) => Dup(c, ref op, 0);

    private static ExecStatus Dup(InterpreterVcpu c, ref DecodedOp op, int odd)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadVec(ref op, op.K1, op.R1, aligned: true, out Vector128<byte> v);
        if (s != Ok)
        {
            return s;
        }
        Vector128<uint> d = v.AsUInt32();
        c.Xmm(op.R0) = Vector128.Create(d.GetElement(odd), d.GetElement(odd), d.GetElement(2 + odd), d.GetElement(2 + odd)).AsByte();
        return Ok;
    }

    // ---------------- shuffles ----------------

    /// <summary>SHUFPS: two destination singles then two source singles, each picked by 2 bits of imm8.</summary>
    public static ExecStatus Shufps(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadVec(ref op, op.K1, op.R1, aligned: true, out Vector128<byte> src);
        if (s != Ok)
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        Vector128<uint> a = dst.AsUInt32();
        Vector128<uint> b = src.AsUInt32();
        int imm = (int)op.Imm;
        dst = Vector128.Create(a.GetElement(imm & 3), a.GetElement((imm >> 2) & 3), b.GetElement((imm >> 4) & 3), b.GetElement((imm >> 6) & 3)).AsByte();
        return Ok;
    }

    /// <summary>SHUFPD: imm8 bit 0 picks the destination double, bit 1 the source double.</summary>
    public static ExecStatus Shufpd(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadVec(ref op, op.K1, op.R1, aligned: true, out Vector128<byte> src);
        if (s != Ok)
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        int imm = (int)op.Imm;
        dst = Vector128.Create(dst.AsUInt64().GetElement(imm & 1), src.AsUInt64().GetElement((imm >> 1) & 1)).AsByte();
        return Ok;
    }

    // ---------------- COMIS*/UCOMIS* ----------------

    public static ExecStatus Comiss(InterpreterVcpu c, ref DecodedOp op) => Comis(c, ref op, false, true);

    public static ExecStatus Ucomiss(InterpreterVcpu c, ref DecodedOp op) => Comis(c, ref op, false, false);

    public static ExecStatus Comisd(InterpreterVcpu c, ref DecodedOp op) => Comis(c, ref op, true, true);

    public static ExecStatus Ucomisd(InterpreterVcpu c, ref DecodedOp op) => Comis(c, ref op, true, false);

    /// <summary>ZF,PF,CF = 111 unordered, 000 greater, 001 less, 100 equal; OF, SF, AF cleared.</summary>
    private static ExecStatus Comis(InterpreterVcpu c, ref DecodedOp op, bool dbl, bool signaling)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        int n = dbl ? 8 : 4;
        ExecStatus s = ReadScalar(c, ref op, n, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong a = c.Xmm(op.R0).AsUInt64().GetElement(0);
        FpEnv env = Env(c.State.Mxcsr);
        FpNum x = Unpack(a, dbl, env.Daz);
        FpNum y = Unpack(b, dbl, env.Daz);
        if (x.Class == FpClass.SNaN || y.Class == FpClass.SNaN || (signaling && (x.IsNaN || y.IsNaN)))
        {
            env.Flags |= FpFlags.Invalid;
        }
        else if ((x.Denormal || y.Denormal) && !x.IsNaN && !y.IsNaN)
        {
            env.Flags |= FpFlags.Denormal;
        }
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        ulong flags = SoftFloat.Compare(x, y) switch
        {
            2 => RflagsZf | RflagsPf | RflagsCf,
            -1 => RflagsCf,
            0 => RflagsZf,
            _ => 0,
        };
        c.SetFlags(flags, RflagsCf | RflagsPf | RflagsAf | RflagsZf | RflagsSf | RflagsOf);
        return Ok;
    }

    private const ulong RflagsCf = 1, RflagsPf = 4, RflagsAf = 16, RflagsZf = 64, RflagsSf = 128, RflagsOf = 2048;

    // ---------------- conversions ----------------

    /// <summary>CVTSI2SS/CVTSI2SD xmm, r/m32/64.</summary>
    public static ExecStatus Cvtsi2ss(InterpreterVcpu c, ref DecodedOp op) => IntToScalar(c, ref op, false);

    public static ExecStatus Cvtsi2sd(InterpreterVcpu c, ref DecodedOp op) => IntToScalar(c, ref op, true);

    private static ExecStatus IntToScalar(InterpreterVcpu c, ref DecodedOp op, bool dbl)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadOperand(ref op, op.K1, op.R1, op.SrcSize, out ulong raw);
        if (s != Ok)
        {
            return s;
        }
        long v = op.SrcSize == 8 ? (long)raw : (int)raw;
        FpEnv env = Env(c.State.Mxcsr);
        FpResult r = SoftFloat.FromInt(v, Format(dbl), ref env);
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        dst = dbl ? dst.AsUInt64().WithElement(0, SoftFloat.Pack64(r)).AsByte() : dst.AsUInt32().WithElement(0, SoftFloat.Pack32(r)).AsByte();
        return Ok;
    }

    /// <summary>CVT(T)SS2SI / CVT(T)SD2SI r32/64, xmm/m: MXCSR rounding or truncation; NaN and overflow give the integer indefinite.</summary>
    public static ExecStatus Cvtss2si(InterpreterVcpu c, ref DecodedOp op) => ScalarToInt(c, ref op, false, false);

    public static ExecStatus Cvttss2si(InterpreterVcpu c, ref DecodedOp op) => ScalarToInt(c, ref op, false, true);

    public static ExecStatus Cvtsd2si(InterpreterVcpu c, ref DecodedOp op) => ScalarToInt(c, ref op, true, false);

    public static ExecStatus Cvttsd2si(InterpreterVcpu c, ref DecodedOp op) => ScalarToInt(c, ref op, true, true);

    private static ExecStatus ScalarToInt(InterpreterVcpu c, ref DecodedOp op, bool dbl, bool truncate)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = ReadScalar(c, ref op, dbl ? 8 : 4, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        FpEnv env = Env(c.State.Mxcsr);
        FpNum x = Unpack(b, dbl, env.Daz);
        long v = SoftFloat.ToInt(x, op.Size * 8, truncate ? 3 : env.Rounding, ref env);
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        c.SetReg(op.R0, op.Size, op.Size == 8 ? (ulong)v : (uint)v);
        return Ok;
    }

    /// <summary>CVTSS2SD / CVTSD2SS xmm, xmm/m: element 0 converted, the rest kept.</summary>
    public static ExecStatus Cvtss2sd(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = ReadScalar(c, ref op, 4, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        FpEnv env = Env(c.State.Mxcsr);
        ulong r = Convert(b, false, ref env);
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        dst = dst.AsUInt64().WithElement(0, r).AsByte();
        return Ok;
    }

    public static ExecStatus Cvtsd2ss(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = ReadScalar(c, ref op, 8, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        FpEnv env = Env(c.State.Mxcsr);
        uint r = (uint)Convert(b, true, ref env);
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        dst = dst.AsUInt32().WithElement(0, r).AsByte();
        return Ok;
    }

    /// <summary>Single → double (<paramref name="fromDouble"/> false) or double → single, with SNaN quieting and DE.</summary>
    private static ulong Convert(ulong v, bool fromDouble, ref FpEnv env)
    {
        FpNum x = Unpack(v, fromDouble, env.Daz);
        if (x.Denormal)
        {
            env.Flags |= FpFlags.Denormal;
        }
        FpResult r = SoftFloat.FromNum(x, Format(!fromDouble), ref env);
        return fromDouble ? SoftFloat.Pack32(r) : SoftFloat.Pack64(r);
    }

    /// <summary>CVTPS2PD xmm, xmm/m64 (the two low singles; a memory source is 8 bytes, unaligned).</summary>
    public static ExecStatus Cvtps2pd(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = ReadScalar(c, ref op, 8, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        FpEnv env = Env(c.State.Mxcsr);
        ulong r0 = Convert((uint)b, false, ref env);
        ulong r1 = Convert(b >> 32, false, ref env);
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        c.Xmm(op.R0) = Vector128.Create(r0, r1).AsByte();
        return Ok;
    }

    /// <summary>CVTPD2PS xmm, xmm/m128: two singles in the low quadword, the high one zeroed.</summary>
    public static ExecStatus Cvtpd2ps(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadVec(ref op, op.K1, op.R1, aligned: true, out Vector128<byte> src);
        if (s != Ok)
        {
            return s;
        }
        FpEnv env = Env(c.State.Mxcsr);
        ulong r0 = Convert(src.AsUInt64().GetElement(0), true, ref env);
        ulong r1 = Convert(src.AsUInt64().GetElement(1), true, ref env);
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        c.Xmm(op.R0) = Vector128.Create(r0 | (r1 << 32), 0UL).AsByte();
        return Ok;
    }

    /// <summary>CVTDQ2PS xmm, xmm/m128: four int32 rounded per MXCSR.</summary>
    public static ExecStatus Cvtdq2ps(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadVec(ref op, op.K1, op.R1, aligned: true, out Vector128<byte> src);
        if (s != Ok)
        {
            return s;
        }
        FpEnv env = Env(c.State.Mxcsr);
        Vector128<int> d = src.AsInt32();
        Vector128<uint> r = Vector128.Create(
            SoftFloat.Pack32(SoftFloat.FromInt(d.GetElement(0), FpFormat.Single, ref env)),
            SoftFloat.Pack32(SoftFloat.FromInt(d.GetElement(1), FpFormat.Single, ref env)),
            SoftFloat.Pack32(SoftFloat.FromInt(d.GetElement(2), FpFormat.Single, ref env)),
            SoftFloat.Pack32(SoftFloat.FromInt(d.GetElement(3), FpFormat.Single, ref env)));
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        c.Xmm(op.R0) = r.AsByte();
        return Ok;
    }

    /// <summary>CVTDQ2PD xmm, xmm/m64: two int32 (exact).</summary>
    public static ExecStatus Cvtdq2pd(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = ReadScalar(c, ref op, 8, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        FpEnv env = Env(c.State.Mxcsr);
        c.Xmm(op.R0) = Vector128.Create(
            SoftFloat.Pack64(SoftFloat.FromInt((int)b, FpFormat.Double, ref env)),
            SoftFloat.Pack64(SoftFloat.FromInt((int)(b >> 32), FpFormat.Double, ref env))).AsByte();
        return Ok;
    }

    /// <summary>CVT(T)PS2DQ xmm, xmm/m128.</summary>
    public static ExecStatus Cvtps2dq(InterpreterVcpu c, ref DecodedOp op) => PackedToInt(c, ref op, false, false);

    public static ExecStatus Cvttps2dq(InterpreterVcpu c, ref DecodedOp op) => PackedToInt(c, ref op, false, true);

    /// <summary>CVT(T)PD2DQ xmm, xmm/m128: two int32 in the low quadword, the high one zeroed.</summary>
    public static ExecStatus Cvtpd2dq(InterpreterVcpu c, ref DecodedOp op) => PackedToInt(c, ref op, true, false);

    public static ExecStatus Cvttpd2dq(InterpreterVcpu c, ref DecodedOp op) => PackedToInt(c, ref op, true, true);

    private static ExecStatus PackedToInt(InterpreterVcpu c, ref DecodedOp op, bool dbl, bool truncate)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadVec(ref op, op.K1, op.R1, aligned: true, out Vector128<byte> src);
        if (s != Ok)
        {
            return s;
        }
        FpEnv env = Env(c.State.Mxcsr);
        int rc = truncate ? 3 : env.Rounding;
        Vector128<uint> r;
        if (dbl)
        {
            Vector128<ulong> v = src.AsUInt64();
            r = Vector128.Create(
                (uint)SoftFloat.ToInt(SoftFloat.Unpack64(v.GetElement(0), env.Daz), 32, rc, ref env),
                (uint)SoftFloat.ToInt(SoftFloat.Unpack64(v.GetElement(1), env.Daz), 32, rc, ref env),
                0u,
                0u);
        }
        else
        {
            Vector128<uint> v = src.AsUInt32();
            r = Vector128.Create(
                (uint)SoftFloat.ToInt(SoftFloat.Unpack32(v.GetElement(0), env.Daz), 32, rc, ref env),
                (uint)SoftFloat.ToInt(SoftFloat.Unpack32(v.GetElement(1), env.Daz), 32, rc, ref env),
                (uint)SoftFloat.ToInt(SoftFloat.Unpack32(v.GetElement(2), env.Daz), 32, rc, ref env),
                (uint)SoftFloat.ToInt(SoftFloat.Unpack32(v.GetElement(3), env.Daz), 32, rc, ref env));
        }
        if (!Commit(c, env.Flags, out s))
        {
            return s;
        }
        c.Xmm(op.R0) = r.AsByte();
        return Ok;
    }
}
