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

    /// <param name="legacyWindow">Give the address space the PC's legacy window 0xA0000–0xFFFFF (PAM-switched pages).</param>
    public GuestHarness(ulong ramSize = 16 << 20, bool legacyWindow = false)
    {
        Io = new RecordingIoBus();
        Ram = new RamBlock("pc.ram", ramSize);
        Memory = legacyWindow ? new GuestMemory(Ram, Io, ramSize, legacyWindow: true) : new GuestMemory(Ram, Io);
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

    /// <summary>
    /// Installs a flat 64-bit GDT at <paramref name="gdt"/> and an IDT at <paramref name="idt"/> whose first
    /// <paramref name="vectors"/> vectors each run <c>mov al, vector; out port, al; hlt</c> from 16-byte stubs at
    /// <paramref name="handlers"/>, so a test reads the exception it raised from the debug-exit port.
    /// </summary>
    public void InstallReportingIdt(ulong gdt, ulong idt, ulong handlers, int vectors, ushort port)
    {
        WriteU64(gdt, 0);
        WriteU64(gdt + 8, 0x00AF_9A00_0000_FFFF);
        WriteU64(gdt + 16, 0x00CF_9200_0000_FFFF);
        for (int v = 0; v < vectors; v++)
        {
            ulong handler = handlers + (ulong)v * 16;
            byte vector = (byte)v;
            Memory.Write(handler, Assemble(64, handler, a =>
            {
                a.mov(AssemblerRegisters.al, vector);
                a.@out((byte)port, AssemblerRegisters.al);
                a.hlt();
            }));
            ulong lo = (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | (((handler >> 16) & 0xFFFF) << 48);
            WriteU64(idt + (ulong)v * 16, lo);
            WriteU64(idt + (ulong)v * 16 + 8, handler >> 32);
        }
        State.Gdtr = new DescriptorTableRegister { Base = gdt, Limit = 23 };
        State.Idtr = new DescriptorTableRegister { Base = idt, Limit = (ushort)(vectors * 16 - 1) };
    }

    public void Dispose()
    {
        Vcpu.Dispose();
        Ram.Dispose();
    }
}
