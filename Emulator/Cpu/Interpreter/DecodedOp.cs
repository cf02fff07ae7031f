using System.Runtime.InteropServices;
using Iced.Intel;

namespace Colo.Cpu.Interpreter;

/// <summary>
/// One decoded instruction in the block pool: iced's <see cref="Instruction"/> plus operands pre-digested into the
/// fields handlers read, and the handler itself, resolved once at decode time.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct DecodedOp
{
    /// <summary>Register index meaning "no register".</summary>
    public const byte NoReg = 0xFF;
    /// <summary>Register indices 16..19 name AH, CH, DH, BH (bits 15:8 of register index − 16).</summary>
    public const byte HighByteBase = 16;
    /// <summary>Register indices 32..37 name ES..GS (only for codes the table marks as taking special registers).</summary>
    public const byte SegRegBase = 32;
    /// <summary>Register indices 48..63 name CR0..CR15.</summary>
    public const byte CrBase = 48;
    /// <summary>Register indices 64..79 name XMM0..XMM15.</summary>
    public const byte XmmBase = 64;
    /// <summary>Register indices 80..95 name DR0..DR15 (only for MOV to/from debug registers).</summary>
    public const byte DrBase = 80;
    /// <summary>Register indices 96..103 name ST(0)..ST(7) (x87 instructions).</summary>
    public const byte StBase = 96;
    /// <summary>Register indices 104..111 name MM0..MM7 (MMX instructions).</summary>
    public const byte MmBase = 104;

    public delegate*<InterpreterVcpu, ref DecodedOp, ExecStatus> Handler;
    /// <summary>Address of this instruction (linear RIP as decoded).</summary>
    public ulong Ip;
    /// <summary>Address of the next instruction.</summary>
    public ulong NextIp;
    /// <summary>The (sign-extended) immediate of the first immediate operand.</summary>
    public ulong Imm;
    /// <summary>Memory displacement; absolute target for RIP-relative operands.</summary>
    public ulong Disp;
    /// <summary>Near-branch target.</summary>
    public ulong Target;
    /// <summary>Operand size in bytes of the main (first) operand.</summary>
    public byte Size;
    /// <summary>Operand size in bytes of the second operand (movzx/movsx/shifts).</summary>
    public byte SrcSize;
    public byte K0, K1, K2;
    public byte R0, R1, R2;
    public byte Base, Index, ScaleShift;
    /// <summary>Segment whose base is added, or <see cref="NoReg"/> when none applies (64-bit mode, non-FS/GS).</summary>
    public byte Seg;
    /// <summary>Address size in bytes (2, 4, 8) of the memory operand or string op.</summary>
    public byte AddrSize;
    /// <summary>iced <see cref="ConditionCode"/> for jcc/setcc/cmovcc.</summary>
    public byte Cond;
    /// <summary>String-op repeat prefix: 0 none, 1 REP/REPE (F3), 2 REPNE (F2).</summary>
    public byte Rep;
    /// <summary>Bytes one push/pop of this instruction moves (iced's stack-pointer increment, without RET's imm16).</summary>
    public byte StackSize;
    public Instruction Instr;
}
