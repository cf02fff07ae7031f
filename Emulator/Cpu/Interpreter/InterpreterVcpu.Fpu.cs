using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter;

/// <summary>x87/SSE availability checks and 128-bit operand access for the SSE and x87 handlers.</summary>
public sealed unsafe partial class InterpreterVcpu
{
    /// <summary>
    /// Whether SSE instructions are enabled; otherwise <see cref="SseFault"/> gives the exception: #UD when CR0.EM is
    /// set or CR4.OSFXSR clear (checked first, as hardware does), else #NM for CR0.TS.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool SseOff() => ((_state.Cr0 & (X86CpuState.Cr0Em | X86CpuState.Cr0Ts)) | (~_state.Cr4 & X86CpuState.Cr4Osfxsr)) != 0;

    internal ExecStatus SseFault()
    {
        if ((_state.Cr0 & X86CpuState.Cr0Em) != 0 || (_state.Cr4 & X86CpuState.Cr4Osfxsr) == 0)
        {
            return Raise(Vector.UD);
        }
        return Raise(Vector.NM);
    }

    /// <summary>x87 instructions (and FXSAVE/FXRSTOR) raise #NM when CR0.EM or CR0.TS is set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool FpuOff() => (_state.Cr0 & (X86CpuState.Cr0Em | X86CpuState.Cr0Ts)) != 0;

    /// <summary>XMM register by op register index (<see cref="DecodedOp.XmmBase"/> + n).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ref Vector128<byte> Xmm(int reg) => ref Unsafe.As<byte, Vector128<byte>>(ref _state.Fx[X86CpuState.FxXmm0 + ((reg - DecodedOp.XmmBase) << 4)]);

    /// <summary>
    /// Reads a 128-bit operand (XMM register or memory). <paramref name="aligned"/> memory operands that are not
    /// 16-byte aligned raise #GP(0), as legacy-encoded SSE requires for every m128 except the explicitly unaligned forms.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ExecStatus ReadVec(ref DecodedOp op, byte kind, byte reg, bool aligned, out Vector128<byte> value)
    {
        if (kind == OperandKind.Reg)
        {
            value = Xmm(reg);
            return ExecStatus.Continue;
        }
        ExecStatus s = OperandLinear(ref op, 16, AccessRead, out ulong linear);
        if (s != ExecStatus.Continue)
        {
            value = default;
            return s;
        }
        return ReadMem128(linear, aligned, out value);
    }

    internal ExecStatus ReadMem128(ulong linear, bool aligned, out Vector128<byte> value)
    {
        value = default;
        if (aligned && (linear & 15) != 0)
        {
            return Raise(Vector.GP, 0);
        }
        ExecStatus s = ReadMem(linear, 8, out ulong lo);
        if (s != ExecStatus.Continue)
        {
            return s;
        }
        s = ReadMem(WrapLinear(linear + 8), 8, out ulong hi);
        if (s != ExecStatus.Continue)
        {
            return s;
        }
        value = Vector128.Create(lo, hi).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>Writes 16 bytes; both pages are checked before the first byte changes, so a fault leaves memory intact.</summary>
    internal ExecStatus WriteMem128(ulong linear, bool aligned, Vector128<byte> value)
    {
        if (aligned && (linear & 15) != 0)
        {
            return Raise(Vector.GP, 0);
        }
        ulong last = WrapLinear(linear + 15);
        if (((linear ^ last) & ~(ulong)PageMask) != 0 && (!ProbeWrite(linear) || !ProbeWrite(last)))
        {
            return ExecStatus.Fault;
        }
        ExecStatus s = WriteMem(linear, 8, value.AsUInt64().GetElement(0));
        return s != ExecStatus.Continue ? s : WriteMem(WrapLinear(linear + 8), 8, value.AsUInt64().GetElement(1));
    }

    /// <summary>Writes a 128-bit result to an XMM register or (for stores) memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ExecStatus WriteVec(ref DecodedOp op, byte kind, byte reg, bool aligned, Vector128<byte> value)
    {
        if (kind == OperandKind.Reg)
        {
            Xmm(reg) = value;
            return ExecStatus.Continue;
        }
        ExecStatus s = OperandLinear(ref op, 16, AccessWrite, out ulong linear);
        return s != ExecStatus.Continue ? s : WriteMem128(linear, aligned, value);
    }

    /// <summary>Writes a block of bytes (FXSAVE image) after checking the first and last byte are writable.</summary>
    internal ExecStatus WriteBlock(ulong linear, ReadOnlySpan<byte> bytes)
    {
        if (!ProbeWrite(linear) || !ProbeWrite(WrapLinear(linear + (ulong)bytes.Length - 1)))
        {
            return ExecStatus.Fault;
        }
        for (int i = 0; i < bytes.Length; i += 8)
        {
            ExecStatus s = WriteMem(WrapLinear(linear + (ulong)i), 8, Unsafe.ReadUnaligned<ulong>(in bytes[i]));
            if (s != ExecStatus.Continue)
            {
                return s;
            }
        }
        return ExecStatus.Continue;
    }

    /// <summary>Reads a block of bytes (FXRSTOR image); nothing in the state changes on a fault.</summary>
    internal ExecStatus ReadBlock(ulong linear, Span<byte> bytes)
    {
        for (int i = 0; i < bytes.Length; i += 8)
        {
            ExecStatus s = ReadMem(WrapLinear(linear + (ulong)i), 8, out ulong v);
            if (s != ExecStatus.Continue)
            {
                return s;
            }
            Unsafe.WriteUnaligned(ref bytes[i], v);
        }
        return ExecStatus.Continue;
    }
}
