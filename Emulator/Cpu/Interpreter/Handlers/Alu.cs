using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>Integer arithmetic, logic, moves, bit operations, shifts, multiply and divide.</summary>
internal static class Alu
{
    private const ExecStatus Ok = ExecStatus.Continue;
    private const ulong Cf = X86CpuState.FlagCf;
    private const ulong Of = X86CpuState.FlagOf;
    private const ulong SzpFlags = X86CpuState.FlagSf | X86CpuState.FlagZf | X86CpuState.FlagPf;
    private const ulong ShiftFlags = X86CpuState.ArithmeticFlags;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ExecStatus ReadBoth(InterpreterVcpu c, ref DecodedOp op, out ulong a, out ulong b)
    {
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, op.Size, out a);
        if (s != Ok)
        {
            b = 0;
            return s;
        }
        return c.ReadOperand(ref op, op.K1, op.R1, op.Size, out b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ExecStatus Write0(InterpreterVcpu c, ref DecodedOp op, ulong v) => c.WriteOperand(ref op, op.K0, op.R0, op.Size, v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SignExtend(ulong v, int size) => size switch
    {
        1 => (ulong)(long)(sbyte)v,
        2 => (ulong)(long)(short)v,
        4 => (ulong)(long)(int)v,
        _ => v,
    };

    // ---- two-operand arithmetic and logic -------------------------------------------------------------------------

    public static ExecStatus Add(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = ReadBoth(c, ref op, out ulong a, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong r = a + b;
        s = Write0(c, ref op, r);
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Add, op.Size, a, b, r);
        }
        return s;
    }

    public static ExecStatus Adc(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = ReadBoth(c, ref op, out ulong a, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong cin = c.Carry();
        ulong r = a + b + cin;
        s = Write0(c, ref op, r);
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Adc, op.Size, a, b, r, cin);
        }
        return s;
    }

    public static ExecStatus Sub(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = ReadBoth(c, ref op, out ulong a, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong r = a - b;
        s = Write0(c, ref op, r);
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Sub, op.Size, a, b, r);
        }
        return s;
    }

    public static ExecStatus Sbb(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = ReadBoth(c, ref op, out ulong a, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong cin = c.Carry();
        ulong r = a - b - cin;
        s = Write0(c, ref op, r);
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Sbb, op.Size, a, b, r, cin);
        }
        return s;
    }

    public static ExecStatus Cmp(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = ReadBoth(c, ref op, out ulong a, out ulong b);
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Sub, op.Size, a, b, a - b);
        }
        return s;
    }

    public static ExecStatus And(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = ReadBoth(c, ref op, out ulong a, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong r = a & b;
        s = Write0(c, ref op, r);
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Logic, op.Size, a, b, r);
        }
        return s;
    }

    public static ExecStatus Or(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = ReadBoth(c, ref op, out ulong a, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong r = a | b;
        s = Write0(c, ref op, r);
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Logic, op.Size, a, b, r);
        }
        return s;
    }

    public static ExecStatus Xor(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = ReadBoth(c, ref op, out ulong a, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong r = a ^ b;
        s = Write0(c, ref op, r);
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Logic, op.Size, a, b, r);
        }
        return s;
    }

    public static ExecStatus Test(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = ReadBoth(c, ref op, out ulong a, out ulong b);
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Logic, op.Size, a, b, a & b);
        }
        return s;
    }

    // ---- specialized register forms (chosen at decode time for 32/64-bit register and immediate operands) ----------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ExecStatus RegOp(InterpreterVcpu c, ref DecodedOp op, LazyOp kind, bool write, bool imm)
    {
        ref ulong d = ref c.Gpr(op.R0);
        ulong a = d;
        ulong b = imm ? op.Imm : c.Gpr(op.R1);
        ulong r = kind switch
        {
            LazyOp.Add => a + b,
            LazyOp.Sub => a - b,
            _ => 0,
        };
        if (op.Size == 4)
        {
            a = (uint)a;
            b = (uint)b;
            r = (uint)r;
        }
        if (write)
        {
            d = r;
        }
        c.SetLazyFlags(kind, op.Size, a, b, r);
        return Ok;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ExecStatus RegLogic(InterpreterVcpu c, ref DecodedOp op, int kind, bool write, bool imm)
    {
        ref ulong d = ref c.Gpr(op.R0);
        ulong a = d;
        ulong b = imm ? op.Imm : c.Gpr(op.R1);
        ulong r = kind switch
        {
            0 => a & b,
            1 => a | b,
            _ => a ^ b,
        };
        if (op.Size == 4)
        {
            r = (uint)r;
        }
        if (write)
        {
            d = r;
        }
        c.SetLazyFlags(LazyOp.Logic, op.Size, a, b, r);
        return Ok;
    }

    public static ExecStatus AddRR(InterpreterVcpu c, ref DecodedOp op) => RegOp(c, ref op, LazyOp.Add, true, false);

    public static ExecStatus AddRI(InterpreterVcpu c, ref DecodedOp op) => RegOp(c, ref op, LazyOp.Add, true, true);

    public static ExecStatus SubRR(InterpreterVcpu c, ref DecodedOp op) => RegOp(c, ref op, LazyOp.Sub, true, false);

    public static ExecStatus SubRI(InterpreterVcpu c, ref DecodedOp op) => RegOp(c, ref op, LazyOp.Sub, true, true);

    public static ExecStatus CmpRR(InterpreterVcpu c, ref DecodedOp op) => RegOp(c, ref op, LazyOp.Sub, false, false);

    public static ExecStatus CmpRI(InterpreterVcpu c, ref DecodedOp op) => RegOp(c, ref op, LazyOp.Sub, false, true);

    public static ExecStatus AndRR(InterpreterVcpu c, ref DecodedOp op) => RegLogic(c, ref op, 0, true, false);

    public static ExecStatus AndRI(InterpreterVcpu c, ref DecodedOp op) => RegLogic(c, ref op, 0, true, true);

    public static ExecStatus OrRR(InterpreterVcpu c, ref DecodedOp op) => RegLogic(c, ref op, 1, true, false);

    public static ExecStatus OrRI(InterpreterVcpu c, ref DecodedOp op) => RegLogic(c, ref op, 1, true, true);

    public static ExecStatus XorRR(InterpreterVcpu c, ref DecodedOp op) => RegLogic(c, ref op, 2, true, false);

    public static ExecStatus XorRI(InterpreterVcpu c, ref DecodedOp op) => RegLogic(c, ref op, 2, true, true);

    public static ExecStatus TestRR(InterpreterVcpu c, ref DecodedOp op) => RegLogic(c, ref op, 0, false, false);

    public static ExecStatus TestRI(InterpreterVcpu c, ref DecodedOp op) => RegLogic(c, ref op, 0, false, true);

    public static ExecStatus MovRR(InterpreterVcpu c, ref DecodedOp op)
    {
        ulong v = c.Gpr(op.R1);
        c.Gpr(op.R0) = op.Size == 4 ? (uint)v : v;
        return Ok;
    }

    public static ExecStatus MovRI(InterpreterVcpu c, ref DecodedOp op)
    {
        c.Gpr(op.R0) = op.Size == 4 ? (uint)op.Imm : op.Imm;
        return Ok;
    }

    public static ExecStatus MovRM(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadMemOp(ref op, op.Size, out ulong v);
        if (s == Ok)
        {
            c.Gpr(op.R0) = v;
        }
        return s;
    }

    public static ExecStatus MovMR(InterpreterVcpu c, ref DecodedOp op) => c.WriteMemOp(ref op, op.Size, c.Gpr(op.R1));

    /// <summary>MOV m, imm (any size).</summary>
    public static ExecStatus MovMI(InterpreterVcpu c, ref DecodedOp op) => c.WriteMemOp(ref op, op.Size, op.Imm);

    /// <summary>MOV r8/r16, m (low GPR bytes merge) and MOV m, r8/r16.</summary>
    public static ExecStatus MovRMNarrow(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadMemOp(ref op, op.Size, out ulong v);
        if (s == Ok)
        {
            c.SetReg(op.R0, op.Size, v);
        }
        return s;
    }

    public static ExecStatus MovMRNarrow(InterpreterVcpu c, ref DecodedOp op) => c.WriteMemOp(ref op, op.Size, c.GetReg(op.R1, op.Size));

    /// <summary>MOVZX r32/r64, m8/m16: the load is already zero-extended, and a 32-bit write clears bits 63:32.</summary>
    public static ExecStatus MovzxRM(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadMemOp(ref op, op.SrcSize, out ulong v);
        if (s == Ok)
        {
            c.Gpr(op.R0) = v;
        }
        return s;
    }

    /// <summary>MOVZX r32/r64, r8/r16 (not AH–BH, which the generic handler takes).</summary>
    public static ExecStatus MovzxRR(InterpreterVcpu c, ref DecodedOp op)
    {
        ulong v = c.Gpr(op.R1);
        c.Gpr(op.R0) = op.SrcSize == 1 ? (byte)v : (ushort)v;
        return Ok;
    }

    public static ExecStatus IncR(InterpreterVcpu c, ref DecodedOp op)
    {
        ref ulong d = ref c.Gpr(op.R0);
        ulong a = op.Size == 4 ? (uint)d : d;
        ulong r = op.Size == 4 ? (uint)(a + 1) : a + 1;
        ulong cf = c.Carry();
        d = r;
        c.SetLazyFlags(LazyOp.Inc, op.Size, a, 1, r, cf);
        return Ok;
    }

    public static ExecStatus DecR(InterpreterVcpu c, ref DecodedOp op)
    {
        ref ulong d = ref c.Gpr(op.R0);
        ulong a = op.Size == 4 ? (uint)d : d;
        ulong r = op.Size == 4 ? (uint)(a - 1) : a - 1;
        ulong cf = c.Carry();
        d = r;
        c.SetLazyFlags(LazyOp.Dec, op.Size, a, 1, r, cf);
        return Ok;
    }

    // ---- one-operand arithmetic ------------------------------------------------------------------------------------

    public static ExecStatus Inc(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, op.Size, out ulong a);
        if (s != Ok)
        {
            return s;
        }
        ulong r = a + 1;
        s = Write0(c, ref op, r);
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Inc, op.Size, a, 1, r, c.Carry());
        }
        return s;
    }

    public static ExecStatus Dec(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, op.Size, out ulong a);
        if (s != Ok)
        {
            return s;
        }
        ulong r = a - 1;
        s = Write0(c, ref op, r);
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Dec, op.Size, a, 1, r, c.Carry());
        }
        return s;
    }

    public static ExecStatus Neg(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, op.Size, out ulong a);
        if (s != Ok)
        {
            return s;
        }
        ulong r = 0 - a;
        s = Write0(c, ref op, r);
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Sub, op.Size, 0, a, r);
        }
        return s;
    }

    public static ExecStatus Not(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, op.Size, out ulong a);
        return s != Ok ? s : Write0(c, ref op, ~a);
    }

    // ---- moves -----------------------------------------------------------------------------------------------------

    public static ExecStatus Mov(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadOperand(ref op, op.K1, op.R1, op.Size, out ulong v);
        return s != Ok ? s : Write0(c, ref op, v);
    }

    public static ExecStatus Movzx(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadOperand(ref op, op.K1, op.R1, op.SrcSize, out ulong v);
        return s != Ok ? s : Write0(c, ref op, v);
    }

    public static ExecStatus Movsx(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadOperand(ref op, op.K1, op.R1, op.SrcSize, out ulong v);
        return s != Ok ? s : Write0(c, ref op, SignExtend(v, op.SrcSize));
    }

    public static ExecStatus Lea(InterpreterVcpu c, ref DecodedOp op)
    {
        c.SetReg(op.R0, op.Size, c.EffectiveAddress(ref op));
        return Ok;
    }

    public static ExecStatus Xchg(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = ReadBoth(c, ref op, out ulong a, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        s = Write0(c, ref op, b);
        return s != Ok ? s : c.WriteOperand(ref op, op.K1, op.R1, op.Size, a);
    }

    public static ExecStatus Cmpxchg(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = ReadBoth(c, ref op, out ulong dst, out ulong src);
        if (s != Ok)
        {
            return s;
        }
        int size = op.Size;
        ulong acc = c.GetReg(0, size);
        ulong mask = InterpreterVcpu.SizeMask(size);
        if ((acc & mask) == (dst & mask))
        {
            s = Write0(c, ref op, src);
        }
        else
        {
            // A memory destination is written back unchanged (the locked cycle always writes).
            if (op.K0 == OperandKind.Mem)
            {
                s = Write0(c, ref op, dst);
            }
            if (s == Ok)
            {
                c.SetReg(0, size, dst);
            }
        }
        if (s == Ok)
        {
            c.SetLazyFlags(LazyOp.Sub, size, acc, dst, acc - dst);
        }
        return s;
    }

    public static ExecStatus Cmpxchg8b(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus sg = c.OperandLinear(ref op, 8, InterpreterVcpu.AccessWrite, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        ExecStatus s = c.ReadMem(linear, 8, out ulong current);
        if (s != Ok)
        {
            return s;
        }
        ulong expected = (c.GetReg(2, 4) << 32) | c.GetReg(0, 4);
        if (current == expected)
        {
            s = c.WriteMem(linear, 8, (c.GetReg(1, 4) << 32) | c.GetReg(3, 4));
            if (s == Ok)
            {
                c.SetFlags(X86CpuState.FlagZf, X86CpuState.FlagZf);
            }
            return s;
        }
        // The locked cycle writes the old value back before EDX:EAX receive it.
        s = c.WriteMem(linear, 8, current);
        if (s != Ok)
        {
            return s;
        }
        c.SetReg(0, 4, current);
        c.SetReg(2, 4, current >> 32);
        c.SetFlags(0, X86CpuState.FlagZf);
        return Ok;
    }

    public static ExecStatus Cmpxchg16b(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus sg = c.OperandLinear(ref op, 16, InterpreterVcpu.AccessWrite, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        if ((linear & 15) != 0)
        {
            return c.Raise(Vector.GP, 0);
        }
        ExecStatus s = c.ReadMem(linear, 8, out ulong low);
        if (s == Ok)
        {
            s = c.ReadMem(linear + 8, 8, out ulong high);
            if (s == Ok)
            {
                bool equal = low == c.Gpr(0) && high == c.Gpr(2);
                ulong newLow = equal ? c.Gpr(3) : low;
                ulong newHigh = equal ? c.Gpr(1) : high;
                s = c.WriteMem(linear, 8, newLow);
                if (s == Ok)
                {
                    s = c.WriteMem(linear + 8, 8, newHigh);
                }
                if (s == Ok)
                {
                    if (!equal)
                    {
                        c.Gpr(0) = low;
                        c.Gpr(2) = high;
                    }
                    c.SetFlags(equal ? X86CpuState.FlagZf : 0, X86CpuState.FlagZf);
                }
            }
        }
        return s;
    }

    public static ExecStatus Xadd(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = ReadBoth(c, ref op, out ulong dst, out ulong src);
        if (s != Ok)
        {
            return s;
        }
        ulong sum = dst + src;
        if (op.K0 == OperandKind.Mem)
        {
            s = Write0(c, ref op, sum);
            if (s != Ok)
            {
                return s;
            }
            c.SetReg(op.R1, op.Size, dst);
        }
        else
        {
            // Register form: source gets the old destination first, then the destination the sum.
            c.SetReg(op.R1, op.Size, dst);
            c.SetReg(op.R0, op.Size, sum);
        }
        c.SetLazyFlags(LazyOp.Add, op.Size, dst, src, sum);
        return Ok;
    }

    /// <summary>BOUND r, m (16/32-bit code only): #BR unless lower ≤ index ≤ upper, all signed.</summary>
    public static ExecStatus Bound(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.Size;
        ExecStatus sg = c.OperandLinear(ref op, 2 * size, InterpreterVcpu.AccessRead, out ulong linear);
        if (sg != Ok)
        {
            return sg;
        }
        ExecStatus s = c.ReadMem(linear, size, out ulong lower);
        if (s == Ok)
        {
            s = c.ReadMem(c.Bitness == 64 ? linear + (ulong)size : (uint)(linear + (ulong)size), size, out ulong upper);
            if (s == Ok)
            {
                long index = (long)SignExtend(c.GetReg(op.R0, size), size);
                if (index < (long)SignExtend(lower, size) || index > (long)SignExtend(upper, size))
                {
                    return c.Raise(Vector.BR);
                }
            }
        }
        return s;
    }

    public static ExecStatus Bswap(InterpreterVcpu c, ref DecodedOp op)
    {
        ulong v = c.GetReg(op.R0, op.Size);
        ulong r = op.Size switch
        {
            8 => BinaryPrimitives.ReverseEndianness(v),
            4 => BinaryPrimitives.ReverseEndianness((uint)v),
            // BSWAP r16 is undefined; it clears the register on the hardware we compare with.
            _ => 0,
        };
        c.SetReg(op.R0, op.Size, r);
        return Ok;
    }

    public static ExecStatus Cbw(InterpreterVcpu c, ref DecodedOp op)
    {
        c.SetReg(0, 2, (ulong)(long)(sbyte)c.GetReg(0, 1));
        return Ok;
    }

    public static ExecStatus Cwde(InterpreterVcpu c, ref DecodedOp op)
    {
        c.SetReg(0, 4, (ulong)(long)(short)c.GetReg(0, 2));
        return Ok;
    }

    public static ExecStatus Cdqe(InterpreterVcpu c, ref DecodedOp op)
    {
        c.SetReg(0, 8, (ulong)(long)(int)c.GetReg(0, 4));
        return Ok;
    }

    public static ExecStatus Cwd(InterpreterVcpu c, ref DecodedOp op)
    {
        c.SetReg(2, 2, (short)c.GetReg(0, 2) < 0 ? 0xFFFFUL : 0);
        return Ok;
    }

    public static ExecStatus Cdq(InterpreterVcpu c, ref DecodedOp op)
    {
        c.SetReg(2, 4, (int)c.GetReg(0, 4) < 0 ? 0xFFFF_FFFFUL : 0);
        return Ok;
    }

    public static ExecStatus Cqo(InterpreterVcpu c, ref DecodedOp op)
    {
        c.SetReg(2, 8, (long)c.GetReg(0, 8) < 0 ? ulong.MaxValue : 0);
        return Ok;
    }

    public static ExecStatus Setcc(InterpreterVcpu c, ref DecodedOp op) => Write0(c, ref op, c.Condition(op.Cond) ? 1UL : 0);

    public static ExecStatus Cmovcc(InterpreterVcpu c, ref DecodedOp op)
    {
        // The source is read (and may fault) whatever the condition.
        ExecStatus s = c.ReadOperand(ref op, op.K1, op.R1, op.Size, out ulong v);
        if (s != Ok)
        {
            return s;
        }
        if (c.Condition(op.Cond))
        {
            c.SetReg(op.R0, op.Size, v);
        }
        else if (op.Size == 4)
        {
            // A 32-bit destination is zero-extended even when nothing moves.
            c.SetReg(op.R0, 4, c.GetReg(op.R0, 4));
        }
        return Ok;
    }

    // ---- bit test and scan ---------------------------------------------------------------------------------------

    private static ExecStatus BitOp(InterpreterVcpu c, ref DecodedOp op, int kind)
    {
        int size = op.Size;
        int bits = size * 8;
        ulong offset = op.K1 == OperandKind.Imm ? op.Imm : c.GetReg(op.R1, size);
        ulong value;
        ulong linear = 0;
        int bit;
        ExecStatus s;
        if (op.K0 == OperandKind.Reg)
        {
            bit = (int)(offset & (ulong)(bits - 1));
            value = c.GetReg(op.R0, size);
        }
        else
        {
            s = BitOperandAddress(c, ref op, kind == 0 ? InterpreterVcpu.AccessRead : InterpreterVcpu.AccessWrite, out linear, out bit);
            if (s == Ok)
            {
                s = c.ReadMem(linear, size, out value);
            }
            else
            {
                value = 0;
            }
            if (s != Ok)
            {
                return s;
            }
        }
        ulong mask = 1UL << bit;
        ulong cf = (value & mask) != 0 ? Cf : 0;
        if (kind != 0)
        {
            ulong r = kind switch
            {
                1 => value | mask,
                2 => value & ~mask,
                _ => value ^ mask,
            };
            s = op.K0 == OperandKind.Reg ? SetRegOk(c, op.R0, size, r) : c.WriteMem(linear, size, r);
            if (s != Ok)
            {
                return s;
            }
        }
        c.SetFlags(cf, Cf);
        return Ok;
    }

    /// <summary>Linear address of the unit a memory bit operation touches, and the bit within it.</summary>
    internal static ExecStatus BitOperandAddress(InterpreterVcpu c, ref DecodedOp op, int access, out ulong linear, out int bit)
    {
        int size = op.Size;
        int bits = size * 8;
        if (op.K1 == OperandKind.Imm)
        {
            bit = (int)(op.Imm & (ulong)(bits - 1));
            return c.OperandLinear(ref op, size, access, out linear);
        }
        // A register bit offset is signed and may address outside the operand.
        long signed = (long)SignExtend(c.GetReg(op.R1, size), size);
        long units = signed >> BitOperations.Log2((uint)bits);
        bit = (int)(signed & (bits - 1));
        if (c.SegmentNeedsCheck(op.Seg))
        {
            // The limit check applies to the unit actually addressed: the offset moved by the bit offset, in the
            // address size.
            ulong offset = (c.EffectiveAddress(ref op) + (ulong)(units * size)) & InterpreterVcpu.SizeMask(op.AddrSize);
            linear = c.SegmentLinear(op.Seg, offset);
            return c.CheckSegment(op.Seg, offset, size, access);
        }
        linear = c.LinearAddress(ref op) + (ulong)(units * size);
        if (c.Bitness != 64)
        {
            linear = (uint)linear;
        }
        return Ok;
    }

    private static ExecStatus SetRegOk(InterpreterVcpu c, int r, int size, ulong v)
    {
        c.SetReg(r, size, v);
        return Ok;
    }

    public static ExecStatus Bt(InterpreterVcpu c, ref DecodedOp op) => BitOp(c, ref op, 0);

    public static ExecStatus Bts(InterpreterVcpu c, ref DecodedOp op) => BitOp(c, ref op, 1);

    public static ExecStatus Btr(InterpreterVcpu c, ref DecodedOp op) => BitOp(c, ref op, 2);

    public static ExecStatus Btc(InterpreterVcpu c, ref DecodedOp op) => BitOp(c, ref op, 3);

    public static ExecStatus Bsf(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadOperand(ref op, op.K1, op.R1, op.Size, out ulong v);
        if (s != Ok)
        {
            return s;
        }
        if (v == 0)
        {
            // Destination unchanged for a zero source (AMD documents it; Intel hardware behaves the same).
            c.SetFlags(X86CpuState.FlagZf, X86CpuState.FlagZf);
            return Ok;
        }
        c.SetReg(op.R0, op.Size, (ulong)BitOperations.TrailingZeroCount(v));
        c.SetFlags(0, X86CpuState.FlagZf);
        return Ok;
    }

    public static ExecStatus Bsr(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.ReadOperand(ref op, op.K1, op.R1, op.Size, out ulong v);
        if (s != Ok)
        {
            return s;
        }
        if (v == 0)
        {
            c.SetFlags(X86CpuState.FlagZf, X86CpuState.FlagZf);
            return Ok;
        }
        c.SetReg(op.R0, op.Size, (ulong)BitOperations.Log2(v));
        c.SetFlags(0, X86CpuState.FlagZf);
        return Ok;
    }

    // ---- shifts and rotates -------------------------------------------------------------------------------------

    private const int KShl = 0, KShr = 1, KSar = 2, KRol = 3, KRor = 4, KRcl = 5, KRcr = 6;

    private static ExecStatus Shift(InterpreterVcpu c, ref DecodedOp op, int kind)
    {
        int size = op.Size;
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, size, out ulong a);
        if (s != Ok)
        {
            return s;
        }
        ulong count = (op.K1 == OperandKind.Imm ? op.Imm : c.GetReg(1, 1)) & (size == 8 ? 63UL : 31UL);
        if (count == 0)
        {
            // No flags change, but the destination is still written (a 32-bit register is zero-extended).
            return Write0(c, ref op, a);
        }
        int bits = size * 8;
        ulong mask = InterpreterVcpu.SizeMask(size);
        ulong sign = 1UL << (bits - 1);
        a &= mask;
        int n = (int)count;
        ulong r;
        ulong flags;
        ulong affected;
        switch (kind)
        {
            case KShl:
            {
                r = n < 64 ? (a << n) & mask : 0;
                bool cf = ((a << (n - 1)) & sign) != 0;
                bool of = ((r & sign) != 0) ^ cf;
                flags = InterpreterVcpu.ResultFlags(r, size) | (cf ? Cf : 0) | (of ? Of : 0);
                affected = ShiftFlags;
                break;
            }
            case KShr:
            {
                r = a >> n;
                bool cf = ((a >> (n - 1)) & 1) != 0;
                flags = InterpreterVcpu.ResultFlags(r, size) | (cf ? Cf : 0) | ((a & sign) != 0 ? Of : 0);
                affected = ShiftFlags;
                break;
            }
            case KSar:
            {
                long sa = (long)SignExtend(a, size);
                r = (ulong)(sa >> Math.Min(n, 63)) & mask;
                bool cf = ((sa >> (n - 1)) & 1) != 0;
                flags = InterpreterVcpu.ResultFlags(r, size) | (cf ? Cf : 0);
                affected = ShiftFlags;
                break;
            }
            case KRol:
            {
                int m = n % bits;
                r = m == 0 ? a : ((a << m) | (a >> (bits - m))) & mask;
                bool cf = (r & 1) != 0;
                bool of = ((r & sign) != 0) ^ cf;
                flags = (cf ? Cf : 0) | (of ? Of : 0);
                affected = Cf | Of;
                break;
            }
            case KRor:
            {
                int m = n % bits;
                r = m == 0 ? a : ((a >> m) | (a << (bits - m))) & mask;
                bool msb = (r & sign) != 0;
                bool next = (r & (sign >> 1)) != 0;
                flags = (msb ? Cf : 0) | (msb ^ next ? Of : 0);
                affected = Cf | Of;
                break;
            }
            case KRcl:
            {
                int m = bits < 32 ? n % (bits + 1) : n;
                ulong cf = c.Carry();
                r = a;
                for (int i = 0; i < m; i++)
                {
                    ulong outBit = (r & sign) != 0 ? 1UL : 0;
                    r = ((r << 1) | cf) & mask;
                    cf = outBit;
                }
                bool of = ((r & sign) != 0) ^ (cf != 0);
                flags = cf | (of ? Of : 0);
                affected = m == 0 ? 0 : Cf | Of;
                break;
            }
            default:
            {
                int m = bits < 32 ? n % (bits + 1) : n;
                ulong cf = c.Carry();
                bool of = ((a & sign) != 0) ^ (cf != 0);
                r = a;
                for (int i = 0; i < m; i++)
                {
                    ulong outBit = r & 1;
                    r = (r >> 1) | (cf != 0 ? sign : 0);
                    cf = outBit;
                }
                flags = cf | (of ? Of : 0);
                affected = m == 0 ? 0 : Cf | Of;
                break;
            }
        }
        s = Write0(c, ref op, r);
        if (s == Ok)
        {
            if (affected == ShiftFlags)
            {
                c.ReplaceArithmeticFlags(flags);
            }
            else
            {
                c.SetFlags(flags, affected);
            }
        }
        return s;
    }

    public static ExecStatus Shl(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, KShl);

    /// <summary>SHL/SHR/SAR of a 32/64-bit register (not AH–BH) by an immediate, picked at decode time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ExecStatus ShiftRI(InterpreterVcpu c, ref DecodedOp op, int kind)
    {
        int size = op.Size;
        int bits = size * 8;
        int n = (int)(op.Imm & (size == 8 ? 63UL : 31UL));
        ref ulong d = ref c.Gpr(op.R0);
        ulong a = size == 4 ? (uint)d : d;
        if (n == 0)
        {
            // No flags change; a 32-bit destination is still zero-extended.
            d = a;
            return Ok;
        }
        ulong r;
        ulong cf;
        ulong of;
        switch (kind)
        {
            case KShl:
                r = a << n;
                if (size == 4)
                {
                    r = (uint)r;
                }
                cf = (a >> (bits - n)) & 1;
                of = ((r >> (bits - 1)) & 1) ^ cf;
                break;
            case KShr:
                r = a >> n;
                cf = (a >> (n - 1)) & 1;
                of = (a >> (bits - 1)) & 1;
                break;
            default:
                long sa = size == 4 ? (int)(uint)a : (long)a;
                r = (ulong)(sa >> n);
                if (size == 4)
                {
                    r = (uint)r;
                }
                cf = (ulong)(sa >> (n - 1)) & 1;
                of = 0;
                break;
        }
        d = r;
        c.ReplaceArithmeticFlags(InterpreterVcpu.ResultFlags(r, size) | (cf != 0 ? Cf : 0) | (of != 0 ? Of : 0));
        return Ok;
    }

    public static ExecStatus ShlRI(InterpreterVcpu c, ref DecodedOp op) => ShiftRI(c, ref op, KShl);

    public static ExecStatus ShrRI(InterpreterVcpu c, ref DecodedOp op) => ShiftRI(c, ref op, KShr);

    public static ExecStatus SarRI(InterpreterVcpu c, ref DecodedOp op) => ShiftRI(c, ref op, KSar);

    public static ExecStatus Shr(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, KShr);

    public static ExecStatus Sar(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, KSar);

    public static ExecStatus Rol(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, KRol);

    public static ExecStatus Ror(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, KRor);

    public static ExecStatus Rcl(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, KRcl);

    public static ExecStatus Rcr(InterpreterVcpu c, ref DecodedOp op) => Shift(c, ref op, KRcr);

    private static ExecStatus DoubleShift(InterpreterVcpu c, ref DecodedOp op, bool left)
    {
        int size = op.Size;
        ExecStatus s = ReadBoth(c, ref op, out ulong a, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong count = (op.K2 == OperandKind.Imm ? op.Imm : c.GetReg(1, 1)) & (size == 8 ? 63UL : 31UL);
        if (count == 0)
        {
            return Write0(c, ref op, a);
        }
        int bits = size * 8;
        ulong mask = InterpreterVcpu.SizeMask(size);
        ulong sign = 1UL << (bits - 1);
        a &= mask;
        b &= mask;
        int n = (int)count;
        ulong r;
        bool cf;
        // Counts above the operand width (16-bit only) give undefined results; this computes one consistent value.
        if (left)
        {
            UInt128 v = ((UInt128)a << bits) | b;
            r = (ulong)((v << n) >> bits) & mask;
            cf = (((v << (n - 1)) >> (2 * bits - 1)) & 1) != 0;
        }
        else
        {
            UInt128 v = ((UInt128)b << bits) | a;
            r = (ulong)(v >> n) & mask;
            cf = ((v >> (n - 1)) & 1) != 0;
        }
        bool of = ((r ^ a) & sign) != 0;
        s = Write0(c, ref op, r);
        if (s == Ok)
        {
            c.SetFlags(InterpreterVcpu.ResultFlags(r, size) | (cf ? Cf : 0) | (of ? Of : 0), ShiftFlags);
        }
        return s;
    }

    public static ExecStatus Shld(InterpreterVcpu c, ref DecodedOp op) => DoubleShift(c, ref op, left: true);

    public static ExecStatus Shrd(InterpreterVcpu c, ref DecodedOp op) => DoubleShift(c, ref op, left: false);

    // ---- multiply and divide ------------------------------------------------------------------------------------

    public static ExecStatus Mul(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.Size;
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, size, out ulong b);
        if (s != Ok)
        {
            return s;
        }
        ulong a = c.GetReg(0, size);
        ulong lo;
        ulong hi;
        switch (size)
        {
            case 1:
                lo = a * b;
                c.SetReg(0, 2, lo);
                hi = lo >> 8;
                lo &= 0xFF;
                break;
            case 2:
                lo = a * b;
                c.SetReg(0, 2, lo);
                c.SetReg(2, 2, lo >> 16);
                hi = lo >> 16;
                lo &= 0xFFFF;
                break;
            case 4:
                lo = a * b;
                c.SetReg(0, 4, lo);
                c.SetReg(2, 4, lo >> 32);
                hi = lo >> 32;
                lo &= 0xFFFF_FFFF;
                break;
            default:
                hi = Math.BigMul(a, b, out lo);
                c.SetReg(0, 8, lo);
                c.SetReg(2, 8, hi);
                break;
        }
        ulong carry = hi != 0 ? Cf | Of : 0;
        c.SetFlags(carry | InterpreterVcpu.ResultFlags(lo, size), X86CpuState.ArithmeticFlags);
        return Ok;
    }

    public static ExecStatus Imul1(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.Size;
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, size, out ulong bRaw);
        if (s != Ok)
        {
            return s;
        }
        long a = (long)SignExtend(c.GetReg(0, size), size);
        long b = (long)SignExtend(bRaw, size);
        bool overflow;
        ulong lo;
        switch (size)
        {
            case 1:
            {
                long p = a * b;
                c.SetReg(0, 2, (ulong)p);
                overflow = p != (sbyte)p;
                lo = (ulong)p;
                break;
            }
            case 2:
            {
                long p = a * b;
                c.SetReg(0, 2, (ulong)p);
                c.SetReg(2, 2, (ulong)(p >> 16));
                overflow = p != (short)p;
                lo = (ulong)p;
                break;
            }
            case 4:
            {
                long p = a * b;
                c.SetReg(0, 4, (ulong)p);
                c.SetReg(2, 4, (ulong)(p >> 32));
                overflow = p != (int)p;
                lo = (ulong)p;
                break;
            }
            default:
            {
                long hi = Math.BigMul(a, b, out long low);
                c.SetReg(0, 8, (ulong)low);
                c.SetReg(2, 8, (ulong)hi);
                overflow = hi != (low >> 63);
                lo = (ulong)low;
                break;
            }
        }
        c.SetFlags((overflow ? Cf | Of : 0) | InterpreterVcpu.ResultFlags(lo, size), X86CpuState.ArithmeticFlags);
        return Ok;
    }

    /// <summary>IMUL r, r/m and IMUL r, r/m, imm: truncated signed product.</summary>
    public static ExecStatus ImulN(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.Size;
        ulong aRaw;
        ulong bRaw;
        ExecStatus s;
        if (op.K2 == OperandKind.Imm)
        {
            s = c.ReadOperand(ref op, op.K1, op.R1, size, out aRaw);
            bRaw = op.Imm;
        }
        else
        {
            s = ReadBoth(c, ref op, out aRaw, out bRaw);
        }
        if (s != Ok)
        {
            return s;
        }
        long a = (long)SignExtend(aRaw, size);
        long b = (long)SignExtend(bRaw, size);
        long hi = Math.BigMul(a, b, out long low);
        bool overflow = size == 8 ? hi != (low >> 63) : low != (long)SignExtend((ulong)low, size);
        c.SetReg(op.R0, size, (ulong)low);
        c.ReplaceArithmeticFlags((overflow ? Cf | Of : 0) | InterpreterVcpu.ResultFlags((ulong)low, size));
        return Ok;
    }

    public static ExecStatus Div(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.Size;
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, size, out ulong divisor);
        if (s != Ok)
        {
            return s;
        }
        if (divisor == 0)
        {
            return c.Raise(Vector.DE);
        }
        switch (size)
        {
            case 1:
            {
                ulong n = c.GetReg(0, 2);
                ulong q = n / divisor;
                if (q > 0xFF)
                {
                    return c.Raise(Vector.DE);
                }
                c.SetReg(0, 2, q | ((n % divisor) << 8));
                break;
            }
            case 2:
            case 4:
            {
                int bits = size * 8;
                ulong n = (c.GetReg(2, size) << bits) | c.GetReg(0, size);
                ulong q = n / divisor;
                if (q > InterpreterVcpu.SizeMask(size))
                {
                    return c.Raise(Vector.DE);
                }
                c.SetReg(0, size, q);
                c.SetReg(2, size, n % divisor);
                break;
            }
            default:
            {
                UInt128 n = ((UInt128)c.GetReg(2, 8) << 64) | c.GetReg(0, 8);
                UInt128 q = n / divisor;
                if (q > ulong.MaxValue)
                {
                    return c.Raise(Vector.DE);
                }
                c.SetReg(0, 8, (ulong)q);
                c.SetReg(2, 8, (ulong)(n % divisor));
                break;
            }
        }
        return Ok;
    }

    public static ExecStatus Idiv(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.Size;
        ExecStatus s = c.ReadOperand(ref op, op.K0, op.R0, size, out ulong divRaw);
        if (s != Ok)
        {
            return s;
        }
        long divisor = (long)SignExtend(divRaw, size);
        if (divisor == 0)
        {
            return c.Raise(Vector.DE);
        }
        if (size < 8)
        {
            int bits = size * 8;
            long n = size == 1
                ? (short)c.GetReg(0, 2)
                : (long)((c.GetReg(2, size) << bits) | c.GetReg(0, size)) << (64 - 2 * bits) >> (64 - 2 * bits);
            if (n == long.MinValue && divisor == -1)
            {
                return c.Raise(Vector.DE);
            }
            long q = n / divisor;
            long min = -(1L << (bits - 1));
            long max = (1L << (bits - 1)) - 1;
            if (q < min || q > max)
            {
                return c.Raise(Vector.DE);
            }
            long rem = n % divisor;
            if (size == 1)
            {
                c.SetReg(0, 2, ((ulong)q & 0xFF) | (((ulong)rem & 0xFF) << 8));
            }
            else
            {
                c.SetReg(0, size, (ulong)q);
                c.SetReg(2, size, (ulong)rem);
            }
            return Ok;
        }
        Int128 n64 = (Int128)(((UInt128)c.GetReg(2, 8) << 64) | c.GetReg(0, 8));
        if (n64 == Int128.MinValue && divisor == -1)
        {
            return c.Raise(Vector.DE);
        }
        Int128 q64 = n64 / divisor;
        if (q64 < long.MinValue || q64 > long.MaxValue)
        {
            return c.Raise(Vector.DE);
        }
        c.SetReg(0, 8, (ulong)(long)q64);
        c.SetReg(2, 8, (ulong)(long)(n64 % divisor));
        return Ok;
    }
}
