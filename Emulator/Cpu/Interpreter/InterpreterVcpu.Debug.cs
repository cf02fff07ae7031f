using System.Runtime.CompilerServices;
using Colo.Core.Cpu;
using Iced.Intel;

namespace Colo.Cpu.Interpreter;

/// <summary>
/// Single-stepping (RFLAGS.TF) and DR0–DR3/DR7 breakpoints (SDM vol. 3 ch. 17). Nothing here runs unless a debug
/// feature is armed: the run loop tests <see cref="DebugArmed"/> once per block and then steps one instruction at a
/// time through <see cref="StepDebug"/>, which checks instruction breakpoints before the instruction (a fault,
/// suppressed by RF) and reports single-step and data breakpoints after it (a trap, with DR6.BS / B0–B3).
/// Data breakpoints match the memory operands iced lists for the instruction (explicit operands, the stack, string
/// elements of the first iteration), evaluated before it runs.
/// </summary>
public sealed unsafe partial class InterpreterVcpu
{
    private const ulong FlagRf = 1UL << 16;
    private const ulong Dr6Bs = 1UL << 14;

    private InstructionInfoFactory? _infoFactory;
    private VATryGetRegisterValue? _vaRegister;

    // Data-breakpoint hits of a MOV SS / POP SS, whose debug traps wait until after the next instruction.
    private ulong _deferredDr6;

    /// <summary>True when single-stepping or a DR7 breakpoint is enabled (L0–L3/G0–G3), or a trap was deferred.</summary>
    internal bool DebugArmed
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ((_state.Rflags & X86CpuState.FlagTf) | (_state.Dr7 & 0xFF) | _deferredDr6) != 0;
    }

    /// <summary>Runs the first instruction of the block at <paramref name="start"/> with the debug checks around it.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ExecStatus StepDebug(int start, out int executed)
    {
        executed = 0;
        ref DecodedOp op = ref _pool[start];
        ulong rflags = _state.Rflags;
        ulong dr7 = _state.Dr7;
        ulong linearRip = Bitness == 64 ? _state.Rip : (uint)(_state.Segments[(int)SegmentIndex.Cs].Base + _state.Rip);
        if ((dr7 & 0xFF) != 0 && (rflags & FlagRf) == 0)
        {
            ulong hits = MatchBreakpoints(dr7, linearRip, 1, BreakExec);
            if (hits != 0)
            {
                // A fault: reported at the instruction, which has not run.
                _state.Dr6 = (_state.Dr6 & ~0xFUL) | hits;
                return Raise(Vector.DB);
            }
        }
        ulong dataHits = (dr7 & 0xFF) != 0 ? DataBreakpointHits(ref op.Instr, dr7) : 0;
        ExecStatus s = ExecuteBlock(start, 1, out executed);
        if (s is not (ExecStatus.Continue or ExecStatus.Branch))
        {
            // A faulting instruction did not complete: no trap (the fault's delivery clears TF).
            return s;
        }
        Mnemonic m = op.Instr.Mnemonic;
        if ((rflags & FlagRf) != 0 && m is not (Mnemonic.Iret or Mnemonic.Iretd or Mnemonic.Iretq))
        {
            // RF lasts for one completed instruction (an IRET may load it for the next one).
            _state.Rflags &= ~FlagRf;
        }
        ulong dr6 = dataHits | _deferredDr6;
        _deferredDr6 = 0;
        // TF as it was before the instruction counts (a POPF that sets it traps only after the next one). Software
        // interrupts clear TF on the way into their handler and raise no single-step trap (SDM 17.3.1.4).
        bool softwareInterrupt = m is Mnemonic.Int or Mnemonic.Int3 or Mnemonic.Into or Mnemonic.Int1;
        if ((rflags & X86CpuState.FlagTf) != 0 && !softwareInterrupt)
        {
            dr6 |= Dr6Bs;
        }
        if (dr6 == 0)
        {
            return s;
        }
        if (IsStackSegmentLoad(ref op.Instr))
        {
            // MOV SS / POP SS hold debug traps off until after the next instruction; its TF trap reports BS then.
            _deferredDr6 = dr6 & ~Dr6Bs;
            return s;
        }
        _state.Dr6 = (dr6 & 0xF) != 0 ? (_state.Dr6 & ~0xFUL) | dr6 : _state.Dr6 | dr6;
        // A trap: RIP already points past the instruction (or at a branch's target).
        return Raise(Vector.DB);
    }

    private static bool IsStackSegmentLoad(ref Instruction ins) =>
        ins.Mnemonic is Mnemonic.Mov or Mnemonic.Pop && ins.Op0Kind == OpKind.Register && ins.Op0Register == Register.SS;

    private const int BreakExec = 0;
    private const int BreakWrite = 1;
    private const int BreakRead = 3;

    /// <summary>
    /// DR6 B0–B3 bits of the enabled breakpoints an access of <paramref name="size"/> bytes at
    /// <paramref name="linear"/> hits. R/W 00 is execution (exact address), 01 writes, 11 reads or writes; 10 (I/O
    /// with CR4.DE) is not modelled. LEN 00/01/11/10 cover 1/2/4/8 bytes at the aligned address.
    /// </summary>
    private ulong MatchBreakpoints(ulong dr7, ulong linear, int size, int kind)
    {
        ulong hits = 0;
        for (int i = 0; i < 4; i++)
        {
            if (((dr7 >> (2 * i)) & 3) == 0)
            {
                continue;
            }
            int rw = (int)(dr7 >> (16 + 4 * i)) & 3;
            int lenField = (int)(dr7 >> (18 + 4 * i)) & 3;
            ulong address = i switch { 0 => _state.Dr0, 1 => _state.Dr1, 2 => _state.Dr2, _ => _state.Dr3 };
            if (kind == BreakExec)
            {
                if (rw == 0 && address == linear)
                {
                    hits |= 1UL << i;
                }
                continue;
            }
            bool matches = rw == 3 || (rw == 1 && kind == BreakWrite);
            if (!matches)
            {
                continue;
            }
            ulong len = lenField switch { 0 => 1UL, 1 => 2UL, 3 => 4UL, _ => 8UL };
            address &= ~(len - 1);
            if (linear < address + len && address < linear + (ulong)size)
            {
                hits |= 1UL << i;
            }
        }
        return hits;
    }

    /// <summary>The data breakpoints the instruction's memory accesses (as iced lists them) will hit.</summary>
    private ulong DataBreakpointHits(ref Instruction ins, ulong dr7)
    {
        bool anyData = false;
        for (int i = 0; i < 4; i++)
        {
            anyData |= ((dr7 >> (2 * i)) & 3) != 0 && ((dr7 >> (16 + 4 * i)) & 3) is 1 or 3;
        }
        if (!anyData)
        {
            return 0;
        }
        _infoFactory ??= new InstructionInfoFactory();
        _vaRegister ??= VaRegister;
        ulong hits = 0;
        foreach (UsedMemory used in _infoFactory.GetInfo(ins).GetUsedMemory())
        {
            int kind = used.Access switch
            {
                OpAccess.Write or OpAccess.CondWrite or OpAccess.ReadWrite or OpAccess.ReadCondWrite => BreakWrite,
                OpAccess.Read or OpAccess.CondRead => BreakRead,
                _ => -1,
            };
            if (kind < 0 || !used.TryGetVirtualAddress(0, out ulong address, _vaRegister))
            {
                continue;
            }
            int size = Math.Max(1, used.MemorySize.GetSize());
            hits |= MatchBreakpoints(dr7, Bitness == 64 ? address : (uint)address, size, kind);
        }
        return hits;
    }

    /// <summary>Register values for iced's address computation: GPRs by width, segment registers as their bases.</summary>
    private bool VaRegister(Register register, int elementIndex, int elementSize, out ulong value)
    {
        value = 0;
        if (register.IsSegmentRegister())
        {
            int seg = register - Register.ES;
            value = Bitness == 64 && seg < (int)SegmentIndex.Fs ? 0 : _state.Segments[seg].Base;
            return true;
        }
        if (!register.IsGPR())
        {
            return false; // RIP-relative operands come with an absolute displacement; vector indexes are not handled
        }
        if (register is >= Register.AH and <= Register.BH)
        {
            value = (byte)(_state.Gpr[register - Register.AH] >> 8);
            return true;
        }
        ulong full = _state.Gpr[register.GetFullRegister() - Register.RAX];
        value = register.GetSize() switch { 1 => (byte)full, 2 => (ushort)full, 4 => (uint)full, _ => full };
        return true;
    }
}
