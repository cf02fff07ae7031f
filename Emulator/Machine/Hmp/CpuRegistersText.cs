using System.Buffers.Binary;
using System.Text;
using Colo.Core.Cpu;

namespace Colo.Machine.Hmp;

/// <summary>
/// HMP <c>info registers</c>: one vCPU's state in QEMU 7.2's x86 layout (64-bit register names and widths while CS is
/// a 64-bit code segment, 32-bit ones otherwise; descriptor flags in the descriptor's high-dword form, with QEMU's
/// segment-type words once protected mode is on).
/// </summary>
public static class CpuRegistersText
{
    private static readonly string[] Gpr64 = ["RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP", "R8 ", "R9 ", "R10", "R11", "R12", "R13", "R14", "R15"];
    private static readonly string[] Gpr32 = ["EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EBP", "ESP"];
    // Encoding order of RAX..RDI is RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI; the dump lists A, B, C, D, SI, DI, BP, SP.
    private static readonly int[] DumpOrder = [0, 3, 1, 2, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15];
    private static readonly string[] SegmentNames = ["ES ", "CS ", "SS ", "DS ", "FS ", "GS "];

    private static readonly string[] LegacySystemTypes =
    [
        "Reserved", "TSS16-avl", "LDT", "TSS16-busy", "CallGate16", "TaskGate", "IntGate16", "TrapGate16",
        "Reserved", "TSS32-avl", "Reserved", "TSS32-busy", "CallGate32", "Reserved", "IntGate32", "TrapGate32",
    ];

    private static readonly string[] LongSystemTypes =
    [
        "<hiword>", "Reserved", "LDT", "Reserved", "Reserved", "Reserved", "Reserved", "Reserved",
        "Reserved", "TSS64-avl", "Reserved", "TSS64-busy", "CallGate64", "Reserved", "IntGate64", "TrapGate64",
    ];

    /// <summary>The dump of CPU <paramref name="index"/>, starting with QEMU's blank line and "CPU#N" header.</summary>
    public static string Format(int index, in X86CpuState s)
    {
        var sb = new StringBuilder(2048);
        sb.Append('\n').Append("CPU#").Append(index).Append('\n');
        bool lma = (s.Efer & X86CpuState.EferLma) != 0;
        bool cs64 = lma && (s.Segments[(int)SegmentIndex.Cs].Attributes & SegmentRegister.L) != 0;
        bool pe = (s.Cr0 & X86CpuState.Cr0Pe) != 0;
        if (cs64)
        {
            for (int i = 0; i < 16; i++)
            {
                int r = DumpOrder[i];
                sb.Append(Gpr64[i]).Append('=').Append(Hex(s.Gpr[r], 16)).Append((i & 3) == 3 ? '\n' : ' ');
            }
            sb.Append("RIP=").Append(Hex(s.Rip, 16)).Append(" RFL=");
        }
        else
        {
            for (int i = 0; i < 8; i++)
            {
                int r = DumpOrder[i];
                sb.Append(Gpr32[i]).Append('=').Append(Hex((uint)s.Gpr[r], 8)).Append((i & 3) == 3 ? '\n' : ' ');
            }
            sb.Append("EIP=").Append(Hex((uint)s.Rip, 8)).Append(" EFL=");
        }
        ulong f = s.Rflags;
        sb.Append(Hex((uint)f, 8)).Append(" [")
            .Append((f & X86CpuState.FlagDf) != 0 ? 'D' : '-')
            .Append((f & X86CpuState.FlagOf) != 0 ? 'O' : '-')
            .Append((f & X86CpuState.FlagSf) != 0 ? 'S' : '-')
            .Append((f & X86CpuState.FlagZf) != 0 ? 'Z' : '-')
            .Append((f & X86CpuState.FlagAf) != 0 ? 'A' : '-')
            .Append((f & X86CpuState.FlagPf) != 0 ? 'P' : '-')
            .Append((f & X86CpuState.FlagCf) != 0 ? 'C' : '-')
            .Append("] CPL=").Append(s.Cpl)
            .Append(" II=").Append(s.InterruptShadow ? 1 : 0)
            .Append(" A20=1 SMM=0 HLT=").Append(s.Halted ? 1 : 0).Append('\n');
        for (int i = 0; i < 6; i++)
        {
            Segment(sb, SegmentNames[i], s.Segments[i], cs64, pe, lma);
        }
        Segment(sb, "LDT", s.Ldtr, cs64, pe, lma);
        Segment(sb, "TR ", s.Tr, cs64, pe, lma);
        int width = cs64 ? 16 : 8;
        sb.Append("GDT=     ").Append(Hex(s.Gdtr.Base, width)).Append(' ').Append(Hex(s.Gdtr.Limit, 8)).Append('\n');
        sb.Append("IDT=     ").Append(Hex(s.Idtr.Base, width)).Append(' ').Append(Hex(s.Idtr.Limit, 8)).Append('\n');
        sb.Append("CR0=").Append(Hex((uint)s.Cr0, 8))
            .Append(" CR2=").Append(Hex(cs64 ? s.Cr2 : (uint)s.Cr2, width))
            .Append(" CR3=").Append(Hex(cs64 ? s.Cr3 : (uint)s.Cr3, width))
            .Append(" CR4=").Append(Hex((uint)s.Cr4, 8)).Append('\n');
        sb.Append("DR0=").Append(Hex(s.Dr0, 16)).Append(" DR1=").Append(Hex(s.Dr1, 16))
            .Append(" DR2=").Append(Hex(s.Dr2, 16)).Append(" DR3=").Append(Hex(s.Dr3, 16)).Append(" \n");
        sb.Append("DR6=").Append(Hex(s.Dr6, 16)).Append(" DR7=").Append(Hex(s.Dr7, 16)).Append('\n');
        sb.Append("EFER=").Append(Hex(s.Efer, 16)).Append('\n');
        Fpu(sb, s, cs64);
        return sb.ToString();
    }

    private static void Segment(StringBuilder sb, string name, in SegmentRegister seg, bool cs64, bool pe, bool lma)
    {
        // QEMU shows the descriptor's high-dword bits 8..23: type/S/DPL/P, limit 19:16, AVL/L/DB/G.
        uint attributes = seg.Attributes;
        bool granular = (attributes & SegmentRegister.G) != 0;
        uint limitHigh = (granular ? seg.Limit >> 28 : seg.Limit >> 16) & 0xF;
        uint flags = ((attributes & 0xFF) << 8) | (limitHigh << 16) | (((attributes >> 12) & 0xF) << 20);
        sb.Append(name).Append('=').Append(Hex(seg.Selector, 4)).Append(' ')
            .Append(Hex(cs64 ? seg.Base : (uint)seg.Base, cs64 ? 16 : 8)).Append(' ')
            .Append(Hex(seg.Limit, 8)).Append(' ').Append(Hex(flags, 8));
        if (pe && (attributes & SegmentRegister.P) != 0)
        {
            sb.Append(" DPL=").Append(seg.Dpl).Append(' ');
            uint type = attributes & SegmentRegister.TypeMask;
            if ((attributes & SegmentRegister.S) != 0)
            {
                if ((type & 8) != 0)
                {
                    sb.Append((attributes & SegmentRegister.L) != 0 ? "CS64" : (attributes & SegmentRegister.DB) != 0 ? "CS32" : "CS16")
                        .Append(" [").Append((type & 4) != 0 ? 'C' : '-').Append((type & 2) != 0 ? 'R' : '-');
                }
                else
                {
                    sb.Append((attributes & SegmentRegister.DB) != 0 ? "DS  " : "DS16")
                        .Append(" [").Append((type & 4) != 0 ? 'E' : '-').Append((type & 2) != 0 ? 'W' : '-');
                }
                sb.Append((type & 1) != 0 ? 'A' : '-').Append(']');
            }
            else
            {
                sb.Append((lma ? LongSystemTypes : LegacySystemTypes)[type]);
            }
        }
        sb.Append('\n');
    }

    private static void Fpu(StringBuilder sb, in X86CpuState s, bool cs64)
    {
        ReadOnlySpan<byte> fx = s.Fx;
        ushort fcw = BinaryPrimitives.ReadUInt16LittleEndian(fx[X86CpuState.FxFcw..]);
        ushort fsw = BinaryPrimitives.ReadUInt16LittleEndian(fx[X86CpuState.FxFsw..]);
        byte ftw = fx[X86CpuState.FxFtw];
        uint mxcsr = BinaryPrimitives.ReadUInt32LittleEndian(fx[X86CpuState.FxMxcsr..]);
        int top = (fsw >> 11) & 7;
        sb.Append("FCW=").Append(Hex(fcw, 4)).Append(" FSW=").Append(Hex(fsw, 4))
            .Append(" [ST=").Append(top).Append("] FTW=").Append(Hex(ftw, 2)).Append(" MXCSR=").Append(Hex(mxcsr, 8)).Append('\n');
        for (int i = 0; i < 8; i++)
        {
            // FPRn is physical register n; the save area holds ST(i) = register (TOP + i) mod 8.
            int offset = X86CpuState.FxSt0 + ((i - top) & 7) * 16;
            ulong mantissa = BinaryPrimitives.ReadUInt64LittleEndian(fx[offset..]);
            ushort exponent = BinaryPrimitives.ReadUInt16LittleEndian(fx[(offset + 8)..]);
            sb.Append("FPR").Append(i).Append('=').Append(Hex(mantissa, 16)).Append(' ').Append(Hex(exponent, 4))
                .Append((i & 1) == 1 ? '\n' : ' ');
        }
        int xmms = cs64 ? 16 : 8;
        for (int i = 0; i < xmms; i++)
        {
            int offset = X86CpuState.FxXmm0 + i * 16;
            ulong low = BinaryPrimitives.ReadUInt64LittleEndian(fx[offset..]);
            ulong high = BinaryPrimitives.ReadUInt64LittleEndian(fx[(offset + 8)..]);
            sb.Append("XMM").Append(i.ToString("D2")).Append('=').Append(Hex(high, 16)).Append(' ').Append(Hex(low, 16))
                .Append((i & 1) == 1 ? '\n' : ' ');
        }
    }

    private static string Hex(ulong value, int digits) => value.ToString("x" + digits);
}
