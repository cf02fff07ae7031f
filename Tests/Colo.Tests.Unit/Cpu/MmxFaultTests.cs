using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// MMX availability faults the host oracle cannot show: #UD with CR0.EM (and for forms with an XMM operand with
/// CR4.OSFXSR clear), #NM with CR0.TS, #MF for a pending unmasked x87 exception with CR0.NE, alignment and address
/// faults; a faulting MMX instruction leaves the x87 state alone.
/// </summary>
[TestFixture]
public sealed class MmxFaultTests
{
    private const ulong GdtAddress = 0x1000;
    private const ulong IdtAddress = 0x2000;
    private const ulong HandlerAddress = 0x20000;
    private const ulong DataAddress = 0x30000;
    private const ushort DebugExitPort = 0xF4;
    private const ulong NoFault = 0xFF;
    private const ulong Cr0Ne = 1UL << 5;

    private static (ulong Vector, GuestHarness Guest) RunKeep(Action<Assembler> body, ulong cr0Set = 0, ulong cr4Clear = 0)
    {
        var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(rsi, (long)DataAddress);
            body(a);
            a.mov(al, (byte)NoFault);
            a.@out((byte)DebugExitPort, al);
            a.hlt();
        });
        g.InstallReportingIdt(GdtAddress, IdtAddress, HandlerAddress, 32, DebugExitPort);
        g.State.Cr4 |= X86CpuState.Cr4Osfxsr | X86CpuState.Cr4Osxmmexcpt;
        g.State.Cr4 &= ~cr4Clear;
        g.State.Cr0 |= cr0Set;
        g.Memory.Write(DataAddress + 12, BitConverter.GetBytes((ushort)0x037B)); // FCW: ZE unmasked
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        return (g.Io.PortWrites.Single().Value, g);
    }

    private static ulong Run(Action<Assembler> body, ulong cr0Set = 0, ulong cr4Clear = 0)
    {
        (ulong vector, GuestHarness g) = RunKeep(body, cr0Set, cr4Clear);
        g.Dispose();
        return vector;
    }

    [Test]
    public void Mmx_WithEm_RaisesUdEvenWithTs()
    {
        Assert.That(Run(a => a.paddb(mm0, mm1), cr0Set: X86CpuState.Cr0Em), Is.EqualTo(6UL));
        Assert.That(Run(a => a.movq(mm0, __qword_ptr[rsi]), cr0Set: X86CpuState.Cr0Em | X86CpuState.Cr0Ts), Is.EqualTo(6UL));
        Assert.That(Run(a => a.emms(), cr0Set: X86CpuState.Cr0Em), Is.EqualTo(6UL));
        Assert.That(Run(a => a.pshufw(mm0, mm1, 3), cr0Set: X86CpuState.Cr0Em), Is.EqualTo(6UL));
    }

    [Test]
    public void Mmx_WithTs_RaisesNm()
    {
        Assert.That(Run(a => a.pxor(mm0, mm1), cr0Set: X86CpuState.Cr0Ts), Is.EqualTo(7UL));
        Assert.That(Run(a => a.emms(), cr0Set: X86CpuState.Cr0Ts), Is.EqualTo(7UL));
        Assert.That(Run(a => a.movd(eax, mm3), cr0Set: X86CpuState.Cr0Ts), Is.EqualTo(7UL));
    }

    [Test]
    public void Mmx_WithOsfxsrClear_RunsButXmmFormsRaiseUd()
    {
        Assert.That(Run(a => { a.paddw(mm0, mm1); a.pavgb(mm2, mm3); a.pshufw(mm4, mm5, 0x1B); a.emms(); }, cr4Clear: X86CpuState.Cr4Osfxsr), Is.EqualTo(NoFault));
        Assert.That(Run(a => a.cvtpi2ps(xmm0, mm1), cr4Clear: X86CpuState.Cr4Osfxsr), Is.EqualTo(6UL));
        Assert.That(Run(a => a.movq2dq(xmm0, mm1), cr4Clear: X86CpuState.Cr4Osfxsr), Is.EqualTo(6UL));
        Assert.That(Run(a => a.cvttps2pi(mm0, xmm1), cr4Clear: X86CpuState.Cr4Osfxsr), Is.EqualTo(6UL));
        Assert.That(Run(a => a.maskmovdqu(xmm0, xmm1), cr4Clear: X86CpuState.Cr4Osfxsr), Is.EqualTo(6UL));
    }

    private static void PendingDivideByZero(Assembler a)
    {
        a.fldcw(__word_ptr[rsi + 12]);
        a.fld1();
        a.fldz();
        a.fdivp(st1, st0);
    }

    [Test]
    public void Mmx_WithPendingX87Exception_RaisesMf()
    {
        Assert.That(Run(a => { PendingDivideByZero(a); a.paddd(mm0, mm1); }, cr0Set: Cr0Ne), Is.EqualTo(16UL));
        Assert.That(Run(a => { PendingDivideByZero(a); a.emms(); }, cr0Set: Cr0Ne), Is.EqualTo(16UL));
        Assert.That(Run(a => { PendingDivideByZero(a); a.movq2dq(xmm0, mm1); }, cr0Set: Cr0Ne), Is.EqualTo(16UL));
    }

    [Test]
    public void Mmx_FaultingOperand_LeavesX87StateAlone()
    {
        (ulong vector, GuestHarness g) = RunKeep(a =>
        {
            a.fld1();
            a.mov(rax, unchecked((long)0x8000_0000_0000_0000));
            a.paddb(mm0, __qword_ptr[rax]);
        });
        using (g)
        {
            Assert.That(vector, Is.EqualTo(13UL), "non-canonical address: #GP");
            Assert.That((g.State.Fsw >> 11) & 7, Is.EqualTo(7), "TOP unchanged");
            Assert.That(g.State.Ftw, Is.EqualTo((byte)0x80), "tags unchanged");
        }
    }

    [Test]
    public void Mmx_EntersMmxStateAndEmmsEmptiesTags()
    {
        (ulong vector, GuestHarness g) = RunKeep(a =>
        {
            a.fld1();
            a.mov(eax, 0x1234);
            a.movd(mm3, eax);
        });
        using (g)
        {
            Assert.That(vector, Is.EqualTo(NoFault));
            Assert.That((g.State.Fsw >> 11) & 7, Is.EqualTo(0), "TOP = 0");
            Assert.That(g.State.Ftw, Is.EqualTo((byte)0xFF), "all tags valid");
            ReadOnlySpan<byte> mm3 = ((ReadOnlySpan<byte>)g.State.Fx).Slice(X86CpuState.FxSt0 + 3 * 16, 10);
            Assert.That(BitConverter.ToUInt64(mm3), Is.EqualTo(0x1234UL));
            Assert.That(BitConverter.ToUInt16(mm3[8..]), Is.EqualTo((ushort)0xFFFF), "exponent all ones");
            ReadOnlySpan<byte> st7 = ((ReadOnlySpan<byte>)g.State.Fx).Slice(X86CpuState.FxSt0 + 7 * 16, 10);
            Assert.That(BitConverter.ToUInt64(st7), Is.EqualTo(0x8000_0000_0000_0000UL), "1.0 pushed into physical R7 is MM7");
        }
        (vector, g) = RunKeep(a => { a.movd(mm3, eax); a.emms(); });
        using (g)
        {
            Assert.That(vector, Is.EqualTo(NoFault));
            Assert.That(g.State.Ftw, Is.EqualTo((byte)0));
        }
    }

    [Test]
    public void Cvtpd2pi_MisalignedM128_RaisesGp()
    {
        Assert.That(Run(a => a.cvtpd2pi(mm0, __xmmword_ptr[rsi + 8])), Is.EqualTo(13UL));
        Assert.That(Run(a => a.cvtps2pi(mm0, __qword_ptr[rsi + 4])), Is.EqualTo(NoFault), "m64 form has no alignment rule");
    }

    [Test]
    public void Maskmovq_NonCanonicalTarget_RaisesGp()
    {
        Assert.That(Run(a =>
        {
            a.mov(rdi, unchecked((long)0x8000_0000_0000_0000));
            a.pcmpeqb(mm1, mm1);
            a.maskmovq(mm0, mm1);
        }), Is.EqualTo(13UL));
    }

    [Test]
    public void MmxLoop_AllocatesNothing()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            Label top = a.CreateLabel();
            a.mov(ecx, 200_000);
            a.Label(ref top);
            a.paddsw(mm0, mm1);
            a.pmaddwd(mm2, mm3);
            a.psrlq(mm0, 1);
            a.packuswb(mm2, __qword_ptr[rsp - 8]);
            a.dec(ecx);
            a.jnz(top);
            a.emms();
            a.hlt();
        });
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), "warm-up");
        g.State.SetFlatLongMode(GuestHarness.CodeAddress, GuestHarness.StackTop);
        ulong before = g.Vcpu.InstructionCount;
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        VcpuExit exit = g.Vcpu.Run();
        long delta = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Assert.That(exit, Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.Vcpu.InstructionCount - before, Is.GreaterThanOrEqualTo(1_200_000UL));
        Assert.That(delta, Is.Zero);
    }

    [Test]
    public void Ssse3MmxForms_AndMonitor_RaiseUd()
    {
        // qemu64 advertises neither SSSE3 nor MONITOR/MWAIT (CPUID.1:ECX bits 9 and 3).
        Assert.That(Run(a => a.pshufb(mm0, mm1)), Is.EqualTo(6UL));
        Assert.That(Run(a => a.pabsw(mm0, mm1)), Is.EqualTo(6UL));
        Assert.That(Run(a => a.monitor()), Is.EqualTo(6UL));
        Assert.That(Run(a => a.mwait()), Is.EqualTo(6UL));
    }
}
