using BenchmarkDotNet.Attributes;
using Colo.Core.Cpu;
using Colo.Core.Memory;
using Colo.Cpu.Interpreter;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Benchmarks.Cpu;

/// <summary>
/// Interpreter throughput on fixed instruction mixes. Each invocation retires <see cref="Instructions"/> guest
/// instructions, so the reported time is per instruction: MIPS = 1000 / (ns per op).
/// </summary>
[MemoryDiagnoser]
public class InterpreterBenchmarks : IDisposable
{
    private const int Iterations = 200_000;
    /// <summary>Every loop body below is six instructions.</summary>
    private const int Instructions = Iterations * 6;
    private const ulong AluCode = 0x10000;
    private const ulong MemoryCode = 0x11000;
    private const ulong CallCode = 0x12000;
    private const ulong FloatCode = 0x13000;
    private const ulong MmxCode = 0x14000;

    private sealed class NullBus : IIoBus
    {
        public void PioRead(ushort port, Span<byte> data) => data.Fill(0xFF);

        public void PioWrite(ushort port, ReadOnlySpan<byte> data)
        {
        }

        public void MmioRead(ulong address, Span<byte> data) => data.Fill(0xFF);

        public void MmioWrite(ulong address, ReadOnlySpan<byte> data)
        {
        }
    }

    private RamBlock? _ram;
    private InterpreterVcpu? _vcpu;

    /// <summary>The second tier's threshold: -1 interprets only, 0 compiles every block at its first execution.</summary>
    [Params(-1, 0)]
    public int Tier2Threshold { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var bus = new NullBus();
        _ram = new RamBlock("pc.ram", 32 << 20);
        var memory = new GuestMemory(_ram, bus);
        _vcpu = new InterpreterVcpu(0, memory, bus) { Tier2Threshold = Tier2Threshold };
        memory.Write(AluCode, Assemble(AluCode, a =>
        {
            Label top = a.CreateLabel();
            a.mov(ecx, Iterations);
            a.Label(ref top);
            a.add(rax, rcx);
            a.xor(rdx, rax);
            a.sub(rbx, rdx);
            a.and(r8, rax);
            a.dec(ecx);
            a.jnz(top);
            a.hlt();
        }));
        memory.Write(MemoryCode, Assemble(MemoryCode, a =>
        {
            Label top = a.CreateLabel();
            a.mov(ecx, Iterations);
            a.mov(esi, 0x100000);
            a.mov(edi, 0x200000);
            a.Label(ref top);
            a.mov(eax, ecx);
            a.and(eax, 1023);
            a.mov(rdx, __qword_ptr[rsi + rax * 8]);
            a.add(rdx, rcx);
            a.mov(__qword_ptr[rdi + rax * 8], rdx);
            a.dec(ecx);
            a.jnz(top);
            a.hlt();
        }));
        memory.Write(CallCode, Assemble(CallCode, a =>
        {
            Label top = a.CreateLabel();
            Label fn = a.CreateLabel();
            a.mov(ecx, Iterations);
            a.Label(ref top);
            a.call(fn);
            a.dec(ecx);
            a.jnz(top);
            a.hlt();
            a.Label(ref fn);
            a.push(rbx);
            a.pop(rbx);
            a.ret();
        }));
        memory.Write(FloatCode, Assemble(FloatCode, a =>
        {
            // Scalar and packed SSE arithmetic, an x87 add and a truncating conversion: the soft-float paths.
            Label top = a.CreateLabel();
            a.mov(ecx, Iterations);
            // Inexact sums and products (so MXCSR.PE is set, as in real code) that stay finite and normal.
            a.mov(rax, BitConverter.DoubleToInt64Bits(0.1));
            a.movq(xmm0, rax);
            a.movq(xmm1, rax);
            a.mov(rax, BitConverter.DoubleToInt64Bits(1.5));
            a.movq(xmm2, rax);
            a.movddup(xmm2, xmm2);
            a.mov(rax, BitConverter.DoubleToInt64Bits(1.0000001));
            a.movq(xmm3, rax);
            a.movddup(xmm3, xmm3);
            a.fld1();
            a.fldpi();
            a.Label(ref top);
            a.addsd(xmm0, xmm1);
            a.mulpd(xmm2, xmm3);
            a.fadd(st0, st1);
            a.cvttsd2si(rax, xmm0);
            a.dec(ecx);
            a.jnz(top);
            a.hlt();
        }));
        memory.Write(MmxCode, Assemble(MmxCode, a =>
        {
            // Saturating add, multiply-add, a shift and a pack on MM registers (each one an x87-state transition).
            Label top = a.CreateLabel();
            a.mov(ecx, Iterations);
            a.mov(rax, 0x0123_4567_89AB_CDEF);
            a.movq(mm1, rax);
            a.movq(mm3, rax);
            a.Label(ref top);
            a.paddsw(mm0, mm1);
            a.pmaddwd(mm2, mm3);
            a.psrlq(mm0, 1);
            a.packuswb(mm2, mm0);
            a.dec(ecx);
            a.jnz(top);
            a.emms();
            a.hlt();
        }));
    }

    private static byte[] Assemble(ulong address, Action<Assembler> emit)
    {
        var a = new Assembler(64);
        emit(a);
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), address);
        return stream.ToArray();
    }

    private VcpuExit RunFrom(ulong rip)
    {
        _vcpu!.State.SetFlatLongMode(rip, 0xF0000);
        return _vcpu.Run();
    }

    [Benchmark(OperationsPerInvoke = Instructions)]
    public VcpuExit AluLoop() => RunFrom(AluCode);

    [Benchmark(OperationsPerInvoke = Instructions)]
    public VcpuExit LoadStoreLoop() => RunFrom(MemoryCode);

    [Benchmark(OperationsPerInvoke = Instructions)]
    public VcpuExit CallRetLoop() => RunFrom(CallCode);

    /// <summary>The FP mix (ADDSD, MULPD, FADD, CVTTSD2SI, DEC, JNZ) with SSE enabled and a fresh x87/MXCSR state.</summary>
    [Benchmark(OperationsPerInvoke = Instructions)]
    public VcpuExit FloatLoop()
    {
        ref X86CpuState s = ref _vcpu!.State;
        s.SetFlatLongMode(FloatCode, 0xF0000);
        s.Cr4 |= X86CpuState.Cr4Osfxsr | X86CpuState.Cr4Osxmmexcpt;
        s.Fcw = 0x037F;
        s.Fsw = 0;
        s.Ftw = 0;
        s.Mxcsr = 0x1F80;
        return _vcpu.Run();
    }

    /// <summary>The MMX mix (PADDSW, PMADDWD, PSRLQ, PACKUSWB, DEC, JNZ).</summary>
    [Benchmark(OperationsPerInvoke = Instructions)]
    public VcpuExit MmxLoop()
    {
        ref X86CpuState s = ref _vcpu!.State;
        s.SetFlatLongMode(MmxCode, 0xF0000);
        s.Fcw = 0x037F;
        s.Fsw = 0;
        s.Ftw = 0;
        return _vcpu.Run();
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _vcpu?.Dispose();
        _ram?.Dispose();
        GC.SuppressFinalize(this);
    }
}
