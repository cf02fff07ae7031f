using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Colo.Core.Cpu;
using Colo.Cpu.Interpreter.Float;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>
/// MMX and the SSE/SSE2 forms that name MM registers. MMi is the 64-bit significand of physical x87 register i:
/// every MMX instruction sets TOP to 0 and tags all registers valid (so MMi is then ST(i) in <c>Fx</c>), and a
/// write sets the register's sign/exponent field to all ones. The packed arithmetic reuses the 128-bit
/// <see cref="IVecOp"/> structs on the low quadword; element-local ops and the low unpacks give the MMX result
/// there directly, packs take both operands in one vector, high unpacks shift both operands down first.
/// Checks: #UD with CR0.EM (and, for forms with an XMM operand, with CR4.OSFXSR clear), #NM with CR0.TS, #MF for
/// a pending unmasked x87 exception with CR0.NE (without NE the FERR# path is not modelled, as for WAIT).
/// </summary>
internal static class Mmx
{
    private const ExecStatus Ok = ExecStatus.Continue;
    private const ulong Cr0Ne = 1UL << 5;

    /// <summary>Whether an MMX instruction may not run; <see cref="Fault"/> then gives the exception.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Off(InterpreterVcpu c, bool xmm)
    {
        ref X86CpuState s = ref c.State;
        return (s.Cr0 & (X86CpuState.Cr0Em | X86CpuState.Cr0Ts)) != 0
            || ((s.Fsw & 0x80) != 0 && (s.Cr0 & Cr0Ne) != 0)
            || (xmm && (s.Cr4 & X86CpuState.Cr4Osfxsr) == 0);
    }

    private static ExecStatus Fault(InterpreterVcpu c, bool xmm)
    {
        ref X86CpuState s = ref c.State;
        if ((s.Cr0 & X86CpuState.Cr0Em) != 0 || (xmm && (s.Cr4 & X86CpuState.Cr4Osfxsr) == 0))
        {
            return c.Raise(Vector.UD);
        }
        return (s.Cr0 & X86CpuState.Cr0Ts) != 0 ? c.Raise(Vector.NM) : c.Raise(Vector.MF);
    }

    /// <summary>MMi's value whatever TOP is (it is physical register i, kept at stack slot i − TOP).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mm(InterpreterVcpu c, int reg)
    {
        ref X86CpuState s = ref c.State;
        int slot = (reg - DecodedOp.MmBase - (s.Fsw >> 11)) & 7;
        return Unsafe.As<byte, ulong>(ref s.Fx[X86CpuState.FxSt0 + (slot << 4)]);
    }

    /// <summary>The MMX state transition: TOP = 0 (stack slots rotated so slot i holds physical register i), all tags valid.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Enter(InterpreterVcpu c)
    {
        ref X86CpuState s = ref c.State;
        if ((s.Fsw & 0x3800) != 0)
        {
            Rotate(ref s);
        }
        s.Ftw = 0xFF;
    }

    [SkipLocalsInit]
    private static void Rotate(ref X86CpuState s)
    {
        int top = (s.Fsw >> 11) & 7;
        Span<byte> stack = ((Span<byte>)s.Fx).Slice(X86CpuState.FxSt0, 128);
        Span<byte> copy = stackalloc byte[128];
        stack.CopyTo(copy);
        for (int i = 0; i < 8; i++)
        {
            copy.Slice(((i - top) & 7) << 4, 16).CopyTo(stack[(i << 4)..]);
        }
        s.Fsw &= unchecked((ushort)~0x3800);
    }

    /// <summary>Writes MMi after <see cref="Enter"/>: significand = value, sign/exponent = all ones.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetMm(InterpreterVcpu c, int reg, ulong value)
    {
        ref byte r = ref c.State.Fx[X86CpuState.FxSt0 + ((reg - DecodedOp.MmBase) << 4)];
        Unsafe.As<byte, ulong>(ref r) = value;
        Unsafe.As<byte, ushort>(ref Unsafe.Add(ref r, 8)) = 0xFFFF;
    }

    private static bool IsMm(byte kind, byte reg) => kind == OperandKind.Reg && reg >= DecodedOp.MmBase;

    /// <summary>The mm/m64 (or m32, m16: the op's source size) source operand.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ExecStatus Source(InterpreterVcpu c, ref DecodedOp op, out ulong value)
    {
        if (op.K1 == OperandKind.Reg)
        {
            value = Mm(c, op.R1);
            return Ok;
        }
        return c.ReadMemOp(ref op, op.SrcSize, out value);
    }

    private static ulong Low(Vector128<byte> v) => v.AsUInt64().GetElement(0);

    /// <summary>mm = T(mm, mm/m64) on the low quadword.</summary>
    public static ExecStatus Binary<T>(InterpreterVcpu c, ref DecodedOp op)
        where T : struct, IVecOp
    {
        if (Off(c, false))
        {
            return Fault(c, false);
        }
        ExecStatus s = Source(c, ref op, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong a = Mm(c, op.R0);
        Enter(c);
        SetMm(c, op.R0, Low(T.Apply(Vector128.CreateScalar(a).AsByte(), Vector128.CreateScalar(b).AsByte())));
        return Ok;
    }

    /// <summary>PACKSSWB/PACKSSDW/PACKUSWB mm: the 128-bit pack of (dst, src) gives the MMX result in its low half.</summary>
    public static ExecStatus Pack<T>(InterpreterVcpu c, ref DecodedOp op)
        where T : struct, IVecOp
    {
        if (Off(c, false))
        {
            return Fault(c, false);
        }
        ExecStatus s = Source(c, ref op, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong a = Mm(c, op.R0);
        Enter(c);
        SetMm(c, op.R0, Low(T.Apply(Vector128.Create(a, b).AsByte(), Vector128<byte>.Zero)));
        return Ok;
    }

    /// <summary>PUNPCKH* mm: the low unpack <typeparamref name="T"/> of both operands' high dwords.</summary>
    public static ExecStatus UnpackHigh<T>(InterpreterVcpu c, ref DecodedOp op)
        where T : struct, IVecOp
    {
        if (Off(c, false))
        {
            return Fault(c, false);
        }
        ExecStatus s = Source(c, ref op, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong a = Mm(c, op.R0);
        Enter(c);
        SetMm(c, op.R0, Low(T.Apply(Vector128.CreateScalar(a >> 32).AsByte(), Vector128.CreateScalar(b >> 32).AsByte())));
        return Ok;
    }

    /// <summary>PSLL/PSRL/PSRA mm by imm8 or by the whole quadword of mm/m64 (kind 0 left, 1 logical right, 2 arithmetic).</summary>
    private static ExecStatus Shift(InterpreterVcpu c, ref DecodedOp op, int bits, int kind)
    {
        if (Off(c, false))
        {
            return Fault(c, false);
        }
        ulong count;
        if (op.K1 == OperandKind.Imm)
        {
            count = (byte)op.Imm;
        }
        else
        {
            ExecStatus s = Source(c, ref op, out count);
            if (s != Ok)
            {
                return s;
            }
        }
        ulong a = Mm(c, op.R0);
        Enter(c);
        ulong r;
        if (count >= (ulong)bits && kind != 2)
        {
            r = 0;
        }
        else
        {
            int n = (int)Math.Min(count, (ulong)bits - 1);
            Vector128<byte> v = Vector128.CreateScalar(a).AsByte();
            r = Low((bits, kind) switch
            {
                (16, 0) => Vector128.ShiftLeft(v.AsUInt16(), n).AsByte(),
                (32, 0) => Vector128.ShiftLeft(v.AsUInt32(), n).AsByte(),
                (64, 0) => Vector128.ShiftLeft(v.AsUInt64(), n).AsByte(),
                (16, 1) => Vector128.ShiftRightLogical(v.AsUInt16(), n).AsByte(),
                (32, 1) => Vector128.ShiftRightLogical(v.AsUInt32(), n).AsByte(),
                (64, 1) => Vector128.ShiftRightLogical(v.AsUInt64(), n).AsByte(),
                (16, _) => Vector128.ShiftRightArithmetic(v.AsInt16(), n).AsByte(),
                _ => Vector128.ShiftRightArithmetic(v.AsInt32(), n).AsByte(),
            });
        }
        SetMm(c, op.R0, r);
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

    /// <summary>
    /// MOVD/MOVQ with an MM register, and MOVNTQ: into MM the value is zero-extended; out of MM the low 4 or 8 bytes
    /// go to a GPR or memory (the transition happens only once the store succeeded).
    /// </summary>
    public static ExecStatus Mov(InterpreterVcpu c, ref DecodedOp op)
    {
        if (Off(c, false))
        {
            return Fault(c, false);
        }
        ExecStatus s;
        if (IsMm(op.K0, op.R0))
        {
            ulong v;
            if (IsMm(op.K1, op.R1))
            {
                v = Mm(c, op.R1);
            }
            else
            {
                s = c.ReadOperand(ref op, op.K1, op.R1, op.SrcSize, out v);
                if (s != Ok)
                {
                    return s;
                }
            }
            Enter(c);
            SetMm(c, op.R0, v);
            return Ok;
        }
        ulong low = Mm(c, op.R1);
        s = c.WriteOperand(ref op, op.K0, op.R0, op.Size, op.Size == 4 ? (uint)low : low);
        if (s != Ok)
        {
            return s;
        }
        Enter(c);
        return Ok;
    }

    /// <summary>MOVQ2DQ xmm, mm: the quadword zero-extended into the XMM register.</summary>
    public static ExecStatus Movq2dq(InterpreterVcpu c, ref DecodedOp op)
    {
        if (Off(c, true))
        {
            return Fault(c, true);
        }
        ulong v = Mm(c, op.R1);
        Enter(c);
        c.Xmm(op.R0) = Vector128.CreateScalar(v).AsByte();
        return Ok;
    }

    /// <summary>MOVDQ2Q mm, xmm: the low quadword.</summary>
    public static ExecStatus Movdq2q(InterpreterVcpu c, ref DecodedOp op)
    {
        if (Off(c, true))
        {
            return Fault(c, true);
        }
        Enter(c);
        SetMm(c, op.R0, c.Xmm(op.R1).AsUInt64().GetElement(0));
        return Ok;
    }

    /// <summary>PSHUFW mm, mm/m64, imm8.</summary>
    public static ExecStatus Pshufw(InterpreterVcpu c, ref DecodedOp op)
    {
        if (Off(c, false))
        {
            return Fault(c, false);
        }
        ExecStatus s = Source(c, ref op, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        Enter(c);
        int imm = (int)op.Imm;
        ulong r = 0;
        for (int i = 0; i < 4; i++)
        {
            r |= ((b >> (16 * ((imm >> (2 * i)) & 3))) & 0xFFFF) << (16 * i);
        }
        SetMm(c, op.R0, r);
        return Ok;
    }

    /// <summary>PINSRW mm, r32/m16, imm8: replaces word imm[1:0].</summary>
    public static ExecStatus Pinsrw(InterpreterVcpu c, ref DecodedOp op)
    {
        if (Off(c, false))
        {
            return Fault(c, false);
        }
        ExecStatus s = c.ReadOperand(ref op, op.K1, op.R1, op.K1 == OperandKind.Mem ? 2 : 4, out ulong v);
        if (s != Ok)
        {
            return s;
        }
        ulong a = Mm(c, op.R0);
        Enter(c);
        int shift = 16 * ((int)op.Imm & 3);
        SetMm(c, op.R0, (a & ~(0xFFFFUL << shift)) | ((v & 0xFFFF) << shift));
        return Ok;
    }

    /// <summary>PEXTRW r32/r64, mm, imm8: word imm[1:0], zero-extended.</summary>
    public static ExecStatus Pextrw(InterpreterVcpu c, ref DecodedOp op)
    {
        if (Off(c, false))
        {
            return Fault(c, false);
        }
        ulong v = Mm(c, op.R1);
        Enter(c);
        c.SetReg(op.R0, op.Size, (v >> (16 * ((int)op.Imm & 3))) & 0xFFFF);
        return Ok;
    }

    /// <summary>PMOVMSKB r32/r64, mm: the sign bit of each byte.</summary>
    public static ExecStatus Pmovmskb(InterpreterVcpu c, ref DecodedOp op)
    {
        if (Off(c, false))
        {
            return Fault(c, false);
        }
        ulong v = Mm(c, op.R1);
        Enter(c);
        c.SetReg(op.R0, op.Size, Vector128.ExtractMostSignificantBits(Vector128.CreateScalar(v).AsByte()) & 0xFF);
        return Ok;
    }

    /// <summary>
    /// MASKMOVQ mm1, mm2: stores the bytes of mm1 whose mask byte in mm2 has bit 7 set to DS:rDI (segment overridable).
    /// Every selected byte is checked writable before the first one is stored, so a fault stores nothing.
    /// </summary>
    public static ExecStatus Maskmovq(InterpreterVcpu c, ref DecodedOp op)
    {
        if (Off(c, false))
        {
            return Fault(c, false);
        }
        ExecStatus s = MaskedStore(c, ref op, Mm(c, op.R1), Mm(c, op.R2), 0);
        if (s != Ok)
        {
            return s;
        }
        Enter(c);
        return Ok;
    }

    /// <summary>MASKMOVDQU xmm1, xmm2: the 16-byte SSE2 form (no alignment requirement).</summary>
    public static ExecStatus Maskmovdqu(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        Vector128<ulong> data = c.Xmm(op.R1).AsUInt64();
        Vector128<ulong> mask = c.Xmm(op.R2).AsUInt64();
        ExecStatus s = ProbeMasked(c, ref op, mask.GetElement(1), 8);
        return s != Ok ? s : MaskedStore(c, ref op, data.GetElement(0), mask.GetElement(0), 0, data.GetElement(1), mask.GetElement(1));
    }

    private static ulong MaskedBase(InterpreterVcpu c, ref DecodedOp op) => c.Gpr(7) & InterpreterVcpu.SizeMask(op.AddrSize);

    private static ulong MaskedLinear(InterpreterVcpu c, ref DecodedOp op, ulong offset)
    {
        ulong ea = (MaskedBase(c, ref op) + offset) & InterpreterVcpu.SizeMask(op.AddrSize);
        return op.Seg == DecodedOp.NoReg ? ea : c.SegmentLinear(op.Seg, ea);
    }

    private static ExecStatus ProbeMasked(InterpreterVcpu c, ref DecodedOp op, ulong mask, int first)
    {
        for (int i = 0; i < 8; i++)
        {
            if (((mask >> (8 * i + 7)) & 1) == 0)
            {
                continue;
            }
            if (c.SegmentNeedsCheck(op.Seg))
            {
                ulong ea = (MaskedBase(c, ref op) + (ulong)(first + i)) & InterpreterVcpu.SizeMask(op.AddrSize);
                ExecStatus s = c.CheckSegment(op.Seg, ea, 1, InterpreterVcpu.AccessWrite);
                if (s != Ok)
                {
                    return s;
                }
            }
            if (!c.ProbeWritable(MaskedLinear(c, ref op, (ulong)(first + i))))
            {
                return ExecStatus.Fault;
            }
        }
        return Ok;
    }

    private static ExecStatus MaskedStore(InterpreterVcpu c, ref DecodedOp op, ulong data, ulong mask, int first, ulong data2 = 0, ulong mask2 = 0)
    {
        ExecStatus s = ProbeMasked(c, ref op, mask, first);
        if (s != Ok)
        {
            return s;
        }
        for (int i = 0; i < 16; i++)
        {
            ulong m = i < 8 ? mask : mask2;
            ulong d = i < 8 ? data : data2;
            int k = i & 7;
            if (((m >> (8 * k + 7)) & 1) != 0)
            {
                s = c.WriteMem(MaskedLinear(c, ref op, (ulong)(first + i)), 1, (byte)(d >> (8 * k)));
                if (s != Ok)
                {
                    return s;
                }
            }
        }
        return Ok;
    }

    /// <summary>CVTPI2PS xmm, mm/m64: two int32 rounded per MXCSR into the low two singles; the high quadword is kept.</summary>
    public static ExecStatus Cvtpi2ps(InterpreterVcpu c, ref DecodedOp op)
    {
        bool mm = IsMm(op.K1, op.R1);
        if (mm ? Off(c, true) : c.SseOff())
        {
            return mm ? Fault(c, true) : c.SseFault();
        }
        ExecStatus s = Source(c, ref op, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        FpEnv env = SseFloat.Env(c.State.Mxcsr);
        ulong r = SoftFloat.Pack32(SoftFloat.FromInt((int)b, FpFormat.Single, ref env))
            | ((ulong)SoftFloat.Pack32(SoftFloat.FromInt((int)(b >> 32), FpFormat.Single, ref env)) << 32);
        if (!SseFloat.Commit(c, env.Flags, out s))
        {
            return s;
        }
        if (mm)
        {
            Enter(c);
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        dst = dst.AsUInt64().WithElement(0, r).AsByte();
        return Ok;
    }

    /// <summary>CVTPI2PD xmm, mm/m64: two int32, exactly, into both doubles.</summary>
    public static ExecStatus Cvtpi2pd(InterpreterVcpu c, ref DecodedOp op)
    {
        bool mm = IsMm(op.K1, op.R1);
        if (mm ? Off(c, true) : c.SseOff())
        {
            return mm ? Fault(c, true) : c.SseFault();
        }
        ExecStatus s = Source(c, ref op, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        if (mm)
        {
            Enter(c);
        }
        FpEnv env = SseFloat.Env(c.State.Mxcsr);
        c.Xmm(op.R0) = Vector128.Create(
            SoftFloat.Pack64(SoftFloat.FromInt((int)b, FpFormat.Double, ref env)),
            SoftFloat.Pack64(SoftFloat.FromInt((int)(b >> 32), FpFormat.Double, ref env))).AsByte();
        return Ok;
    }

    /// <summary>CVT(T)PS2PI mm, xmm/m64: the two low singles to int32 (MXCSR rounding or truncation; indefinite on overflow/NaN).</summary>
    public static ExecStatus Cvtps2pi(InterpreterVcpu c, ref DecodedOp op) => ToInt(c, ref op, false, false);

    public static ExecStatus Cvttps2pi(InterpreterVcpu c, ref DecodedOp op) => ToInt(c, ref op, false, true);

    /// <summary>CVT(T)PD2PI mm, xmm/m128 (aligned): the two doubles to int32.</summary>
    public static ExecStatus Cvtpd2pi(InterpreterVcpu c, ref DecodedOp op) => ToInt(c, ref op, true, false);

    public static ExecStatus Cvttpd2pi(InterpreterVcpu c, ref DecodedOp op) => ToInt(c, ref op, true, true);

    private static ExecStatus ToInt(InterpreterVcpu c, ref DecodedOp op, bool dbl, bool truncate)
    {
        if (Off(c, true))
        {
            return Fault(c, true);
        }
        ulong lo, hi;
        ExecStatus s;
        if (dbl)
        {
            s = c.ReadVec(ref op, op.K1, op.R1, aligned: true, out Vector128<byte> v);
            lo = v.AsUInt64().GetElement(0);
            hi = v.AsUInt64().GetElement(1);
        }
        else
        {
            ulong q = 0;
            s = op.K1 == OperandKind.Reg ? Ok : c.ReadMemOp(ref op, 8, out q);
            if (op.K1 == OperandKind.Reg)
            {
                q = c.Xmm(op.R1).AsUInt64().GetElement(0);
            }
            lo = (uint)q;
            hi = q >> 32;
        }
        if (s != Ok)
        {
            return s;
        }
        FpEnv env = SseFloat.Env(c.State.Mxcsr);
        int rc = truncate ? 3 : env.Rounding;
        FpNum a = dbl ? SoftFloat.Unpack64(lo, env.Daz) : SoftFloat.Unpack32((uint)lo, env.Daz);
        FpNum b = dbl ? SoftFloat.Unpack64(hi, env.Daz) : SoftFloat.Unpack32((uint)hi, env.Daz);
        ulong r = (uint)SoftFloat.ToInt(a, 32, rc, ref env) | ((ulong)(uint)SoftFloat.ToInt(b, 32, rc, ref env) << 32);
        if (!SseFloat.Commit(c, env.Flags, out s))
        {
            return s;
        }
        Enter(c);
        SetMm(c, op.R0, r);
        return Ok;
    }

    /// <summary>EMMS: every tag empty (#UD with CR0.EM, #NM with CR0.TS, #MF for a pending x87 exception).</summary>
    public static ExecStatus Emms(InterpreterVcpu c, ref DecodedOp op)
    {
        if (Off(c, false))
        {
            return Fault(c, false);
        }
        c.State.Ftw = 0;
        return Ok;
    }
}
