using System.Runtime.Intrinsics;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>
/// The remaining SSE2 integer operations on XMM registers: saturating add/subtract, multiply-high and multiply-add,
/// PMULUDQ, PSADBW, averages, packs, PINSRW/PEXTRW. Their MMX forms (Mmx.cs) reuse these structs on the low quadword.
/// </summary>
internal static class SseInt
{
    private const ExecStatus Ok = ExecStatus.Continue;

    // Saturation: widen, compute exactly, clamp, narrow (narrowing truncates, which is exact after the clamp).
    private static Vector128<short> ClampS8(Vector128<short> v) => Vector128.Min(Vector128.Max(v, Vector128.Create((short)-128)), Vector128.Create((short)127));

    private static Vector128<int> ClampS16(Vector128<int> v) => Vector128.Min(Vector128.Max(v, Vector128.Create(-32768)), Vector128.Create(32767));

    public struct AddUsB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            (Vector128<ushort> al, Vector128<ushort> ah) = Vector128.Widen(a);
            (Vector128<ushort> bl, Vector128<ushort> bh) = Vector128.Widen(b);
            Vector128<ushort> max = Vector128.Create((ushort)255);
            return Vector128.Narrow(Vector128.Min(al + bl, max), Vector128.Min(ah + bh, max));
        }
    }

    public struct SubUsB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            return Vector128.Max(a, b) - b;
        }
    }

    public struct AddSB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            (Vector128<short> al, Vector128<short> ah) = Vector128.Widen(a.AsSByte());
            (Vector128<short> bl, Vector128<short> bh) = Vector128.Widen(b.AsSByte());
            return Vector128.Narrow(ClampS8(al + bl), ClampS8(ah + bh)).AsByte();
        }
    }

    public struct SubSB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            (Vector128<short> al, Vector128<short> ah) = Vector128.Widen(a.AsSByte());
            (Vector128<short> bl, Vector128<short> bh) = Vector128.Widen(b.AsSByte());
            return Vector128.Narrow(ClampS8(al - bl), ClampS8(ah - bh)).AsByte();
        }
    }

    public struct AddUsW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            (Vector128<uint> al, Vector128<uint> ah) = Vector128.Widen(a.AsUInt16());
            (Vector128<uint> bl, Vector128<uint> bh) = Vector128.Widen(b.AsUInt16());
            Vector128<uint> max = Vector128.Create(65535u);
            return Vector128.Narrow(Vector128.Min(al + bl, max), Vector128.Min(ah + bh, max)).AsByte();
        }
    }

    public struct SubUsW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            Vector128<ushort> x = a.AsUInt16(), y = b.AsUInt16();
            return (Vector128.Max(x, y) - y).AsByte();
        }
    }

    public struct AddSW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            (Vector128<int> al, Vector128<int> ah) = Vector128.Widen(a.AsInt16());
            (Vector128<int> bl, Vector128<int> bh) = Vector128.Widen(b.AsInt16());
            return Vector128.Narrow(ClampS16(al + bl), ClampS16(ah + bh)).AsByte();
        }
    }

    public struct SubSW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            (Vector128<int> al, Vector128<int> ah) = Vector128.Widen(a.AsInt16());
            (Vector128<int> bl, Vector128<int> bh) = Vector128.Widen(b.AsInt16());
            return Vector128.Narrow(ClampS16(al - bl), ClampS16(ah - bh)).AsByte();
        }
    }

    /// <summary>PMULHW: high halves of the signed 16×16 products.</summary>
    public struct MulHW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            Vector128<short> x = a.AsInt16(), y = b.AsInt16(), r = default;
            for (int i = 0; i < 8; i++)
            {
                r = r.WithElement(i, (short)((x.GetElement(i) * y.GetElement(i)) >> 16));
            }
            return r.AsByte();
        }
    }

    /// <summary>PMULHUW: high halves of the unsigned 16×16 products.</summary>
    public struct MulHUW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            Vector128<ushort> x = a.AsUInt16(), y = b.AsUInt16(), r = default;
            for (int i = 0; i < 8; i++)
            {
                r = r.WithElement(i, (ushort)(((uint)x.GetElement(i) * y.GetElement(i)) >> 16));
            }
            return r.AsByte();
        }
    }

    /// <summary>PMADDWD: each dword = sum of two adjacent signed 16×16 products (wrapping at 0x8000_0000).</summary>
    public struct MAddWD : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            Vector128<short> x = a.AsInt16(), y = b.AsInt16();
            Vector128<int> r = default;
            for (int i = 0; i < 4; i++)
            {
                r = r.WithElement(i, unchecked((x.GetElement(2 * i) * y.GetElement(2 * i)) + (x.GetElement(2 * i + 1) * y.GetElement(2 * i + 1))));
            }
            return r.AsByte();
        }
    }

    /// <summary>PMULUDQ: the low dword of each quadword, multiplied to 64 bits.</summary>
    public struct MulUDQ : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            Vector128<ulong> x = a.AsUInt64(), y = b.AsUInt64();
            return Vector128.Create((ulong)(uint)x.GetElement(0) * (uint)y.GetElement(0), (ulong)(uint)x.GetElement(1) * (uint)y.GetElement(1)).AsByte();
        }
    }

    /// <summary>PSADBW: per quadword, the sum of the 8 absolute byte differences in its low word.</summary>
    public struct SadBW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            ulong lo = 0, hi = 0;
            for (int i = 0; i < 8; i++)
            {
                lo += (ulong)Math.Abs(a.GetElement(i) - b.GetElement(i));
                hi += (ulong)Math.Abs(a.GetElement(8 + i) - b.GetElement(8 + i));
            }
            return Vector128.Create(lo, hi).AsByte();
        }
    }

    public struct AvgB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            Vector128<byte> r = default;
            for (int i = 0; i < 16; i++)
            {
                r = r.WithElement(i, (byte)((a.GetElement(i) + b.GetElement(i) + 1) >> 1));
            }
            return r;
        }
    }

    public struct AvgW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            Vector128<ushort> x = a.AsUInt16(), y = b.AsUInt16(), r = default;
            for (int i = 0; i < 8; i++)
            {
                r = r.WithElement(i, (ushort)((x.GetElement(i) + y.GetElement(i) + 1) >> 1));
            }
            return r.AsByte();
        }
    }

    /// <summary>PACKSSWB: 8 destination then 8 source words, saturated to signed bytes.</summary>
    public struct PackSSWB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            return Vector128.Narrow(ClampS8(a.AsInt16()), ClampS8(b.AsInt16())).AsByte();
        }
    }

    /// <summary>PACKUSWB: signed words saturated to unsigned bytes.</summary>
    public struct PackUSWB : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            Vector128<short> zero = Vector128<short>.Zero, max = Vector128.Create((short)255);
            return Vector128.Narrow(Vector128.Min(Vector128.Max(a.AsInt16(), zero), max).AsUInt16(), Vector128.Min(Vector128.Max(b.AsInt16(), zero), max).AsUInt16());
        }
    }

    /// <summary>PACKSSDW: signed dwords saturated to signed words.</summary>
    public struct PackSSDW : IVecOp
    {
        public static Vector128<byte> Apply(Vector128<byte> a, Vector128<byte> b)
        {
            return Vector128.Narrow(ClampS16(a.AsInt32()), ClampS16(b.AsInt32())).AsByte();
        }
    }

    /// <summary>PINSRW xmm, r32/m16, imm8: replaces word imm[2:0].</summary>
    public static ExecStatus Pinsrw(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        ExecStatus s = c.ReadOperand(ref op, op.K1, op.R1, op.K1 == OperandKind.Mem ? 2 : 4, out ulong v);
        if (s != Ok)
        {
            return s;
        }
        ref Vector128<byte> dst = ref c.Xmm(op.R0);
        dst = dst.AsUInt16().WithElement((int)op.Imm & 7, (ushort)v).AsByte();
        return Ok;
    }

    /// <summary>PEXTRW r32/r64, xmm, imm8: word imm[2:0], zero-extended.</summary>
    public static ExecStatus Pextrw(InterpreterVcpu c, ref DecodedOp op)
    {
        if (c.SseOff())
        {
            return c.SseFault();
        }
        c.SetReg(op.R0, op.Size, c.Xmm(op.R1).AsUInt16().GetElement((int)op.Imm & 7));
        return Ok;
    }
}
