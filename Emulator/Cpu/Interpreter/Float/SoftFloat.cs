using System.Numerics;
using System.Runtime.CompilerServices;

namespace Colo.Cpu.Interpreter.Float;

/// <summary>Exception flag bits, identical in MXCSR[5:0] and FSW[5:0].</summary>
internal static class FpFlags
{
    public const int Invalid = 1;
    public const int Denormal = 2;
    public const int ZeroDivide = 4;
    public const int Overflow = 8;
    public const int Underflow = 16;
    public const int Precision = 32;
}

internal enum FpClass : byte
{
    Zero,
    Finite,
    Inf,
    QNaN,
    SNaN,
}

/// <summary>
/// An unpacked operand. Finite values are <c>Sig * 2^(Exp - 63)</c> with bit 63 of <see cref="Sig"/> set (denormal
/// inputs are normalized and marked); NaNs keep their fraction left-aligned below bit 63 (bit 62 is the quiet bit),
/// so converting between formats keeps the high payload bits, as x86 does.
/// </summary>
internal struct FpNum
{
    public FpClass Class;
    public bool Sign;
    public bool Denormal;
    public int Exp;
    public ulong Sig;

    public readonly bool IsNaN => Class >= FpClass.QNaN;
}

/// <summary>Target precision: significand bits and the normal exponent range (unbiased).</summary>
internal readonly struct FpFormat(int precision, int emin, int emax)
{
    public readonly int Precision = precision;
    public readonly int Emin = emin;
    public readonly int Emax = emax;

    public static readonly FpFormat Single = new(24, -126, 127);
    public static readonly FpFormat Double = new(53, -1022, 1023);
    public static readonly FpFormat Extended = new(64, -16382, 16383);
}

/// <summary>
/// The rounding environment of one instruction: rounding control (0 nearest-even, 1 down, 2 up, 3 toward zero),
/// SSE's FTZ/DAZ, and the exception flags raised so far. <see cref="UnderflowUnmasked"/> selects the x86 rule that an
/// unmasked underflow is reported for any tiny result, a masked one only when it is also inexact.
/// </summary>
internal struct FpEnv
{
    public int Rounding;
    public bool Ftz;
    public bool Daz;
    public bool UnderflowUnmasked;
    public int Flags;
    /// <summary>
    /// MXCSR is the default (nearest, all masked, no DAZ/FTZ) with PE already set: an operation on two normal operands
    /// whose host result is normal can only raise PE, so the host's IEEE result is exact and nothing else is needed.
    /// </summary>
    public bool HostExact;
    /// <summary>Set when an inexact result was rounded away from zero (x87 reports it in C1).</summary>
    public bool RoundedUp;
}

/// <summary>
/// A result before packing: class plus, for finite values, the biased-free significand and exponent already rounded
/// to the target precision (<c>Sig * 2^(Exp - 63)</c>, bit 63 set unless the value is denormal in the target).
/// </summary>
internal struct FpResult
{
    public FpClass Class;
    public bool Sign;
    public int Exp;
    public ulong Sig;
}

/// <summary>
/// IEEE-754 binary arithmetic in software: exact intermediate results (128-bit significands with a sticky bit) rounded
/// once to single, double or x87 extended precision under any rounding mode, with x86's exception flags (tininess is
/// detected after rounding, as on x86). Everything is a struct on the stack; nothing allocates.
/// </summary>
internal static class SoftFloat
{
    public const ulong QuietBit = 1UL << 62;

    // ---------------- unpack ----------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FpNum Unpack32(uint bits, bool daz)
    {
        FpNum n = default;
        n.Sign = (int)bits < 0;
        int e = (int)((bits >> 23) & 0xFF);
        uint f = bits & 0x7F_FFFF;
        if (e == 0xFF)
        {
            n.Class = f == 0 ? FpClass.Inf : (f & 0x40_0000) != 0 ? FpClass.QNaN : FpClass.SNaN;
            n.Sig = (1UL << 63) | ((ulong)f << 40);
        }
        else if (e == 0)
        {
            if (f == 0 || daz)
            {
                n.Class = FpClass.Zero;
            }
            else
            {
                int lz = BitOperations.LeadingZeroCount((ulong)f);
                n.Class = FpClass.Finite;
                n.Denormal = true;
                n.Sig = (ulong)f << lz;
                n.Exp = -126 - (lz - 40);
            }
        }
        else
        {
            n.Class = FpClass.Finite;
            n.Sig = (1UL << 63) | ((ulong)f << 40);
            n.Exp = e - 127;
        }
        return n;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FpNum Unpack64(ulong bits, bool daz)
    {
        FpNum n = default;
        n.Sign = (long)bits < 0;
        int e = (int)((bits >> 52) & 0x7FF);
        ulong f = bits & 0xF_FFFF_FFFF_FFFF;
        if (e == 0x7FF)
        {
            n.Class = f == 0 ? FpClass.Inf : (f & (1UL << 51)) != 0 ? FpClass.QNaN : FpClass.SNaN;
            n.Sig = (1UL << 63) | (f << 11);
        }
        else if (e == 0)
        {
            if (f == 0 || daz)
            {
                n.Class = FpClass.Zero;
            }
            else
            {
                int lz = BitOperations.LeadingZeroCount(f);
                n.Class = FpClass.Finite;
                n.Denormal = true;
                n.Sig = f << lz;
                n.Exp = -1022 - (lz - 11);
            }
        }
        else
        {
            n.Class = FpClass.Finite;
            n.Sig = (1UL << 63) | (f << 11);
            n.Exp = e - 1023;
        }
        return n;
    }

    /// <summary>
    /// An 80-bit register or memory value. Unnormals, pseudo-NaNs and pseudo-infinities (integer bit clear with a
    /// nonzero exponent) are unsupported encodings: they unpack as an SNaN so arithmetic on them raises IE and yields
    /// the default NaN, as on processors since the 387. Pseudo-denormals (exponent 0, integer bit set) are denormals.
    /// </summary>
    public static FpNum Unpack80(ulong sig, ushort signExp)
    {
        FpNum n = default;
        n.Sign = (signExp & 0x8000) != 0;
        int e = signExp & 0x7FFF;
        if (e == 0x7FFF)
        {
            if ((sig & (1UL << 63)) == 0)
            {
                n.Class = FpClass.SNaN;
                n.Sig = 1UL << 63;
                n.Exp = int.MinValue; // marks "unsupported" for callers that must tell it apart
                return n;
            }
            ulong f = sig & ~(1UL << 63);
            n.Class = f == 0 ? FpClass.Inf : (f & QuietBit) != 0 ? FpClass.QNaN : FpClass.SNaN;
            n.Sig = sig;
        }
        else if (e == 0)
        {
            if (sig == 0)
            {
                n.Class = FpClass.Zero;
            }
            else
            {
                int lz = BitOperations.LeadingZeroCount(sig);
                n.Class = FpClass.Finite;
                n.Denormal = true;
                n.Sig = sig << lz;
                n.Exp = -16382 - lz;
            }
        }
        else if ((sig & (1UL << 63)) == 0)
        {
            n.Class = FpClass.SNaN;
            n.Sig = 1UL << 63;
            n.Exp = int.MinValue;
        }
        else
        {
            n.Class = FpClass.Finite;
            n.Sig = sig;
            n.Exp = e - 16383;
        }
        return n;
    }

    // ---------------- pack ----------------

    public static uint Pack32(in FpResult r)
    {
        uint s = r.Sign ? 0x8000_0000u : 0;
        switch (r.Class)
        {
            case FpClass.Zero: return s;
            case FpClass.Inf: return s | 0x7F80_0000;
            case FpClass.QNaN:
            case FpClass.SNaN: return s | 0x7F80_0000 | (uint)((r.Sig >> 40) & 0x7F_FFFF);
            default:
                if ((r.Sig & (1UL << 63)) == 0)
                {
                    // Denormal: the significand is aligned for exponent Emin.
                    return s | (uint)(r.Sig >> 40);
                }
                return s | ((uint)(r.Exp + 127) << 23) | (uint)((r.Sig >> 40) & 0x7F_FFFF);
        }
    }

    public static ulong Pack64(in FpResult r)
    {
        ulong s = r.Sign ? 0x8000_0000_0000_0000UL : 0;
        switch (r.Class)
        {
            case FpClass.Zero: return s;
            case FpClass.Inf: return s | 0x7FF0_0000_0000_0000UL;
            case FpClass.QNaN:
            case FpClass.SNaN: return s | 0x7FF0_0000_0000_0000UL | ((r.Sig >> 11) & 0xF_FFFF_FFFF_FFFF);
            default:
                if ((r.Sig & (1UL << 63)) == 0)
                {
                    return s | (r.Sig >> 11);
                }
                return s | ((ulong)(r.Exp + 1023) << 52) | ((r.Sig >> 11) & 0xF_FFFF_FFFF_FFFF);
        }
    }

    public static void Pack80(in FpResult r, out ulong sig, out ushort signExp)
    {
        ushort s = (ushort)(r.Sign ? 0x8000 : 0);
        switch (r.Class)
        {
            case FpClass.Zero:
                sig = 0;
                signExp = s;
                return;
            case FpClass.Inf:
                sig = 1UL << 63;
                signExp = (ushort)(s | 0x7FFF);
                return;
            case FpClass.QNaN:
            case FpClass.SNaN:
                sig = r.Sig | (1UL << 63);
                signExp = (ushort)(s | 0x7FFF);
                return;
            default:
                sig = r.Sig;
                signExp = (ushort)(s | ((r.Sig & (1UL << 63)) == 0 ? 0 : r.Exp + 16383));
                return;
        }
    }

    // ---------------- NaNs ----------------

    /// <summary>The default NaN ("real indefinite"): negative, quiet, zero payload.</summary>
    public static FpResult DefaultNaN => new() { Class = FpClass.QNaN, Sign = true, Sig = (1UL << 63) | QuietBit };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FpResult Quiet(in FpNum n) => new() { Class = FpClass.QNaN, Sign = n.Sign, Sig = n.Sig | QuietBit | (1UL << 63) };

    /// <summary>
    /// SSE's two-operand NaN rule: an SNaN operand raises IE; the result is the first operand quieted if it is a NaN,
    /// else the second quieted.
    /// </summary>
    public static FpResult PropagateSse(in FpNum a, in FpNum b, ref FpEnv env)
    {
        if (a.Class == FpClass.SNaN || b.Class == FpClass.SNaN)
        {
            env.Flags |= FpFlags.Invalid;
        }
        return a.IsNaN ? Quiet(a) : Quiet(b);
    }

    /// <summary>
    /// x87's rule: an SNaN (or unsupported encoding) raises IE; with two NaNs the larger significand wins (on a tie the
    /// positive... first operand); unsupported encodings give the default NaN.
    /// </summary>
    public static FpResult PropagateX87(in FpNum a, in FpNum b, ref FpEnv env)
    {
        if (a.Class == FpClass.SNaN || b.Class == FpClass.SNaN)
        {
            env.Flags |= FpFlags.Invalid;
        }
        if ((a.Class == FpClass.SNaN && a.Exp == int.MinValue) || (b.Class == FpClass.SNaN && b.Exp == int.MinValue))
        {
            return DefaultNaN;
        }
        if (a.IsNaN && b.IsNaN)
        {
            // An SNaN meeting a QNaN yields the QNaN; two of a kind, the larger significand.
            if (a.Class != b.Class)
            {
                return a.Class == FpClass.QNaN ? Quiet(a) : Quiet(b);
            }
            ulong sa = a.Sig | QuietBit;
            ulong sb = b.Sig | QuietBit;
            if (sa != sb)
            {
                return sa > sb ? Quiet(a) : Quiet(b);
            }
            return !a.Sign ? Quiet(a) : Quiet(b);
        }
        return a.IsNaN ? Quiet(a) : Quiet(b);
    }

    // ---------------- rounding ----------------

    /// <summary>
    /// Rounds the exact value <c>(sig + sticky) * 2^(exp - 127)</c> (bit 127 of <paramref name="sig"/> set, bit 0
    /// holding the sticky OR of everything below) to <paramref name="f"/>, raising PE/UE/OE as x86 does.
    /// </summary>
    public static FpResult Round(bool sign, int exp, UInt128 sig, in FpFormat f, ref FpEnv env)
    {
        FpResult r = default;
        r.Sign = sign;
        int shift = 128 - f.Precision;
        UInt128 one = UInt128.One << shift;
        UInt128 mask = one - 1;
        UInt128 half = UInt128.One << (shift - 1);

        // Tininess after rounding: round with unbounded exponent first.
        bool tiny = exp < f.Emin;
        if (exp == f.Emin - 1)
        {
            RoundedKeep(sig, mask, half, one, sign, env.Rounding, out bool wrapped, out _);
            tiny = !wrapped;
        }
        if (tiny)
        {
            if (env.Ftz)
            {
                env.Flags |= FpFlags.Underflow | FpFlags.Precision;
                r.Class = FpClass.Zero;
                return r;
            }
            int d = f.Emin - exp;
            UInt128 denorm = d >= 128 ? (sig != 0 ? UInt128.One : UInt128.Zero) : (sig >> d) | ((sig & ((UInt128.One << d) - 1)) != 0 ? UInt128.One : UInt128.Zero);
            bool inexact = (denorm & mask) != 0;
            UInt128 kept = RoundedKeep(denorm, mask, half, one, sign, env.Rounding, out _, out bool upDenormal);
            if (inexact)
            {
                env.RoundedUp |= upDenormal;
                env.Flags |= FpFlags.Precision | FpFlags.Underflow;
            }
            else if (env.UnderflowUnmasked)
            {
                env.Flags |= FpFlags.Underflow;
            }
            if ((kept >> 127) != 0)
            {
                // Rounded up to the smallest normal.
                r.Class = FpClass.Finite;
                r.Exp = f.Emin;
                r.Sig = 1UL << 63;
                return r;
            }
            ulong s64 = (ulong)(kept >> 64);
            r.Class = s64 == 0 ? FpClass.Zero : FpClass.Finite;
            r.Exp = f.Emin;
            r.Sig = s64;
            return r;
        }
        {
            bool inexact = (sig & mask) != 0;
            UInt128 kept = RoundedKeep(sig, mask, half, one, sign, env.Rounding, out bool carry, out bool upNormal);
            env.RoundedUp |= upNormal;
            if (carry)
            {
                exp++;
                kept = UInt128.One << 127;
            }
            if (inexact)
            {
                env.Flags |= FpFlags.Precision;
            }
            if (exp > f.Emax)
            {
                env.Flags |= FpFlags.Overflow | FpFlags.Precision;
                bool toInf = env.Rounding switch
                {
                    0 => true,
                    1 => sign,
                    2 => !sign,
                    _ => false,
                };
                env.RoundedUp = toInf;
                if (toInf)
                {
                    r.Class = FpClass.Inf;
                    return r;
                }
                r.Class = FpClass.Finite;
                r.Exp = f.Emax;
                r.Sig = ~0UL << (64 - f.Precision);
                return r;
            }
            r.Class = FpClass.Finite;
            r.Exp = exp;
            r.Sig = (ulong)(kept >> 64);
            return r;
        }
    }

    /// <summary>Clears the bits under <paramref name="mask"/>, rounding per mode; carry when it overflows bit 127.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static UInt128 RoundedKeep(UInt128 sig, UInt128 mask, UInt128 half, UInt128 one, bool sign, int rounding, out bool carry, out bool up)
    {
        UInt128 rest = sig & mask;
        UInt128 kept = sig & ~mask;
        up = rounding switch
        {
            0 => rest > half || (rest == half && (kept & one) != 0),
            1 => sign && rest != 0,
            2 => !sign && rest != 0,
            _ => false,
        };
        carry = false;
        if (up)
        {
            UInt128 next = kept + one;
            carry = next < kept;
            kept = next;
        }
        return kept;
    }

    /// <summary>Normalizes <c>sig * 2^scale</c> (sig nonzero) and rounds it.</summary>
    public static FpResult NormalizeRound(bool sign, int scale, UInt128 sig, in FpFormat f, ref FpEnv env)
    {
        int lz = (int)UInt128.LeadingZeroCount(sig);
        return Round(sign, scale + 127 - lz, sig << lz, f, ref env);
    }

    /// <summary>An already exact finite operand re-rounded to a format (format conversions, FLD of narrower values).</summary>
    public static FpResult FromNum(in FpNum n, in FpFormat f, ref FpEnv env)
    {
        return n.Class switch
        {
            FpClass.Finite => Round(n.Sign, n.Exp, (UInt128)n.Sig << 64, f, ref env),
            FpClass.SNaN => SetInvalidQuiet(n, ref env),
            _ => new FpResult { Class = n.Class, Sign = n.Sign, Sig = n.Sig },
        };
    }

    private static FpResult SetInvalidQuiet(in FpNum n, ref FpEnv env)
    {
        env.Flags |= FpFlags.Invalid;
        return Quiet(n);
    }

    /// <summary>The exact operand as a result (no rounding): for moves that must not change the value.</summary>
    /// <remarks>Values below extended's normal range (x87 denormals) are re-denormalized for <see cref="Pack80"/>.</remarks>
    public static FpResult Exact(in FpNum n)
    {
        if (n.Class == FpClass.Finite && n.Exp < FpFormat.Extended.Emin)
        {
            int d = FpFormat.Extended.Emin - n.Exp;
            return new FpResult { Class = FpClass.Finite, Sign = n.Sign, Exp = FpFormat.Extended.Emin, Sig = d >= 64 ? 0 : n.Sig >> d };
        }
        return new FpResult { Class = n.Class, Sign = n.Sign, Exp = n.Exp, Sig = n.Sig };
    }

    // ---------------- arithmetic on finite/special operands (NaNs handled by the caller) ----------------

    public static FpResult Add(in FpNum a, in FpNum b, bool subtract, in FpFormat f, ref FpEnv env)
    {
        bool bSign = b.Sign ^ subtract;
        if (a.Denormal || b.Denormal)
        {
            env.Flags |= FpFlags.Denormal;
        }
        if (a.Class == FpClass.Inf || b.Class == FpClass.Inf)
        {
            if (a.Class == FpClass.Inf && b.Class == FpClass.Inf && a.Sign != bSign)
            {
                env.Flags |= FpFlags.Invalid;
                return DefaultNaN;
            }
            return new FpResult { Class = FpClass.Inf, Sign = a.Class == FpClass.Inf ? a.Sign : bSign };
        }
        if (a.Denormal || b.Denormal)
        {
            env.Flags |= FpFlags.Denormal;
        }
        if (a.Class == FpClass.Zero && b.Class == FpClass.Zero)
        {
            bool s = a.Sign == bSign ? a.Sign : env.Rounding == 1;
            return new FpResult { Class = FpClass.Zero, Sign = s };
        }
        if (a.Class == FpClass.Zero)
        {
            return Round(bSign, b.Exp, (UInt128)b.Sig << 64, f, ref env);
        }
        if (b.Class == FpClass.Zero)
        {
            return Round(a.Sign, a.Exp, (UInt128)a.Sig << 64, f, ref env);
        }
        // Order by magnitude so the larger is x.
        bool swap = b.Exp > a.Exp || (b.Exp == a.Exp && b.Sig > a.Sig);
        bool xs = swap ? bSign : a.Sign;
        int xe = swap ? b.Exp : a.Exp;
        ulong xm = swap ? b.Sig : a.Sig;
        bool ys = swap ? a.Sign : bSign;
        int ye = swap ? a.Exp : b.Exp;
        ulong ym = swap ? a.Sig : b.Sig;
        // Top at bit 126 leaves room for a carry; 62 guard bits below the 64-bit significand.
        UInt128 x = (UInt128)xm << 62;
        UInt128 y = (UInt128)ym << 62;
        int d = xe - ye;
        if (d > 0)
        {
            y = d >= 127 ? UInt128.One : (y >> d) | ((y & ((UInt128.One << d) - 1)) != 0 ? UInt128.One : UInt128.Zero);
        }
        UInt128 sum;
        if (xs == ys)
        {
            sum = x + y;
        }
        else
        {
            sum = x - y;
            if (sum == 0)
            {
                return new FpResult { Class = FpClass.Zero, Sign = env.Rounding == 1 };
            }
        }
        // value = sum * 2^(xe - 63 - 62)
        return NormalizeRound(xs, xe - 125, sum, f, ref env);
    }

    public static FpResult Mul(in FpNum a, in FpNum b, in FpFormat f, ref FpEnv env)
    {
        bool s = a.Sign ^ b.Sign;
        if (a.Class == FpClass.Inf || b.Class == FpClass.Inf)
        {
            if (a.Class == FpClass.Zero || b.Class == FpClass.Zero)
            {
                env.Flags |= FpFlags.Invalid;
                return DefaultNaN;
            }
            if (a.Denormal || b.Denormal)
            {
                env.Flags |= FpFlags.Denormal;
            }
            return new FpResult { Class = FpClass.Inf, Sign = s };
        }
        if (a.Denormal || b.Denormal)
        {
            env.Flags |= FpFlags.Denormal;
        }
        if (a.Class == FpClass.Zero || b.Class == FpClass.Zero)
        {
            return new FpResult { Class = FpClass.Zero, Sign = s };
        }
        UInt128 p = (UInt128)a.Sig * b.Sig;
        return NormalizeRound(s, a.Exp + b.Exp - 126, p, f, ref env);
    }

    public static FpResult Div(in FpNum a, in FpNum b, in FpFormat f, ref FpEnv env)
    {
        bool s = a.Sign ^ b.Sign;
        if (a.Class == FpClass.Inf)
        {
            if (b.Class == FpClass.Inf)
            {
                env.Flags |= FpFlags.Invalid;
                return DefaultNaN;
            }
            if (b.Denormal)
            {
                env.Flags |= FpFlags.Denormal;
            }
            return new FpResult { Class = FpClass.Inf, Sign = s };
        }
        if (b.Class == FpClass.Inf)
        {
            if (a.Denormal)
            {
                env.Flags |= FpFlags.Denormal;
            }
            return new FpResult { Class = FpClass.Zero, Sign = s };
        }
        if (b.Class == FpClass.Zero)
        {
            if (a.Class == FpClass.Zero)
            {
                env.Flags |= FpFlags.Invalid;
                return DefaultNaN;
            }
            // x/0 reports ZE alone, even for a denormal dividend (ZE has priority over DE).
            env.Flags |= FpFlags.ZeroDivide;
            return new FpResult { Class = FpClass.Inf, Sign = s };
        }
        if (a.Denormal || b.Denormal)
        {
            env.Flags |= FpFlags.Denormal;
        }
        if (a.Class == FpClass.Zero)
        {
            return new FpResult { Class = FpClass.Zero, Sign = s };
        }
        UInt128 q1 = ((UInt128)a.Sig << 64) / b.Sig;
        ulong r1 = (ulong)(((UInt128)a.Sig << 64) - q1 * b.Sig);
        UInt128 q2 = ((UInt128)r1 << 64) / b.Sig;
        bool r2 = ((UInt128)r1 << 64) - q2 * b.Sig != 0;
        // quotient = q1 + q2 / 2^64 (q1 < 2^65, q2 < 2^64); keep q1 << 62 | q2 >> 2 with sticky.
        UInt128 q = (q1 << 62) | (q2 >> 2) | ((q2 & 3) != 0 || r2 ? UInt128.One : UInt128.Zero);
        return NormalizeRound(s, a.Exp - b.Exp - 126, q, f, ref env);
    }

    public static FpResult Sqrt(in FpNum a, in FpFormat f, ref FpEnv env)
    {
        if (a.Class == FpClass.Zero)
        {
            return new FpResult { Class = FpClass.Zero, Sign = a.Sign };
        }
        if (a.Sign)
        {
            env.Flags |= FpFlags.Invalid;
            return DefaultNaN;
        }
        if (a.Class == FpClass.Inf)
        {
            return new FpResult { Class = FpClass.Inf };
        }
        if (a.Denormal)
        {
            env.Flags |= FpFlags.Denormal;
        }
        // value = Sig * 2^(Exp-63); N = Sig << 64 or << 63 so the remaining power of two is even.
        int scale = a.Exp - 127;
        UInt128 n;
        if ((scale & 1) == 0)
        {
            n = (UInt128)a.Sig << 64;
        }
        else
        {
            n = (UInt128)a.Sig << 63;
            scale += 1;
        }
        ulong r = ISqrt(n, out UInt128 rem);
        // Next bit: (r + 1/2)^2 <= N  <=>  rem > r (never equal); anything left is sticky.
        UInt128 sig = ((UInt128)r << 64) | (rem > r ? UInt128.One << 63 : UInt128.Zero) | (rem != 0 ? UInt128.One : UInt128.Zero);
        return NormalizeRound(false, scale / 2 - 64, sig, f, ref env);
    }

    /// <summary>floor(sqrt(n)) for n &lt; 2^128, and n - root².</summary>
    private static ulong ISqrt(UInt128 n, out UInt128 rem)
    {
        double est = Math.Sqrt((double)n);
        UInt128 r = est >= 18446744073709551615.0 ? ulong.MaxValue : (UInt128)(ulong)est;
        // Two Newton steps from the double estimate (relative error 2^-52) reach the floor within one.
        for (int i = 0; i < 2 && r != 0; i++)
        {
            r = (r + n / r) >> 1;
        }
        if (r > ulong.MaxValue)
        {
            r = ulong.MaxValue;
        }
        while (r * r > n)
        {
            r--;
        }
        while (r < ulong.MaxValue && (r + 1) * (r + 1) <= n)
        {
            r++;
        }
        rem = n - r * r;
        return (ulong)r;
    }

    // ---------------- integers ----------------

    /// <summary>A signed integer, rounded to <paramref name="f"/> (exact for extended precision).</summary>
    public static FpResult FromInt(long v, in FpFormat f, ref FpEnv env)
    {
        if (v == 0)
        {
            return default;
        }
        ulong mag = v < 0 ? (ulong)(-(v + 1)) + 1 : (ulong)v;
        return NormalizeRound(v < 0, -64, (UInt128)mag << 64, f, ref env);
    }

    /// <summary>
    /// Rounds to an integer of <paramref name="bits"/> bits (per <paramref name="rounding"/>); NaN or out of range
    /// raise IE and give the "integer indefinite" (most negative value). Inexact results raise PE.
    /// </summary>
    public static long ToInt(in FpNum a, int bits, int rounding, ref FpEnv env)
    {
        long indefinite = bits == 64 ? long.MinValue : bits == 32 ? int.MinValue : short.MinValue;
        if (a.IsNaN || a.Class == FpClass.Inf)
        {
            env.Flags |= FpFlags.Invalid;
            return indefinite;
        }
        // Integer conversions never raise DE (SSE CVT*2SI and x87 FIST alike).
        if (a.Class == FpClass.Zero)
        {
            return 0;
        }
        if (a.Exp >= 64)
        {
            env.Flags |= FpFlags.Invalid;
            return indefinite;
        }
        // Integer part, and the fraction scaled by 2^64 with a sticky bit: value = Sig * 2^(Exp-63).
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
            frac = sh == 0 ? 0 : a.Sig << (64 - sh);
        }
        const ulong half = 1UL << 63;
        bool up = rounding switch
        {
            0 => frac > half || (frac == half && (intPart & 1) != 0),
            1 => a.Sign && frac != 0,
            2 => !a.Sign && frac != 0,
            _ => false,
        };
        UInt128 mag = (UInt128)intPart + (up ? 1u : 0u);
        UInt128 limit = a.Sign ? (UInt128.One << (bits - 1)) : (UInt128.One << (bits - 1)) - 1;
        if (mag > limit)
        {
            env.Flags |= FpFlags.Invalid;
            return indefinite;
        }
        if (frac != 0)
        {
            env.Flags |= FpFlags.Precision;
        }
        long v = (long)(ulong)mag;
        return a.Sign ? -v : v;
    }

    // ---------------- comparison ----------------

    /// <summary>-1, 0, 1 for less, equal, greater; 2 when unordered (no flags raised here).</summary>
    public static int Compare(in FpNum a, in FpNum b)
    {
        if (a.IsNaN || b.IsNaN)
        {
            return 2;
        }
        if (a.Class == FpClass.Zero && b.Class == FpClass.Zero)
        {
            return 0;
        }
        int ka = Key(a, out ulong ma);
        int kb = Key(b, out ulong mb);
        int mag;
        if (ka != kb)
        {
            mag = ka < kb ? -1 : 1;
        }
        else
        {
            mag = ma == mb ? 0 : ma < mb ? -1 : 1;
        }
        if (a.Sign != b.Sign && !(a.Class == FpClass.Zero && b.Class == FpClass.Zero))
        {
            return a.Sign ? -1 : 1;
        }
        return a.Sign ? -mag : mag;
    }

    /// <summary>Magnitude ordering key: zero &lt; finite (by exponent, then significand) &lt; infinity.</summary>
    private static int Key(in FpNum n, out ulong m)
    {
        m = n.Sig;
        return n.Class switch
        {
            FpClass.Zero => int.MinValue,
            FpClass.Inf => int.MaxValue,
            _ => n.Exp,
        };
    }
}
