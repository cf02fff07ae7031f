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

    /// <summary>
    /// Sets every arithmetic flag at once (CF, PF, AF, ZF, SF, OF) from <paramref name="flags"/>: the pending lazy
    /// flags are dropped, not computed, since nothing of them survives.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void ReplaceArithmeticFlags(ulong flags)
    {
        _state.Rflags = (_state.Rflags & ~X86CpuState.ArithmeticFlags) | (flags & X86CpuState.ArithmeticFlags);
        _flagOp = LazyOp.None;
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
        // Compares, subtractions, logic ops, adds and inc/dec set the flags most branches test: answer every condition
        // but parity from the recorded operands, without materializing RFLAGS.
        LazyOp kind = _flagOp;
        if (kind != LazyOp.None && kind != LazyOp.Adc && kind != LazyOp.Sbb && cc != 11 && cc != 12)
        {
            // Operands moved to the top of the register, so sign and unsigned order work at every size.
            int shift = 64 - _flagSize * 8;
            ulong r = _flagRes << shift;
            ulong d = _flagDst << shift;
            ulong s = _flagSrc << shift;
            bool lcf;
            bool lof;
            switch (kind)
            {
                case LazyOp.Sub:
                    lcf = d < s;
                    lof = (long)((d ^ s) & (d ^ r)) < 0;
                    break;
                case LazyOp.Add:
                    lcf = r < d;
                    lof = (long)((d ^ r) & (s ^ r)) < 0;
                    break;
                case LazyOp.Inc:
                    lcf = _flagCarryIn != 0;
                    lof = r == 1UL << 63;
                    break;
                case LazyOp.Dec:
                    lcf = _flagCarryIn != 0;
                    lof = d == 1UL << 63;
                    break;
                default:
                    lcf = false;
                    lof = false;
                    break;
            }
            bool lzf = r == 0;
            bool lsf = (long)r < 0;
            return cc switch
            {
                1 => lof,
                2 => !lof,
                3 => lcf,
                4 => !lcf,
                5 => lzf,
                6 => !lzf,
                7 => lcf || lzf,
                8 => !lcf && !lzf,
                9 => lsf,
                10 => !lsf,
                13 => lsf != lof,
                14 => lsf == lof,
                15 => lzf || lsf != lof,
                16 => !lzf && lsf == lof,
                _ => false,
            };
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
