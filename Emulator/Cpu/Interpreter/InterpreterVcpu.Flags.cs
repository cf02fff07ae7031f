using System.Numerics;
using System.Runtime.CompilerServices;
using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter;

/// <summary>The last flag-setting operation, kept instead of RFLAGS until a flag is read.</summary>
internal enum LazyOp : byte
{
    /// <summary>RFLAGS holds the arithmetic flags.</summary>
    None,
    Add,
    Adc,
    Sub,
    Sbb,
    Logic,
    Inc,
    Dec,
}

public sealed unsafe partial class InterpreterVcpu
{
    private LazyOp _flagOp;
    private byte _flagSize;
    private ulong _flagDst;
    private ulong _flagSrc;
    private ulong _flagRes;
    private ulong _flagCarryIn;

    /// <summary>Records a flag-setting ALU result; flags are computed only if something reads them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void SetLazyFlags(LazyOp op, int size, ulong dst, ulong src, ulong res)
    {
        _flagOp = op;
        _flagSize = (byte)size;
        _flagDst = dst;
        _flagSrc = src;
        _flagRes = res;
    }

    /// <summary>Like <see cref="SetLazyFlags"/> for ops that also need the incoming carry (ADC, SBB, INC/DEC's kept CF).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void SetLazyFlags(LazyOp op, int size, ulong dst, ulong src, ulong res, ulong carryIn)
    {
        _flagCarryIn = carryIn;
        SetLazyFlags(op, size, dst, src, res);
    }

    /// <summary>Folds pending lazy flags into RFLAGS and returns it.</summary>
    internal ulong MaterializeFlags()
    {
        if (_flagOp != LazyOp.None)
        {
            _state.Rflags = (_state.Rflags & ~X86CpuState.ArithmeticFlags) | ComputeLazyFlags();
            _flagOp = LazyOp.None;
        }
        return _state.Rflags;
    }

    /// <summary>Current carry flag as 0 or 1, computed alone so INC/DEC/ADC chains stay lazy.</summary>
    internal ulong Carry()
    {
        ulong m = SizeMask(_flagSize);
        return _flagOp switch
        {
            LazyOp.None => _state.Rflags & 1,
            LazyOp.Add => (_flagRes & m) < (_flagDst & m) ? 1UL : 0,
            LazyOp.Adc => (_flagCarryIn != 0 ? (_flagRes & m) <= (_flagDst & m) : (_flagRes & m) < (_flagDst & m)) ? 1UL : 0,
            LazyOp.Sub => (_flagDst & m) < (_flagSrc & m) ? 1UL : 0,
            LazyOp.Sbb => (_flagCarryIn != 0 ? (_flagDst & m) <= (_flagSrc & m) : (_flagDst & m) < (_flagSrc & m)) ? 1UL : 0,
            LazyOp.Inc or LazyOp.Dec => _flagCarryIn != 0 ? 1UL : 0,
            _ => 0,
        };
    }

    /// <summary>Replaces the flags in <paramref name="affected"/> with those of <paramref name="flags"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void SetFlags(ulong flags, ulong affected)
    {
        ulong f = MaterializeFlags();
        _state.Rflags = (f & ~affected) | (flags & affected);
    }

    /// <summary>SF, ZF and PF of a result of <paramref name="size"/> bytes.</summary>
    internal static ulong ResultFlags(ulong res, int size)
    {
        ulong mask = SizeMask(size);
        ulong sign = 1UL << (size * 8 - 1);
        res &= mask;
        ulong f = 0;
        if (res == 0)
        {
            f |= X86CpuState.FlagZf;
        }
        if ((res & sign) != 0)
        {
            f |= X86CpuState.FlagSf;
        }
        if ((BitOperations.PopCount(res & 0xFF) & 1) == 0)
        {
            f |= X86CpuState.FlagPf;
        }
        return f;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong SizeMask(int size) => size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    private ulong ComputeLazyFlags()
    {
        int size = _flagSize;
        ulong mask = SizeMask(size);
        ulong sign = 1UL << (size * 8 - 1);
        ulong d = _flagDst & mask;
        ulong s = _flagSrc & mask;
        ulong r = _flagRes & mask;
        ulong f = ResultFlags(r, size);
        bool cf;
        bool of;
        switch (_flagOp)
        {
            case LazyOp.Add:
                cf = r < d;
                of = ((d ^ r) & (s ^ r) & sign) != 0;
                break;
            case LazyOp.Adc:
                cf = _flagCarryIn != 0 ? r <= d : r < d;
                of = ((d ^ r) & (s ^ r) & sign) != 0;
                break;
            case LazyOp.Sub:
                cf = d < s;
                of = ((d ^ s) & (d ^ r) & sign) != 0;
                break;
            case LazyOp.Sbb:
                cf = _flagCarryIn != 0 ? d <= s : d < s;
                of = ((d ^ s) & (d ^ r) & sign) != 0;
                break;
            case LazyOp.Inc:
                cf = _flagCarryIn != 0;
                of = r == sign;
                break;
            case LazyOp.Dec:
                cf = _flagCarryIn != 0;
                of = d == sign;
                break;
            default:
                // Logic ops clear CF and OF; AF is undefined and reads as 0 here.
                return f;
        }
        if (cf)
        {
            f |= X86CpuState.FlagCf;
        }
        if (of)
        {
            f |= X86CpuState.FlagOf;
        }
        f |= (d ^ s ^ r) & X86CpuState.FlagAf;
        return f;
    }

    /// <summary>Evaluates an iced <c>ConditionCode</c> (1 = o … 16 = g).</summary>
    internal bool Condition(int cc)
    {
        // ZF and CF after SUB/CMP are what most branches test; answer them without materializing everything.
        if (_flagOp != LazyOp.None)
        {
            if (cc == 5 || cc == 6)
            {
                bool zf = (_flagRes & SizeMask(_flagSize)) == 0;
                return cc == 5 ? zf : !zf;
            }
            if ((cc == 3 || cc == 4) && _flagOp == LazyOp.Sub)
            {
                ulong m = SizeMask(_flagSize);
                bool cf = (_flagDst & m) < (_flagSrc & m);
                return cc == 3 ? cf : !cf;
            }
        }
        ulong f = MaterializeFlags();
        bool sf = (f & X86CpuState.FlagSf) != 0;
        bool of = (f & X86CpuState.FlagOf) != 0;
        bool zfl = (f & X86CpuState.FlagZf) != 0;
        bool cfl = (f & X86CpuState.FlagCf) != 0;
        return cc switch
        {
            1 => of,
            2 => !of,
            3 => cfl,
            4 => !cfl,
            5 => zfl,
            6 => !zfl,
            7 => cfl || zfl,
            8 => !cfl && !zfl,
            9 => sf,
            10 => !sf,
            11 => (f & X86CpuState.FlagPf) != 0,
            12 => (f & X86CpuState.FlagPf) == 0,
            13 => sf != of,
            14 => sf == of,
            15 => zfl || sf != of,
            16 => !zfl && sf == of,
            _ => false,
        };
    }
}
