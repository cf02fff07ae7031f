using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter;

public sealed unsafe partial class InterpreterVcpu
{
    /// <summary>CPL ≤ IOPL (or real mode): IN/OUT/CLI/STI allowed. The TSS I/O bitmap is not consulted yet.</summary>
    internal bool IoPrivileged()
    {
        if ((_state.Cr0 & X86CpuState.Cr0Pe) == 0)
        {
            return true;
        }
        int iopl = (int)(_state.Rflags >> 12) & 3;
        return _state.Cpl <= iopl;
    }

    /// <summary>
    /// IN/OUT/INS/OUTS permission: allowed in real mode or at CPL &lt;= IOPL; otherwise every bit of the accessed
    /// ports in the TSS's I/O permission bitmap must be clear (SDM vol. 1 19.5.2), else #GP(0). The two bytes holding
    /// them are read at TSS + bitmap base + port / 8 and must lie inside the TSS limit; a 16-bit TSS has no bitmap.
    /// </summary>
    internal ExecStatus CheckIoPermission(ushort port, int size)
    {
        return IoPrivileged() ? ExecStatus.Continue : CheckIoBitmap(port, size);
    }

    private ExecStatus CheckIoBitmap(ushort port, int size)
    {
        ref SegmentRegister tr = ref _state.Tr;
        int type = tr.Attributes & 0xF;
        if ((type != 0x9 && type != 0xB) || tr.Limit < 0x67 || (tr.Attributes & SegmentRegister.P) == 0)
        {
            return Raise(Vector.GP, 0);
        }
        bool saved = _supervisorAccess;
        _supervisorAccess = true;
        try
        {
            ExecStatus s = ReadMem(WrapLinear(tr.Base + 0x66), 2, out ulong mapBase);
            if (s != ExecStatus.Continue)
            {
                return s;
            }
            ulong offset = mapBase + (ulong)(port >> 3);
            if (offset + 1 > tr.Limit)
            {
                return Raise(Vector.GP, 0);
            }
            s = ReadMem(WrapLinear(tr.Base + offset), 2, out ulong bits);
            if (s != ExecStatus.Continue)
            {
                return s;
            }
            ulong mask = ((1UL << size) - 1) << (port & 7);
            return (bits & mask) != 0 ? Raise(Vector.GP, 0) : ExecStatus.Continue;
        }
        finally
        {
            _supervisorAccess = saved;
        }
    }

    internal ulong PortRead(ushort port, int size)
    {
        ulong v = 0;
        // SAFETY: size ≤ 4 and v is an 8-byte local; little-endian like the guest.
        _io.PioRead(port, new Span<byte>(&v, size));
        return v;
    }

    internal void PortWrite(ushort port, int size, ulong value)
    {
        if (TraceInterrupts && port is (>= 0x20 and <= 0x21) or (>= 0x40 and <= 0x43) or (>= 0xA0 and <= 0xA1))
        {
            Console.Error.WriteLine($"colo: CPU {Index}: out 0x{port:x} 0x{value:x}");
        }
        // SAFETY: size ≤ 4 and value is an 8-byte local; little-endian like the guest.
        _io.PioWrite(port, new ReadOnlySpan<byte>(&value, size));
    }

    /// <summary>
    /// The guest TSC. With a <see cref="TscClock"/> (a running machine) it ticks at 1 GHz of that clock, so time
    /// passes while the vCPU halts and firmware timeouts expire; without one (CPU tests) it counts retired
    /// instructions, so runs are reproducible. Plus the state's offset either way.
    /// </summary>
    internal ulong ReadTsc(ref DecodedOp current)
    {
        if (TscClock is { } clock)
        {
            return _state.TscOffset + (ulong)clock.NowNs;
        }
        // The retired count is only folded in at block ends; add this op's position in the running block.
        long index = System.Runtime.CompilerServices.Unsafe.ByteOffset(ref _pool[0], ref current) / sizeof(DecodedOp);
        return _state.TscOffset + _instructions + (ulong)(index - _currentBlockStart);
    }

    /// <summary>POPF/IRET flag rules: IOPL only at CPL 0, IF only at CPL ≤ IOPL, VM/VIF/VIP never.</summary>
    internal void WriteFlagsFromGuest(ulong value, int size, bool iret = false)
    {
        ulong old = MaterializeFlags();
        ulong mask = X86CpuState.ArithmeticFlags | X86CpuState.FlagTf | X86CpuState.FlagDf | (1UL << 14) | (1UL << 18) | (1UL << 21);
        if (iret)
        {
            // IRET loads RF (a debugger's handler sets it to resume past an instruction breakpoint); POPF leaves it.
            mask |= FlagRf;
        }
        bool real = (_state.Cr0 & X86CpuState.Cr0Pe) == 0;
        int cpl = _state.Cpl;
        int iopl = (int)(old >> 12) & 3;
        if (real || cpl == 0)
        {
            mask |= 3UL << 12;
        }
        if (real || cpl <= iopl)
        {
            mask |= X86CpuState.FlagIf;
        }
        if (size == 2)
        {
            mask &= 0xFFFF;
        }
        _state.Rflags = (old & ~mask) | (value & mask) | X86CpuState.FlagReserved1;
        if ((_state.Rflags & ~old & X86CpuState.FlagTf) != 0)
        {
            // Single-stepping starts after the next instruction: leave the block so the run loop sees TF.
            ExitBlock = true;
        }
    }

    /// <summary>Completes a 64-bit IRET once the frame was read: loads CS/SS caches, flags, RSP, RIP.</summary>
    internal ExecStatus FinishIret(ulong rip, ushort csSelector, ulong flags, ulong rsp, ushort ssSelector)
    {
        int cpl = _state.Cpl;
        int rpl = csSelector & 3;
        if (rpl < cpl)
        {
            return Raise(Vector.GP, (uint)(csSelector & ~3));
        }
        if (!ReadDescriptor(csSelector, out ulong csDesc))
        {
            return ExecStatus.Fault;
        }
        if (((csDesc >> 43) & 3) != 3 || ((csDesc >> 47) & 1) == 0)
        {
            return Raise(Vector.GP, (uint)(csSelector & ~3));
        }
        ulong ssDesc = 0;
        bool nullSs = (ssSelector & ~3) == 0;
        if (!nullSs && !ReadDescriptor(ssSelector, out ssDesc))
        {
            return ExecStatus.Fault;
        }
        WriteFlagsFromGuest(flags, 8, iret: true);
        LoadCodeSegmentCache(ref _state.Segments[(int)SegmentIndex.Cs], csSelector, csDesc);
        ref SegmentRegister ss = ref _state.Segments[(int)SegmentIndex.Ss];
        if (nullSs)
        {
            ss = new SegmentRegister { Selector = ssSelector, Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.DB | 3 | (rpl << 5)), Limit = 0xFFFF_FFFF };
        }
        else
        {
            LoadCodeSegmentCache(ref ss, ssSelector, ssDesc);
        }
        _state.Gpr[4] = rsp;
        _state.Rip = rip;
        UpdateMode();
        return ExecStatus.Branch;
    }
}
