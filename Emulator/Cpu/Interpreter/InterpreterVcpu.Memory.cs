using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Colo.Core.Cpu;
using Colo.Core.Memory;

namespace Colo.Cpu.Interpreter;

public sealed unsafe partial class InterpreterVcpu
{
    internal const int AccessRead = 0;
    internal const int AccessWrite = 1;
    private const int AccessExec = 2;
    private const int TlbBits = 8;
    private const ulong PhysAddrMask = 0x000F_FFFF_FFFF_F000;

    // Paging-entry bits above the 40 physical address bits CPUID 0x80000008 reports: set, they fault with RSVD.
    private const ulong ReservedHighBits = 0x000F_FF00_0000_0000;

    // A 2 MiB page's address bits 20:13 must be zero.
    private const ulong ReservedLargePageBits = 0x1F_E000;

    /// <summary>
    /// One software-TLB slot: a virtual page with a tag per access kind (read, write, exec), so a page is granted only
    /// the rights its walk allowed. Write tags are only given once the dirty bit is set, so later writes need no walk.
    /// </summary>
    private unsafe struct TlbEntry
    {
        public ulong ReadTag;
        public ulong WriteTag;
        public ulong ExecTag;
        public ulong PhysPage;
        // Host address of the page when it is plain low RAM (handlers may use it directly), else null.
        public byte* Host;
    }

    // One TLB per privilege class, so entering and leaving the kernel (every syscall and interrupt) only switches
    // which one is in use instead of flushing: each holds the rights its walks checked for its CPL.
    private readonly TlbEntry[] _tlbUser = new TlbEntry[1 << TlbBits];
    private readonly TlbEntry[] _tlbSupervisor = new TlbEntry[1 << TlbBits];
    private TlbEntry[] _tlb;

    /// <summary>
    /// Set while the CPU makes an implicit supervisor access at CPL 3 (descriptor tables, the TSS, the ring-0 stack of
    /// an interrupt): the walk checks supervisor rights and leaves the TLB alone, whose entries hold CPL 3's rights.
    /// </summary>
    private bool _supervisorAccess;

    [System.Diagnostics.CodeAnalysis.MemberNotNull(nameof(_tlb))]
    private void InitTlb()
    {
        _tlb = _tlbSupervisor;
        FlushTlb();
    }

    /// <summary>Invalidates every software-TLB entry (CR3/CR4/CR0 writes; global pages are not kept apart yet).</summary>
    internal void FlushTlb()
    {
        var empty = new TlbEntry { ReadTag = ulong.MaxValue, WriteTag = ulong.MaxValue, ExecTag = ulong.MaxValue };
        Array.Fill(_tlbUser, empty);
        Array.Fill(_tlbSupervisor, empty);
        InvalidateJumpCache();
    }

    /// <summary>Invalidates the entries for one linear address (INVLPG).</summary>
    internal void FlushTlbPage(ulong linear)
    {
        int index = (int)((linear >> 12) & ((1 << TlbBits) - 1));
        _tlbUser[index].ReadTag = _tlbUser[index].WriteTag = _tlbUser[index].ExecTag = ulong.MaxValue;
        _tlbSupervisor[index].ReadTag = _tlbSupervisor[index].WriteTag = _tlbSupervisor[index].ExecTag = ulong.MaxValue;
        InvalidateJumpCache();
    }

    // ---- registers ---------------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong GetReg(int r, int size)
    {
        if (r >= DecodedOp.HighByteBase)
        {
            return (byte)(_state.Gpr[r - DecodedOp.HighByteBase] >> 8);
        }
        ulong v = _state.Gpr[r];
        return size switch
        {
            1 => (byte)v,
            2 => (ushort)v,
            4 => (uint)v,
            _ => v,
        };
    }

    /// <summary>Writes a GPR with x86 width rules: 8/16-bit writes merge, 32-bit writes zero-extend.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void SetReg(int r, int size, ulong v)
    {
        if (r >= DecodedOp.HighByteBase)
        {
            ref ulong h = ref _state.Gpr[r - DecodedOp.HighByteBase];
            h = (h & ~0xFF00UL) | ((v & 0xFF) << 8);
            return;
        }
        ref ulong g = ref _state.Gpr[r];
        switch (size)
        {
            case 1:
                g = (g & ~0xFFUL) | (byte)v;
                break;
            case 2:
                g = (g & ~0xFFFFUL) | (ushort)v;
                break;
            case 4:
                g = (uint)v;
                break;
            default:
                g = v;
                break;
        }
    }

    /// <summary>The raw 64-bit register, for handlers that need whole registers (RSI/RDI/RCX, RSP).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ref ulong Gpr(int r) => ref _state.Gpr[r];

    // ---- operands ----------------------------------------------------------------------------------------------

    /// <summary>Offset part of the op's memory operand (no segment base), truncated to the address size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong EffectiveAddress(ref DecodedOp op)
    {
        ulong ea = op.Disp;
        if (op.Base != DecodedOp.NoReg)
        {
            ea += _state.Gpr[op.Base];
        }
        if (op.Index != DecodedOp.NoReg)
        {
            ea += _state.Gpr[op.Index] << op.ScaleShift;
        }
        return op.AddrSize switch
        {
            4 => (uint)ea,
            2 => (ushort)ea,
            _ => ea,
        };
    }

    /// <summary>Linear address of the op's memory operand.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong LinearAddress(ref DecodedOp op)
    {
        ulong ea = EffectiveAddress(ref op);
        return op.Seg == DecodedOp.NoReg ? ea : SegmentLinear(op.Seg, ea);
    }

    /// <summary>Adds a segment base; outside long mode linear addresses wrap at 4 GiB.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong SegmentLinear(int seg, ulong offset)
    {
        ulong linear = _state.Segments[seg].Base + offset;
        return Bitness == 64 ? linear : (uint)linear;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ExecStatus ReadOperand(ref DecodedOp op, byte kind, byte reg, int size, out ulong value)
    {
        if (kind == OperandKind.Reg)
        {
            value = GetReg(reg, size);
            return ExecStatus.Continue;
        }
        if (kind == OperandKind.Imm)
        {
            value = op.Imm;
            return ExecStatus.Continue;
        }
        return ReadMemOp(ref op, size, out value);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ExecStatus WriteOperand(ref DecodedOp op, byte kind, byte reg, int size, ulong value)
    {
        if (kind == OperandKind.Reg)
        {
            SetReg(reg, size, value);
            return ExecStatus.Continue;
        }
        return WriteMemOp(ref op, size, value);
    }

    // ---- linear memory -----------------------------------------------------------------------------------------

    /// <summary>Reads <paramref name="size"/> (1, 2, 4, 8) bytes at a linear address; on a fault the exception is pending.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ExecStatus ReadMem(ulong linear, int size, out ulong value)
    {
        if ((linear & PageMask) + (ulong)size <= 0x1000)
        {
            // Fast path: a TLB hit on a RAM page (a hit implies a canonical address, as only those are entered).
            ulong vpage = linear >> 12;
            ref TlbEntry e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_tlb), (int)(vpage & ((1 << TlbBits) - 1)));
            if (e.ReadTag == vpage && e.Host != null)
            {
                // SAFETY: Host points at a whole RAM page and the access stays inside it.
                byte* h = e.Host + (linear & PageMask);
                value = HostAccess.Load(h, size);
                return ExecStatus.Continue;
            }
            ulong phys;
            if ((_state.Cr0 & X86CpuState.Cr0Pg) == 0 && Bitness != 64)
            {
                phys = linear;
            }
            else if (!Translate(linear, AccessRead, out phys))
            {
                value = 0;
                return ExecStatus.Fault;
            }
            if (IsDirect(phys))
            {
                // SAFETY: direct means low RAM, and the access stays in phys's page, which RAM covers entirely.
                byte* p = _ram + phys;
                value = HostAccess.Load(p, size);
                return ExecStatus.Continue;
            }
            value = MmioRead(phys, size);
            return ExecStatus.Continue;
        }
        return ReadMemSplit(linear, size, out value);
    }

    /// <summary>Writes <paramref name="size"/> bytes at a linear address, invalidating decoded code it overwrites.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ExecStatus WriteMem(ulong linear, int size, ulong value)
    {
        if ((linear & PageMask) + (ulong)size <= 0x1000)
        {
            ulong vpage = linear >> 12;
            ref TlbEntry e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_tlb), (int)(vpage & ((1 << TlbBits) - 1)));
            if (e.WriteTag == vpage && e.Host != null)
            {
                CheckCodeWrite(e.PhysPage);
                // SAFETY: Host points at a whole RAM page and the access stays inside it.
                byte* h = e.Host + (linear & PageMask);
                HostAccess.Store(h, size, value);
                return ExecStatus.Continue;
            }
            if (TranslateWrite(linear, out ulong phys, out byte* p) != ExecStatus.Continue)
            {
                return ExecStatus.Fault;
            }
            if (p != null)
            {
                // SAFETY: TranslateWrite's pointer is direct low RAM, and the access stays in phys's page.
                HostAccess.Store(p, size, value);
                return ExecStatus.Continue;
            }
            MmioWrite(phys, size, value);
            return ExecStatus.Continue;
        }
        return WriteMemSplit(linear, size, value);
    }

    /// <summary>
    /// Where a locked read-modify-write's operand lives in host memory, when it is plain RAM inside one page: write
    /// rights are checked (and A/D set) and decoded code on the page is dropped before the caller's atomic update.
    /// <paramref name="host"/> is null for MMIO or a page-straddling operand, which the caller updates the plain way.
    /// </summary>
    internal ExecStatus LockedTarget(ulong linear, int size, out byte* host)
    {
        host = null;
        if ((linear & PageMask) + (ulong)size > 0x1000)
        {
            return ExecStatus.Continue;
        }
        if (TranslateWrite(linear, out ulong phys, out host) != ExecStatus.Continue)
        {
            return ExecStatus.Fault;
        }
        // Plain low RAM has its pointer from TranslateWrite; the APIC page stays MMIO.
        if (host == null && (LocalApic is not { } apic || (phys & ~PageMask) != apic.MmioBase))
        {
            // Shadowed BIOS RAM (SeaBIOS keeps its SMP lock there) and RAM above 4 GiB.
            host = _memory.GetReadWritePointer(phys);
            ExitBlock = true; // the write may have been to code
        }
        return ExecStatus.Continue;
    }

    /// <summary>
    /// The part of a store every path shares once the TLB's host-pointer hit missed: translates with write rights
    /// (setting A/D) and, for plain low RAM, drops decoded code on the page, marks it dirty and returns its host
    /// address in <paramref name="host"/>; null for anything else (MMIO, shadowed BIOS RAM, high RAM), which
    /// <paramref name="phys"/> then names.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ExecStatus TranslateWrite(ulong linear, out ulong phys, out byte* host)
    {
        host = null;
        if ((_state.Cr0 & X86CpuState.Cr0Pg) == 0 && Bitness != 64)
        {
            phys = linear;
        }
        else if (!Translate(linear, AccessWrite, out phys))
        {
            return ExecStatus.Fault;
        }
        if (IsDirect(phys))
        {
            CheckDirectWrite(phys);
            // SAFETY: direct means low RAM, which covers phys's page entirely.
            host = _ram + phys;
        }
        return ExecStatus.Continue;
    }

    /// <summary>A store to direct RAM outside the TLB fast path: decoded code on the page dies, the page is dirty.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckDirectWrite(ulong phys)
    {
        CheckCodeWrite(phys);
        MarkDirty(phys);
    }

    /// <summary>
    /// Marks a low-RAM page in <see cref="RamBlock.DirtyPages"/> (low RAM's physical address is its RAM offset).
    /// Stores through a TLB host pointer do not mark: the page was marked when the entry got its write tag, and
    /// <see cref="GuestMemory.RearmDirtyLog"/> makes every vCPU drop those tags so the next store marks again.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void MarkDirty(ulong phys)
    {
        ulong page = phys >> 12;
        if (!_dirtyPages.Test(page))
        {
            _dirtyPages.Set(page);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckCodeWrite(ulong phys)
    {
        ulong page = phys >> 12;
        if (_codePages.Test(page))
        {
            _memory.NotifyCodeWrite(page);
            ExitBlock = true;
        }
    }

    private ExecStatus ReadMemSplit(ulong linear, int size, out ulong value)
    {
        // Page-straddling access: translate both pages before touching anything, then assemble bytewise.
        value = 0;
        ulong v = 0;
        for (int i = 0; i < size; i++)
        {
            ExecStatus s = ReadMem(WrapLinear(linear + (ulong)i), 1, out ulong b);
            if (s != ExecStatus.Continue)
            {
                return s;
            }
            v |= b << (8 * i);
        }
        value = v;
        return ExecStatus.Continue;
    }

    private ExecStatus WriteMemSplit(ulong linear, int size, ulong value)
    {
        // Probe both pages first so a fault on the second leaves memory untouched.
        ulong last = WrapLinear(linear + (ulong)size - 1);
        if (!ProbeWrite(linear) || !ProbeWrite(last))
        {
            return ExecStatus.Fault;
        }
        for (int i = 0; i < size; i++)
        {
            ExecStatus s = WriteMem(WrapLinear(linear + (ulong)i), 1, value >> (8 * i));
            if (s != ExecStatus.Continue)
            {
                return s;
            }
        }
        return ExecStatus.Continue;
    }

    private bool ProbeWrite(ulong linear)
    {
        if ((_state.Cr0 & X86CpuState.Cr0Pg) == 0 && Bitness != 64)
        {
            return true;
        }
        return Translate(linear, AccessWrite, out _);
    }

    private ulong WrapLinear(ulong linear) => Bitness == 64 ? linear : (uint)linear;

    /// <summary>Plain low RAM that handlers may touch through <c>_ram</c> (not the PC's legacy window).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsDirect(ulong phys) => phys < _ramSize && phys - _holeStart >= _holeSize;

    // Legacy window, ROM, high RAM and MMIO: the address space decides.
    // The vCPU's own APIC page comes first: every CPU sees its own APIC at the same physical address.
    private ulong MmioRead(ulong phys, int size)
    {
        if (LocalApic is { } apic && (phys & ~PageMask) == apic.MmioBase)
        {
            return apic.Read((uint)(phys & PageMask), size);
        }
        return _memory.ReadSlow(phys, size);
    }

    private void MmioWrite(ulong phys, int size, ulong value)
    {
        ExitBlock = true; // the write may have remapped memory (PAM), touched code outside low RAM, or unblocked an interrupt
        if (LocalApic is { } apic && (phys & ~PageMask) == apic.MmioBase)
        {
            apic.Write((uint)(phys & PageMask), size, value);
            return;
        }
        _memory.WriteSlow(phys, size, value);
    }

    // ---- stack ---------------------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ExecStatus Push(ulong value, int size)
    {
        ulong rsp = _state.Gpr[4];
        ulong newSp = (rsp & ~StackMask) | ((rsp - (ulong)size) & StackMask);
        if ((_segCheckMask & (1u << (int)SegmentIndex.Ss)) != 0)
        {
            ExecStatus c = CheckSegment((int)SegmentIndex.Ss, newSp & StackMask, size, AccessWrite);
            if (c != ExecStatus.Continue)
            {
                return c;
            }
        }
        ulong linear = Bitness == 64 ? newSp : SegmentLinear((int)SegmentIndex.Ss, newSp & StackMask);
        ExecStatus s = WriteMem(linear, size, value);
        if (s == ExecStatus.Continue)
        {
            _state.Gpr[4] = newSp;
            return s;
        }
        return Bitness == 64 ? StackFault64(linear) : s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ExecStatus Pop(int size, out ulong value)
    {
        ulong rsp = _state.Gpr[4];
        if ((_segCheckMask & (1u << (int)SegmentIndex.Ss)) != 0)
        {
            ExecStatus c = CheckSegment((int)SegmentIndex.Ss, rsp & StackMask, size, AccessRead);
            if (c != ExecStatus.Continue)
            {
                value = 0;
                return c;
            }
        }
        ulong linear = Bitness == 64 ? rsp : SegmentLinear((int)SegmentIndex.Ss, rsp & StackMask);
        ExecStatus s = ReadMem(linear, size, out value);
        if (s == ExecStatus.Continue)
        {
            _state.Gpr[4] = (rsp & ~StackMask) | ((rsp + (ulong)size) & StackMask);
            return s;
        }
        return Bitness == 64 ? StackFault64(linear) : s;
    }

    // ---- faults --------------------------------------------------------------------------------------------------

    /// <summary>Makes exception <paramref name="vector"/> pending and returns <see cref="ExecStatus.Fault"/>.</summary>
    internal ExecStatus Raise(byte vector)
    {
        _state.ExceptionPending = true;
        _state.ExceptionVector = vector;
        _state.ExceptionHasErrorCode = false;
        _state.ExceptionErrorCode = 0;
        return ExecStatus.Fault;
    }

    /// <summary>Makes exception <paramref name="vector"/> with an error code pending.</summary>
    internal ExecStatus Raise(byte vector, uint errorCode)
    {
        _state.ExceptionPending = true;
        _state.ExceptionVector = vector;
        _state.ExceptionHasErrorCode = true;
        _state.ExceptionErrorCode = errorCode;
        return ExecStatus.Fault;
    }

    // ---- paging ----------------------------------------------------------------------------------------------------

    private bool TranslateFetch(ulong linear, out ulong phys)
    {
        if ((_state.Cr0 & X86CpuState.Cr0Pg) == 0 && Bitness != 64)
        {
            phys = linear;
            return true;
        }
        return Translate(linear, AccessExec, out phys);
    }

    /// <summary>
    /// Linear → physical through the software TLB, walking the page tables on a miss. Returns false with #PF/#GP
    /// pending. In long mode it also enforces canonical addresses.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Translate(ulong linear, int access, out ulong phys)
    {
        if (Bitness == 64 && (ulong)(((long)linear << 16) >> 16) != linear)
        {
            _nonCanonicalFault = true;
            Raise(Vector.GP, 0);
            phys = 0;
            return false;
        }
        if ((_state.Cr0 & X86CpuState.Cr0Pg) == 0)
        {
            phys = linear;
            return true;
        }
        ulong vpage = linear >> 12;
        ref TlbEntry e = ref _tlb[(int)(vpage & ((1 << TlbBits) - 1))];
        ulong tag = access == AccessRead ? e.ReadTag : access == AccessWrite ? e.WriteTag : e.ExecTag;
        if (tag == vpage)
        {
            phys = e.PhysPage | (linear & PageMask);
            return true;
        }
        return Walk(linear, access, out phys);
    }

    private bool Walk(ulong linear, int access, out ulong phys)
    {
        phys = 0;
        if ((_state.Efer & X86CpuState.EferLma) == 0)
        {
            return WalkLegacy(linear, access, out phys);
        }
        bool nxe = (_state.Efer & X86CpuState.EferNxe) != 0;
        bool user = true;
        bool writable = true;
        bool noExec = false;
        ulong table = _state.Cr3 & PhysAddrMask;
        int shift = 39;
        ulong entry;
        ulong entryAddr;
        while (true)
        {
            entryAddr = table + ((linear >> shift) & 511) * 8;
            entry = ReadPhys64(entryAddr);
            if ((entry & 1) == 0)
            {
                return PageFault(linear, access, present: false, reserved: false);
            }
            // PS is reserved in a PML4E, and in a PDPTE too: the CPU model has no 1 GiB pages (pdpe1gb).
            bool large = (entry & 0x80) != 0 && shift == 21;
            if ((!nxe && (long)entry < 0) || (entry & ReservedHighBits) != 0
                || ((entry & 0x80) != 0 && shift > 21) || (large && (entry & ReservedLargePageBits) != 0))
            {
                return PageFault(linear, access, present: true, reserved: true);
            }
            user &= (entry & 4) != 0;
            writable &= (entry & 2) != 0;
            noExec |= nxe && (long)entry < 0;
            if ((entry & 0x20) == 0)
            {
                WritePhys64(entryAddr, entry | 0x20);
                entry |= 0x20;
            }
            if (shift == 12 || large)
            {
                break;
            }
            table = entry & PhysAddrMask;
            shift -= 9;
        }
        ulong pageBase = entry & PhysAddrMask & ~((1UL << shift) - 1);
        phys = pageBase | (linear & ((1UL << shift) - 1));
        return FinishWalk(linear, access, phys, entryAddr, entry, user, writable, noExec);
    }

    /// <summary>32-bit paging (2 levels, PSE 4 MiB pages) and PAE paging (3 levels) outside long mode.</summary>
    private bool WalkLegacy(ulong linear, int access, out ulong phys)
    {
        phys = 0;
        bool user = true;
        bool writable = true;
        bool noExec = false;
        bool nxe = (_state.Efer & X86CpuState.EferNxe) != 0;
        ulong entry;
        ulong entryAddr;
        int shift;
        if ((_state.Cr4 & X86CpuState.Cr4Pae) != 0)
        {
            ulong pdpte = ReadPhys64((_state.Cr3 & 0xFFFF_FFE0) + ((linear >> 30) & 3) * 8);
            if ((pdpte & 1) == 0)
            {
                return PageFault(linear, access, present: false, reserved: false);
            }
            ulong table = pdpte & PhysAddrMask;
            shift = 21;
            while (true)
            {
                entryAddr = table + ((linear >> shift) & 511) * 8;
                entry = ReadPhys64(entryAddr);
                if ((entry & 1) == 0)
                {
                    return PageFault(linear, access, present: false, reserved: false);
                }
                if ((!nxe && (long)entry < 0) || (entry & ReservedHighBits) != 0
                    || (shift == 21 && (entry & 0x80) != 0 && (entry & ReservedLargePageBits) != 0))
                {
                    return PageFault(linear, access, present: true, reserved: true);
                }
                user &= (entry & 4) != 0;
                writable &= (entry & 2) != 0;
                noExec |= nxe && (long)entry < 0;
                if ((entry & 0x20) == 0)
                {
                    WritePhys64(entryAddr, entry | 0x20);
                    entry |= 0x20;
                }
                if (shift == 12 || (entry & 0x80) != 0)
                {
                    break;
                }
                table = entry & PhysAddrMask;
                shift = 12;
            }
            ulong pageBase = entry & PhysAddrMask & ~((1UL << shift) - 1);
            phys = pageBase | (linear & ((1UL << shift) - 1));
            return FinishWalk(linear, access, phys, entryAddr, entry, user, writable, noExec);
        }

        ulong dir = _state.Cr3 & 0xFFFF_F000;
        shift = 22;
        while (true)
        {
            entryAddr = dir + ((linear >> shift) & 1023) * 4;
            entry = ReadPhys32(entryAddr);
            if ((entry & 1) == 0)
            {
                return PageFault(linear, access, present: false, reserved: false);
            }
            user &= (entry & 4) != 0;
            writable &= (entry & 2) != 0;
            if ((entry & 0x20) == 0)
            {
                WritePhys32(entryAddr, (uint)(entry | 0x20));
                entry |= 0x20;
            }
            bool large = shift == 22 && (entry & 0x80) != 0 && (_state.Cr4 & 0x10) != 0;
            if (shift == 12 || large)
            {
                if (large)
                {
                    // PSE-36: bits 20:13 of the PDE hold physical address bits 39:32.
                    phys = (entry & 0xFFC0_0000) | (((entry >> 13) & 0xFF) << 32) | (linear & 0x3F_FFFF);
                }
                else
                {
                    phys = (entry & 0xFFFF_F000) | (linear & PageMask);
                }
                break;
            }
            dir = entry & 0xFFFF_F000;
            shift = 12;
        }
        return FinishWalk(linear, access, phys, entryAddr, entry, user, writable, noExec, entryIs32: true);
    }

    private bool FinishWalk(ulong linear, int access, ulong phys, ulong entryAddr, ulong entry, bool user, bool writable, bool noExec, bool entryIs32 = false)
    {
        bool cplUser = _state.Cpl == 3 && !_supervisorAccess;
        bool wp = (_state.Cr0 & (1UL << 16)) != 0;
        if (cplUser && !user)
        {
            return PageFault(linear, access, present: true, reserved: false);
        }
        bool canWrite = writable || (!cplUser && !wp);
        if (access == AccessWrite && !canWrite)
        {
            return PageFault(linear, access, present: true, reserved: false);
        }
        if (access == AccessExec && noExec)
        {
            return PageFault(linear, access, present: true, reserved: false);
        }
        bool dirty = (entry & 0x40) != 0;
        if (access == AccessWrite && !dirty)
        {
            if (entryIs32)
            {
                WritePhys32(entryAddr, (uint)(entry | 0x40));
            }
            else
            {
                WritePhys64(entryAddr, entry | 0x40);
            }
            dirty = true;
        }
        if (_supervisorAccess && _state.Cpl == 3)
        {
            return true;
        }
        ulong vpage = linear >> 12;
        ref TlbEntry e = ref _tlb[(int)(vpage & ((1 << TlbBits) - 1))];
        e.PhysPage = phys & ~PageMask;
        // SAFETY: a direct page lies wholly inside the RAM block, so the pointer covers all its 4 KiB.
        e.Host = IsDirect(e.PhysPage) ? _ram + e.PhysPage : null;
        e.ReadTag = vpage;
        e.WriteTag = canWrite && dirty ? vpage : ulong.MaxValue;
        if (e.Host != null && e.WriteTag == vpage)
        {
            // Stores through the host pointer do not mark the page themselves (see MarkDirty).
            MarkDirty(e.PhysPage);
        }
        e.ExecTag = noExec ? ulong.MaxValue : vpage;
        return true;
    }

    private bool PageFault(ulong linear, int access, bool present, bool reserved)
    {
        uint error = (present ? 1u : 0) | (access == AccessWrite ? 2u : 0) | (_state.Cpl == 3 && !_supervisorAccess ? 4u : 0) | (reserved ? 8u : 0);
        if (access == AccessExec && (_state.Efer & X86CpuState.EferNxe) != 0)
        {
            error |= 0x10;
        }
        _state.Cr2 = linear;
        if (TraceExceptions && (error & 5) == 5)
        {
            DumpWalk(linear, error);
        }
        Raise(Vector.PF, error);
        return false;
    }

    /// <summary>Debug aid: prints the long-mode page-table entries behind a protection fault.</summary>
    private void DumpWalk(ulong linear, uint error)
    {
        var text = new System.Text.StringBuilder($"colo: CPU {Index}: #PF {error:x} at {linear:x}, cr3 {_state.Cr3:x}:");
        ulong table = _state.Cr3 & PhysAddrMask;
        for (int shift = 39; shift >= 12 && (_state.Efer & X86CpuState.EferLma) != 0; shift -= 9)
        {
            ulong entry = ReadPhys64(table + ((linear >> shift) & 511) * 8);
            text.Append($" {entry:x}");
            if ((entry & 1) == 0 || (shift < 39 && (entry & 0x80) != 0))
            {
                break;
            }
            table = entry & PhysAddrMask;
        }
        Console.Error.WriteLine(text.ToString());
    }

    private ulong ReadPhys64(ulong phys)
    {
        if (IsDirect(phys) && (phys & PageMask) + 8 <= 0x1000)
        {
            // SAFETY: direct low RAM, and the access stays in the page.
            return Unsafe.ReadUnaligned<ulong>(_ram + phys);
        }
        return MmioRead(phys, 8);
    }

    private ulong ReadPhys32(ulong phys)
    {
        if (IsDirect(phys) && (phys & PageMask) + 4 <= 0x1000)
        {
            // SAFETY: direct low RAM, and the access stays in the page.
            return Unsafe.ReadUnaligned<uint>(_ram + phys);
        }
        return MmioRead(phys, 4);
    }

    private void WritePhys64(ulong phys, ulong value)
    {
        if (IsDirect(phys) && (phys & PageMask) + 8 <= 0x1000)
        {
            CheckDirectWrite(phys);
            // SAFETY: direct low RAM, and the access stays in the page.
            Unsafe.WriteUnaligned(_ram + phys, value);
            return;
        }
        _memory.WriteSlow(phys, 8, value);
    }

    private void WritePhys32(ulong phys, uint value)
    {
        if (IsDirect(phys) && (phys & PageMask) + 4 <= 0x1000)
        {
            CheckDirectWrite(phys);
            // SAFETY: direct low RAM, and the access stays in the page.
            Unsafe.WriteUnaligned(_ram + phys, value);
            return;
        }
        _memory.WriteSlow(phys, 4, value);
    }
}
