using System.Runtime.CompilerServices;
using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter;

/// <summary>
/// Segment limit and type checks on data accesses outside 64-bit code (SDM vol. 3 5.3, 5.4; APM vol. 2 4.7, 4.8).
/// Each segment register's offset window and rights are precomputed whenever segments or the mode change; a bit of
/// <see cref="_segCheckMask"/> is set only for segments that are not flat read/write 4 GiB ones (real mode's 64 KiB
/// limit, expand-down, read-only, code, null), so flat protected-mode code pays one mask test per access.
/// </summary>
public sealed unsafe partial class InterpreterVcpu
{
    private const byte SegRead = 1;
    private const byte SegWrite = 2;

    // Bit i: accesses through segment register i (SegmentIndex order) go through CheckSegment. Bit 31 is never set,
    // so the "no segment" index NoReg (0xFF, shift count 31) never asks for a check.
    private uint _segCheckMask;
    private readonly ulong[] _segLow = new ulong[6];
    private readonly ulong[] _segHigh = new ulong[6];
    private readonly byte[] _segRights = new byte[6];

    /// <summary>
    /// Set by a non-canonical address seen in <see cref="Translate"/>: delivery turns that #GP(0) into #SS(0) when the
    /// faulting instruction's memory operand is SS-based (push/pop turn it themselves).
    /// </summary>
    private bool _nonCanonicalFault;

    /// <summary>Recomputes the per-segment windows after a segment register, CR0.PE or the code size changed.</summary>
    internal void UpdateSegmentChecks()
    {
        uint mask = 0;
        if (Bitness != 64)
        {
            // Real mode checks limits only (the cached limit: 64 KiB, or what unreal mode left); protected mode also
            // checks types. Virtual-8086 mode is not modelled.
            bool pm = (_state.Cr0 & X86CpuState.Cr0Pe) != 0;
            for (int i = 0; i < 6; i++)
            {
                ref SegmentRegister s = ref _state.Segments[i];
                ulong low = 0;
                ulong high = s.Limit;
                byte rights = SegRead | SegWrite;
                if (pm)
                {
                    ushort a = s.Attributes;
                    if ((a & SegmentRegister.S) == 0 || (a & SegmentRegister.P) == 0)
                    {
                        rights = 0; // null (unusable) selector
                    }
                    else if ((a & 8) != 0)
                    {
                        rights = (a & 2) != 0 ? SegRead : (byte)0; // code: never writable, readable if R
                    }
                    else
                    {
                        rights = (a & 2) != 0 ? (byte)(SegRead | SegWrite) : SegRead;
                        if ((a & 4) != 0)
                        {
                            // Expand-down: valid offsets lie above the limit, up to 64 KiB or 4 GiB by the B bit.
                            low = (ulong)s.Limit + 1;
                            high = (a & SegmentRegister.DB) != 0 ? 0xFFFF_FFFF : 0xFFFF;
                        }
                    }
                }
                _segLow[i] = low;
                _segHigh[i] = high;
                _segRights[i] = rights;
                if (rights != (SegRead | SegWrite) || low != 0 || high != 0xFFFF_FFFF)
                {
                    mask |= 1u << i;
                }
            }
        }
        _segCheckMask = mask;
    }

    /// <summary>True when accesses through <paramref name="seg"/> (or <see cref="DecodedOp.NoReg"/>) need checking.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool SegmentNeedsCheck(int seg) => ((_segCheckMask >> seg) & 1) != 0;

    /// <summary>
    /// Checks an access of <paramref name="size"/> bytes at <paramref name="offset"/> through segment
    /// <paramref name="seg"/>: #GP(0), or #SS(0) for a limit violation through SS, as the SDM lists for every
    /// instruction ("outside the segment limit", "non-writable segment", "NULL segment selector").
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal ExecStatus CheckSegment(int seg, ulong offset, int size, int access)
    {
        byte rights = _segRights[seg];
        byte need = access == AccessWrite ? SegWrite : SegRead;
        if ((rights & need) == 0)
        {
            return Raise(Vector.GP, 0);
        }
        if (offset < _segLow[seg] || offset + (ulong)size - 1 > _segHigh[seg])
        {
            return Raise(seg == (int)SegmentIndex.Ss ? Vector.SS : Vector.GP, 0);
        }
        return ExecStatus.Continue;
    }

    /// <summary>Linear address of the op's memory operand after the segment checks for <paramref name="size"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ExecStatus OperandLinear(ref DecodedOp op, int size, int access, out ulong linear)
    {
        if (((_segCheckMask >> op.Seg) & 1) != 0)
        {
            return OperandLinearChecked(ref op, size, access, out linear);
        }
        linear = LinearAddress(ref op);
        return ExecStatus.Continue;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ExecStatus OperandLinearChecked(ref DecodedOp op, int size, int access, out ulong linear)
    {
        ulong ea = EffectiveAddress(ref op);
        linear = SegmentLinear(op.Seg, ea);
        return CheckSegment(op.Seg, ea, size, access);
    }

    /// <summary>Reads the op's memory operand (segment checks included).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ExecStatus ReadMemOp(ref DecodedOp op, int size, out ulong value)
    {
        if (((_segCheckMask >> op.Seg) & 1) != 0)
        {
            return ReadMemOpChecked(ref op, size, out value);
        }
        return ReadMem(LinearAddress(ref op), size, out value);
    }

    /// <summary>Writes the op's memory operand (segment checks included).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ExecStatus WriteMemOp(ref DecodedOp op, int size, ulong value)
    {
        if (((_segCheckMask >> op.Seg) & 1) != 0)
        {
            return WriteMemOpChecked(ref op, size, value);
        }
        return WriteMem(LinearAddress(ref op), size, value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ExecStatus ReadMemOpChecked(ref DecodedOp op, int size, out ulong value)
    {
        ExecStatus s = OperandLinearChecked(ref op, size, AccessRead, out ulong linear);
        if (s != ExecStatus.Continue)
        {
            value = 0;
            return s;
        }
        return ReadMem(linear, size, out value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ExecStatus WriteMemOpChecked(ref DecodedOp op, int size, ulong value)
    {
        ExecStatus s = OperandLinearChecked(ref op, size, AccessWrite, out ulong linear);
        return s != ExecStatus.Continue ? s : WriteMem(linear, size, value);
    }

    /// <summary>Reads <paramref name="size"/> bytes at SS:<paramref name="offset"/> (ENTER's frame-pointer copies), checked.</summary>
    internal ExecStatus ReadStack(ulong offset, int size, out ulong value)
    {
        if ((_segCheckMask & (1u << (int)SegmentIndex.Ss)) != 0)
        {
            ExecStatus c = CheckSegment((int)SegmentIndex.Ss, offset, size, AccessRead);
            if (c != ExecStatus.Continue)
            {
                value = 0;
                return c;
            }
        }
        return ReadMem(Bitness == 64 ? offset : SegmentLinear((int)SegmentIndex.Ss, offset), size, out value);
    }

    /// <summary>ENTER's check that the new stack top lies within SS.</summary>
    internal ExecStatus CheckStackTop(ulong offset) =>
        (_segCheckMask & (1u << (int)SegmentIndex.Ss)) != 0 ? CheckSegment((int)SegmentIndex.Ss, offset, 1, AccessRead) : ExecStatus.Continue;

    /// <summary>
    /// A 64-bit push/pop (or SS-based operand) whose address is not canonical raises #SS(0), not #GP(0)
    /// (SDM vol. 3 6.15, "Interrupt 12"). Called only on the fault path.
    /// </summary>
    private ExecStatus StackFault64(ulong linear)
    {
        if (_state.ExceptionVector == Vector.GP && (ulong)(((long)linear << 16) >> 16) != linear)
        {
            _nonCanonicalFault = false;
            return Raise(Vector.SS, 0);
        }
        return ExecStatus.Fault;
    }

    /// <summary>
    /// At delivery: a #GP(0) from a non-canonical address becomes #SS(0) when the faulting instruction's memory operand
    /// is SS-based (RSP/RBP base). The instruction is found in the current block by its address; only the fault path pays.
    /// </summary>
    private void FixNonCanonicalStackFault()
    {
        _nonCanonicalFault = false;
        if (_state.ExceptionVector != Vector.GP || _state.ExceptionErrorCode != 0 || Bitness != 64)
        {
            return;
        }
        int end = Math.Min(_currentBlockStart + MaxBlockOps, _pool.Length);
        for (int i = _currentBlockStart; i < end; i++)
        {
            ref DecodedOp op = ref _pool[i];
            if (op.Ip != _state.Rip)
            {
                continue;
            }
            ref Iced.Intel.Instruction ins = ref op.Instr;
            for (int k = 0; k < ins.OpCount; k++)
            {
                if (ins.GetOpKind(k) == Iced.Intel.OpKind.Memory && ins.MemorySegment == Iced.Intel.Register.SS)
                {
                    Raise(Vector.SS, 0);
                    return;
                }
            }
            return;
        }
    }
}
