using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Colo.Core.Cpu;
using Colo.Cpu.Interpreter.Handlers;

namespace Colo.Cpu.Interpreter;

/// <summary>
/// A block compiled by the second tier: runs the ops of <c>_pool[start ..]</c> (<paramref name="first"/> is the first)
/// exactly as <see cref="InterpreterVcpu.ExecuteBlock"/> would, returning the same status and retired count. The
/// delegate is bound to its vCPU (the method's first argument), which also spares the open-delegate shuffle thunk.
/// </summary>
internal delegate ExecStatus CompiledBlock(ref DecodedOp first, out int executed);

/// <summary>
/// The second tier: a block executed <see cref="Tier2Threshold"/> times is compiled with
/// <see cref="DynamicMethod"/> into IL the .NET JIT turns into machine code. Hot register and simple-memory ops are
/// emitted inline with their operands as constants, and a conditional branch right after an inline compare tests
/// the compared values directly; every other op calls its interpreter handler through the same function pointer.
/// Lazy flags, RIP and the retired count are kept exactly as the interpreter keeps them, so either tier can take
/// over at any block boundary, and a fault in compiled code leaves the state the interpreter would.
/// </summary>
public sealed unsafe partial class InterpreterVcpu
{
    /// <summary>
    /// Executions of a block before it is compiled; 0 compiles every block at its first execution, even those with
    /// little to inline (tests), a negative
    /// value turns the second tier off. The default comes from <c>COLO_TIER2_THRESHOLD</c> (else 8192: compiling
    /// costs the JIT about a millisecond per block, so only blocks that run very often repay it).
    /// </summary>
    public int Tier2Threshold { get; set; } = DefaultTier2Threshold;

    /// <summary>Blocks compiled by the second tier since creation (diagnostics and tests).</summary>
    public int Tier2CompiledBlocks { get; private set; }

    private static readonly int DefaultTier2Threshold = ReadTier2Threshold();

    private static int ReadTier2Threshold()
    {
        if (!RuntimeFeature.IsDynamicCodeSupported)
        {
            return -1;
        }
        string? text = Environment.GetEnvironmentVariable("COLO_TIER2_THRESHOLD");
        return text is not null && int.TryParse(text, out int value) ? value : 8192;
    }

    /// <summary>
    /// Whether a compiled block that branches back to its own start may go round again without returning to the Run
    /// loop: only when the loop would find nothing to do between blocks (no kick, interrupt or NMI request, no code
    /// or dirty-log change) and would pick the same block (its pages' code versions unchanged).
    /// </summary>
    private bool LoopBackAllowed(int versionSlot, int version, int versionSlot2, int version2)
    {
        uint[] versions = _codeVersions;
        return Volatile.Read(ref _kick) == 0 && Volatile.Read(ref _interruptRequest) == 0 && Volatile.Read(ref _nmiRequest) == 0
            && _memory.CodeGeneration == _seenCodeGeneration && _memory.DirtyLogEpoch == _seenDirtyEpoch
            && versions[versionSlot] == (uint)version && versions[versionSlot2] == (uint)version2;
    }

    /// <summary>The flags of a compiled SHL/SHR/SAR by <paramref name="n"/> (1..63) exactly as Alu.ShiftRI sets them.</summary>
    private static void Tier2ShiftFlags(InterpreterVcpu c, ulong a, ulong r, int n, int size, int kind)
    {
        int bits = size * 8;
        ulong cf;
        ulong of;
        switch (kind)
        {
            case 0:
                cf = (a >> (bits - n)) & 1;
                of = ((r >> (bits - 1)) & 1) ^ cf;
                break;
            case 1:
                cf = (a >> (n - 1)) & 1;
                of = (a >> (bits - 1)) & 1;
                break;
            default:
                long sa = size == 4 ? (int)(uint)a : (long)a;
                cf = (ulong)(sa >> (n - 1)) & 1;
                of = 0;
                break;
        }
        c.ReplaceArithmeticFlags(ResultFlags(r, size) | (cf != 0 ? X86CpuState.FlagCf : 0) | (of != 0 ? X86CpuState.FlagOf : 0));
    }

    /// <summary>Runs a compiled block with <see cref="ExecuteBlock"/>'s entry and fault conventions.</summary>
    private ExecStatus ExecuteCompiled(CompiledBlock code, int start, out int executed)
    {
        ExitBlock = false;
        _currentBlockStart = start;
        ref DecodedOp first = ref _pool[start];
        ExecStatus status = code(ref first, out executed);
        if (status == ExecStatus.Fault)
        {
            // Faults are reported at the faulting instruction, so it restarts after the handler returns.
            _state.Rip = Unsafe.Add(ref first, executed - 1).Ip;
            executed--;
        }
        return status;
    }

    /// <summary>Counts one execution of the block in <paramref name="slot"/> and compiles it when it turns hot.</summary>
    private void CountBlock(ref BlockEntry entry)
    {
        int threshold = Tier2Threshold;
        if (threshold < 0 || ++entry.Hits <= threshold)
        {
            return;
        }
        if (RuntimeFeature.IsDynamicCodeSupported)
        {
            entry.Compiled = Tier2Compiler.Compile(this, _pool, ref entry, Bitness, force: threshold == 0);
            if (entry.Compiled is not null)
            {
                Tier2CompiledBlocks++;
            }
        }
        // Compiled or not, it is not looked at again until it is decoded anew.
        entry.Hits = int.MinValue;
    }

    /// <summary>Turns a decoded block into IL; one instance per compilation.</summary>
    private sealed class Tier2Compiler
    {
        private const BindingFlags Private = BindingFlags.NonPublic | BindingFlags.Instance;
        private static readonly Type[] Parameters = [typeof(InterpreterVcpu), typeof(DecodedOp).MakeByRefType(), typeof(int).MakeByRefType()];
        private static readonly Type[] HandlerParameters = [typeof(InterpreterVcpu), typeof(DecodedOp).MakeByRefType()];
        private static readonly FieldInfo StateField = typeof(InterpreterVcpu).GetField(nameof(_state), Private)!;
        private static readonly FieldInfo GprField = typeof(X86CpuState).GetField(nameof(X86CpuState.Gpr))!;
        private static readonly FieldInfo RipField = typeof(X86CpuState).GetField(nameof(X86CpuState.Rip))!;
        private static readonly FieldInfo ExitBlockField = typeof(InterpreterVcpu).GetField(nameof(ExitBlock), Private)!;
        private static readonly FieldInfo FlagOpField = typeof(InterpreterVcpu).GetField(nameof(_flagOp), Private)!;
        private static readonly FieldInfo FlagSizeField = typeof(InterpreterVcpu).GetField(nameof(_flagSize), Private)!;
        private static readonly FieldInfo FlagDstField = typeof(InterpreterVcpu).GetField(nameof(_flagDst), Private)!;
        private static readonly FieldInfo FlagSrcField = typeof(InterpreterVcpu).GetField(nameof(_flagSrc), Private)!;
        private static readonly FieldInfo FlagResField = typeof(InterpreterVcpu).GetField(nameof(_flagRes), Private)!;
        private static readonly FieldInfo FlagCarryInField = typeof(InterpreterVcpu).GetField(nameof(_flagCarryIn), Private)!;
        private static readonly MethodInfo ReadMemMethod = typeof(InterpreterVcpu).GetMethod(nameof(ReadMem), Private)!;
        private static readonly MethodInfo WriteMemMethod = typeof(InterpreterVcpu).GetMethod(nameof(WriteMem), Private)!;
        private static readonly MethodInfo ConditionMethod = typeof(InterpreterVcpu).GetMethod(nameof(Condition), Private)!;
        private static readonly MethodInfo CarryMethod = typeof(InterpreterVcpu).GetMethod(nameof(Carry), Private)!;
        private static readonly MethodInfo GetRegMethod = typeof(InterpreterVcpu).GetMethod(nameof(GetReg), Private)!;
        private static readonly MethodInfo SetRegMethod = typeof(InterpreterVcpu).GetMethod(nameof(SetReg), Private)!;
        private static readonly MethodInfo LoopBackAllowedMethod = typeof(InterpreterVcpu).GetMethod(nameof(LoopBackAllowed), Private)!;
        private static readonly FieldInfo InstructionsField = typeof(InterpreterVcpu).GetField(nameof(_instructions), Private)!;

        private static readonly nint HMovRR = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.MovRR;
        private static readonly nint HMovRI = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.MovRI;
        private static readonly nint HMovRM = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.MovRM;
        private static readonly nint HMovMR = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.MovMR;
        private static readonly nint HMovMI = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.MovMI;
        private static readonly nint HMovRMNarrow = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.MovRMNarrow;
        private static readonly nint HMovMRNarrow = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.MovMRNarrow;
        private static readonly nint HMovzxRM = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.MovzxRM;
        private static readonly nint HMovzxRR = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.MovzxRR;
        private static readonly nint HAddRR = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.AddRR;
        private static readonly nint HAddRI = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.AddRI;
        private static readonly nint HSubRR = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.SubRR;
        private static readonly nint HSubRI = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.SubRI;
        private static readonly nint HCmpRR = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.CmpRR;
        private static readonly nint HCmpRI = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.CmpRI;
        private static readonly nint HAndRR = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.AndRR;
        private static readonly nint HAndRI = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.AndRI;
        private static readonly nint HOrRR = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.OrRR;
        private static readonly nint HOrRI = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.OrRI;
        private static readonly nint HXorRR = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.XorRR;
        private static readonly nint HXorRI = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.XorRI;
        private static readonly nint HTestRR = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.TestRR;
        private static readonly nint HTestRI = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.TestRI;
        private static readonly nint HIncR = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.IncR;
        private static readonly nint HDecR = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.DecR;
        private static readonly nint HLea = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.Lea;
        private static readonly nint HShlRI = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.ShlRI;
        private static readonly nint HShrRI = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.ShrRI;
        private static readonly nint HSarRI = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Alu.SarRI;
        private static readonly MethodInfo ShiftFlagsMethod = typeof(InterpreterVcpu).GetMethod(nameof(Tier2ShiftFlags), BindingFlags.NonPublic | BindingFlags.Static)!;
        private static readonly nint HJcc = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Flow.Jcc;
        private static readonly nint HJmpRel = (nint)(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>)&Flow.JmpRel;

        private readonly ILGenerator _il;
        private readonly LocalBuilder _gpr;
        private readonly LocalBuilder _stateRef;
        private readonly LocalBuilder _a;
        private readonly LocalBuilder _b;
        private readonly LocalBuilder _r;
        private readonly LocalBuilder _value;
        private readonly LocalBuilder _carry;
        private readonly LocalBuilder _status;
        private readonly LocalBuilder _executed;
        // Shared exits: "executed = _executed; return _status".
        private readonly Label _exit;
        // The flag op the last inline ALU op recorded (its operands are in _a, _b, _r) while no op since may have
        // changed the flags; None when unknown at this point of the block.
        private LazyOp _knownOp;
        private int _knownSize;
        // Every op is inline (none can change mode, paging or interrupt state), so a branch back to the block's
        // start may stay in the method while LoopBackAllowed says the Run loop would pick this block again.
        private bool _loopBack;
        private int _versionSlot;
        private uint _version;
        private int _versionSlot2;
        private uint _version2;
        private ulong _blockIp;
        private Label _top;

        private Tier2Compiler(ILGenerator il)
        {
            _il = il;
            _gpr = il.DeclareLocal(typeof(ulong).MakeByRefType());
            _stateRef = il.DeclareLocal(typeof(X86CpuState).MakeByRefType());
            _a = il.DeclareLocal(typeof(ulong));
            _b = il.DeclareLocal(typeof(ulong));
            _r = il.DeclareLocal(typeof(ulong));
            _value = il.DeclareLocal(typeof(ulong));
            _carry = il.DeclareLocal(typeof(ulong));
            _status = il.DeclareLocal(typeof(int));
            _executed = il.DeclareLocal(typeof(int));
            _exit = il.DefineLabel();
        }

        [UnconditionalSuppressMessage("AOT", "IL3050", Justification = "Only called when RuntimeFeature.IsDynamicCodeSupported.")]
        public static CompiledBlock? Compile(InterpreterVcpu vcpu, DecodedOp[] pool, ref BlockEntry entry, int bitness, bool force)
        {
            int start = entry.Start;
            int count = entry.Count;
            // The JIT's time is the cost: a block with almost nothing to inline gains too little to pay for it.
            int inline = 0;
            for (int i = 0; i < count; i++)
            {
                if (CanInline(ref pool[start + i], bitness))
                {
                    inline++;
                }
            }
            if (!force && (inline < 2 || inline * 3 < count))
            {
                return null;
            }
            var method = new DynamicMethod("colo_tier2_block", typeof(ExecStatus), Parameters, typeof(InterpreterVcpu), skipVisibility: true);
            ILGenerator il = method.GetILGenerator(256 + count * 96);
            var compiler = new Tier2Compiler(il);
            compiler._loopBack = inline == count;
            compiler._versionSlot = entry.VersionSlot;
            compiler._version = entry.Version;
            compiler._versionSlot2 = entry.VersionSlot2;
            compiler._version2 = entry.Version2;
            compiler.EmitBlock(pool, start, count, bitness);
            return method.CreateDelegate<CompiledBlock>(vcpu);
        }

        private void EmitBlock(DecodedOp[] pool, int start, int count, int bitness)
        {
            ILGenerator il = _il;
            // ref X86CpuState state = ref c._state; ref ulong gpr = ref state.Gpr[0];
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldflda, StateField);
            il.Emit(OpCodes.Dup);
            il.Emit(OpCodes.Stloc, _stateRef);
            il.Emit(OpCodes.Ldflda, GprField);
            il.Emit(OpCodes.Stloc, _gpr);
            _blockIp = pool[start].Ip;
            _top = il.DefineLabel();
            il.MarkLabel(_top);
            _knownOp = LazyOp.None;
            for (int i = 0; i < count; i++)
            {
                ref DecodedOp op = ref pool[start + i];
                if (!EmitInline(ref op, i, bitness))
                {
                    EmitCall(ref op, i);
                    _knownOp = LazyOp.None;
                }
            }
            // Ran off the end: continue at the next instruction, as ExecuteBlock leaves RIP.
            EmitSetRip(pool[start + count - 1].NextIp);
            EmitReturn(count, ExecStatus.Continue);
            il.MarkLabel(_exit);
            il.Emit(OpCodes.Ldarg_2);
            il.Emit(OpCodes.Ldloc, _executed);
            il.Emit(OpCodes.Stind_I4);
            il.Emit(OpCodes.Ldloc, _status);
            il.Emit(OpCodes.Ret);
        }

        /// <summary>Calls the op's interpreter handler, leaving the block as the interpreter would.</summary>
        private void EmitCall(ref DecodedOp op, int i)
        {
            ILGenerator il = _il;
            EmitSetRip(op.NextIp);
            il.Emit(OpCodes.Ldarg_0);
            EmitOpRef(i);
            il.Emit(OpCodes.Ldc_I8, (long)(nint)op.Handler);
            il.Emit(OpCodes.Conv_I);
            il.EmitCalli(OpCodes.Calli, CallingConventions.Standard, typeof(ExecStatus), HandlerParameters, null);
            il.Emit(OpCodes.Stloc, _status);
            EmitExitUnlessContinue(i);
        }

        /// <summary>Leaves with the status in <see cref="_status"/> unless it is Continue and no store hit code.</summary>
        private void EmitExitUnlessContinue(int i)
        {
            ILGenerator il = _il;
            Label exit = il.DefineLabel();
            Label next = il.DefineLabel();
            il.Emit(OpCodes.Ldloc, _status);
            il.Emit(OpCodes.Brtrue, exit);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, ExitBlockField);
            il.Emit(OpCodes.Brfalse, next);
            il.MarkLabel(exit);
            EmitConst(i + 1);
            il.Emit(OpCodes.Stloc, _executed);
            il.Emit(OpCodes.Br, _exit);
            il.MarkLabel(next);
        }

        /// <summary>Whether <see cref="EmitInline"/> takes the op (kept in step with it).</summary>
        private static bool CanInline(ref DecodedOp op, int bitness)
        {
            nint h = (nint)op.Handler;
            if (h == HMovRR || h == HMovRI || h == HAddRR || h == HAddRI || h == HSubRR || h == HSubRI || h == HCmpRR
                || h == HCmpRI || h == HAndRR || h == HAndRI || h == HOrRR || h == HOrRI || h == HXorRR || h == HXorRI
                || h == HTestRR || h == HTestRI || h == HIncR || h == HDecR || h == HMovzxRR || h == HJcc || h == HJmpRel
                || h == HShlRI || h == HShrRI || h == HSarRI)
            {
                return true;
            }
            if (h == HLea)
            {
                return op.R0 < 16 && op.Size >= 4 && op.K1 == OperandKind.Mem;
            }
            return bitness == 64 && op.Seg == DecodedOp.NoReg && op.AddrSize >= 4
                && (h == HMovRM || h == HMovzxRM || h == HMovRMNarrow || h == HMovMR || h == HMovMI || h == HMovMRNarrow);
        }

        private bool EmitInline(ref DecodedOp op, int i, int bitness)
        {
            nint h = (nint)op.Handler;
            if (h == HMovRR)
            {
                EmitLoadGpr(op.R1);
                EmitTruncate(op.Size);
                EmitStoreGprFromStack(op.R0);
                return true;
            }
            if (h == HMovRI)
            {
                EmitConst(op.Size == 4 ? (uint)op.Imm : op.Imm);
                EmitStoreGprFromStack(op.R0);
                return true;
            }
            if (h == HAddRR || h == HAddRI)
            {
                EmitArith(ref op, LazyOp.Add, OpCodes.Add, write: true, imm: h == HAddRI);
                return true;
            }
            if (h == HSubRR || h == HSubRI)
            {
                EmitArith(ref op, LazyOp.Sub, OpCodes.Sub, write: true, imm: h == HSubRI);
                return true;
            }
            if (h == HCmpRR || h == HCmpRI)
            {
                EmitArith(ref op, LazyOp.Sub, OpCodes.Sub, write: false, imm: h == HCmpRI);
                return true;
            }
            if (h == HAndRR || h == HAndRI)
            {
                EmitLogic(ref op, OpCodes.And, write: true, imm: h == HAndRI);
                return true;
            }
            if (h == HOrRR || h == HOrRI)
            {
                EmitLogic(ref op, OpCodes.Or, write: true, imm: h == HOrRI);
                return true;
            }
            if (h == HXorRR || h == HXorRI)
            {
                EmitLogic(ref op, OpCodes.Xor, write: true, imm: h == HXorRI);
                return true;
            }
            if (h == HTestRR || h == HTestRI)
            {
                EmitLogic(ref op, OpCodes.And, write: false, imm: h == HTestRI);
                return true;
            }
            if (h == HIncR || h == HDecR)
            {
                EmitIncDec(ref op, h == HIncR);
                return true;
            }
            if (h == HShlRI || h == HShrRI || h == HSarRI)
            {
                EmitShift(ref op, h == HShlRI ? 0 : h == HShrRI ? 1 : 2);
                return true;
            }
            if (h == HMovzxRR)
            {
                EmitLoadGpr(op.R1);
                EmitTruncate(op.SrcSize);
                EmitStoreGprFromStack(op.R0);
                return true;
            }
            if (h == HLea && op.R0 < 16 && op.Size >= 4 && op.K1 == OperandKind.Mem)
            {
                EmitEffectiveAddress(ref op);
                EmitTruncate(op.Size);
                EmitStoreGprFromStack(op.R0);
                return true;
            }
            if (h == HJcc)
            {
                EmitJcc(ref op, i);
                return true;
            }
            if (h == HJmpRel)
            {
                EmitBranch(op.Target, i);
                return true;
            }
            // Memory operands inline only in 64-bit code without an FS/GS base: no segment base or limit applies.
            if (bitness != 64 || op.Seg != DecodedOp.NoReg || op.AddrSize < 4)
            {
                return false;
            }
            if (h == HMovRM || h == HMovzxRM || h == HMovRMNarrow)
            {
                int size = h == HMovzxRM ? op.SrcSize : op.Size;
                EmitSetRip(op.NextIp);
                EmitRead(ref op, size, i);
                if (h == HMovRMNarrow)
                {
                    // SetReg(r, size, value): narrow loads merge into the register.
                    _il.Emit(OpCodes.Ldarg_0);
                    EmitConst(op.R0);
                    EmitConst(op.Size);
                    _il.Emit(OpCodes.Ldloc, _value);
                    _il.Emit(OpCodes.Call, SetRegMethod);
                }
                else
                {
                    _il.Emit(OpCodes.Ldloc, _value);
                    EmitStoreGprFromStack(op.R0);
                }
                return true;
            }
            if (h == HMovMR || h == HMovMI || h == HMovMRNarrow)
            {
                EmitSetRip(op.NextIp);
                _il.Emit(OpCodes.Ldarg_0);
                EmitEffectiveAddress(ref op);
                EmitConst(op.Size);
                if (h == HMovMI)
                {
                    EmitConst(op.Imm);
                }
                else if (h == HMovMR)
                {
                    EmitLoadGpr(op.R1);
                }
                else
                {
                    _il.Emit(OpCodes.Ldarg_0);
                    EmitConst(op.R1);
                    EmitConst(op.Size);
                    _il.Emit(OpCodes.Call, GetRegMethod);
                }
                _il.Emit(OpCodes.Call, WriteMemMethod);
                _il.Emit(OpCodes.Stloc, _status);
                EmitExitUnlessContinue(i);
                return true;
            }
            return false;
        }

        /// <summary>A taken branch at op <paramref name="i"/>: loops back in place when it may, else leaves the block.</summary>
        private void EmitBranch(ulong target, int i)
        {
            ILGenerator il = _il;
            if (_loopBack && target == _blockIp)
            {
                // Retire this pass as the Run loop would (its count, then a fresh block) and go round again.
                Label leave = il.DefineLabel();
                il.Emit(OpCodes.Ldarg_0);
                EmitConst(_versionSlot);
                EmitConst((int)_version);
                EmitConst(_versionSlot2);
                EmitConst((int)_version2);
                il.Emit(OpCodes.Call, LoopBackAllowedMethod);
                il.Emit(OpCodes.Brfalse, leave);
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldfld, InstructionsField);
                EmitConst((ulong)(i + 1));
                il.Emit(OpCodes.Add);
                il.Emit(OpCodes.Stfld, InstructionsField);
                il.Emit(OpCodes.Br, _top);
                il.MarkLabel(leave);
            }
            EmitSetRip(target);
            EmitReturn(i + 1, ExecStatus.Branch);
        }

        /// <summary>ReadMem(ea, size, out _value), leaving the block on a fault.</summary>
        private void EmitRead(ref DecodedOp op, int size, int i)
        {
            ILGenerator il = _il;
            il.Emit(OpCodes.Ldarg_0);
            EmitEffectiveAddress(ref op);
            EmitConst(size);
            il.Emit(OpCodes.Ldloca, _value);
            il.Emit(OpCodes.Call, ReadMemMethod);
            il.Emit(OpCodes.Stloc, _status);
            EmitExitUnlessContinue(i);
        }

        /// <summary>ADD/SUB/CMP r, r/imm (sizes 4 and 8), as Alu.RegOp.</summary>
        private void EmitArith(ref DecodedOp op, LazyOp kind, OpCode operation, bool write, bool imm)
        {
            ILGenerator il = _il;
            EmitLoadGpr(op.R0);
            il.Emit(OpCodes.Stloc, _a);
            if (imm)
            {
                EmitConst(op.Imm);
            }
            else
            {
                EmitLoadGpr(op.R1);
            }
            il.Emit(OpCodes.Stloc, _b);
            il.Emit(OpCodes.Ldloc, _a);
            il.Emit(OpCodes.Ldloc, _b);
            il.Emit(operation);
            il.Emit(OpCodes.Stloc, _r);
            if (op.Size == 4)
            {
                TruncateLocal(_a);
                TruncateLocal(_b);
                TruncateLocal(_r);
            }
            if (write)
            {
                il.Emit(OpCodes.Ldloc, _r);
                EmitStoreGprFromStack(op.R0);
            }
            EmitLazyFlags(kind, op.Size);
        }

        /// <summary>AND/OR/XOR/TEST r, r/imm (sizes 4 and 8), as Alu.RegLogic (operands recorded untruncated).</summary>
        private void EmitLogic(ref DecodedOp op, OpCode operation, bool write, bool imm)
        {
            ILGenerator il = _il;
            EmitLoadGpr(op.R0);
            il.Emit(OpCodes.Stloc, _a);
            if (imm)
            {
                EmitConst(op.Imm);
            }
            else
            {
                EmitLoadGpr(op.R1);
            }
            il.Emit(OpCodes.Stloc, _b);
            il.Emit(OpCodes.Ldloc, _a);
            il.Emit(OpCodes.Ldloc, _b);
            il.Emit(operation);
            EmitTruncate(op.Size);
            il.Emit(OpCodes.Stloc, _r);
            if (write)
            {
                il.Emit(OpCodes.Ldloc, _r);
                EmitStoreGprFromStack(op.R0);
            }
            EmitLazyFlags(LazyOp.Logic, op.Size);
        }

        /// <summary>INC/DEC r (sizes 4 and 8), as Alu.IncR/DecR: CF is kept in the carry-in.</summary>
        private void EmitIncDec(ref DecodedOp op, bool inc)
        {
            ILGenerator il = _il;
            // The incoming carry first, from the flags still recorded.
            EmitCarry();
            il.Emit(OpCodes.Stloc, _carry);
            EmitLoadGpr(op.R0);
            EmitTruncate(op.Size);
            il.Emit(OpCodes.Stloc, _a);
            il.Emit(OpCodes.Ldloc, _a);
            EmitConst(1UL);
            il.Emit(inc ? OpCodes.Add : OpCodes.Sub);
            EmitTruncate(op.Size);
            il.Emit(OpCodes.Stloc, _r);
            EmitConst(1UL);
            il.Emit(OpCodes.Stloc, _b);
            il.Emit(OpCodes.Ldloc, _r);
            EmitStoreGprFromStack(op.R0);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, _carry);
            il.Emit(OpCodes.Stfld, FlagCarryInField);
            EmitLazyFlags(inc ? LazyOp.Inc : LazyOp.Dec, op.Size);
        }

        /// <summary>SHL/SHR/SAR r, imm (sizes 4 and 8), as Alu.ShiftRI: the value inline, the flags by a helper.</summary>
        private void EmitShift(ref DecodedOp op, int kind)
        {
            ILGenerator il = _il;
            int size = op.Size;
            int n = (int)(op.Imm & (size == 8 ? 63UL : 31UL));
            EmitLoadGpr(op.R0);
            EmitTruncate(size);
            if (n == 0)
            {
                // No flags change; a 32-bit destination is still zero-extended.
                EmitStoreGprFromStack(op.R0);
                return;
            }
            il.Emit(OpCodes.Stloc, _a);
            il.Emit(OpCodes.Ldloc, _a);
            if (kind == 2 && size == 4)
            {
                il.Emit(OpCodes.Conv_I4);
            }
            EmitConst(n);
            il.Emit(kind == 0 ? OpCodes.Shl : kind == 1 ? OpCodes.Shr_Un : OpCodes.Shr);
            EmitTruncate(size);
            il.Emit(OpCodes.Stloc, _r);
            il.Emit(OpCodes.Ldloc, _r);
            EmitStoreGprFromStack(op.R0);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, _a);
            il.Emit(OpCodes.Ldloc, _r);
            EmitConst(n);
            EmitConst(size);
            EmitConst(kind);
            il.Emit(OpCodes.Call, ShiftFlagsMethod);
            _knownOp = LazyOp.None;
        }

        /// <summary>Pushes CF (0 or 1) as a ulong: straight from the known compare, else through Carry().</summary>
        private void EmitCarry()
        {
            ILGenerator il = _il;
            switch (_knownOp)
            {
                case LazyOp.Sub:
                    // Operands are already cut to the size: an unsigned compare of the zero-extended values.
                    il.Emit(OpCodes.Ldloc, _a);
                    il.Emit(OpCodes.Ldloc, _b);
                    il.Emit(OpCodes.Clt_Un);
                    il.Emit(OpCodes.Conv_U8);
                    return;
                case LazyOp.Logic:
                    EmitConst(0UL);
                    return;
                default:
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Call, CarryMethod);
                    return;
            }
        }

        /// <summary>Records the lazy flags from _a, _b, _r exactly as SetLazyFlags does.</summary>
        private void EmitLazyFlags(LazyOp kind, int size)
        {
            ILGenerator il = _il;
            il.Emit(OpCodes.Ldarg_0);
            EmitConst((int)kind);
            il.Emit(OpCodes.Stfld, FlagOpField);
            il.Emit(OpCodes.Ldarg_0);
            EmitConst(size);
            il.Emit(OpCodes.Stfld, FlagSizeField);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, _a);
            il.Emit(OpCodes.Stfld, FlagDstField);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, _b);
            il.Emit(OpCodes.Stfld, FlagSrcField);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, _r);
            il.Emit(OpCodes.Stfld, FlagResField);
            _knownOp = kind;
            _knownSize = size;
        }

        /// <summary>Jcc: taken leaves the block at the target, not taken runs on.</summary>
        private void EmitJcc(ref DecodedOp op, int i)
        {
            ILGenerator il = _il;
            Label notTaken = il.DefineLabel();
            if (!EmitKnownCondition(op.Cond))
            {
                il.Emit(OpCodes.Ldarg_0);
                EmitConst((int)op.Cond);
                il.Emit(OpCodes.Call, ConditionMethod);
            }
            il.Emit(OpCodes.Brfalse, notTaken);
            EmitBranch(op.Target, i);
            il.MarkLabel(notTaken);
        }

        /// <summary>
        /// Pushes the condition (iced ConditionCode numbering) computed from the operands of the known flag op, as
        /// <see cref="Condition"/> would; false (nothing pushed) when it is not one answered here.
        /// </summary>
        private bool EmitKnownCondition(int cc)
        {
            ILGenerator il = _il;
            bool signedSize4 = _knownSize == 4;
            switch (_knownOp)
            {
                case LazyOp.Sub:
                    switch (cc)
                    {
                        case 3: // b: a < b unsigned
                            EmitCompare(OpCodes.Clt_Un, signed: false, negate: false);
                            return true;
                        case 4: // ae
                            EmitCompare(OpCodes.Clt_Un, signed: false, negate: true);
                            return true;
                        case 5: // e
                            EmitCompare(OpCodes.Ceq, signed: false, negate: false);
                            return true;
                        case 6: // ne
                            EmitCompare(OpCodes.Ceq, signed: false, negate: true);
                            return true;
                        case 7: // be: !(a > b)
                            EmitCompare(OpCodes.Cgt_Un, signed: false, negate: true);
                            return true;
                        case 8: // a
                            EmitCompare(OpCodes.Cgt_Un, signed: false, negate: false);
                            return true;
                        case 13: // l
                            EmitCompare(OpCodes.Clt, signed: true, negate: false);
                            return true;
                        case 14: // ge
                            EmitCompare(OpCodes.Clt, signed: true, negate: true);
                            return true;
                        case 15: // le
                            EmitCompare(OpCodes.Cgt, signed: true, negate: true);
                            return true;
                        case 16: // g
                            EmitCompare(OpCodes.Cgt, signed: true, negate: false);
                            return true;
                        case 9 or 10:
                            EmitSign(negate: cc == 10, signedSize4);
                            return true;
                        default:
                            return false;
                    }
                case LazyOp.Logic:
                    // CF = OF = 0: b/ae fixed, be/a = ZF, l/ge = SF, le/g = ZF or SF.
                    switch (cc)
                    {
                        case 3:
                            EmitConst(0);
                            return true;
                        case 4:
                            EmitConst(1);
                            return true;
                        case 5 or 7:
                            EmitZero(negate: false);
                            return true;
                        case 6 or 8:
                            EmitZero(negate: true);
                            return true;
                        case 9 or 13:
                            EmitSign(negate: false, signedSize4);
                            return true;
                        case 10 or 14:
                            EmitSign(negate: true, signedSize4);
                            return true;
                        case 15 or 16:
                            // le: r signed <= 0; g: r signed > 0.
                            il.Emit(OpCodes.Ldloc, _r);
                            if (signedSize4)
                            {
                                il.Emit(OpCodes.Conv_I4);
                            }
                            EmitZeroOfWidth(signedSize4);
                            il.Emit(OpCodes.Cgt);
                            if (cc == 15)
                            {
                                EmitNot();
                            }
                            return true;
                        default:
                            return false;
                    }
                case LazyOp.Add or LazyOp.Inc or LazyOp.Dec:
                    switch (cc)
                    {
                        case 5 or 6:
                            EmitZero(negate: cc == 6);
                            return true;
                        case 9 or 10:
                            EmitSign(negate: cc == 10, signedSize4);
                            return true;
                        default:
                            return false;
                    }
                default:
                    return false;
            }
        }

        private void EmitCompare(OpCode compare, bool signed, bool negate)
        {
            ILGenerator il = _il;
            il.Emit(OpCodes.Ldloc, _a);
            if (signed && _knownSize == 4)
            {
                il.Emit(OpCodes.Conv_I4);
            }
            il.Emit(OpCodes.Ldloc, _b);
            if (signed && _knownSize == 4)
            {
                il.Emit(OpCodes.Conv_I4);
            }
            il.Emit(compare);
            if (negate)
            {
                EmitNot();
            }
        }

        private void EmitZero(bool negate)
        {
            _il.Emit(OpCodes.Ldloc, _r);
            EmitConst(0UL);
            _il.Emit(OpCodes.Ceq);
            if (negate)
            {
                EmitNot();
            }
        }

        private void EmitSign(bool negate, bool size4)
        {
            ILGenerator il = _il;
            il.Emit(OpCodes.Ldloc, _r);
            if (size4)
            {
                il.Emit(OpCodes.Conv_I4);
            }
            EmitZeroOfWidth(size4);
            il.Emit(OpCodes.Clt);
            if (negate)
            {
                EmitNot();
            }
        }

        private void EmitZeroOfWidth(bool size4)
        {
            if (size4)
            {
                EmitConst(0);
            }
            else
            {
                EmitConst(0UL);
            }
        }

        private void EmitNot()
        {
            EmitConst(0);
            _il.Emit(OpCodes.Ceq);
        }

        /// <summary>Pushes the op's effective address (base + index·scale + disp, cut to the address size) as ulong.</summary>
        private void EmitEffectiveAddress(ref DecodedOp op)
        {
            ILGenerator il = _il;
            EmitConst(op.Disp);
            if (op.Base != DecodedOp.NoReg)
            {
                EmitLoadGpr(op.Base);
                il.Emit(OpCodes.Add);
            }
            if (op.Index != DecodedOp.NoReg)
            {
                EmitLoadGpr(op.Index);
                if (op.ScaleShift != 0)
                {
                    EmitConst((int)op.ScaleShift);
                    il.Emit(OpCodes.Shl);
                }
                il.Emit(OpCodes.Add);
            }
            if (op.AddrSize != 8)
            {
                EmitTruncate(op.AddrSize);
            }
        }

        private void EmitLoadGpr(int r)
        {
            EmitGprAddress(r);
            _il.Emit(OpCodes.Ldind_I8);
        }

        private void EmitGprAddress(int r)
        {
            _il.Emit(OpCodes.Ldloc, _gpr);
            if (r != 0)
            {
                EmitConst(r * 8);
                _il.Emit(OpCodes.Conv_I);
                _il.Emit(OpCodes.Add);
            }
        }

        /// <summary>Stores the ulong on the stack into a whole register.</summary>
        private void EmitStoreGprFromStack(int r)
        {
            _il.Emit(OpCodes.Stloc, _value);
            EmitGprAddress(r);
            _il.Emit(OpCodes.Ldloc, _value);
            _il.Emit(OpCodes.Stind_I8);
        }

        /// <summary>Zero-extends the low <paramref name="size"/> bytes of the ulong on the stack.</summary>
        private void EmitTruncate(int size)
        {
            switch (size)
            {
                case 1:
                    _il.Emit(OpCodes.Conv_U1);
                    _il.Emit(OpCodes.Conv_U8);
                    break;
                case 2:
                    _il.Emit(OpCodes.Conv_U2);
                    _il.Emit(OpCodes.Conv_U8);
                    break;
                case 4:
                    _il.Emit(OpCodes.Conv_U4);
                    _il.Emit(OpCodes.Conv_U8);
                    break;
            }
        }

        private void TruncateLocal(LocalBuilder local)
        {
            _il.Emit(OpCodes.Ldloc, local);
            EmitTruncate(4);
            _il.Emit(OpCodes.Stloc, local);
        }

        private void EmitSetRip(ulong rip)
        {
            _il.Emit(OpCodes.Ldloc, _stateRef);
            EmitConst(rip);
            _il.Emit(OpCodes.Stfld, RipField);
        }

        private void EmitReturn(int executed, ExecStatus status)
        {
            EmitConst(executed);
            _il.Emit(OpCodes.Stloc, _executed);
            EmitConst((int)status);
            _il.Emit(OpCodes.Stloc, _status);
            _il.Emit(OpCodes.Br, _exit);
        }

        private void EmitOpRef(int i)
        {
            _il.Emit(OpCodes.Ldarg_1);
            if (i != 0)
            {
                EmitConst(i * sizeof(DecodedOp));
                _il.Emit(OpCodes.Conv_I);
                _il.Emit(OpCodes.Add);
            }
        }

        private void EmitConst(int value) => _il.Emit(OpCodes.Ldc_I4, value);

        private void EmitConst(ulong value) => _il.Emit(OpCodes.Ldc_I8, (long)value);
    }
}
