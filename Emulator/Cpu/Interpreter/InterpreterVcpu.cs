using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Colo.Core.Cpu;
using Colo.Core.Memory;
using Iced.Intel;

namespace Colo.Cpu.Interpreter;

/// <summary>
/// A vCPU that interprets guest code: iced decodes each basic block once into a preallocated op pool, handlers are
/// resolved at decode time and called through function pointers, flags are computed lazily, and guest faults are
/// return values. Run it on one dedicated thread; <see cref="Kick"/> is the only thread-safe member.
/// </summary>
[SkipLocalsInit]
public sealed unsafe partial class InterpreterVcpu : IVcpu, IDisposable
{
    private const int MaxBlockOps = 32;
    private const int BlockTableBits = 14;
    private const int PoolSize = 1 << 16;
    private const int JumpCacheBits = 12;
    private const ulong PageMask = 0xFFF;

    /// <summary>A decoded block: its ops are <c>_pool[Start .. Start + Count)</c>. Count 0 marks an empty slot.</summary>
    private struct BlockEntry
    {
        public ulong Phys;
        public ulong Rip;
        public uint Mode;
        public int Start;
        public int Count;
        // The code-version slots (and versions at decode time) of the block's page and, for an instruction
        // straddling the page end, of the next page (else the never-bumped non-RAM slot).
        public int VersionSlot;
        public uint Version;
        public int VersionSlot2;
        public uint Version2;
        // Executions counted towards the second tier, and the compiled code once it is hot (dies with the entry).
        public int Hits;
        public CompiledBlock? Compiled;
    }

    /// <summary>
    /// A jump-cache slot (QEMU's tb_jmp_cache): linear RIP → block-table slot, valid while no TLB flush happened since
    /// (<see cref="_fetchGeneration"/>), so a hit skips the fetch translation and the physical hash.
    /// </summary>
    private struct JumpEntry
    {
        public ulong Linear;
        public ulong Rip;
        public ulong Phys;
        public uint Mode;
        public uint Generation;
        public int Slot;
    }

    private X86CpuState _state;
    private readonly GuestMemory _memory;
    private readonly IIoBus _io;
    private readonly byte* _ram;
    private readonly ulong _ramSize;
    private readonly ulong _holeStart;
    private readonly ulong _holeSize;
    private readonly PageBitmap _codePages;
    private readonly PageBitmap _dirtyPages;
    private int _seenDirtyEpoch;
    private readonly uint[] _codeVersions;
    private int _crossPageSlot;
    private uint _crossPageVersion;
    private readonly GuestCodeReader _reader = new();
    private readonly Decoder _decoder16;
    private readonly Decoder _decoder32;
    private readonly Decoder _decoder64;
    private readonly BlockEntry[] _blocks = new BlockEntry[1 << BlockTableBits];
    private readonly JumpEntry[] _jumpCache = new JumpEntry[1 << JumpCacheBits];
    // Bumped by every TLB flush (and on Run entry, as the state may have been replaced): jump-cache entries of an
    // older generation may map a linear address to a stale physical one. Starts at 1 so zeroed entries never match.
    private uint _fetchGeneration = 1;
    private readonly DecodedOp[] _pool = new DecodedOp[PoolSize];
    private byte* _crossPageBuffer;
    private int _poolUsed;
    private int _seenCodeGeneration;
    private int _kick;
    private int _interruptRequest;
    private int _nmiRequest;
    private readonly ManualResetEventSlim _wake = new(false);
    private uint _modeKey;
    private ulong _instructions;
    private int _currentBlockStart;

    /// <summary>Set by a store that hit a page holding decoded code: the current block may be stale.</summary>
    internal bool ExitBlock;

    /// <summary>16, 32 or 64: the current code size (CS.L / CS.D).</summary>
    internal int Bitness;

    /// <summary>Mask of the stack pointer bits the current mode uses (SS.B, long mode).</summary>
    internal ulong StackMask;

    /// <summary>Creates vCPU <paramref name="index"/> over <paramref name="memory"/>; PIO and MMIO go to <paramref name="io"/>.</summary>
    public InterpreterVcpu(int index, GuestMemory memory, IIoBus io)
    {
        Index = index;
        _memory = memory;
        _io = io;
        _ram = memory.Ram.HostPointer;
        _ramSize = memory.LowRamEnd;
        _holeStart = memory.HoleStart;
        _holeSize = memory.HoleSize;
        _codePages = memory.Ram.CodePages;
        _dirtyPages = memory.Ram.DirtyPages;
        _seenDirtyEpoch = memory.DirtyLogEpoch;
        _codeVersions = memory.CodeVersions;
        _decoder16 = Decoder.Create(16, _reader, DecoderOptions.None);
        _decoder32 = Decoder.Create(32, _reader, DecoderOptions.None);
        _decoder64 = Decoder.Create(64, _reader, DecoderOptions.None);
        _crossPageBuffer = (byte*)NativeMemory.AllocZeroed(16);
        _seenCodeGeneration = memory.CodeGeneration;
        _state.Reset();
        InitTlb();
    }

    /// <inheritdoc/>
    public int Index { get; }

    /// <inheritdoc/>
    public ref X86CpuState State => ref _state;

    /// <summary>
    /// The clock the TSC follows at 1 GHz (the machine's virtual clock), or null to count retired instructions.
    /// Read without the board lock: a clock read is two longs the timer thread updates only on start/stop.
    /// </summary>
    public Colo.Core.Time.IClock? TscClock { get; set; }

    /// <summary>The TSC before the state's offset.</summary>
    private ulong TscBase => TscClock is { } clock ? (ulong)clock.NowNs : _instructions;

    /// <summary>Instructions retired since creation; the interpreter's notion of virtual time.</summary>
    public ulong InstructionCount => _instructions;

    /// <summary>Why the last <see cref="VcpuExit.InternalError"/> happened.</summary>
    public string? InternalErrorDetail { get; private set; }

    /// <inheritdoc/>
    public void Kick()
    {
        Volatile.Write(ref _kick, 1);
        _wake.Set();
    }

    /// <summary>The CPUID feature words this vCPU reports (the machine's resolved <c>-cpu</c>; qemu64 by default).</summary>
    public CpuidFeatures Features { get; set; } = CpuidFeatures.Qemu64;

    /// <summary>The feature bits the interpreter executes (<c>-cpu max</c>; the limit of <c>+feat</c>).</summary>
    public static CpuidFeatures SupportedFeatures => CpuidModel.Supported;

    /// <summary>Where external interrupts come from; without one, HLT returns <see cref="VcpuExit.Halted"/>.</summary>
    public IInterruptSource? Interrupts { get; set; }

    /// <summary>
    /// This vCPU's local APIC (its MMIO page and IA32_APIC_BASE); null leaves the MSR a plain value. Set
    /// <see cref="Interrupts"/> to the same object so external interrupts are acknowledged through it.
    /// </summary>
    public ILocalApic? LocalApic { get; set; }

    /// <inheritdoc/>
    public void InjectNmi()
    {
        Volatile.Write(ref _nmiRequest, 1);
        _wake.Set();
    }

    /// <summary>Tells the vCPU an interrupt may be pending (thread-safe); it acknowledges at the next block boundary.</summary>
    public void NotifyInterruptRequest()
    {
        Volatile.Write(ref _interruptRequest, 1);
        _wake.Set();
    }

    /// <inheritdoc/>
    public VcpuExit Run()
    {
        UpdateMode();
        InvalidateJumpCache();
        VcpuExit exit;
        while (true)
        {
            // Async events are looked at only here, between blocks.
            if (Volatile.Read(ref _kick) != 0)
            {
                Volatile.Write(ref _kick, 0);
                exit = VcpuExit.Kicked;
                break;
            }
            // An NMI ignores IF, wakes HLT, and is held off by a running NMI handler (until IRET) and the interrupt shadow.
            bool nmiReady = Volatile.Read(ref _nmiRequest) != 0 && !_state.NmiBlocked;
            if (nmiReady && !_state.InterruptShadow)
            {
                Volatile.Write(ref _nmiRequest, 0);
                _state.Halted = false;
                if (!TakeNmi())
                {
                    exit = VcpuExit.Shutdown;
                    break;
                }
                continue;
            }
            if (_state.Halted)
            {
                // HLT with interrupts on sleeps until an interrupt request or a kick; a kick (pause, monitor) leaves
                // the CPU halted, so the next Run sleeps again instead of running past the HLT. A CPU halted with
                // interrupts off is run again only when its owner means it to (a reset, an NMI, a test).
                if (Interrupts is not null && (_state.Rflags & X86CpuState.FlagIf) != 0 && Volatile.Read(ref _interruptRequest) == 0
                    && !nmiReady)
                {
                    _wake.Wait();
                    _wake.Reset();
                    continue;
                }
                _state.Halted = false;
            }
            // The shadow of STI / MOV SS covers exactly the first instruction of the block that follows it.
            bool shadow = _state.InterruptShadow;
            _state.InterruptShadow = false;
            if (!shadow && Volatile.Read(ref _interruptRequest) != 0 && (_state.Rflags & X86CpuState.FlagIf) != 0)
            {
                if (!TakeExternalInterrupt())
                {
                    exit = VcpuExit.Shutdown;
                    break;
                }
            }
            int generation = _memory.CodeGeneration;
            if (generation != _seenCodeGeneration)
            {
                _seenCodeGeneration = generation;
                FlushBlocks();
            }
            int dirtyEpoch = _memory.DirtyLogEpoch;
            if (dirtyEpoch != _seenDirtyEpoch)
            {
                // Dirty logging was re-armed: TLB write permissions granted before it must be taken again to mark.
                _seenDirtyEpoch = dirtyEpoch;
                FlushTlb();
            }

            ExecStatus status = LookupBlock(out int start, out int count, out int slot);
            int executed = 0;
            if (status == ExecStatus.Continue)
            {
                if (DebugArmed)
                {
                    // Single-step or breakpoints armed: one instruction at a time, with the debug checks around it.
                    status = StepDebug(start, out executed);
                }
                else
                {
                    ref BlockEntry entry = ref _blocks[slot];
                    if (entry.Compiled is null)
                    {
                        CountBlock(ref entry);
                    }
                    status = entry.Compiled is { } code ? ExecuteCompiled(code, start, out executed) : ExecuteBlock(start, count, out executed);
                }
            }
            _instructions += (ulong)executed;

            if (status == ExecStatus.Continue || status == ExecStatus.Branch)
            {
                continue;
            }
            if (status == ExecStatus.Fault)
            {
                if (!DeliverException())
                {
                    exit = VcpuExit.Shutdown;
                    break;
                }
                continue;
            }
            if (status == ExecStatus.Halt)
            {
                if (Interrupts is not null && (MaterializeFlags() & X86CpuState.FlagIf) != 0)
                {
                    _state.Halted = true;
                    continue;
                }
                _state.Halted = true;
                exit = VcpuExit.Halted;
                break;
            }
            exit = VcpuExit.InternalError;
            break;
        }
        MaterializeFlags();
        return exit;
    }

    /// <summary>
    /// Runs the ops of one block; <paramref name="executed"/> counts those that retired. A method of its own so the
    /// JIT tiers it up with profile data like any hot method, rather than as an on-stack replacement of Run's loop.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ExecStatus ExecuteBlock(int start, int count, out int executed)
    {
        ExitBlock = false;
        _currentBlockStart = start;
        ExecStatus status = ExecStatus.Continue;
        // SAFETY: [start, start + count) lies inside the pool: DecodeBlock never hands out more than PoolSize ops.
        ref DecodedOp first = ref MemoryMarshal.GetArrayDataReference(_pool);
        int end = start + count;
        int i = start;
        for (; i < end; i++)
        {
            ref DecodedOp op = ref Unsafe.Add(ref first, i);
            _state.Rip = op.NextIp;
            status = op.Handler(this, ref op);
            if (status != ExecStatus.Continue || ExitBlock)
            {
                i++;
                break;
            }
        }
        executed = i - start;
        if (status == ExecStatus.Fault)
        {
            // Faults are reported at the faulting instruction, so it restarts after the handler returns.
            _state.Rip = Unsafe.Add(ref first, i - 1).Ip;
            executed--;
        }
        return status;
    }

    /// <summary>Recomputes the cached mode values after CS, SS, CR0 or EFER changed.</summary>
    internal void UpdateMode()
    {
        ref SegmentRegister cs = ref _state.Segments[(int)SegmentIndex.Cs];
        if ((_state.Efer & X86CpuState.EferLma) != 0 && (cs.Attributes & SegmentRegister.L) != 0)
        {
            Bitness = 64;
            StackMask = ulong.MaxValue;
        }
        else
        {
            bool protectedMode = (_state.Cr0 & X86CpuState.Cr0Pe) != 0;
            Bitness = protectedMode && (cs.Attributes & SegmentRegister.DB) != 0 ? 32 : 16;
            bool bigStack = protectedMode && (_state.Segments[(int)SegmentIndex.Ss].Attributes & SegmentRegister.DB) != 0;
            StackMask = bigStack ? 0xFFFF_FFFF : 0xFFFF;
        }
        uint modeKey = (uint)Bitness | ((uint)_state.Cpl << 8) | ((uint)(_state.Cr0 >> 31) << 10);
        // TLB entries carry rights checked for the CPL class of their walk.
        _tlb = _state.Cpl == 3 ? _tlbUser : _tlbSupervisor;
        _modeKey = modeKey;
        UpdateSegmentChecks();
    }

    /// <summary>Forgets every linear → block mapping (any TLB flush: a linear address may now map elsewhere).</summary>
    internal void InvalidateJumpCache()
    {
        if (++_fetchGeneration == 0)
        {
            // Wrapped: old entries could match again, so clear them and restart above the zeroed value.
            Array.Clear(_jumpCache);
            _fetchGeneration = 1;
        }
    }

    /// <summary>Drops every decoded block (code write, pool exhaustion).</summary>
    internal void FlushBlocks()
    {
        Array.Clear(_blocks);
        _poolUsed = 0;
    }

    private ExecStatus LookupBlock(out int start, out int count, out int slotIndex)
    {
        start = 0;
        count = 0;
        slotIndex = 0;
        ulong rip = _state.Rip;
        ulong linear = Bitness == 64 ? rip : (uint)(_state.Segments[(int)SegmentIndex.Cs].Base + rip);
        uint[] versions = _codeVersions;
        ref JumpEntry jump = ref _jumpCache[(int)((linear ^ (linear >> JumpCacheBits)) & ((1 << JumpCacheBits) - 1))];
        if (jump.Generation == _fetchGeneration && jump.Linear == linear && jump.Rip == rip && jump.Mode == _modeKey)
        {
            ref BlockEntry cached = ref _blocks[jump.Slot];
            if (cached.Count != 0 && cached.Phys == jump.Phys && cached.Rip == rip && cached.Mode == _modeKey
                && versions[cached.VersionSlot] == cached.Version && versions[cached.VersionSlot2] == cached.Version2)
            {
                slotIndex = jump.Slot;
                start = cached.Start;
                count = cached.Count;
                return ExecStatus.Continue;
            }
        }
        if (!TranslateFetch(linear, out ulong phys))
        {
            return ExecStatus.Fault;
        }
        uint slot = (uint)((phys ^ (phys >> BlockTableBits)) & ((1 << BlockTableBits) - 1));
        ref BlockEntry entry = ref _blocks[slot];
        jump.Linear = linear;
        jump.Rip = rip;
        jump.Phys = phys;
        jump.Mode = _modeKey;
        jump.Generation = _fetchGeneration;
        jump.Slot = (int)slot;
        slotIndex = (int)slot;
        if (entry.Count != 0 && entry.Phys == phys && entry.Rip == rip && entry.Mode == _modeKey
            && versions[entry.VersionSlot] == entry.Version && versions[entry.VersionSlot2] == entry.Version2)
        {
            start = entry.Start;
            count = entry.Count;
            return ExecStatus.Continue;
        }
        int versionSlot = _memory.CodeVersionIndex(phys >> 12);
        uint version = versions[versionSlot];
        _crossPageSlot = versions.Length - 1;
        _crossPageVersion = 0;
        ExecStatus status = DecodeBlock(linear, phys, rip, out start, out count);
        if (status != ExecStatus.Continue)
        {
            return status;
        }
        // Decoding may have flushed the table; the slot reference is still the right element.
        entry.Phys = phys;
        entry.Rip = rip;
        entry.Mode = _modeKey;
        entry.Start = start;
        entry.Count = count;
        entry.VersionSlot = versionSlot;
        entry.Version = version;
        entry.VersionSlot2 = _crossPageSlot;
        entry.Version2 = _crossPageVersion;
        entry.Hits = 0;
        entry.Compiled = null;
        return ExecStatus.Continue;
    }

    private ExecStatus DecodeBlock(ulong linear, ulong phys, ulong rip, out int start, out int count)
    {
        start = 0;
        count = 0;
        byte* code = _memory.GetFetchPointer(phys);
        if (code == null)
        {
            InternalErrorDetail = $"instruction fetch from non-RAM guest-physical address 0x{phys:X}";
            return ExecStatus.InternalError;
        }
        if (_poolUsed + MaxBlockOps > PoolSize)
        {
            FlushBlocks();
        }
        Decoder decoder = Bitness == 64 ? _decoder64 : Bitness == 32 ? _decoder32 : _decoder16;
        int available = (int)(0x1000 - (phys & PageMask));
        // SAFETY: GetFetchPointer's pointer is valid to the end of phys's page, which is [phys, phys + available).
        _reader.Reset(code, available);
        decoder.IP = rip;
        _memory.MarkCode(phys >> 12);
        start = _poolUsed;
        int n = 0;
        while (n < MaxBlockOps)
        {
            ref DecodedOp op = ref _pool[start + n];
            decoder.Decode(out op.Instr);
            bool crossed = false;
            if (op.Instr.IsInvalid && decoder.LastError == DecoderError.NoMoreBytes)
            {
                if (n > 0)
                {
                    break;
                }
                // The first instruction straddles the page end: gather its bytes through translation.
                if (!FetchAcrossPage(linear, available))
                {
                    return ExecStatus.Fault;
                }
                _reader.Reset(_crossPageBuffer, 15);
                decoder.IP = rip;
                decoder.Decode(out op.Instr);
                crossed = true;
            }
            Prepare(ref op);
            CaptureX87Opcode(ref op);
            n++;
            // A block runs on past conditional branches (their handlers return Continue when not taken and leave
            // the block when taken), so short loop bodies pay one block dispatch per iteration, not one per branch.
            FlowControl flow = op.Instr.FlowControl;
            if (crossed || (flow != FlowControl.Next && flow != FlowControl.ConditionalBranch) || _reader.Position >= available)
            {
                break;
            }
        }
        _poolUsed += n;
        count = n;
        return ExecStatus.Continue;
    }

    private bool FetchAcrossPage(ulong linear, int available)
    {
        ulong next = linear + (ulong)available;
        if (Bitness != 64)
        {
            next = (uint)next;
        }
        if (!TranslateFetch(next, out ulong nextPhys))
        {
            return false;
        }
        TranslateFetch(linear, out ulong phys);
        for (int i = 0; i < 15; i++)
        {
            ulong p = i < available ? phys + (ulong)i : nextPhys + (ulong)(i - available);
            byte* b = _memory.GetFetchPointer(p);
            // SAFETY: a non-null fetch pointer is valid to the end of p's page.
            _crossPageBuffer[i] = b != null ? *b : (byte)0;
        }
        _crossPageSlot = _memory.CodeVersionIndex(nextPhys >> 12);
        _crossPageVersion = _codeVersions[_crossPageSlot];
        _memory.MarkCode(nextPhys >> 12);
        return true;
    }

    /// <summary>Digests iced's operands into the op's flat fields and picks the handler.</summary>
    private void Prepare(ref DecodedOp op)
    {
        ref Instruction ins = ref op.Instr;
        op.Ip = ins.IP;
        op.NextIp = ins.NextIP;
        op.Handler = OpcodeTable.Handlers[(int)ins.Code];
        op.K0 = op.K1 = op.K2 = OperandKind.None;
        op.R0 = op.R1 = op.R2 = DecodedOp.NoReg;
        op.Base = op.Index = op.Seg = DecodedOp.NoReg;
        op.ScaleShift = 0;
        op.Size = op.SrcSize = 0;
        op.Imm = op.Disp = op.Target = 0;
        op.AddrSize = (byte)(Bitness / 8);
        op.Cond = (byte)ins.ConditionCode;
        op.Rep = (byte)(ins.HasRepePrefix ? 1 : ins.HasRepnePrefix ? 2 : 0);
        int spInc = ins.StackPointerIncrement;
        op.StackSize = (byte)(spInc < 0 ? -spInc : spInc);
        bool ok = !ins.IsInvalid;
        bool haveImm = false;
        int opCount = Math.Min(ins.OpCount, 3);
        for (int i = 0; i < opCount && ok; i++)
        {
            byte kind = OperandKind.None;
            byte reg = DecodedOp.NoReg;
            int size = 0;
            switch (ins.GetOpKind(i))
            {
                case OpKind.Register:
                    Register r = ins.GetOpRegister(i);
                    kind = OperandKind.Reg;
                    size = r.GetSize();
                    if (r.IsGPR())
                    {
                        reg = GprIndex(r);
                    }
                    else if (OpcodeTable.TakesSpecialRegisters[(int)ins.Code] && r.IsSegmentRegister())
                    {
                        reg = (byte)(DecodedOp.SegRegBase + (r - Register.ES));
                    }
                    else if (r >= Register.XMM0 && r <= Register.XMM15)
                    {
                        // Only SSE handlers are mapped to codes with XMM operands; GPR handlers never see these.
                        reg = (byte)(DecodedOp.XmmBase + (r - Register.XMM0));
                    }
                    else if (OpcodeTable.TakesSpecialRegisters[(int)ins.Code] && r >= Register.CR0 && r <= Register.CR15)
                    {
                        reg = (byte)(DecodedOp.CrBase + (r - Register.CR0));
                    }
                    else if (OpcodeTable.TakesSpecialRegisters[(int)ins.Code] && r >= Register.DR0 && r <= Register.DR15)
                    {
                        reg = (byte)(DecodedOp.DrBase + (r - Register.DR0));
                    }
                    else if (r >= Register.ST0 && r <= Register.ST7)
                    {
                        reg = (byte)(DecodedOp.StBase + (r - Register.ST0));
                    }
                    else if (r >= Register.MM0 && r <= Register.MM7)
                    {
                        // Only MMX handlers are mapped to codes with MM operands.
                        reg = (byte)(DecodedOp.MmBase + (r - Register.MM0));
                    }
                    else
                    {
                        ok = false;
                    }
                    break;
                case OpKind.Memory:
                    kind = OperandKind.Mem;
                    size = ins.MemorySize.GetSize();
                    ok = PrepareMemory(ref op, ref ins);
                    break;
                case OpKind.Immediate8:
                case OpKind.Immediate16:
                case OpKind.Immediate32:
                case OpKind.Immediate64:
                case OpKind.Immediate8to16:
                case OpKind.Immediate8to32:
                case OpKind.Immediate8to64:
                case OpKind.Immediate32to64:
                    kind = OperandKind.Imm;
                    if (!haveImm)
                    {
                        op.Imm = ins.GetImmediate(i);
                        haveImm = true;
                    }
                    break;
                case OpKind.Immediate8_2nd:
                    break;
                case OpKind.FarBranch16:
                case OpKind.FarBranch32:
                    op.Target = ins.GetOpKind(i) == OpKind.FarBranch16 ? ins.FarBranch16 : ins.FarBranch32;
                    op.Imm = ins.FarBranchSelector;
                    break;
                case OpKind.NearBranch16:
                case OpKind.NearBranch32:
                case OpKind.NearBranch64:
                    op.Target = ins.NearBranchTarget;
                    break;
                case OpKind.MemorySegSI:
                case OpKind.MemorySegESI:
                case OpKind.MemorySegRSI:
                case OpKind.MemorySegDI:
                case OpKind.MemorySegEDI:
                case OpKind.MemorySegRDI:
                case OpKind.MemoryESDI:
                case OpKind.MemoryESEDI:
                case OpKind.MemoryESRDI:
                    kind = OperandKind.Mem;
                    size = ins.MemorySize.GetSize();
                    op.AddrSize = StringAddressSize(ins.GetOpKind(i));
                    if (ins.GetOpKind(i) is OpKind.MemorySegSI or OpKind.MemorySegESI or OpKind.MemorySegRSI
                        or OpKind.MemorySegDI or OpKind.MemorySegEDI or OpKind.MemorySegRDI)
                    {
                        op.Seg = SegmentFor(ins.MemorySegment);
                    }
                    break;
                default:
                    ok = false;
                    break;
            }
            switch (i)
            {
                case 0:
                    op.K0 = kind;
                    op.R0 = reg;
                    op.Size = (byte)size;
                    break;
                case 1:
                    op.K1 = kind;
                    op.R1 = reg;
                    op.SrcSize = (byte)size;
                    break;
                default:
                    op.K2 = kind;
                    op.R2 = reg;
                    break;
            }
        }
        if (op.Size == 0)
        {
            op.Size = op.SrcSize;
        }
        if (ok)
        {
            op.Handler = OpcodeTable.Specialize(op.Handler, ref op);
            // iced refuses LOCK where it is not allowed, so a prefixed op here has a memory destination.
            if ((ins.HasLockPrefix || (ins.Mnemonic == Mnemonic.Xchg && op.K0 == OperandKind.Mem))
                && Handlers.Locked.For(ins.Mnemonic) is var locked && locked != null)
            {
                op.Handler = locked;
            }
        }
        if (!ok)
        {
            // Operands this interpreter cannot represent yet (segment/control registers, far pointers, vector
            // registers): refuse the instruction rather than run it half-understood.
            op.Handler = &Handlers.SystemOps.Ud;
        }
    }

    private bool PrepareMemory(ref DecodedOp op, ref Instruction ins)
    {
        Register b = ins.MemoryBase;
        Register x = ins.MemoryIndex;
        op.Disp = ins.MemoryDisplacement64;
        byte addrSize = 8;
        if (b == Register.RIP || b == Register.EIP)
        {
            // iced already folded RIP-relative displacements into an absolute address.
            addrSize = b == Register.RIP ? (byte)8 : (byte)4;
        }
        else if (b != Register.None)
        {
            if (!b.IsGPR())
            {
                return false;
            }
            op.Base = GprIndex(b);
            addrSize = (byte)b.GetSize();
        }
        if (x != Register.None)
        {
            if (!x.IsGPR())
            {
                return false;
            }
            op.Index = GprIndex(x);
            op.ScaleShift = (byte)System.Numerics.BitOperations.Log2((uint)ins.MemoryIndexScale);
            addrSize = (byte)x.GetSize();
        }
        op.AddrSize = addrSize;
        op.Seg = SegmentFor(ins.MemorySegment);
        return true;
    }

    private byte SegmentFor(Register segment)
    {
        int index = segment - Register.ES;
        if ((uint)index > 5)
        {
            return DecodedOp.NoReg;
        }
        // Long mode ignores the bases of ES, CS, SS and DS.
        if (Bitness == 64 && index < 4)
        {
            return DecodedOp.NoReg;
        }
        return (byte)index;
    }

    private static byte StringAddressSize(OpKind kind) => kind switch
    {
        OpKind.MemorySegSI or OpKind.MemorySegDI or OpKind.MemoryESDI => 2,
        OpKind.MemorySegESI or OpKind.MemorySegEDI or OpKind.MemoryESEDI => 4,
        _ => 8,
    };

    /// <summary>GPR index 0..15, or 16..19 for AH, CH, DH, BH.</summary>
    internal static byte GprIndex(Register r)
    {
        if (r >= Register.AH && r <= Register.BH)
        {
            return (byte)(DecodedOp.HighByteBase + (r - Register.AH));
        }
        return (byte)(r.GetFullRegister() - Register.RAX);
    }

    /// <summary>Acknowledges and delivers one external interrupt; false on a triple fault during delivery.</summary>
    private bool TakeExternalInterrupt()
    {
        Volatile.Write(ref _interruptRequest, 0);
        if (Interrupts is null || !Interrupts.TryAcknowledge(out byte vector))
        {
            return true;
        }
        if (TraceInterrupts)
        {
            Console.Error.WriteLine($"colo: CPU {Index}: interrupt vector 0x{vector:x2}");
        }
        // More may be pending behind this one: look again at the next boundary.
        Volatile.Write(ref _interruptRequest, 1);
        MaterializeFlags();
        if (TryDeliver(vector, hasError: false, error: 0, isInterrupt: false))
        {
            return true;
        }
        return DeliverException();
    }

    /// <summary>Delivers an NMI through vector 2 and blocks further NMIs until IRET; false on a triple fault.</summary>
    private bool TakeNmi()
    {
        MaterializeFlags();
        bool delivered = TryDeliver(Vector.NMI, hasError: false, error: 0, isInterrupt: false) || DeliverException();
        if (delivered)
        {
            _state.NmiBlocked = true;
        }
        return delivered;
    }

    /// <summary>INT n / INT3 / INTO: delivered with the next RIP, subject to the gate's DPL.</summary>
    internal ExecStatus SoftwareInterrupt(byte vector)
    {
        MaterializeFlags();
        return TryDeliver(vector, hasError: false, error: 0, isInterrupt: true) ? ExecStatus.Branch : ExecStatus.Fault;
    }

    /// <summary>INT1 / ICEBP: #DB with the next RIP, without the software-interrupt DPL check.</summary>
    internal ExecStatus DebugTrapInstruction()
    {
        MaterializeFlags();
        return TryDeliver(Vector.DB, hasError: false, error: 0, isInterrupt: false) ? ExecStatus.Branch : ExecStatus.Fault;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _wake.Dispose();
        if (_crossPageBuffer != null)
        {
            NativeMemory.Free(_crossPageBuffer);
            _crossPageBuffer = null;
        }
    }
}
