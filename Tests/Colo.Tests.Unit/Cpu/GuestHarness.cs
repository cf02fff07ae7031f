using Colo.Core.Cpu;
using Colo.Core.Memory;
using Colo.Cpu.Interpreter;
using Iced.Intel;

namespace Colo.Tests.Unit.Cpu;

/// <summary>An interpreter vCPU over fresh guest RAM, with helpers to assemble and run 64-bit test code.</summary>
public sealed class GuestHarness : IDisposable
{
    public const ulong CodeAddress = 0x10000;
    public const ulong StackTop = 0xF0000;

    public GuestHarness(ulong ramSize = 16 << 20)
    {
        Io = new RecordingIoBus();
        Ram = new RamBlock("pc.ram", ramSize);
        Memory = new GuestMemory(Ram, Io);
        Vcpu = new InterpreterVcpu(0, Memory, Io);
    }

    public RecordingIoBus Io { get; }

    public RamBlock Ram { get; }

    public GuestMemory Memory { get; }

    public InterpreterVcpu Vcpu { get; }

    public ref X86CpuState State => ref Vcpu.State;

    public static byte[] Assemble(Assembler a, ulong address)
    {
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), address);
        return stream.ToArray();
    }

    public static byte[] Assemble(int bitness, ulong address, Action<Assembler> emit)
    {
        var a = new Assembler(bitness);
        emit(a);
        return Assemble(a, address);
    }

    /// <summary>Loads <paramref name="code"/> at <see cref="CodeAddress"/> in flat 64-bit mode.</summary>
    public void Load64(byte[] code)
    {
        Memory.Write(CodeAddress, code);
        State.SetFlatLongMode(CodeAddress, StackTop);
    }

    public void Load64(Action<Assembler> emit) => Load64(Assemble(64, CodeAddress, emit));

    public ulong ReadU64(ulong address)
    {
        Span<byte> b = stackalloc byte[8];
        Memory.Read(address, b);
        return BitConverter.ToUInt64(b);
    }

    public void WriteU64(ulong address, ulong value) => Memory.Write(address, BitConverter.GetBytes(value));

    public void Dispose()
    {
        Vcpu.Dispose();
        Ram.Dispose();
    }
}
