using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter;

public sealed unsafe partial class InterpreterVcpu
{
    /// <summary>Debug aid: <c>COLO_TRACE_EXCEPTIONS=1</c> logs every exception the vCPU delivers to stderr.</summary>
    private static readonly bool TraceExceptions = Environment.GetEnvironmentVariable("COLO_TRACE_EXCEPTIONS") == "1";

    /// <summary>Debug aid: <c>COLO_TRACE_INTERRUPTS=1</c> logs every external interrupt the vCPU takes.</summary>
    private static readonly bool TraceInterrupts = Environment.GetEnvironmentVariable("COLO_TRACE_INTERRUPTS") == "1";

    /// <summary>
    /// Delivers the pending exception through the IVT (real mode) or the 64-bit IDT. A fault while delivering becomes
    /// #DF, and a fault while delivering #DF is a triple fault: returns false and the vCPU shuts down.
    /// </summary>
    private bool DeliverException()
    {
        MaterializeFlags();
        if (_nonCanonicalFault)
        {
            FixNonCanonicalStackFault();
        }
        if (TraceExceptions)
        {
            Console.Error.WriteLine($"colo: CPU {Index}: exception {_state.ExceptionVector} error 0x{_state.ExceptionErrorCode:x} at {_state.Segments[1].Selector:x4}:{_state.Rip:x} (cr0 0x{_state.Cr0:x} cr2 0x{_state.Cr2:x})");
        }
        for (int attempt = 0; attempt < 3; attempt++)
        {
            byte vector = _state.ExceptionVector;
            bool hasError = _state.ExceptionHasErrorCode;
            uint error = _state.ExceptionErrorCode;
            if (TryDeliver(vector, hasError, error, isInterrupt: false))
            {
                _state.ExceptionPending = false;
                return true;
            }
            if (TraceExceptions)
            {
                Console.Error.WriteLine($"colo: CPU {Index}: delivering vector {vector} faulted: exception {_state.ExceptionVector} error 0x{_state.ExceptionErrorCode:x}");
            }
            if (vector == Vector.DF)
            {
                // Triple fault: report the #DF that could not be delivered.
                Raise(Vector.DF, 0);
                break;
            }
            // The original stays recorded for diagnostics only via the escalation chain.
            Raise(Vector.DF, 0);
        }
        _state.ExceptionPending = true;
        return false;
    }

    /// <summary>Vectors through the IDT; false with a new exception pending if that itself faulted.</summary>
    private bool TryDeliver(byte vector, bool hasError, uint error, bool isInterrupt)
    {
        bool saved = _supervisorAccess;
        try
        {
            return TryDeliverCore(vector, hasError, error, isInterrupt);
        }
        finally
        {
            _supervisorAccess = saved;
        }
    }

    private bool TryDeliverCore(byte vector, bool hasError, uint error, bool isInterrupt)
    {
        // The IDT, GDT and TSS are read with supervisor rights whatever the CPL.
        _supervisorAccess = true;
        if ((_state.Cr0 & X86CpuState.Cr0Pe) == 0)
        {
            return DeliverReal(vector);
        }
        if (isInterrupt)
        {
            // Software interrupts may only use gates whose DPL admits the current privilege level.
            bool longMode = (_state.Efer & X86CpuState.EferLma) != 0;
            uint entry = (uint)vector * (longMode ? 16u : 8u);
            if (entry + 7 <= _state.Idtr.Limit && ReadMem(_state.Idtr.Base + entry, 8, out ulong gate) == ExecStatus.Continue
                && (int)((gate >> 45) & 3) < _state.Cpl)
            {
                Raise(Vector.GP, entry / (longMode ? 2u : 1u) + 2);
                return false;
            }
        }
        if ((_state.Efer & X86CpuState.EferLma) != 0)
        {
            return DeliverLong(vector, hasError, error);
        }
        return DeliverProtected32(vector, hasError, error);
    }

    private bool DeliverReal(byte vector)
    {
        uint entry = (uint)vector * 4;
        if (entry + 3 > _state.Idtr.Limit)
        {
            Raise(Vector.GP, 0);
            return false;
        }
        if (ReadMem(_state.Idtr.Base + entry, 4, out ulong ivt) != ExecStatus.Continue)
        {
            return false;
        }
        ref SegmentRegister cs = ref _state.Segments[(int)SegmentIndex.Cs];
        if (Push(_state.Rflags & 0xFFFF, 2) != ExecStatus.Continue ||
            Push(cs.Selector, 2) != ExecStatus.Continue ||
            Push(_state.Rip & 0xFFFF, 2) != ExecStatus.Continue)
        {
            return false;
        }
        _state.Rflags &= ~(X86CpuState.FlagIf | X86CpuState.FlagTf | (1UL << 18));
        cs.Selector = (ushort)(ivt >> 16);
        cs.Base = (ulong)cs.Selector << 4;
        _state.Rip = ivt & 0xFFFF;
        return true;
    }

    private bool DeliverLong(byte vector, bool hasError, uint error)
    {
        uint offset = (uint)vector * 16;
        uint gateError = offset / 2 + 2; // IDT-referencing error code: index << 3 | IDT bit.
        if (offset + 15 > _state.Idtr.Limit)
        {
            Raise(Vector.GP, gateError);
            return false;
        }
        if (ReadMem(_state.Idtr.Base + offset, 8, out ulong lo) != ExecStatus.Continue ||
            ReadMem(_state.Idtr.Base + offset + 8, 8, out ulong hi) != ExecStatus.Continue)
        {
            return false;
        }
        int type = (int)(lo >> 40) & 0xF;
        if (type != 0xE && type != 0xF)
        {
            Raise(Vector.GP, gateError);
            return false;
        }
        if (((lo >> 47) & 1) == 0)
        {
            Raise(Vector.NP, gateError);
            return false;
        }
        ulong target = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF_0000) | (hi << 32);
        ushort selector = (ushort)(lo >> 16);
        int ist = (int)(lo >> 32) & 7;
        if (!ReadDescriptor(selector, out ulong desc))
        {
            return false;
        }
        bool isLongCode = ((desc >> 43) & 1) != 0 && ((desc >> 53) & 1) != 0;
        if (!isLongCode || ((desc >> 47) & 1) == 0)
        {
            Raise(Vector.GP, (uint)(selector & ~3));
            return false;
        }
        int newCpl = (int)(desc >> 45) & 3;
        int cpl = _state.Cpl;
        ulong rsp = _state.Gpr[4];
        if (ist != 0)
        {
            if (ReadMem(_state.Tr.Base + 0x24 + (ulong)(ist - 1) * 8, 8, out rsp) != ExecStatus.Continue)
            {
                return false;
            }
        }
        else if (newCpl < cpl)
        {
            if (ReadMem(_state.Tr.Base + 4 + (ulong)newCpl * 8, 8, out rsp) != ExecStatus.Continue)
            {
                return false;
            }
        }
        rsp &= ~0xFUL;
        ref SegmentRegister cs = ref _state.Segments[(int)SegmentIndex.Cs];
        ref SegmentRegister ss = ref _state.Segments[(int)SegmentIndex.Ss];
        Span<ulong> frame = stackalloc ulong[6];
        frame[0] = ss.Selector;
        frame[1] = _state.Gpr[4];
        frame[2] = _state.Rflags;
        frame[3] = cs.Selector;
        frame[4] = _state.Rip;
        frame[5] = error;
        int words = hasError ? 6 : 5;
        _supervisorAccess = newCpl < 3;
        for (int i = 0; i < words; i++)
        {
            if (WriteMem(rsp - 8 * (ulong)(i + 1), 8, frame[i]) != ExecStatus.Continue)
            {
                return false;
            }
        }
        if (newCpl < cpl)
        {
            ss = new SegmentRegister { Selector = (ushort)newCpl, Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.DB | 3 | (newCpl << 5)), Limit = 0xFFFF_FFFF };
        }
        LoadCodeSegmentCache(ref cs, (ushort)((selector & ~3) | newCpl), desc);
        _state.Gpr[4] = rsp - 8 * (ulong)words;
        _state.Rip = target;
        _state.Rflags &= ~(X86CpuState.FlagTf | (1UL << 14) | (1UL << 16) | (1UL << 17));
        if (type == 0xE)
        {
            _state.Rflags &= ~X86CpuState.FlagIf;
        }
        UpdateMode();
        return true;
    }

    private bool DeliverProtected32(byte vector, bool hasError, uint error)
    {
        uint offset = (uint)vector * 8;
        uint gateError = offset + 2;
        if (offset + 7 > _state.Idtr.Limit)
        {
            Raise(Vector.GP, gateError);
            return false;
        }
        if (ReadMem(_state.Idtr.Base + offset, 8, out ulong gate) != ExecStatus.Continue)
        {
            return false;
        }
        int type = (int)(gate >> 40) & 0xF;
        bool gate32 = type is 0xE or 0xF;
        if (!gate32 && type is not (0x6 or 0x7))
        {
            // Task gates are not modelled.
            Raise(Vector.GP, gateError);
            return false;
        }
        if (((gate >> 47) & 1) == 0)
        {
            Raise(Vector.NP, gateError);
            return false;
        }
        ulong target = (gate & 0xFFFF) | ((gate >> 32) & 0xFFFF_0000);
        ushort selector = (ushort)(gate >> 16);
        if (!ReadDescriptor(selector, out ulong desc))
        {
            return false;
        }
        if (((desc >> 43) & 3) != 3 || ((desc >> 47) & 1) == 0)
        {
            Raise(Vector.GP, (uint)(selector & ~3));
            return false;
        }
        int newCpl = (int)(desc >> 45) & 3;
        int cpl = _state.Cpl;
        ref SegmentRegister cs = ref _state.Segments[(int)SegmentIndex.Cs];
        ref SegmentRegister ss = ref _state.Segments[(int)SegmentIndex.Ss];
        ulong oldSs = ss.Selector;
        ulong oldEsp = _state.Gpr[4];
        ulong oldCs = cs.Selector;
        ulong oldFlags = _state.Rflags;
        int size = gate32 ? 4 : 2;
        if (newCpl < cpl)
        {
            ulong tss = _state.Tr.Base;
            if (ReadMem(tss + 4 + (ulong)newCpl * 8, 4, out ulong esp) != ExecStatus.Continue ||
                ReadMem(tss + 8 + (ulong)newCpl * 8, 2, out ulong ssSel) != ExecStatus.Continue ||
                !ReadDescriptor((ushort)ssSel, out ulong ssDesc))
            {
                return false;
            }
            LoadCodeSegmentCache(ref ss, (ushort)ssSel, ssDesc);
            _state.Gpr[4] = esp;
            UpdateMode();
        }
        // The frame goes on the handler's stack with the handler's rights (its CPL is current from here on).
        _supervisorAccess = false;
        if (newCpl < cpl)
        {
            if (Push(oldSs, size) != ExecStatus.Continue || Push(oldEsp, size) != ExecStatus.Continue)
            {
                return false;
            }
        }
        if (Push(oldFlags, size) != ExecStatus.Continue ||
            Push(oldCs, size) != ExecStatus.Continue ||
            Push(_state.Rip, size) != ExecStatus.Continue ||
            (hasError && Push(error, size) != ExecStatus.Continue))
        {
            return false;
        }
        LoadCodeSegmentCache(ref cs, (ushort)((selector & ~3) | newCpl), desc);
        _state.Rip = gate32 ? target : target & 0xFFFF;
        _state.Rflags &= ~(X86CpuState.FlagTf | (1UL << 14) | (1UL << 16) | (1UL << 17));
        if ((type & 1) == 0)
        {
            _state.Rflags &= ~X86CpuState.FlagIf;
        }
        UpdateMode();
        return true;
    }

    /// <summary>Reads the 8-byte GDT/LDT descriptor a selector names.</summary>
    internal bool ReadDescriptor(ushort selector, out ulong descriptor)
    {
        descriptor = 0;
        bool ldt = (selector & 4) != 0;
        ulong tableBase = ldt ? _state.Ldtr.Base : _state.Gdtr.Base;
        ulong limit = ldt ? _state.Ldtr.Limit : _state.Gdtr.Limit;
        ulong index = (ulong)(selector & ~7);
        if ((selector & ~3) == 0 || index + 7 > limit)
        {
            Raise(Vector.GP, (uint)(selector & ~3));
            return false;
        }
        bool saved = _supervisorAccess;
        _supervisorAccess = true;
        bool ok = ReadMem(tableBase + index, 8, out descriptor) == ExecStatus.Continue;
        _supervisorAccess = saved;
        return ok;
    }

    /// <summary>Fills a segment's hidden cache from a descriptor.</summary>
    internal static void LoadCodeSegmentCache(ref SegmentRegister seg, ushort selector, ulong desc)
    {
        uint limit = (uint)(desc & 0xFFFF) | (uint)((desc >> 32) & 0xF_0000);
        ushort attributes = (ushort)((desc >> 40) & 0xF0FF);
        if ((attributes & SegmentRegister.G) != 0)
        {
            limit = (limit << 12) | 0xFFF;
        }
        seg.Selector = selector;
        seg.Attributes = attributes;
        seg.Limit = limit;
        seg.Base = ((desc >> 16) & 0xFF_FFFF) | ((desc >> 32) & 0xFF00_0000);
    }
}
