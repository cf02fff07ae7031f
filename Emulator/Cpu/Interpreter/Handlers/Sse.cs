using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>A packed 128-bit operation, instantiated per op so the JIT specializes <see cref="Sse.Binary{T}"/>.</summary>
internal interface IVecOp
{
    static abstract Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b);
}

/// <summary>
/// SSE/SSE2 data movement and integer operations on the XMM file in <c>X86CpuState.Fx</c>. Every handler checks
/// CR0.EM/TS and CR4.OSFXSR first; m128 operands of all but the unaligned forms must be 16-byte aligned (#GP(0)).
/// </summary>
internal static class Sse
{
    private const ExecStatus Ok = ExecStatus.Continue;

    private static bool IsXmm(byte kind, byte reg) => kind == OperandKind.Reg && reg >= DecodedOp.XmmBase;

    /// <summary>MOVAPS/MOVAPD/MOVDQA/MOVNTDQ/MOVNTPS/MOVNTPD.</summary>
    public static ExecStatus MovAligned(InterpreterVcpu c, ref DecodedOp op) => Move(c, ref op, aligned: true);

    /// <summary>MOVUPS/MOVUPD/MOVDQU/LDDQU.</summary>
    public static ExecStatus MovUnaligned(InterpreterVcpu c, ref DecodedOp op) => Move(c, ref op, aligned: false);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ExecStatus Move(InterpreterVcpu c, ref DecodedOp op, bool aligned)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadVec(ref op, op.K1, op.R1, aligned, out Vector128<byte> v);
        return s != Ok ? s : c.WriteVec(ref op, op.K0, op.R0, aligned, v);
    }

    /// <summary>MOVSS (4) / MOVSD (8): register to register merges the low element, a load zeroes the rest.</summary>
    public static ExecStatus Movss(InterpreterVcpu c, ref DecodedOp op) => MoveScalar(c, ref op, 4);

    public static ExecStatus Movsd(InterpreterVcpu c, ref DecodedOp op) => MoveScalar(c, ref op, 8);

    private static ExecStatus MoveScalar(InterpreterVcpu c, ref DecodedOp op, int n)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        if (!IsXmm(op.K0, op.R0))
        {
            ulong low = c.Xmm(op.R1).AsUInt64().GetElement(0);
            return c.WriteMemOp(ref op, n, n == 4 ? (uint)low : low);
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        if (IsXmm(op.K1, op.R1))
        {
            Vector128<byte> src = c.Xmm(op.R1);
            dst = n == 4 ? dst.AsUInt32().WithElement(0, src.AsUInt32().GetElement(0)).AsByte()
                : dst.AsUInt64().WithElement(0, src.AsUInt64().GetElement(0)).AsByte();
            return Ok;
        }
        ExecStatus s = c.ReadMemOp(ref op, n, out ulong v);
        if (s != Ok)
        {
            return s;
        }
        dst = Vector128.CreateScalar(v).AsByte();
        return Ok;
    }

    /// <summary>
    /// MOVD/MOVQ in every legacy form: into an XMM register the value is zero-extended to 128 bits; out of one,
    /// the low 4 or 8 bytes go to a GPR (zero-extended as usual) or memory.
    /// </summary>
    public static ExecStatus MovdMovq(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        if (IsXmm(op.K0, op.R0))
        {
            ulong v;
            if (IsXmm(op.K1, op.R1))
            {
                v = c.Xmm(op.R1).AsUInt64().GetElement(0);
            }
            else
            {
                ExecStatus s = c.ReadOperand(ref op, op.K1, op.R1, op.SrcSize, out v);
                if (s != Ok)
                {
                    return s;
                }
            }
            c.Xmm(op.R0) = Vector128.CreateScalar(v).AsByte();
            return Ok;
        }
        ulong low = c.Xmm(op.R1).AsUInt64().GetElement(0);
        return c.WriteOperand(ref op, op.K0, op.R0, op.Size, op.Size == 4 ? (uint)low : low);
    }

    /// <summary>MOVLPS/MOVLPD (half 0) and MOVHPS/MOVHPD (half 1): one quadword between memory and an XMM half.</summary>
    public static ExecStatus MovLow(InterpreterVcpu c, ref DecodedOp op) => MoveHalf(c, ref op, 0);

    public static ExecStatus MovHigh(InterpreterVcpu c, ref DecodedOp op) => MoveHalf(c, ref op, 1);

    private static ExecStatus MoveHalf(InterpreterVcpu c, ref DecodedOp op, int half)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        if (!IsXmm(op.K0, op.R0))
        {
            return c.WriteMemOp(ref op, 8, c.Xmm(op.R1).AsUInt64().GetElement(half));
        }
        ExecStatus s = c.ReadMemOp(ref op, 8, out ulong v);
        if (s != Ok)
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        dst = dst.AsUInt64().WithElement(half, v).AsByte();
        return Ok;
    }

    /// <summary>MOVHLPS: low quadword of the destination = high quadword of the source.</summary>
    public static ExecStatus Movhlps(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        dst = dst.AsUInt64().WithElement(0, c.Xmm(op.R1).AsUInt64().GetElement(1)).AsByte();
        return Ok;
    }

    /// <summary>MOVLHPS: high quadword of the destination = low quadword of the source.</summary>
    public static ExecStatus Movlhps(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        dst = dst.AsUInt64().WithElement(1, c.Xmm(op.R1).AsUInt64().GetElement(0)).AsByte();
        return Ok;
    }

    /// <summary>dst = T(dst, src) for packed two-operand forms (aligned m128 source).</summary>
    public static ExecStatus Binary<T>(InterpreterVcpu c, ref DecodedOp op)
        where T : struct, IVecOp
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadVec(ref op, op.K1, op.R1, aligned: true, out Vector128<byte> b);
        if (s != Ok)
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        dst = T.Apply(dst, b);
        return Ok;
    }

    /// <summary>PMOVMSKB r, xmm: the sign bit of each byte.</summary>
    public static ExecStatus Pmovmskb(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        c.SetReg(op.R0, op.Size, Vector128.ExtractMostSignificantBits(c.Xmm(op.R1)));
        return Ok;
    }

    /// <summary>MOVMSKPS r, xmm.</summary>
    public static ExecStatus Movmskps(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        c.SetReg(op.R0, op.Size, Vector128.ExtractMostSignificantBits(c.Xmm(op.R1).AsUInt32()));
        return Ok;
    }

    /// <summary>MOVMSKPD r, xmm.</summary>
    public static ExecStatus Movmskpd(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        c.SetReg(op.R0, op.Size, Vector128.ExtractMostSignificantBits(c.Xmm(op.R1).AsUInt64()));
        return Ok;
    }

    /// <summary>PSHUFD xmm, xmm/m128, imm8.</summary>
    public static ExecStatus Pshufd(InterpreterVcpu c, ref DecodedOp op)
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
        int imm = (int)op.Imm;
        c.Xmm(op.R0) = Vector128.Create(d.GetElement(imm & 3), d.GetElement((imm >> 2) & 3), d.GetElement((imm >> 4) & 3), d.GetElement((imm >> 6) & 3)).AsByte();
        return Ok;
    }

    /// <summary>PSHUFLW (half 0) / PSHUFHW (half 1): shuffle the words of one quadword, copy the other.</summary>
    public static ExecStatus Pshuflw(InterpreterVcpu c, ref DecodedOp op) => ShuffleWords(c, ref op, 0);

    public static ExecStatus Pshufhw(InterpreterVcpu c, ref DecodedOp op) => ShuffleWords(c, ref op, 4);

    private static ExecStatus ShuffleWords(InterpreterVcpu c, ref DecodedOp op, int first)
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
        Vector128<ushort> w = v.AsUInt16();
        Vector128<ushort> r = w;
        int imm = (int)op.Imm;
        for (int i = 0; i < 4; i++)
        {
            r = r.WithElement(first + i, w.GetElement(first + ((imm >> (2 * i)) & 3)));
        }
        c.Xmm(op.R0) = r.AsByte();
        return Ok;
    }

    /// <summary>Shift count: the immediate, or the low quadword of an XMM register / aligned m128.</summary>
    private static ExecStatus ShiftCount(InterpreterVcpu c, ref DecodedOp op, out ulong count)
    {
        if (op.K1 == OperandKind.Imm)
        {
            count = (byte)op.Imm;
            return Ok;
        }
        ExecStatus s = c.ReadVec(ref op, op.K1, op.R1, aligned: true, out Vector128<byte> v);
        count = v.AsUInt64().GetElement(0);
        return s;
    }

    /// <summary>PSLLW/D/Q (kind 0), PSRLW/D/Q (1), PSRAW/D (2) on element width <paramref name="bits"/>.</summary>
    private static ExecStatus Shift(InterpreterVcpu c, ref DecodedOp op, int bits, int kind)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = ShiftCount(c, ref op, out ulong count);
        if (s != Ok)
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        if (count >= (ulong)bits)
        {
            if (kind != 2)
            {
                dst = Vector128<byte>.Zero;
                return Ok;
            }
            count = (ulong)bits - 1;
        }
        int n = (int)count;
        dst = (bits, kind) switch
        {
            (16, 0) => Vector128.ShiftLeft(dst.AsUInt16(), n).AsByte(),
            (32, 0) => Vector128.ShiftLeft(dst.AsUInt32(), n).AsByte(),
            (64, 0) => Vector128.ShiftLeft(dst.AsUInt64(), n).AsByte(),
            (16, 1) => Vector128.ShiftRightLogical(dst.AsUInt16(), n).AsByte(),
            (32, 1) => Vector128.ShiftRightLogical(dst.AsUInt32(), n).AsByte(),
            (64, 1) => Vector128.ShiftRightLogical(dst.AsUInt64(), n).AsByte(),
            (16, _) => Vector128.ShiftRightArithmetic(dst.AsInt16(), n).AsByte(),
            _ => Vector128.ShiftRightArithmetic(dst.AsInt32(), n).AsByte(),
        };
        return Ok;
    }

    public static ExecStatus Psllw(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, 16, 0);

    public static ExecStatus Pslld(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, 32, 0);

    public static ExecStatus Psllq(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, 64, 0);

    public static ExecStatus Psrlw(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, 16, 1);

    public static ExecStatus Psrld(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, 32, 1);

    public static ExecStatus Psrlq(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, 64, 1);

    public static ExecStatus Psraw(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, 16, 2);

    public static ExecStatus Psrad(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, 32, 2);

    /// <summary>PSLLDQ/PSRLDQ xmm, imm8: whole-register byte shifts (counts above 15 clear it).</summary>
    public static ExecStatus Pslldq(InterpreterVcpu c, ref DecodedOp op) => ByteShift(c, ref op, left: true);

    public static ExecStatus Psrldq(InterpreterVcpu c, ref DecodedOp op) => ByteShift(c, ref op, left: false);

    private static ExecStatus ByteShift(InterpreterVcpu c, ref DecodedOp op, bool left)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        int n = (byte)op.Imm;
        if (n > 15)
        {
            dst = Vector128<byte>.Zero;
            return Ok;
        }
        UInt128 v = Unsafe.As<Vector128<byte>, UInt128>(ref dst);
        v = left ? v << (8 * n) : v >> (8 * n);
        dst = Unsafe.As<UInt128, Vector128<byte>>(ref v);
        return Ok;
    }
}

/// <summary>The packed operations, one struct per instruction family.</summary>
internal static class VecOps
{
    public struct Xor : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => a ^ b;
    }

    public struct Or : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => a | b;
    }

    public struct And : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => a & b;
    }

    /// <summary>PANDN/ANDNPS: (NOT dst) AND src.</summary>
    public struct AndNot : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => ~a & b;
    }

    public struct CmpEqB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Vector128.Equals(a, b);
    }

    public struct CmpEqW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Vector128.Equals(a.AsUInt16(), b.AsUInt16()).AsByte();
    }

    public struct CmpEqD : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Vector128.Equals(a.AsUInt32(), b.AsUInt32()).AsByte();
    }

    public struct CmpGtB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Vector128.GreaterThan(a.AsSByte(), b.AsSByte()).AsByte();
    }

    public struct CmpGtW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Vector128.GreaterThan(a.AsInt16(), b.AsInt16()).AsByte();
    }

    public struct CmpGtD : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Vector128.GreaterThan(a.AsInt32(), b.AsInt32()).AsByte();
    }

    public struct AddB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => a + b;
    }

    public struct AddW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => (a.AsUInt16() + b.AsUInt16()).AsByte();
    }

    public struct AddD : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => (a.AsUInt32() + b.AsUInt32()).AsByte();
    }

    public struct AddQ : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => (a.AsUInt64() + b.AsUInt64()).AsByte();
    }

    public struct SubB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => a - b;
    }

    public struct SubW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => (a.AsUInt16() - b.AsUInt16()).AsByte();
    }

    public struct SubD : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => (a.AsUInt32() - b.AsUInt32()).AsByte();
    }

    public struct SubQ : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => (a.AsUInt64() - b.AsUInt64()).AsByte();
    }

    public struct MinUB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Vector128.Min(a, b);
    }

    public struct MaxUB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Vector128.Max(a, b);
    }

    public struct MinSW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Vector128.Min(a.AsInt16(), b.AsInt16()).AsByte();
    }

    public struct MaxSW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Vector128.Max(a.AsInt16(), b.AsInt16()).AsByte();
    }

    public struct MulLW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => (a.AsUInt16() * b.AsUInt16()).AsByte();
    }

    /// <summary>PUNPCKL*/PUNPCKH*: interleave elements of width <c>1 &lt;&lt; shift</c> bytes from one half of each operand.</summary>
    private static Vector128<byte> Unpack(Vector128<byte> a, Vector128<byte> b, int width, int high)
    {
        Vector128<byte> r = default;
        int count = 8 / width;
        int from = high * 8;
        for (int e = 0; e < count; e++)
        {
            for (int k = 0; k < width; k++)
            {
                r = r.WithElement((2 * e) * width + k, a.GetElement(from + e * width + k));
                r = r.WithElement((2 * e + 1) * width + k, b.GetElement(from + e * width + k));
            }
        }
        return r;
    }

    public struct UnpackLBW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Unpack(a, b, 1, 0);
    }

    public struct UnpackLWD : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Unpack(a, b, 2, 0);
    }

    public struct UnpackLDQ : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Unpack(a, b, 4, 0);
    }

    public struct UnpackLQDQ : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Unpack(a, b, 8, 0);
    }

    public struct UnpackHBW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Unpack(a, b, 1, 1);
    }

    public struct UnpackHWD : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Unpack(a, b, 2, 1);
    }

    public struct UnpackHDQ : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Unpack(a, b, 4, 1);
    }

    public struct UnpackHQDQ : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b) => Unpack(a, b, 8, 1);
    }
}
