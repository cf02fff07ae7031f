using System.Runtime.CompilerServices;
using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>
/// LOCK-prefixed read-modify-writes, and XCHG with memory (always locked), made atomic across vCPU threads: the new
/// value is computed from the old one and stored with a host compare-and-swap, retried when another vCPU wrote in
/// between. A plain store by another vCPU (a spin_unlock) can therefore never be overwritten by a concurrent locked
/// operation that read the value before it. Operands in MMIO or straddling a page take the plain handler: no other
/// agent contends for them in practice.
/// </summary>
internal static unsafe class Locked
{
    private const ExecStatus Ok = ExecStatus.Continue;

    /// <summary>One locked arithmetic/logic operation: its result, its flags, and the plain handler for non-RAM operands.</summary>
    internal interface IRmw
    {
        static abstract ulong Apply(ulong old, ulong src, ulong carry);

        static abstract void Flags(InterpreterVcpu c, int size, ulong old, ulong src, ulong result, ulong carry);

        static abstract ExecStatus Plain(InterpreterVcpu c, ref DecodedOp op);
    }

    internal struct AddOp : IRmw
    {
        public static ulong Apply(ulong old, ulong src, ulong carry) => old + src;
        public static void Flags(InterpreterVcpu c, int size, ulong old, ulong src, ulong result, ulong carry) => c.SetLazyFlags(LazyOp.Add, size, old, src, result);
        public static ExecStatus Plain(InterpreterVcpu c, ref DecodedOp op) => Alu.Add(c, ref op);
    }

    internal struct AdcOp : IRmw
    {
        public static ulong Apply(ulong old, ulong src, ulong carry) => old + src + carry;
        public static void Flags(InterpreterVcpu c, int size, ulong old, ulong src, ulong result, ulong carry) => c.SetLazyFlags(LazyOp.Adc, size, old, src, result, carry);
        public static ExecStatus Plain(InterpreterVcpu c, ref DecodedOp op) => Alu.Adc(c, ref op);
    }

    internal struct SubOp : IRmw
    {
        public static ulong Apply(ulong old, ulong src, ulong carry) => old - src;
        public static void Flags(InterpreterVcpu c, int size, ulong old, ulong src, ulong result, ulong carry) => c.SetLazyFlags(LazyOp.Sub, size, old, src, result);
        public static ExecStatus Plain(InterpreterVcpu c, ref DecodedOp op) => Alu.Sub(c, ref op);
    }

    internal struct SbbOp : IRmw
    {
        public static ulong Apply(ulong old, ulong src, ulong carry) => old - src - carry;
        public static void Flags(InterpreterVcpu c, int size, ulong old, ulong src, ulong result, ulong carry) => c.SetLazyFlags(LazyOp.Sbb, size, old, src, result, carry);
        public static ExecStatus Plain(InterpreterVcpu c, ref DecodedOp op) => Alu.Sbb(c, ref op);
    }

    internal struct AndOp : IRmw
    {
        public static ulong Apply(ulong old, ulong src, ulong carry) => old & src;
        public static void Flags(InterpreterVcpu c, int size, ulong old, ulong src, ulong result, ulong carry) => c.SetLazyFlags(LazyOp.Logic, size, old, src, result);
        public static ExecStatus Plain(InterpreterVcpu c, ref DecodedOp op) => Alu.And(c, ref op);
    }

    internal struct OrOp : IRmw
    {
        public static ulong Apply(ulong old, ulong src, ulong carry) => old | src;
        public static void Flags(InterpreterVcpu c, int size, ulong old, ulong src, ulong result, ulong carry) => c.SetLazyFlags(LazyOp.Logic, size, old, src, result);
        public static ExecStatus Plain(InterpreterVcpu c, ref DecodedOp op) => Alu.Or(c, ref op);
    }

    internal struct XorOp : IRmw
    {
        public static ulong Apply(ulong old, ulong src, ulong carry) => old ^ src;
        public static void Flags(InterpreterVcpu c, int size, ulong old, ulong src, ulong result, ulong carry) => c.SetLazyFlags(LazyOp.Logic, size, old, src, result);
        public static ExecStatus Plain(InterpreterVcpu c, ref DecodedOp op) => Alu.Xor(c, ref op);
    }

    internal struct IncOp : IRmw
    {
        public static ulong Apply(ulong old, ulong src, ulong carry) => old + 1;
        public static void Flags(InterpreterVcpu c, int size, ulong old, ulong src, ulong result, ulong carry) => c.SetLazyFlags(LazyOp.Inc, size, old, 1, result, carry);
        public static ExecStatus Plain(InterpreterVcpu c, ref DecodedOp op) => Alu.Inc(c, ref op);
    }

    internal struct DecOp : IRmw
    {
        public static ulong Apply(ulong old, ulong src, ulong carry) => old - 1;
        public static void Flags(InterpreterVcpu c, int size, ulong old, ulong src, ulong result, ulong carry) => c.SetLazyFlags(LazyOp.Dec, size, old, 1, result, carry);
        public static ExecStatus Plain(InterpreterVcpu c, ref DecodedOp op) => Alu.Dec(c, ref op);
    }

    internal struct NegOp : IRmw
    {
        public static ulong Apply(ulong old, ulong src, ulong carry) => 0 - old;
        public static void Flags(InterpreterVcpu c, int size, ulong old, ulong src, ulong result, ulong carry) => c.SetLazyFlags(LazyOp.Sub, size, 0, old, result);
        public static ExecStatus Plain(InterpreterVcpu c, ref DecodedOp op) => Alu.Neg(c, ref op);
    }

    internal struct NotOp : IRmw
    {
        public static ulong Apply(ulong old, ulong src, ulong carry) => ~old;
        public static void Flags(InterpreterVcpu c, int size, ulong old, ulong src, ulong result, ulong carry) { }
        public static ExecStatus Plain(InterpreterVcpu c, ref DecodedOp op) => Alu.Not(c, ref op);
    }

    /// <summary>The locked handler for an instruction whose plain handler is known, or null when LOCK does not apply.</summary>
    public static delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> For(Iced.Intel.Mnemonic mnemonic) => mnemonic switch
    {
        Iced.Intel.Mnemonic.Add => &Rmw<AddOp>,
        Iced.Intel.Mnemonic.Adc => &Rmw<AdcOp>,
        Iced.Intel.Mnemonic.Sub => &Rmw<SubOp>,
        Iced.Intel.Mnemonic.Sbb => &Rmw<SbbOp>,
        Iced.Intel.Mnemonic.And => &Rmw<AndOp>,
        Iced.Intel.Mnemonic.Or => &Rmw<OrOp>,
        Iced.Intel.Mnemonic.Xor => &Rmw<XorOp>,
        Iced.Intel.Mnemonic.Inc => &Rmw<IncOp>,
        Iced.Intel.Mnemonic.Dec => &Rmw<DecOp>,
        Iced.Intel.Mnemonic.Neg => &Rmw<NegOp>,
        Iced.Intel.Mnemonic.Not => &Rmw<NotOp>,
        Iced.Intel.Mnemonic.Xchg => &Xchg,
        Iced.Intel.Mnemonic.Cmpxchg => &Cmpxchg,
        Iced.Intel.Mnemonic.Xadd => &Xadd,
        Iced.Intel.Mnemonic.Bts => &Bts,
        Iced.Intel.Mnemonic.Btr => &Btr,
        Iced.Intel.Mnemonic.Btc => &Btc,
        Iced.Intel.Mnemonic.Cmpxchg8b => &Cmpxchg8b,
        Iced.Intel.Mnemonic.Cmpxchg16b => &Cmpxchg16b,
        _ => null,
    };

    public static ExecStatus Rmw<T>(InterpreterVcpu c, ref DecodedOp op)
        where T : struct, IRmw
    {
        int size = op.Size;
        ExecStatus s = c.OperandLinear(ref op, size, InterpreterVcpu.AccessWrite, out ulong linear);
        byte* p = null;
        if (s == Ok)
        {
            s = c.LockedTarget(linear, size, out p);
        }
        if (s != Ok)
        {
            return s;
        }
        if (p == null)
        {
            return T.Plain(c, ref op);
        }
        ulong src = op.K1 == OperandKind.Imm ? op.Imm : op.K1 == OperandKind.Reg ? c.GetReg(op.R1, size) : 0;
        ulong carry = c.Carry();
        ulong result = Update<T>(p, size, src, carry, out ulong old);
        T.Flags(c, size, old, src, result, carry);
        return Ok;
    }

    /// <summary>Applies <typeparamref name="T"/> to the operand atomically: recomputed and retried until no other vCPU wrote in between.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Update<T>(byte* p, int size, ulong src, ulong carry, out ulong old)
        where T : struct, IRmw
    {
        ulong result;
        do
        {
            old = Load(p, size);
            result = T.Apply(old, src, carry);
        }
        while (CompareExchange(p, size, result, old) != old);
        return result;
    }

    public static ExecStatus Xchg(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.Size;
        ExecStatus s = c.OperandLinear(ref op, size, InterpreterVcpu.AccessWrite, out ulong linear);
        byte* p = null;
        if (s == Ok)
        {
            s = c.LockedTarget(linear, size, out p);
        }
        if (s != Ok)
        {
            return s;
        }
        if (p == null)
        {
            return Alu.Xchg(c, ref op);
        }
        ulong value = c.GetReg(op.R1, size);
        ulong old = size switch
        {
            1 => Interlocked.Exchange(ref *p, (byte)value),
            2 => Interlocked.Exchange(ref *(ushort*)p, (ushort)value),
            4 => Interlocked.Exchange(ref *(uint*)p, (uint)value),
            _ => Interlocked.Exchange(ref *(ulong*)p, value),
        };
        c.SetReg(op.R1, size, old);
        return Ok;
    }

    public static ExecStatus Cmpxchg(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.Size;
        ExecStatus s = c.OperandLinear(ref op, size, InterpreterVcpu.AccessWrite, out ulong linear);
        byte* p = null;
        if (s == Ok)
        {
            s = c.LockedTarget(linear, size, out p);
        }
        if (s != Ok)
        {
            return s;
        }
        if (p == null)
        {
            return Alu.Cmpxchg(c, ref op);
        }
        ulong acc = c.GetReg(0, size);
        ulong old = CompareExchange(p, size, c.GetReg(op.R1, size), acc);
        if (old != acc)
        {
            c.SetReg(0, size, old);
        }
        c.SetLazyFlags(LazyOp.Sub, size, acc, old, acc - old);
        return Ok;
    }

    public static ExecStatus Xadd(InterpreterVcpu c, ref DecodedOp op)
    {
        int size = op.Size;
        ExecStatus s = c.OperandLinear(ref op, size, InterpreterVcpu.AccessWrite, out ulong linear);
        byte* p = null;
        if (s == Ok)
        {
            s = c.LockedTarget(linear, size, out p);
        }
        if (s != Ok)
        {
            return s;
        }
        if (p == null)
        {
            return Alu.Xadd(c, ref op);
        }
        ulong src = c.GetReg(op.R1, size);
        ulong sum = Update<AddOp>(p, size, src, 0, out ulong old);
        c.SetReg(op.R1, size, old);
        c.SetLazyFlags(LazyOp.Add, size, old, src, sum);
        return Ok;
    }

    public static ExecStatus Bts(InterpreterVcpu c, ref DecodedOp op) => BitOp(c, ref op, 1);

    public static ExecStatus Btr(InterpreterVcpu c, ref DecodedOp op) => BitOp(c, ref op, 2);

    public static ExecStatus Btc(InterpreterVcpu c, ref DecodedOp op) => BitOp(c, ref op, 3);

    private static ExecStatus BitOp(InterpreterVcpu c, ref DecodedOp op, int kind)
    {
        int size = op.Size;
        ExecStatus s = Alu.BitOperandAddress(c, ref op, InterpreterVcpu.AccessWrite, out ulong linear, out int bit);
        byte* p = null;
        if (s == Ok)
        {
            s = c.LockedTarget(linear, size, out p);
        }
        if (s != Ok)
        {
            return s;
        }
        if (p == null)
        {
            return kind switch
            {
                1 => Alu.Bts(c, ref op),
                2 => Alu.Btr(c, ref op),
                _ => Alu.Btc(c, ref op),
            };
        }
        ulong mask = 1UL << bit;
        ulong old;
        _ = kind switch
        {
            1 => Update<OrOp>(p, size, mask, 0, out old),
            2 => Update<AndOp>(p, size, ~mask, 0, out old),
            _ => Update<XorOp>(p, size, mask, 0, out old),
        };
        c.SetFlags((old & mask) != 0 ? X86CpuState.FlagCf : 0, X86CpuState.FlagCf);
        return Ok;
    }

    public static ExecStatus Cmpxchg8b(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.OperandLinear(ref op, 8, InterpreterVcpu.AccessWrite, out ulong linear);
        byte* p = null;
        if (s == Ok)
        {
            s = c.LockedTarget(linear, 8, out p);
        }
        if (s != Ok)
        {
            return s;
        }
        if (p == null)
        {
            return Alu.Cmpxchg8b(c, ref op);
        }
        ulong expected = (c.GetReg(2, 4) << 32) | c.GetReg(0, 4);
        ulong desired = (c.GetReg(1, 4) << 32) | c.GetReg(3, 4);
        ulong old = Interlocked.CompareExchange(ref *(ulong*)p, desired, expected);
        if (old == expected)
        {
            c.SetFlags(X86CpuState.FlagZf, X86CpuState.FlagZf);
            return Ok;
        }
        c.SetReg(0, 4, old);
        c.SetReg(2, 4, old >> 32);
        c.SetFlags(0, X86CpuState.FlagZf);
        return Ok;
    }

    // .NET has no 16-byte compare-and-swap: locked CMPXCHG16Bs of all vCPUs are serialized by one host lock. Linux
    // uses it only on words every CPU updates with CMPXCHG16B itself (SLUB's freelist and counters).
    private static readonly Lock Wide = new();

    public static ExecStatus Cmpxchg16b(InterpreterVcpu c, ref DecodedOp op)
    {
        lock (Wide)
        {
            return Alu.Cmpxchg16b(c, ref op);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Load(byte* p, int size) => size switch
    {
        1 => Volatile.Read(ref *p),
        2 => Volatile.Read(ref *(ushort*)p),
        4 => Volatile.Read(ref *(uint*)p),
        _ => Volatile.Read(ref *(ulong*)p),
    };

    /// <summary>Stores <paramref name="value"/> if memory still holds <paramref name="expected"/>; returns what it held.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong CompareExchange(byte* p, int size, ulong value, ulong expected) => size switch
    {
        1 => Interlocked.CompareExchange(ref *p, (byte)value, (byte)expected),
        2 => Interlocked.CompareExchange(ref *(ushort*)p, (ushort)value, (ushort)expected),
        4 => Interlocked.CompareExchange(ref *(uint*)p, (uint)value, (uint)expected),
        _ => Interlocked.CompareExchange(ref *(ulong*)p, value, expected),
    };
}
