using Colo.Core.Cpu;

namespace Colo.Cpu.Interpreter.Handlers;

/// <summary>
/// MOVS, STOS, LODS, CMPS, SCAS with REP/REPE/REPNE, and INS/OUTS (REP) through the I/O bus. A long REP runs in slices and then restarts itself (RIP stays on
/// the instruction), so kicks and interrupts are still seen at block boundaries, as on hardware.
/// </summary>
internal static class StringOps
{
    private const ExecStatus Ok = ExecStatus.Continue;
    private const int SliceIterations = 4096;
    private const int KMovs = 0, KStos = 1, KLods = 2, KCmps = 3, KScas = 4, KIns = 5, KOuts = 6;

    private static ExecStatus Run(InterpreterVcpu c, ref DecodedOp op, int kind)
    {
        // OUTS names DX first, so its element size is the memory operand's.
        int size = kind == KOuts ? op.SrcSize : op.Size;
        int addrSize = op.AddrSize;
        ulong amask = InterpreterVcpu.SizeMask(addrSize);
        bool rep = op.Rep != 0;
        ulong delta = (c.MaterializeFlags() & X86CpuState.FlagDf) != 0 ? (ulong)-size : (ulong)size;
        int srcSeg = op.Seg == DecodedOp.NoReg ? -1 : op.Seg;
        bool esBase = c.Bitness != 64;
        for (int budget = SliceIterations; ; budget--)
        {
            if (rep && c.GetReg(1, addrSize) == 0)
            {
                return Ok;
            }
            ulong rsi = c.Gpr(6) & amask;
            ulong rdi = c.Gpr(7) & amask;
            ulong src = srcSeg < 0 ? rsi : c.SegmentLinear(srcSeg, rsi);
            ulong dst = esBase ? c.SegmentLinear((int)SegmentIndex.Es, rdi) : rdi;
            ExecStatus s;
            bool advanceSi = false;
            bool advanceDi = false;
            switch (kind)
            {
                case KMovs:
                {
                    s = c.ReadMem(src, size, out ulong v);
                    if (s == Ok)
                    {
                        s = c.WriteMem(dst, size, v);
                    }
                    advanceSi = advanceDi = true;
                    break;
                }
                case KStos:
                    s = c.WriteMem(dst, size, c.GetReg(0, size));
                    advanceDi = true;
                    break;
                case KLods:
                {
                    s = c.ReadMem(src, size, out ulong v);
                    if (s == Ok)
                    {
                        c.SetReg(0, size, v);
                    }
                    advanceSi = true;
                    break;
                }
                case KCmps:
                {
                    s = c.ReadMem(src, size, out ulong a);
                    ulong b = 0;
                    if (s == Ok)
                    {
                        s = c.ReadMem(dst, size, out b);
                    }
                    if (s == Ok)
                    {
                        c.SetLazyFlags(LazyOp.Sub, size, a, b, a - b);
                    }
                    advanceSi = advanceDi = true;
                    break;
                }
                case KIns:
                {
                    ulong v = c.PortRead((ushort)c.Gpr(2), size);
                    s = c.WriteMem(dst, size, v);
                    advanceDi = true;
                    break;
                }
                case KOuts:
                {
                    s = c.ReadMem(src, size, out ulong v);
                    if (s == Ok)
                    {
                        c.PortWrite((ushort)c.Gpr(2), size, v);
                    }
                    advanceSi = true;
                    break;
                }
                default:
                {
                    s = c.ReadMem(dst, size, out ulong b);
                    if (s == Ok)
                    {
                        ulong a = c.GetReg(0, size);
                        c.SetLazyFlags(LazyOp.Sub, size, a, b, a - b);
                    }
                    advanceDi = true;
                    break;
                }
            }
            if (s != Ok)
            {
                return s;
            }
            if (advanceSi)
            {
                c.SetReg(6, addrSize, rsi + delta);
            }
            if (advanceDi)
            {
                c.SetReg(7, addrSize, rdi + delta);
            }
            if (!rep)
            {
                return Ok;
            }
            ulong count = (c.GetReg(1, addrSize) - 1) & amask;
            c.SetReg(1, addrSize, count);
            if (kind is KCmps or KScas)
            {
                bool zf = c.Condition(5);
                if ((op.Rep == 1 && !zf) || (op.Rep == 2 && zf))
                {
                    return Ok;
                }
            }
            if (count == 0)
            {
                return Ok;
            }
            if (budget == 0)
            {
                c.State.Rip = op.Ip;
                return ExecStatus.Branch;
            }
        }
    }

    public static ExecStatus Movs(InterpreterVcpu c, ref DecodedOp op) => Run(c, ref op, KMovs);

    public static ExecStatus Stos(InterpreterVcpu c, ref DecodedOp op) => Run(c, ref op, KStos);

    public static ExecStatus Lods(InterpreterVcpu c, ref DecodedOp op) => Run(c, ref op, KLods);

    public static ExecStatus Cmps(InterpreterVcpu c, ref DecodedOp op) => Run(c, ref op, KCmps);

    public static ExecStatus Scas(InterpreterVcpu c, ref DecodedOp op) => Run(c, ref op, KScas);

    /// <summary>INS: port DX → ES:rDI (IOPL/CPL checked; the TSS I/O bitmap is not consulted yet).</summary>
    public static ExecStatus Ins(InterpreterVcpu c, ref DecodedOp op) => c.IoPrivileged() ? Run(c, ref op, KIns) : c.Raise(Vector.GP, 0);

    /// <summary>OUTS: seg:rSI → port DX.</summary>
    public static ExecStatus Outs(InterpreterVcpu c, ref DecodedOp op) => c.IoPrivileged() ? Run(c, ref op, KOuts) : c.Raise(Vector.GP, 0);
}
