using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// The second tier (blocks compiled to IL) against the interpreter: the same program run with every block compiled
/// at its first execution and with the second tier off must end in the same registers, flags, RIP and memory —
/// including when a compiled block faults, when code rewrites itself, and across dirty-page tracking.
/// </summary>
[TestFixture]
public sealed class Tier2Tests
{
    private const ulong Pml4 = 0x30000;
    private const ulong GdtAddress = 0x1000;
    private const ulong IdtAddress = 0x2000;
    private const ulong HandlerAddress = 0x3000;
    private const ushort DebugExitPort = 0xE9;
    private const ulong Data = 0x300000;

    /// <summary>Identity-maps the first 16 MiB with writable 2 MiB pages (D clear) except the page at 0x600000.</summary>
    private static void EnablePaging(GuestHarness g)
    {
        g.WriteU64(Pml4, (Pml4 + 0x1000) | 3);
        g.WriteU64(Pml4 + 0x1000, (Pml4 + 0x2000) | 3);
        for (ulong i = 0; i < 8; i++)
        {
            g.WriteU64(Pml4 + 0x2000 + i * 8, i == 3 ? 0 : (i << 21) | 0x83);
        }
        g.State.Cr3 = Pml4;
        g.State.Cr0 |= X86CpuState.Cr0Pg | (1UL << 16);
    }

    private static GuestHarness Run(bool tier2, Action<Assembler> program, bool paging, out VcpuExit exit)
    {
        var g = new GuestHarness();
        g.Vcpu.Tier2Threshold = tier2 ? 0 : -1;
        g.Load64(program);
        g.InstallReportingIdt(GdtAddress, IdtAddress, HandlerAddress, 32, DebugExitPort);
        var random = new Random(7);
        byte[] data = new byte[0x2000];
        random.NextBytes(data);
        g.Memory.Write(Data, data);
        for (int r = 0; r < 16; r++)
        {
            if (r != 4)
            {
                g.State.Gpr[r] = (ulong)random.NextInt64();
            }
        }
        if (paging)
        {
            EnablePaging(g);
        }
        exit = g.Vcpu.Run();
        return g;
    }

    private static void AssertSameAsInterpreter(Action<Assembler> program, bool paging = false)
    {
        using GuestHarness interpreted = Run(tier2: false, program, paging, out VcpuExit exitInterpreted);
        using GuestHarness compiled = Run(tier2: true, program, paging, out VcpuExit exitCompiled);
        Assert.That(compiled.Vcpu.Tier2CompiledBlocks, Is.GreaterThan(0), "blocks compiled");
        Assert.That(interpreted.Vcpu.Tier2CompiledBlocks, Is.Zero);
        Assert.Multiple(() =>
        {
            Assert.That(exitCompiled, Is.EqualTo(exitInterpreted), "exit");
            for (int r = 0; r < 16; r++)
            {
                Assert.That(compiled.State.Gpr[r], Is.EqualTo(interpreted.State.Gpr[r]), $"GPR {r}");
            }
            Assert.That(compiled.State.Rip, Is.EqualTo(interpreted.State.Rip), "RIP");
            Assert.That(compiled.State.Rflags, Is.EqualTo(interpreted.State.Rflags), "RFLAGS");
            Assert.That(compiled.State.Cr2, Is.EqualTo(interpreted.State.Cr2), "CR2");
            Assert.That(compiled.Vcpu.InstructionCount, Is.EqualTo(interpreted.Vcpu.InstructionCount), "retired");
            Assert.That(compiled.Io.PortWrites.Select(w => w.Value), Is.EqualTo(interpreted.Io.PortWrites.Select(w => w.Value)), "reported vectors");
            byte[] a = new byte[0x2000];
            byte[] b = new byte[0x2000];
            interpreted.Memory.Read(Data, a);
            compiled.Memory.Read(Data, b);
            Assert.That(b, Is.EqualTo(a), "data");
            interpreted.Memory.Read(GuestHarness.StackTop - 0x100, a.AsSpan(0, 0x100));
            compiled.Memory.Read(GuestHarness.StackTop - 0x100, b.AsSpan(0, 0x100));
            Assert.That(b.AsSpan(0, 0x100).ToArray(), Is.EqualTo(a.AsSpan(0, 0x100).ToArray()), "stack");
        });
    }

    /// <summary>A decompressor-like loop: loads, stores, ALU at 32 and 64 bits, shifts, LEA, MOVZX/MOVSX, every Jcc.</summary>
    private static void HotLoop(Assembler a)
    {
        Label top = a.CreateLabel();
        Label skip = a.CreateLabel();
        Label next = a.CreateLabel();
        a.mov(rsi, Data);
        a.mov(ecx, 300);
        a.xor(edx, edx);
        a.Label(ref top);
        a.movzx(eax, __byte_ptr[rsi + rcx]);
        a.movsx(ebx, __word_ptr[rsi + rcx * 2 + 0x10]);
        a.add(edx, eax);
        a.sub(rbx, rdx);
        a.lea(r8, __[rbx + rax * 4 + 0x1234]);
        a.lea(r9d, __[rdx + rcx * 8 - 7]);
        a.xor(r10, r8);
        a.and(r11d, 0x7FFF);
        a.or(r11, r9);
        a.shl(r8, 3);
        a.shr(r9d, 5);
        a.sar(r10, 7);
        a.mov(__dword_ptr[rsi + rcx * 4 + 0x800], edx);
        a.mov(__qword_ptr[rsi + rcx * 8 + 0x1000 - 8], r10);
        a.mov(__byte_ptr[rsi + rcx + 0x400], al);
        a.mov(__word_ptr[rsi + rcx * 2 + 0x600], 0x5A5A);
        a.mov(r12d, __dword_ptr[rsi + rcx * 4]);
        a.mov(r13b, __byte_ptr[rsi + rcx + 1]);
        a.mov(r14w, __word_ptr[rsi + rcx + 3]);
        a.inc(r15);
        a.dec(r12d);
        a.cmp(eax, 0x80);
        a.jb(skip);
        a.add(r14, 1);
        a.Label(ref skip);
        a.test(edx, 0x40);
        a.je(next);
        a.cmp(rbx, r10);
        a.jl(next);
        a.cmp(r9d, r11d);
        a.jg(next);
        a.sub(r13, 3);
        a.js(next);
        a.cmp(r12, r8);
        a.jbe(next);
        a.inc(rbp);
        a.Label(ref next);
        a.mov(rdi, rcx);
        a.imul(rdi, rdi, 3);
        a.adc(rdi, rax);
        a.setp(al);
        a.dec(ecx);
        a.jne(top);
        a.hlt();
    }

    [Test]
    public void HotLoop_CompiledMatchesInterpreter() => AssertSameAsInterpreter(HotLoop);

    [Test]
    public void HotLoop_WithPaging_CompiledMatchesInterpreter() => AssertSameAsInterpreter(HotLoop, paging: true);

    [Test]
    public void TightLoop_GoingRoundInsideCompiledCode_RetiresTheSameCount() => AssertSameAsInterpreter(a =>
    {
        Label top = a.CreateLabel();
        Label inner = a.CreateLabel();
        a.mov(ecx, 1000);
        a.mov(rsi, Data);
        a.Label(ref top);
        a.add(rax, rcx);
        a.xor(rdx, rax);
        a.mov(__qword_ptr[rsi + rcx * 8], rdx);
        a.mov(rbx, __qword_ptr[rsi + rcx * 4]);
        a.dec(ecx);
        a.jne(top);
        a.mov(ecx, 50);
        a.Label(ref inner);
        a.sub(rbx, rcx);
        a.dec(ecx);
        a.cmp(ecx, 10);
        a.ja(inner);
        a.hlt();
    });

    [Test]
    public void EndlessCompiledLoop_IsKicked()
    {
        using var g = new GuestHarness();
        g.Vcpu.Tier2Threshold = 0;
        g.Load64(a =>
        {
            Label top = a.CreateLabel();
            a.Label(ref top);
            a.inc(rax);
            a.add(rbx, rax);
            a.jmp(top);
        });
        using var kicker = new Timer(_ => g.Vcpu.Kick(), null, 50, Timeout.Infinite);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Kicked));
        Assert.That(g.State.Gpr[0], Is.GreaterThan(0UL));
        Assert.That(g.Vcpu.InstructionCount, Is.EqualTo(g.State.Gpr[0] * 3), "three instructions retired per pass");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void PageFault_InCompiledBlock_LeavesTheInterpretersState(bool store)
    {
        // Ops before the faulting one have retired; it and those after have not: RIP, registers, flags and CR2 as
        // the interpreter leaves them, and the handler reports #PF.
        AssertSameAsInterpreter(a =>
        {
            a.mov(rbx, 0x600010UL);
            a.add(rax, rcx);
            a.cmp(rdx, rax);
            if (store)
            {
                a.mov(__qword_ptr[rbx + 8], rdx);
            }
            else
            {
                a.mov(rdx, __qword_ptr[rbx + 8]);
            }
            a.inc(rax);
            a.hlt();
        }, paging: true);
    }

    [Test]
    public void SelfModifyingCode_CompiledBlockIsDropped()
    {
        using var g = new GuestHarness();
        g.Vcpu.Tier2Threshold = 0;
        const ulong function = GuestHarness.CodeAddress + 0x100;
        g.Load64(a =>
        {
            a.xor(ebx, ebx);
            a.mov(rsi, function);
            a.call(rsi);
            a.call(rsi);
            // Rewrite the immediate of "mov eax, imm32" (opcode B8 at the function's first byte).
            a.mov(__dword_ptr[rsi + 1], 0x22);
            a.call(rsi);
            a.hlt();
        });
        g.Memory.Write(function, GuestHarness.Assemble(64, function, a =>
        {
            a.mov(eax, 0x11);
            a.add(ebx, eax);
            a.ret();
        }));
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.State.Gpr[3], Is.EqualTo(0x11UL + 0x11 + 0x22));
        Assert.That(g.Vcpu.Tier2CompiledBlocks, Is.GreaterThan(0));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Stores_MarkDirtyPages_AgainAfterRearm(bool tier2)
    {
        using var g = new GuestHarness();
        g.Vcpu.Tier2Threshold = tier2 ? 0 : -1;
        g.Load64(a =>
        {
            a.mov(rbx, Data);
            a.mov(__qword_ptr[rbx], rax);
            a.mov(__dword_ptr[rbx + 0x1000], eax);
            a.hlt();
        });
        EnablePaging(g);
        const ulong page = Data >> 12;
        g.Ram.DirtyPages.ClearAll();
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.Ram.DirtyPages.Test(page) && g.Ram.DirtyPages.Test(page + 1), Is.True, "first stores");
        for (int round = 0; round < 2; round++)
        {
            // Harvest, re-arm, run the same stores again: the TLB still maps the pages writable, yet they are marked.
            g.Ram.DirtyPages.ClearAll();
            g.Memory.RearmDirtyLog();
            g.State.Rip = GuestHarness.CodeAddress;
            Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
            Assert.That(g.Ram.DirtyPages.Test(page), Is.True, $"round {round}: store through the TLB");
            Assert.That(g.Ram.DirtyPages.Test(page + 1), Is.True, $"round {round}: second page");
            Assert.That(g.Ram.DirtyPages.Test(page + 2), Is.False, "untouched page");
        }
    }

    [Test]
    public void Stores_WithPagingOff_MarkDirtyPages()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(rbx, Data);
            a.mov(__byte_ptr[rbx + 0x2345], al);
            a.hlt();
        });
        g.Ram.DirtyPages.ClearAll();
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.Ram.DirtyPages.Test((Data + 0x2345) >> 12), Is.True);
    }
}
