namespace Colo.Cpu.Interpreter;

/// <summary>What a handler tells the block loop. Guest faults are a value here, never a C# exception.</summary>
internal enum ExecStatus : byte
{
    /// <summary>Fall through to the next op of the block (RIP already points past this one).</summary>
    Continue,
    /// <summary>RIP was changed (taken branch, restartable REP): leave the block and look up the next one.</summary>
    Branch,
    /// <summary>A guest exception is pending in the state; RIP must be rewound to the faulting instruction.</summary>
    Fault,
    /// <summary>HLT executed.</summary>
    Halt,
    /// <summary>The guest state cannot be modelled; the vCPU stops with <c>VcpuExit.InternalError</c>.</summary>
    InternalError,
}

/// <summary>Kind of each of an op's first three operands, resolved at decode time.</summary>
internal static class OperandKind
{
    public const byte None = 0;
    public const byte Reg = 1;
    public const byte Mem = 2;
    public const byte Imm = 3;
}

/// <summary>Exception vectors the interpreter raises.</summary>
internal static class Vector
{
    public const byte DE = 0;
    public const byte DB = 1;
    public const byte NMI = 2;
    public const byte BP = 3;
    public const byte BR = 5;
    public const byte UD = 6;
    public const byte NM = 7;
    public const byte DF = 8;
    public const byte TS = 10;
    public const byte NP = 11;
    public const byte SS = 12;
    public const byte GP = 13;
    public const byte PF = 14;
    public const byte MF = 16;
    public const byte XM = 19;
}
