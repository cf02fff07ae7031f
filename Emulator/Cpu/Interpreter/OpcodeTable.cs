using Colo.Cpu.Interpreter.Handlers;
using Iced.Intel;

namespace Colo.Cpu.Interpreter;

/// <summary>
/// Code → handler, one slot per iced <see cref="Code"/>. Rows are chosen by mnemonic for the legacy encodings (the
/// operand forms are digested generically at decode time), with per-Code rows where one mnemonic needs several
/// handlers. Everything else is #UD.
/// </summary>
internal static unsafe class OpcodeTable
{
    /// <summary>Codes whose handlers understand segment/control register operands (see <see cref="DecodedOp.SegRegBase"/>).</summary>
    public static readonly bool[] TakesSpecialRegisters = BuildSpecial();

    public static readonly delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>[] Handlers = Build();

    private static bool[] BuildSpecial()
    {
        Code[] codes = Enum.GetValues<Code>();
        var special = new bool[codes.Length + 1];
        foreach (Code code in codes)
        {
            string name = code.ToString();
            Mnemonic m = code.Mnemonic();
            bool segPushPop = (m == Mnemonic.Push || m == Mnemonic.Pop) && name.Length > 3 && name[^3] == '_' && name.EndsWith('S');
            special[(int)code] = name.StartsWith("Mov_", StringComparison.Ordinal) && (name.Contains("Sreg", StringComparison.Ordinal) || name.EndsWith("_cr", StringComparison.Ordinal) || name.Contains("_cr_", StringComparison.Ordinal)
                    || name.EndsWith("_dr", StringComparison.Ordinal) || name.Contains("_dr_", StringComparison.Ordinal))
                || segPushPop;
        }
        return special;
    }

    private static delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>[] Build()
    {
        Code[] codes = Enum.GetValues<Code>();
        int max = 0;
        foreach (Code code in codes)
        {
            max = Math.Max(max, (int)code);
        }
        var table = new delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus>[max + 1];
        for (int i = 0; i < table.Length; i++)
        {
            table[i] = &SystemOps.Ud;
        }
        foreach (Code code in codes)
        {
            if (code == Code.INVALID || code.ToOpCode().Encoding != EncodingKind.Legacy)
            {
                continue;
            }
            table[(int)code] = ForCode(code);
        }
        return table;
    }

    private static delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> ForCode(Code code)
    {
        string name = code.ToString();
        OpCodeInfo info = code.ToOpCode();
        delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> vector = ForVectorCode(code);
        if (vector != null)
        {
            return vector;
        }
        switch (code.Mnemonic())
        {
            case Mnemonic.Add: return &Alu.Add;
            case Mnemonic.Adc: return &Alu.Adc;
            case Mnemonic.Sub: return &Alu.Sub;
            case Mnemonic.Sbb: return &Alu.Sbb;
            case Mnemonic.Cmp: return &Alu.Cmp;
            case Mnemonic.And: return &Alu.And;
            case Mnemonic.Or: return &Alu.Or;
            case Mnemonic.Xor: return &Alu.Xor;
            case Mnemonic.Test: return &Alu.Test;
            case Mnemonic.Inc: return &Alu.Inc;
            case Mnemonic.Dec: return &Alu.Dec;
            case Mnemonic.Neg: return &Alu.Neg;
            case Mnemonic.Not: return &Alu.Not;
            case Mnemonic.Mov:
                if (name.Contains("Sreg", StringComparison.Ordinal))
                {
                    return &SystemRegs.MovSreg;
                }
                if (name.EndsWith("_cr", StringComparison.Ordinal) || name.Contains("_cr_", StringComparison.Ordinal))
                {
                    return &SystemRegs.MovCr;
                }
                if (name.EndsWith("_dr", StringComparison.Ordinal) || name.Contains("_dr_", StringComparison.Ordinal))
                {
                    return &SystemRegs.MovDr;
                }
                return name.Contains("_tr", StringComparison.Ordinal) ? &SystemOps.Ud : &Alu.Mov;
            case Mnemonic.Movzx: return &Alu.Movzx;
            case Mnemonic.Movsx:
            case Mnemonic.Movsxd: return &Alu.Movsx;
            case Mnemonic.Lea: return &Alu.Lea;
            case Mnemonic.Xchg: return &Alu.Xchg;
            case Mnemonic.Cmpxchg: return &Alu.Cmpxchg;
            case Mnemonic.Xadd: return &Alu.Xadd;
            case Mnemonic.Bswap: return &Alu.Bswap;
            case Mnemonic.Bound: return &Alu.Bound;
            case Mnemonic.Cbw: return &Alu.Cbw;
            case Mnemonic.Cwde: return &Alu.Cwde;
            case Mnemonic.Cdqe: return &Alu.Cdqe;
            case Mnemonic.Cwd: return &Alu.Cwd;
            case Mnemonic.Cdq: return &Alu.Cdq;
            case Mnemonic.Cqo: return &Alu.Cqo;
            case Mnemonic.Bt: return &Alu.Bt;
            case Mnemonic.Bts: return &Alu.Bts;
            case Mnemonic.Btr: return &Alu.Btr;
            case Mnemonic.Btc: return &Alu.Btc;
            case Mnemonic.Bsf: return &Alu.Bsf;
            case Mnemonic.Bsr: return &Alu.Bsr;
            // qemu64 has neither BMI1 nor ABM: the F3 prefix is ignored and these run as BSF/BSR, as on such CPUs.
            case Mnemonic.Tzcnt: return &Alu.Bsf;
            case Mnemonic.Lzcnt: return &Alu.Bsr;
            case Mnemonic.Shl:
            case Mnemonic.Sal: return &Alu.Shl;
            case Mnemonic.Shr: return &Alu.Shr;
            case Mnemonic.Sar: return &Alu.Sar;
            case Mnemonic.Rol: return &Alu.Rol;
            case Mnemonic.Ror: return &Alu.Ror;
            case Mnemonic.Rcl: return &Alu.Rcl;
            case Mnemonic.Rcr: return &Alu.Rcr;
            case Mnemonic.Shld: return &Alu.Shld;
            case Mnemonic.Shrd: return &Alu.Shrd;
            case Mnemonic.Mul: return &Alu.Mul;
            case Mnemonic.Imul: return info.OpCount == 1 ? &Alu.Imul1 : &Alu.ImulN;
            case Mnemonic.Div: return &Alu.Div;
            case Mnemonic.Idiv: return &Alu.Idiv;
            case Mnemonic.Seto or Mnemonic.Setno or Mnemonic.Setb or Mnemonic.Setae or Mnemonic.Sete or Mnemonic.Setne
                or Mnemonic.Setbe or Mnemonic.Seta or Mnemonic.Sets or Mnemonic.Setns or Mnemonic.Setp or Mnemonic.Setnp
                or Mnemonic.Setl or Mnemonic.Setge or Mnemonic.Setle or Mnemonic.Setg:
                return &Alu.Setcc;
            case Mnemonic.Cmovo or Mnemonic.Cmovno or Mnemonic.Cmovb or Mnemonic.Cmovae or Mnemonic.Cmove or Mnemonic.Cmovne
                or Mnemonic.Cmovbe or Mnemonic.Cmova or Mnemonic.Cmovs or Mnemonic.Cmovns or Mnemonic.Cmovp or Mnemonic.Cmovnp
                or Mnemonic.Cmovl or Mnemonic.Cmovge or Mnemonic.Cmovle or Mnemonic.Cmovg:
                return &Alu.Cmovcc;
            case Mnemonic.Jo or Mnemonic.Jno or Mnemonic.Jb or Mnemonic.Jae or Mnemonic.Je or Mnemonic.Jne
                or Mnemonic.Jbe or Mnemonic.Ja or Mnemonic.Js or Mnemonic.Jns or Mnemonic.Jp or Mnemonic.Jnp
                or Mnemonic.Jl or Mnemonic.Jge or Mnemonic.Jle or Mnemonic.Jg:
                return &Flow.Jcc;
            case Mnemonic.Jmp:
                return code switch
                {
                    Code.Jmp_ptr1616 or Code.Jmp_ptr1632 => &SystemRegs.FarJmpImmediate,
                    Code.Jmp_m1616 => &SystemRegs.FarJmpMem16,
                    Code.Jmp_m1632 => &SystemRegs.FarJmpMem32,
                    Code.Jmp_m1664 => &SystemRegs.FarJmpMem64,
                    _ => name.Contains("_rel", StringComparison.Ordinal) ? &Flow.JmpRel : &Flow.JmpIndirect,
                };
            case Mnemonic.Call:
                return code switch
                {
                    Code.Call_ptr1616 => &SystemRegs.FarCallImmediate16,
                    Code.Call_ptr1632 => &SystemRegs.FarCallImmediate32,
                    Code.Call_m1616 => &SystemRegs.FarCallMem16,
                    Code.Call_m1632 => &SystemRegs.FarCallMem32,
                    Code.Call_m1664 => &SystemRegs.FarCallMem64,
                    _ => name.Contains("_rel", StringComparison.Ordinal) ? &Flow.CallRel : &Flow.CallIndirect,
                };
            case Mnemonic.Retf:
                return code switch
                {
                    Code.Retfw or Code.Retfw_imm16 => &SystemRegs.Retf16,
                    Code.Retfd or Code.Retfd_imm16 => &SystemRegs.Retf32,
                    _ => &SystemRegs.Retf64,
                };
            case Mnemonic.Ret: return &Flow.Ret;
            case Mnemonic.Loop: return CountSized(name, &Flow.Loop16, &Flow.Loop32, &Flow.Loop64);
            case Mnemonic.Loope: return CountSized(name, &Flow.Loope16, &Flow.Loope32, &Flow.Loope64);
            case Mnemonic.Loopne: return CountSized(name, &Flow.Loopne16, &Flow.Loopne32, &Flow.Loopne64);
            case Mnemonic.Jcxz: return &Flow.Jcxz;
            case Mnemonic.Jecxz: return &Flow.Jecxz;
            case Mnemonic.Jrcxz: return &Flow.Jrcxz;
            case Mnemonic.Iretq: return &Flow.Iretq;
            case Mnemonic.Int: return &SystemCalls.Int;
            case Mnemonic.Int3: return &SystemCalls.Int3;
            case Mnemonic.Into: return &SystemCalls.Into;
            case Mnemonic.Int1: return &SystemCalls.Int1;
            case Mnemonic.Syscall: return &SystemCalls.Syscall;
            case Mnemonic.Sysenter: return &SystemCalls.Sysenter;
            case Mnemonic.Sysexit or Mnemonic.Sysexitq: return &SystemCalls.Sysexit;
            case Mnemonic.Sysret or Mnemonic.Sysretq: return code is Code.Sysretd or Code.Sysretq ? &SystemCalls.Sysret : &SystemOps.Ud;
            case Mnemonic.Iret or Mnemonic.Iretd: return &SystemRegs.IretReal;
            case Mnemonic.Push: return TakesSpecialRegisters[(int)code] ? &SystemRegs.PushSreg : &StackOps.Push;
            case Mnemonic.Pop: return TakesSpecialRegisters[(int)code] ? &SystemRegs.PopSreg : &StackOps.Pop;
            case Mnemonic.Lgdt: return &SystemRegs.Lgdt;
            case Mnemonic.Lidt: return &SystemRegs.Lidt;
            case Mnemonic.Sgdt: return &SystemRegs.Sgdt;
            case Mnemonic.Sidt: return &SystemRegs.Sidt;
            case Mnemonic.Lldt: return &SystemRegs.Lldt;
            case Mnemonic.Ltr: return &SystemRegs.Ltr;
            case Mnemonic.Rdmsr: return &SystemRegs.Rdmsr;
            case Mnemonic.Wrmsr: return &SystemRegs.Wrmsr;
            case Mnemonic.Invlpg: return code == Code.Invlpg_m ? &SystemRegs.Invlpg : &SystemOps.Ud;
            case Mnemonic.Swapgs: return &SystemRegs.Swapgs;
            case Mnemonic.Clts: return &SystemRegs.Clts;
            case Mnemonic.Wbinvd or Mnemonic.Invd: return &SystemRegs.Privileged;
            case Mnemonic.Pushf or Mnemonic.Pushfd or Mnemonic.Pushfq: return &StackOps.Pushf;
            case Mnemonic.Lds: return &SystemRegs.Lds;
            case Mnemonic.Les: return &SystemRegs.Les;
            case Mnemonic.Lfs: return &SystemRegs.Lfs;
            case Mnemonic.Lgs: return &SystemRegs.Lgs;
            case Mnemonic.Lss: return &SystemRegs.Lss;
            case Mnemonic.Pusha: return &StackOps.Pusha16;
            case Mnemonic.Pushad: return &StackOps.Pusha32;
            case Mnemonic.Popa: return &StackOps.Popa16;
            case Mnemonic.Popad: return &StackOps.Popa32;
            case Mnemonic.Popf or Mnemonic.Popfd or Mnemonic.Popfq: return &StackOps.Popf;
            case Mnemonic.Leave:
                return code switch
                {
                    Code.Leavew => &StackOps.Leave16,
                    Code.Leaved => &StackOps.Leave32,
                    _ => &StackOps.Leave64,
                };
            case Mnemonic.Enter:
                return code switch
                {
                    Code.Enterw_imm16_imm8 => &StackOps.Enter16,
                    Code.Enterd_imm16_imm8 => &StackOps.Enter32,
                    _ => &StackOps.Enter64,
                };
            case Mnemonic.Nop: return &SystemOps.Nop;
            // The host is x86 too: its loads and stores already keep x86 order, except a store before a load, which
            // MFENCE must order across vCPU threads.
            case Mnemonic.Mfence: return &SystemOps.Mfence;
            // Ordering and cache hints with no further architectural effect.
            case Mnemonic.Lfence or Mnemonic.Sfence or Mnemonic.Prefetchnta or Mnemonic.Prefetcht0
                or Mnemonic.Prefetcht1 or Mnemonic.Prefetcht2 or Mnemonic.Prefetchw or Mnemonic.Clflush or Mnemonic.Clflushopt:
                return &SystemOps.Nop;
            case Mnemonic.Movnti: return &Alu.Mov;
            case Mnemonic.Cmpxchg8b: return &Alu.Cmpxchg8b;
            case Mnemonic.Cmpxchg16b: return &Alu.Cmpxchg16b;
            case Mnemonic.Pause: return &SystemOps.Nop;
            // CET hints: without CET enabled (CR4.CET clear) the ENDBRs and reserved-NOP forms execute as NOPs.
            case Mnemonic.Endbr64 or Mnemonic.Endbr32: return &SystemOps.Nop;
            case Mnemonic.Hlt: return &SystemOps.Hlt;
            case Mnemonic.Clc: return &SystemOps.Clc;
            case Mnemonic.Stc: return &SystemOps.Stc;
            case Mnemonic.Cmc: return &SystemOps.Cmc;
            case Mnemonic.Cld: return &SystemOps.Cld;
            case Mnemonic.Std: return &SystemOps.Std;
            case Mnemonic.Cli: return &SystemOps.Cli;
            case Mnemonic.Sti: return &SystemOps.Sti;
            case Mnemonic.Lahf: return &SystemOps.Lahf;
            case Mnemonic.Sahf: return &SystemOps.Sahf;
            case Mnemonic.In: return &SystemOps.In;
            case Mnemonic.Out: return &SystemOps.Out;
            case Mnemonic.Cpuid: return &SystemOps.Cpuid;
            case Mnemonic.Rdtsc: return &SystemOps.Rdtsc;
            default:
                break;
        }
        return code switch
        {
            Code.Movsb_m8_m8 or Code.Movsw_m16_m16 or Code.Movsd_m32_m32 or Code.Movsq_m64_m64 => &StringOps.Movs,
            Code.Stosb_m8_AL or Code.Stosw_m16_AX or Code.Stosd_m32_EAX or Code.Stosq_m64_RAX => &StringOps.Stos,
            Code.Lodsb_AL_m8 or Code.Lodsw_AX_m16 or Code.Lodsd_EAX_m32 or Code.Lodsq_RAX_m64 => &StringOps.Lods,
            Code.Cmpsb_m8_m8 or Code.Cmpsw_m16_m16 or Code.Cmpsd_m32_m32 or Code.Cmpsq_m64_m64 => &StringOps.Cmps,
            Code.Scasb_AL_m8 or Code.Scasw_AX_m16 or Code.Scasd_EAX_m32 or Code.Scasq_RAX_m64 => &StringOps.Scas,
            Code.Insb_m8_DX or Code.Insw_m16_DX or Code.Insd_m32_DX => &StringOps.Ins,
            Code.Outsb_DX_m8 or Code.Outsw_DX_m16 or Code.Outsd_DX_m32 => &StringOps.Outs,
            _ => &SystemOps.Ud,
        };
    }

    /// <summary>
    /// x87 control, FXSAVE/FXRSTOR, MMX and SSE/SSE2 rows, or null for codes handled elsewhere. MMX forms share
    /// mnemonics with the XMM forms, so codes naming an MM register are routed first.
    /// </summary>
    private static delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> ForVectorCode(Code code)
    {
        if (NamesMmRegister(code))
        {
            return ForMmxCode(code);
        }
        switch (code)
        {
            case Code.Maskmovdqu_rDI_xmm_xmm: return &Mmx.Maskmovdqu;
            case Code.Movsd_xmm_xmmm64 or Code.Movsd_xmmm64_xmm: return &Sse.Movsd;
            case Code.Movsd_m32_m32: return null;
            default: break;
        }
        delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> fp = ForFloatCode(code);
        if (fp != null)
        {
            return fp;
        }
        return code.Mnemonic() switch
        {
            Mnemonic.Fninit or Mnemonic.Finit => &X87.Fninit,
            Mnemonic.Fnclex or Mnemonic.Fclex => &X87.Fnclex,
            Mnemonic.Emms => &Mmx.Emms,
            Mnemonic.Fild => &X87.Fild,
            Mnemonic.Fnstsw or Mnemonic.Fstsw => &X87.Fnstsw,
            Mnemonic.Fnstcw or Mnemonic.Fstcw => &X87.Fnstcw,
            Mnemonic.Fldcw => &X87.Fldcw,
            Mnemonic.Wait => &X87.Wait,
            Mnemonic.Fxsave => &X87.Fxsave,
            Mnemonic.Fxsave64 => &X87.Fxsave64,
            Mnemonic.Fxrstor => &X87.Fxrstor,
            Mnemonic.Fxrstor64 => &X87.Fxrstor64,
            Mnemonic.Ldmxcsr => &X87.Ldmxcsr,
            Mnemonic.Stmxcsr => &X87.Stmxcsr,
            Mnemonic.Movaps or Mnemonic.Movapd or Mnemonic.Movdqa or Mnemonic.Movntdq or Mnemonic.Movntps or Mnemonic.Movntpd => &Sse.MovAligned,
            Mnemonic.Movups or Mnemonic.Movupd or Mnemonic.Movdqu or Mnemonic.Lddqu => &Sse.MovUnaligned,
            Mnemonic.Movss => &Sse.Movss,
            Mnemonic.Movd or Mnemonic.Movq => &Sse.MovdMovq,
            Mnemonic.Movlps or Mnemonic.Movlpd => &Sse.MovLow,
            Mnemonic.Movhps or Mnemonic.Movhpd => &Sse.MovHigh,
            Mnemonic.Movhlps => &Sse.Movhlps,
            Mnemonic.Movlhps => &Sse.Movlhps,
            Mnemonic.Pxor or Mnemonic.Xorps or Mnemonic.Xorpd => &Sse.Binary<VecOps.Xor>,
            Mnemonic.Por or Mnemonic.Orps or Mnemonic.Orpd => &Sse.Binary<VecOps.Or>,
            Mnemonic.Pand or Mnemonic.Andps or Mnemonic.Andpd => &Sse.Binary<VecOps.And>,
            Mnemonic.Pandn or Mnemonic.Andnps or Mnemonic.Andnpd => &Sse.Binary<VecOps.AndNot>,
            Mnemonic.Pcmpeqb => &Sse.Binary<VecOps.CmpEqB>,
            Mnemonic.Pcmpeqw => &Sse.Binary<VecOps.CmpEqW>,
            Mnemonic.Pcmpeqd => &Sse.Binary<VecOps.CmpEqD>,
            Mnemonic.Pcmpgtb => &Sse.Binary<VecOps.CmpGtB>,
            Mnemonic.Pcmpgtw => &Sse.Binary<VecOps.CmpGtW>,
            Mnemonic.Pcmpgtd => &Sse.Binary<VecOps.CmpGtD>,
            Mnemonic.Paddb => &Sse.Binary<VecOps.AddB>,
            Mnemonic.Paddw => &Sse.Binary<VecOps.AddW>,
            Mnemonic.Paddd => &Sse.Binary<VecOps.AddD>,
            Mnemonic.Paddq => &Sse.Binary<VecOps.AddQ>,
            Mnemonic.Psubb => &Sse.Binary<VecOps.SubB>,
            Mnemonic.Psubw => &Sse.Binary<VecOps.SubW>,
            Mnemonic.Psubd => &Sse.Binary<VecOps.SubD>,
            Mnemonic.Psubq => &Sse.Binary<VecOps.SubQ>,
            Mnemonic.Pminub => &Sse.Binary<VecOps.MinUB>,
            Mnemonic.Pmaxub => &Sse.Binary<VecOps.MaxUB>,
            Mnemonic.Pminsw => &Sse.Binary<VecOps.MinSW>,
            Mnemonic.Pmaxsw => &Sse.Binary<VecOps.MaxSW>,
            Mnemonic.Pmullw => &Sse.Binary<VecOps.MulLW>,
            Mnemonic.Punpcklbw => &Sse.Binary<VecOps.UnpackLBW>,
            Mnemonic.Punpcklwd => &Sse.Binary<VecOps.UnpackLWD>,
            Mnemonic.Punpckldq => &Sse.Binary<VecOps.UnpackLDQ>,
            Mnemonic.Punpcklqdq => &Sse.Binary<VecOps.UnpackLQDQ>,
            Mnemonic.Punpckhbw => &Sse.Binary<VecOps.UnpackHBW>,
            Mnemonic.Punpckhwd => &Sse.Binary<VecOps.UnpackHWD>,
            Mnemonic.Punpckhdq => &Sse.Binary<VecOps.UnpackHDQ>,
            Mnemonic.Punpckhqdq => &Sse.Binary<VecOps.UnpackHQDQ>,
            Mnemonic.Pmovmskb => &Sse.Pmovmskb,
            Mnemonic.Movmskps => &Sse.Movmskps,
            Mnemonic.Movmskpd => &Sse.Movmskpd,
            Mnemonic.Pshufd => &Sse.Pshufd,
            Mnemonic.Pshuflw => &Sse.Pshuflw,
            Mnemonic.Pshufhw => &Sse.Pshufhw,
            Mnemonic.Psllw => &Sse.Psllw,
            Mnemonic.Pslld => &Sse.Pslld,
            Mnemonic.Psllq => &Sse.Psllq,
            Mnemonic.Psrlw => &Sse.Psrlw,
            Mnemonic.Psrld => &Sse.Psrld,
            Mnemonic.Psrlq => &Sse.Psrlq,
            Mnemonic.Psraw => &Sse.Psraw,
            Mnemonic.Psrad => &Sse.Psrad,
            Mnemonic.Pslldq => &Sse.Pslldq,
            Mnemonic.Psrldq => &Sse.Psrldq,
            _ => null,
        };
    }

    /// <summary>Whether the code has an MM operand (iced names them <c>mm</c>, <c>mmm32</c>, <c>mmm64</c>).</summary>
    private static bool NamesMmRegister(Code code)
    {
        foreach (string part in code.ToString().Split('_'))
        {
            if (part == "mm" || part.StartsWith("mmm", StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// MMX and the SSE/SSE2 forms on MM registers (Handlers/Mmx.cs). Anything else naming an MM register (SSSE3's
    /// MMX forms, Cyrix EMMI) is #UD, as on qemu64.
    /// </summary>
    private static delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> ForMmxCode(Code code)
    {
        return code.Mnemonic() switch
        {
            Mnemonic.Movd or Mnemonic.Movq or Mnemonic.Movntq => &Mmx.Mov,
            Mnemonic.Movq2dq => &Mmx.Movq2dq,
            Mnemonic.Movdq2q => &Mmx.Movdq2q,
            Mnemonic.Pxor => &Mmx.Binary<VecOps.Xor>,
            Mnemonic.Por => &Mmx.Binary<VecOps.Or>,
            Mnemonic.Pand => &Mmx.Binary<VecOps.And>,
            Mnemonic.Pandn => &Mmx.Binary<VecOps.AndNot>,
            Mnemonic.Pcmpeqb => &Mmx.Binary<VecOps.CmpEqB>,
            Mnemonic.Pcmpeqw => &Mmx.Binary<VecOps.CmpEqW>,
            Mnemonic.Pcmpeqd => &Mmx.Binary<VecOps.CmpEqD>,
            Mnemonic.Pcmpgtb => &Mmx.Binary<VecOps.CmpGtB>,
            Mnemonic.Pcmpgtw => &Mmx.Binary<VecOps.CmpGtW>,
            Mnemonic.Pcmpgtd => &Mmx.Binary<VecOps.CmpGtD>,
            Mnemonic.Paddb => &Mmx.Binary<VecOps.AddB>,
            Mnemonic.Paddw => &Mmx.Binary<VecOps.AddW>,
            Mnemonic.Paddd => &Mmx.Binary<VecOps.AddD>,
            Mnemonic.Paddq => &Mmx.Binary<VecOps.AddQ>,
            Mnemonic.Psubb => &Mmx.Binary<VecOps.SubB>,
            Mnemonic.Psubw => &Mmx.Binary<VecOps.SubW>,
            Mnemonic.Psubd => &Mmx.Binary<VecOps.SubD>,
            Mnemonic.Psubq => &Mmx.Binary<VecOps.SubQ>,
            Mnemonic.Pminub => &Mmx.Binary<VecOps.MinUB>,
            Mnemonic.Pmaxub => &Mmx.Binary<VecOps.MaxUB>,
            Mnemonic.Pminsw => &Mmx.Binary<VecOps.MinSW>,
            Mnemonic.Pmaxsw => &Mmx.Binary<VecOps.MaxSW>,
            Mnemonic.Pmullw => &Mmx.Binary<VecOps.MulLW>,
            Mnemonic.Paddusb => &Mmx.Binary<SseInt.AddUsB>,
            Mnemonic.Paddusw => &Mmx.Binary<SseInt.AddUsW>,
            Mnemonic.Psubusb => &Mmx.Binary<SseInt.SubUsB>,
            Mnemonic.Psubusw => &Mmx.Binary<SseInt.SubUsW>,
            Mnemonic.Paddsb => &Mmx.Binary<SseInt.AddSB>,
            Mnemonic.Paddsw => &Mmx.Binary<SseInt.AddSW>,
            Mnemonic.Psubsb => &Mmx.Binary<SseInt.SubSB>,
            Mnemonic.Psubsw => &Mmx.Binary<SseInt.SubSW>,
            Mnemonic.Pmulhw => &Mmx.Binary<SseInt.MulHW>,
            Mnemonic.Pmulhuw => &Mmx.Binary<SseInt.MulHUW>,
            Mnemonic.Pmaddwd => &Mmx.Binary<SseInt.MAddWD>,
            Mnemonic.Pmuludq => &Mmx.Binary<SseInt.MulUDQ>,
            Mnemonic.Psadbw => &Mmx.Binary<SseInt.SadBW>,
            Mnemonic.Pavgb => &Mmx.Binary<SseInt.AvgB>,
            Mnemonic.Pavgw => &Mmx.Binary<SseInt.AvgW>,
            Mnemonic.Punpcklbw => &Mmx.Binary<VecOps.UnpackLBW>,
            Mnemonic.Punpcklwd => &Mmx.Binary<VecOps.UnpackLWD>,
            Mnemonic.Punpckldq => &Mmx.Binary<VecOps.UnpackLDQ>,
            Mnemonic.Punpckhbw => &Mmx.UnpackHigh<VecOps.UnpackLBW>,
            Mnemonic.Punpckhwd => &Mmx.UnpackHigh<VecOps.UnpackLWD>,
            Mnemonic.Punpckhdq => &Mmx.UnpackHigh<VecOps.UnpackLDQ>,
            Mnemonic.Packsswb => &Mmx.Pack<SseInt.PackSSWB>,
            Mnemonic.Packssdw => &Mmx.Pack<SseInt.PackSSDW>,
            Mnemonic.Packuswb => &Mmx.Pack<SseInt.PackUSWB>,
            Mnemonic.Psllw => &Mmx.Psllw,
            Mnemonic.Pslld => &Mmx.Pslld,
            Mnemonic.Psllq => &Mmx.Psllq,
            Mnemonic.Psrlw => &Mmx.Psrlw,
            Mnemonic.Psrld => &Mmx.Psrld,
            Mnemonic.Psrlq => &Mmx.Psrlq,
            Mnemonic.Psraw => &Mmx.Psraw,
            Mnemonic.Psrad => &Mmx.Psrad,
            Mnemonic.Pshufw => &Mmx.Pshufw,
            Mnemonic.Pinsrw => &Mmx.Pinsrw,
            Mnemonic.Pextrw => &Mmx.Pextrw,
            Mnemonic.Pmovmskb => &Mmx.Pmovmskb,
            Mnemonic.Maskmovq => &Mmx.Maskmovq,
            Mnemonic.Cvtpi2ps => &Mmx.Cvtpi2ps,
            Mnemonic.Cvtpi2pd => &Mmx.Cvtpi2pd,
            Mnemonic.Cvtps2pi => &Mmx.Cvtps2pi,
            Mnemonic.Cvttps2pi => &Mmx.Cvttps2pi,
            Mnemonic.Cvtpd2pi => &Mmx.Cvtpd2pi,
            Mnemonic.Cvttpd2pi => &Mmx.Cvttpd2pi,
            _ => &SystemOps.Ud,
        };
    }

    /// <summary>SSE/SSE2/SSE3 floating point (Handlers/SseFloat.cs), x87 arithmetic and the remaining SSE2 integer ops.</summary>
    private static delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> ForFloatCode(Code code)
    {
        if (code == Code.Cmpsd_xmm_xmmm64_imm8)
        {
            return &SseFloat.Sd<SseFloat.Cmp>;
        }
        if (code is Code.Pextrw_r32_xmm_imm8 or Code.Pextrw_r64_xmm_imm8)
        {
            // Only SSE2's register form: the SSE4.1 memory form stays #UD (the model does not advertise SSE4.1).
            return &SseInt.Pextrw;
        }
        return code.Mnemonic() switch
        {
            Mnemonic.Addps => &SseFloat.Ps<SseFloat.Add>,
            Mnemonic.Addpd => &SseFloat.Pd<SseFloat.Add>,
            Mnemonic.Addss => &SseFloat.Ss<SseFloat.Add>,
            Mnemonic.Addsd => &SseFloat.Sd<SseFloat.Add>,
            Mnemonic.Subps => &SseFloat.Ps<SseFloat.Sub>,
            Mnemonic.Subpd => &SseFloat.Pd<SseFloat.Sub>,
            Mnemonic.Subss => &SseFloat.Ss<SseFloat.Sub>,
            Mnemonic.Subsd => &SseFloat.Sd<SseFloat.Sub>,
            Mnemonic.Mulps => &SseFloat.Ps<SseFloat.Mul>,
            Mnemonic.Mulpd => &SseFloat.Pd<SseFloat.Mul>,
            Mnemonic.Mulss => &SseFloat.Ss<SseFloat.Mul>,
            Mnemonic.Mulsd => &SseFloat.Sd<SseFloat.Mul>,
            Mnemonic.Divps => &SseFloat.Ps<SseFloat.Div>,
            Mnemonic.Divpd => &SseFloat.Pd<SseFloat.Div>,
            Mnemonic.Divss => &SseFloat.Ss<SseFloat.Div>,
            Mnemonic.Divsd => &SseFloat.Sd<SseFloat.Div>,
            Mnemonic.Minps => &SseFloat.Ps<SseFloat.Min>,
            Mnemonic.Minpd => &SseFloat.Pd<SseFloat.Min>,
            Mnemonic.Minss => &SseFloat.Ss<SseFloat.Min>,
            Mnemonic.Minsd => &SseFloat.Sd<SseFloat.Min>,
            Mnemonic.Maxps => &SseFloat.Ps<SseFloat.Max>,
            Mnemonic.Maxpd => &SseFloat.Pd<SseFloat.Max>,
            Mnemonic.Maxss => &SseFloat.Ss<SseFloat.Max>,
            Mnemonic.Maxsd => &SseFloat.Sd<SseFloat.Max>,
            Mnemonic.Sqrtps => &SseFloat.Ps<SseFloat.Sqrt>,
            Mnemonic.Sqrtpd => &SseFloat.Pd<SseFloat.Sqrt>,
            Mnemonic.Sqrtss => &SseFloat.Ss<SseFloat.Sqrt>,
            Mnemonic.Sqrtsd => &SseFloat.Sd<SseFloat.Sqrt>,
            Mnemonic.Rcpps => &SseFloat.Ps<SseFloat.Rcp>,
            Mnemonic.Rcpss => &SseFloat.Ss<SseFloat.Rcp>,
            Mnemonic.Rsqrtps => &SseFloat.Ps<SseFloat.Rsqrt>,
            Mnemonic.Rsqrtss => &SseFloat.Ss<SseFloat.Rsqrt>,
            Mnemonic.Cmpps => &SseFloat.Ps<SseFloat.Cmp>,
            Mnemonic.Cmppd => &SseFloat.Pd<SseFloat.Cmp>,
            Mnemonic.Cmpss => &SseFloat.Ss<SseFloat.Cmp>,
            Mnemonic.Comiss => &SseFloat.Comiss,
            Mnemonic.Ucomiss => &SseFloat.Ucomiss,
            Mnemonic.Comisd => &SseFloat.Comisd,
            Mnemonic.Ucomisd => &SseFloat.Ucomisd,
            Mnemonic.Cvtsi2ss => &SseFloat.Cvtsi2ss,
            Mnemonic.Cvtsi2sd => &SseFloat.Cvtsi2sd,
            Mnemonic.Cvtss2si => &SseFloat.Cvtss2si,
            Mnemonic.Cvttss2si => &SseFloat.Cvttss2si,
            Mnemonic.Cvtsd2si => &SseFloat.Cvtsd2si,
            Mnemonic.Cvttsd2si => &SseFloat.Cvttsd2si,
            Mnemonic.Cvtss2sd => &SseFloat.Cvtss2sd,
            Mnemonic.Cvtsd2ss => &SseFloat.Cvtsd2ss,
            Mnemonic.Cvtps2pd => &SseFloat.Cvtps2pd,
            Mnemonic.Cvtpd2ps => &SseFloat.Cvtpd2ps,
            Mnemonic.Cvtdq2ps => &SseFloat.Cvtdq2ps,
            Mnemonic.Cvtdq2pd => &SseFloat.Cvtdq2pd,
            Mnemonic.Cvtps2dq => &SseFloat.Cvtps2dq,
            Mnemonic.Cvttps2dq => &SseFloat.Cvttps2dq,
            Mnemonic.Cvtpd2dq => &SseFloat.Cvtpd2dq,
            Mnemonic.Cvttpd2dq => &SseFloat.Cvttpd2dq,
            Mnemonic.Unpcklps => &Sse.Binary<VecOps.UnpackLDQ>,
            Mnemonic.Unpckhps => &Sse.Binary<VecOps.UnpackHDQ>,
            Mnemonic.Unpcklpd => &Sse.Binary<VecOps.UnpackLQDQ>,
            Mnemonic.Unpckhpd => &Sse.Binary<VecOps.UnpackHQDQ>,
            Mnemonic.Shufps => &SseFloat.Shufps,
            Mnemonic.Shufpd => &SseFloat.Shufpd,
            Mnemonic.Addsubps => &SseFloat.Addsubps,
            Mnemonic.Addsubpd => &SseFloat.Addsubpd,
            Mnemonic.Haddps => &SseFloat.Haddps,
            Mnemonic.Haddpd => &SseFloat.Haddpd,
            Mnemonic.Hsubps => &SseFloat.Hsubps,
            Mnemonic.Hsubpd => &SseFloat.Hsubpd,
            Mnemonic.Movddup => &SseFloat.Movddup,
            Mnemonic.Movshdup => &SseFloat.Movshdup,
            Mnemonic.Movsldup => &SseFloat.Movsldup,
            Mnemonic.Paddusb => &Sse.Binary<SseInt.AddUsB>,
            Mnemonic.Paddusw => &Sse.Binary<SseInt.AddUsW>,
            Mnemonic.Psubusb => &Sse.Binary<SseInt.SubUsB>,
            Mnemonic.Psubusw => &Sse.Binary<SseInt.SubUsW>,
            Mnemonic.Paddsb => &Sse.Binary<SseInt.AddSB>,
            Mnemonic.Paddsw => &Sse.Binary<SseInt.AddSW>,
            Mnemonic.Psubsb => &Sse.Binary<SseInt.SubSB>,
            Mnemonic.Psubsw => &Sse.Binary<SseInt.SubSW>,
            Mnemonic.Pmulhw => &Sse.Binary<SseInt.MulHW>,
            Mnemonic.Pmulhuw => &Sse.Binary<SseInt.MulHUW>,
            Mnemonic.Pmaddwd => &Sse.Binary<SseInt.MAddWD>,
            Mnemonic.Pmuludq => &Sse.Binary<SseInt.MulUDQ>,
            Mnemonic.Psadbw => &Sse.Binary<SseInt.SadBW>,
            Mnemonic.Pavgb => &Sse.Binary<SseInt.AvgB>,
            Mnemonic.Pavgw => &Sse.Binary<SseInt.AvgW>,
            Mnemonic.Packsswb => &Sse.Binary<SseInt.PackSSWB>,
            Mnemonic.Packssdw => &Sse.Binary<SseInt.PackSSDW>,
            Mnemonic.Packuswb => &Sse.Binary<SseInt.PackUSWB>,
            Mnemonic.Pinsrw => &SseInt.Pinsrw,
            Mnemonic.Fadd => &X87Arith.Fadd,
            Mnemonic.Faddp => &X87Arith.Faddp,
            Mnemonic.Fiadd => &X87Arith.Fiadd,
            Mnemonic.Fmul => &X87Arith.Fmul,
            Mnemonic.Fmulp => &X87Arith.Fmulp,
            Mnemonic.Fimul => &X87Arith.Fimul,
            Mnemonic.Fsub => &X87Arith.Fsub,
            Mnemonic.Fsubp => &X87Arith.Fsubp,
            Mnemonic.Fisub => &X87Arith.Fisub,
            Mnemonic.Fsubr => &X87Arith.Fsubr,
            Mnemonic.Fsubrp => &X87Arith.Fsubrp,
            Mnemonic.Fisubr => &X87Arith.Fisubr,
            Mnemonic.Fdiv => &X87Arith.Fdiv,
            Mnemonic.Fdivp => &X87Arith.Fdivp,
            Mnemonic.Fidiv => &X87Arith.Fidiv,
            Mnemonic.Fdivr => &X87Arith.Fdivr,
            Mnemonic.Fdivrp => &X87Arith.Fdivrp,
            Mnemonic.Fidivr => &X87Arith.Fidivr,
            Mnemonic.Fld => &X87Arith.Fld,
            Mnemonic.Fst => &X87Arith.Fst,
            Mnemonic.Fstp or Mnemonic.Fstpnce => &X87Arith.Fstp,
            Mnemonic.Fist => &X87Arith.Fist,
            Mnemonic.Fbld => &X87Arith.Fbld,
            Mnemonic.Fbstp => &X87Arith.Fbstp,
            Mnemonic.Fistp => &X87Arith.Fistp,
            Mnemonic.Fisttp => &X87Arith.Fisttp,
            Mnemonic.Fcom => &X87Arith.Fcom,
            Mnemonic.Fcomp => &X87Arith.Fcomp,
            Mnemonic.Fcompp => &X87Arith.Fcompp,
            Mnemonic.Fucom => &X87Arith.Fucom,
            Mnemonic.Fucomp => &X87Arith.Fucomp,
            Mnemonic.Fucompp => &X87Arith.Fucompp,
            Mnemonic.Ficom => &X87Arith.Ficom,
            Mnemonic.Ficomp => &X87Arith.Ficomp,
            Mnemonic.Fcomi => &X87Arith.Fcomi,
            Mnemonic.Fcomip => &X87Arith.Fcomip,
            Mnemonic.Fucomi => &X87Arith.Fucomi,
            Mnemonic.Fucomip => &X87Arith.Fucomip,
            Mnemonic.Ftst => &X87Arith.Ftst,
            Mnemonic.Fxam => &X87Arith.Fxam,
            Mnemonic.Fchs => &X87Arith.Fchs,
            Mnemonic.Fabs => &X87Arith.Fabs,
            Mnemonic.Fsqrt => &X87Arith.Fsqrt,
            Mnemonic.Frndint => &X87Arith.Frndint,
            Mnemonic.Fscale => &X87Arith.Fscale,
            Mnemonic.Fxtract => &X87Arith.Fxtract,
            Mnemonic.Fprem => &X87Arith.Fprem,
            Mnemonic.Fprem1 => &X87Arith.Fprem1,
            Mnemonic.Fld1 => &X87Arith.Fld1,
            Mnemonic.Fldz => &X87Arith.Fldz,
            Mnemonic.Fldpi => &X87Arith.Fldpi,
            Mnemonic.Fldl2e => &X87Arith.Fldl2e,
            Mnemonic.Fldl2t => &X87Arith.Fldl2t,
            Mnemonic.Fldlg2 => &X87Arith.Fldlg2,
            Mnemonic.Fldln2 => &X87Arith.Fldln2,
            Mnemonic.Fxch => &X87Arith.Fxch,
            Mnemonic.Ffree => &X87Arith.Ffree,
            Mnemonic.Ffreep => &X87Arith.Ffreep,
            Mnemonic.Fincstp => &X87Arith.Fincstp,
            Mnemonic.Fdecstp => &X87Arith.Fdecstp,
            Mnemonic.Fnop => &X87Arith.Fnop,
            // The 8087/287 control encodings run as no-ops since the 387 (QEMU does the same).
            Mnemonic.Feni or Mnemonic.Fdisi or Mnemonic.Fsetpm => &X87Arith.Fnop,
            Mnemonic.Fneni or Mnemonic.Fndisi or Mnemonic.Fnsetpm => &X87.NoWaitNop,
            Mnemonic.Fcmovb => &X87Arith.Fcmovb,
            Mnemonic.Fcmovnb => &X87Arith.Fcmovnb,
            Mnemonic.Fcmove => &X87Arith.Fcmove,
            Mnemonic.Fcmovne => &X87Arith.Fcmovne,
            Mnemonic.Fcmovbe => &X87Arith.Fcmovbe,
            Mnemonic.Fcmovnbe => &X87Arith.Fcmovnbe,
            Mnemonic.Fcmovu => &X87Arith.Fcmovu,
            Mnemonic.Fcmovnu => &X87Arith.Fcmovnu,
            Mnemonic.Fsin => &X87Arith.Fsin,
            Mnemonic.Fcos => &X87Arith.Fcos,
            Mnemonic.Fsincos => &X87Arith.Fsincos,
            Mnemonic.Fptan => &X87Arith.Fptan,
            Mnemonic.Fpatan => &X87Arith.Fpatan,
            Mnemonic.F2xm1 => &X87Arith.F2xm1,
            Mnemonic.Fyl2x => &X87Arith.Fyl2x,
            Mnemonic.Fyl2xp1 => &X87Arith.Fyl2xp1,
            Mnemonic.Fnstenv or Mnemonic.Fstenv => &X87Arith.Fnstenv,
            Mnemonic.Fldenv => &X87Arith.Fldenv,
            Mnemonic.Fnsave or Mnemonic.Fsave => &X87Arith.Fnsave,
            Mnemonic.Frstor => &X87Arith.Frstor,
            _ => null,
        };
    }

    /// <summary>
    /// Swaps a generic handler for a specialized one when the digested operands allow it: 32/64-bit register or
    /// immediate forms of the hottest ALU ops and moves skip the generic operand switch.
    /// </summary>
    public static delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> Specialize(delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> h, ref DecodedOp op)
    {
        Code code = op.Instr.Code;
        if (code.Mnemonic() == Mnemonic.Mov && !TakesSpecialRegisters[(int)code] && op.K2 == OperandKind.None
            && (op.R0 is < 16 or DecodedOp.NoReg) && (op.R1 is < 20 or DecodedOp.NoReg))
        {
            // Plain moves between GPRs, memory and immediates at any width.
            if (op.K0 == OperandKind.Mem && op.K1 == OperandKind.Imm)
            {
                return &Alu.MovMI;
            }
            if (op.Size < 4 && op.K0 == OperandKind.Reg && op.K1 == OperandKind.Mem && op.R0 < 16)
            {
                return &Alu.MovRMNarrow;
            }
            if (op.Size < 4 && op.K0 == OperandKind.Mem && op.K1 == OperandKind.Reg && op.SrcSize == op.Size)
            {
                return &Alu.MovMRNarrow;
            }
        }
        if (op.Size < 4 || op.K0 == OperandKind.None || op.K2 != OperandKind.None || TakesSpecialRegisters[(int)code]
            || op.R0 is >= 16 and not DecodedOp.NoReg || op.R1 is >= 16 and not DecodedOp.NoReg)
        {
            return h;
        }
        bool rr = op.K0 == OperandKind.Reg && op.K1 == OperandKind.Reg && op.SrcSize == op.Size;
        bool ri = op.K0 == OperandKind.Reg && op.K1 == OperandKind.Imm;
        switch (code.Mnemonic())
        {
            case Mnemonic.Add: return rr ? &Alu.AddRR : ri ? &Alu.AddRI : h;
            case Mnemonic.Sub: return rr ? &Alu.SubRR : ri ? &Alu.SubRI : h;
            case Mnemonic.Cmp: return rr ? &Alu.CmpRR : ri ? &Alu.CmpRI : h;
            case Mnemonic.And: return rr ? &Alu.AndRR : ri ? &Alu.AndRI : h;
            case Mnemonic.Or: return rr ? &Alu.OrRR : ri ? &Alu.OrRI : h;
            case Mnemonic.Xor: return rr ? &Alu.XorRR : ri ? &Alu.XorRI : h;
            case Mnemonic.Test: return rr ? &Alu.TestRR : ri ? &Alu.TestRI : h;
            case Mnemonic.Mov:
                if (rr)
                {
                    return &Alu.MovRR;
                }
                if (ri)
                {
                    return &Alu.MovRI;
                }
                if (op.K0 == OperandKind.Reg && op.K1 == OperandKind.Mem)
                {
                    // A 4-byte load is zero-extended, as a 32-bit register write must be.
                    return &Alu.MovRM;
                }
                return op.K0 == OperandKind.Mem && op.K1 == OperandKind.Reg && op.SrcSize == op.Size ? &Alu.MovMR : h;
            case Mnemonic.Shl or Mnemonic.Sal: return ri ? &Alu.ShlRI : h;
            case Mnemonic.Shr: return ri ? &Alu.ShrRI : h;
            case Mnemonic.Sar: return ri ? &Alu.SarRI : h;
            case Mnemonic.Movzx:
                if (op.K0 == OperandKind.Reg && op.K1 == OperandKind.Mem)
                {
                    return &Alu.MovzxRM;
                }
                return op.K0 == OperandKind.Reg && op.K1 == OperandKind.Reg ? &Alu.MovzxRR : h;
            case Mnemonic.Inc: return op.K0 == OperandKind.Reg && op.K1 == OperandKind.None ? &Alu.IncR : h;
            case Mnemonic.Dec: return op.K0 == OperandKind.Reg && op.K1 == OperandKind.None ? &Alu.DecR : h;
            default: return h;
        }
    }

    private static delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> CountSized(
        string name,
        delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> cx,
        delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> ecx,
        delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> rcx)
    {
        if (name.EndsWith("_RCX", StringComparison.Ordinal))
        {
            return rcx;
        }
        return name.EndsWith("_ECX", StringComparison.Ordinal) ? ecx : cx;
    }
}
