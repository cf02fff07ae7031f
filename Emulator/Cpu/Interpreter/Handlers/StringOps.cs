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
        // Segment limit/type checks (only when a segment involved is not flat); ES is always the destination.
        bool checks = c.SegmentNeedsCheck(srcSeg < 0 ? DecodedOp.NoReg : srcSeg) || c.SegmentNeedsCheck((int)SegmentIndex.Es);
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
            if (checks)
            {
                s = CheckSegments(c, kind, srcSeg, rsi, rdi, size);
                if (s != Ok)
                {
                    return s;
                }
            }
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

    /// <summary>The source (seg:rSI, read) and destination (ES:rDI, written by MOVS/STOS/INS, read by CMPS/SCAS) checks.</summary>
    private static ExecStatus CheckSegments(InterpreterVcpu c, int kind, int srcSeg, ulong rsi, ulong rdi, int size)
    {
        bool usesSrc = kind is KMovs or KLods or KCmps or KOuts;
        bool usesDst = kind is KMovs or KStos or KCmps or KScas or KIns;
        if (usesSrc && srcSeg >= 0 && c.SegmentNeedsCheck(srcSeg))
        {
            ExecStatus s = c.CheckSegment(srcSeg, rsi, size, InterpreterVcpu.AccessRead);
            if (s != Ok)
            {
                return s;
            }
        }
        if (usesDst && c.SegmentNeedsCheck((int)SegmentIndex.Es))
        {
            int access = kind is KCmps or KScas ? InterpreterVcpu.AccessRead : InterpreterVcpu.AccessWrite;
            return c.CheckSegment((int)SegmentIndex.Es, rdi, size, access);
        }
        return Ok;
    }

    public static ExecStatus Movs(InterpreterVcpu c, ref DecodedOp op) => Run(c, ref op, KMovs);

    public static ExecStatus Stos(InterpreterVcpu c, ref DecodedOp op) => Run(c, ref op, KStos);

    public static ExecStatus Lods(InterpreterVcpu c, ref DecodedOp op) => Run(c, ref op, KLods);

    public static ExecStatus Cmps(InterpreterVcpu c, ref DecodedOp op) => Run(c, ref op, KCmps);

    public static ExecStatus Scas(InterpreterVcpu c, ref DecodedOp op) => Run(c, ref op, KScas);

    /// <summary>INS: port DX → ES:rDI (IOPL/CPL, then the TSS I/O bitmap).</summary>
    public static ExecStatus Ins(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.CheckIoPermission((ushort)c.Gpr(2), op.Size);
        return s != Ok ? s : Run(c, ref op, KIns);
    }

    /// <summary>OUTS: seg:rSI → port DX.</summary>
    public static ExecStatus Outs(InterpreterVcpu c, ref DecodedOp op)
    {
        ExecStatus s = c.CheckIoPermission((ushort)c.Gpr(2), op.SrcSize);
        return s != Ok ? s : Run(c, ref op, KOuts);
    }
}
