using System.Runtime.CompilerServices;
using Colo.Core.Cpu;
using Iced.Intel;

namespace Colo.Cpu.Interpreter;

/// <summary>Memory helpers the x87 handlers need (odd-sized images: 10-byte reals, 14/28/94/108-byte environments).</summary>
public sealed unsafe partial class InterpreterVcpu
{
    /// <summary>Codes whose opcode is an x87 escape (D8–DF): their decoded op keeps FOP in <see cref="DecodedOp.Imm"/>.</summary>
    private static readonly bool[] X87Escape = BuildX87Escape();

    private static bool[] BuildX87Escape()
    {
        Code[] codes = Enum.GetValues<Code>();
        int max = 0;
        foreach (Code code in codes)
        {
            max = Math.Max(max, (int)code);
        }
        var table = new bool[max + 1];
        foreach (Code code in codes)
        {
            OpCodeInfo info = code.ToOpCode();
            // Register forms are listed with a two-byte opcode (D8 C0+i, D9 E8, …): the escape is the first byte.
            uint first = info.OpCodeLength == 2 ? info.OpCode >> 8 : info.OpCode;
            table[(int)code] = info.Encoding == EncodingKind.Legacy && info.Table == OpCodeTableKind.Normal && first is >= 0xD8 and <= 0xDF;
        }
        return table;
    }

    /// <summary>
    /// At decode time: an x87 instruction's FOP (bits 10:8 the low bits of the D8–DF byte, 7:0 the ModR/M byte), read
    /// from its bytes past any prefixes and kept in the op's otherwise unused immediate.
    /// </summary>
    private void CaptureX87Opcode(ref DecodedOp op)
    {
        if (!X87Escape[(int)op.Instr.Code])
        {
            return;
        }
        int end = _reader.Position;
        int i = end - op.Instr.Length;
        while (i < end - 1)
        {
            byte b = _reader.ByteAt(i);
            bool prefix = b is 0x26 or 0x2E or 0x36 or 0x3E or 0x64 or 0x65 or 0x66 or 0x67 or 0xF0 or 0xF2 or 0xF3
                || (Bitness == 64 && (b & 0xF0) == 0x40);
            if (!prefix)
            {
                break;
            }
            i++;
        }
        op.Imm = (ulong)(((_reader.ByteAt(i) & 7) << 8) | _reader.ByteAt(i + 1));
    }

    /// <summary>
    /// A non-control x87 instruction is executing: FOP, FIP (its offset, RIP in 64-bit mode) and, when it has a memory
    /// operand, FDP (the operand's offset) become the values FNSTENV/FNSAVE/FXSAVE store (SDM vol. 1 8.1.8–8.1.10).
    /// FCS/FDS are not kept (stored as zero, as with CPUID.7:EBX[13]).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void RecordX87Pointers(ref DecodedOp op)
    {
        Span<byte> fx = _state.Fx;
        Unsafe.As<byte, ushort>(ref fx[X86CpuState.FxFop]) = (ushort)op.Imm;
        Unsafe.As<byte, ulong>(ref fx[X86CpuState.FxFip]) = op.Ip;
        if (op.K0 == OperandKind.Mem || op.K1 == OperandKind.Mem)
        {
            Unsafe.As<byte, ulong>(ref fx[X86CpuState.FxFdp]) = EffectiveAddress(ref op);
        }
    }

    internal bool ProbeWritable(ulong linear) => ProbeWrite(linear);

    internal ulong WrapAddress(ulong linear) => WrapLinear(linear);

    /// <summary>Writes an even-length block after checking its first and last byte are writable, so a fault changes nothing.</summary>
    internal ExecStatus WriteBlockBytes(ulong linear, ReadOnlySpan<byte> bytes)
    {
        if (!ProbeWrite(linear) || !ProbeWrite(WrapLinear(linear + (ulong)bytes.Length - 1)))
        {
            return ExecStatus.Fault;
        }
        for (int i = 0; i < bytes.Length; i += 2)
        {
            ExecStatus s = WriteMem(WrapLinear(linear + (ulong)i), 2, (ulong)(bytes[i] | (bytes[i + 1] << 8)));
            if (s != ExecStatus.Continue)
            {
                return s;
            }
        }
        return ExecStatus.Continue;
    }
}
