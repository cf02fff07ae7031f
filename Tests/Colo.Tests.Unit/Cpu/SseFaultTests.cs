using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>x87/SSE availability and alignment faults the host oracle cannot show (they need CR0/CR4 control).</summary>
[TestFixture]
public sealed class SseFaultTests
{
    private const ulong GdtAddress = 0x1000;
    private const ulong IdtAddress = 0x2000;
    private const ulong HandlerAddress = 0x20000;
    private const ulong DataAddress = 0x30000;
    private const ushort DebugExitPort = 0xF4;
    private const ulong NoFault = 0xFF;

    /// <summary>Runs <paramref name="body"/> with the given CR0/CR4 changes; returns the vector raised, or <see cref="NoFault"/>.</summary>
    private static ulong Run(Action<Assembler> body, ulong cr0Set = 0, ulong cr4Clear = 0)
    {
        using var g = new GuestHarness();
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
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        return g.Io.PortWrites.Single().Value;
    }

    [Test]
    public void Sse_WithOsfxsrClear_RaisesUd() => Assert.That(Run(a => a.pxor(xmm0, xmm1), cr4Clear: X86CpuState.Cr4Osfxsr), Is.EqualTo(6UL));

    [Test]
    public void Sse_WithTs_RaisesNm() => Assert.That(Run(a => a.movdqu(xmm0, __xmmword_ptr[rsi]), cr0Set: X86CpuState.Cr0Ts), Is.EqualTo(7UL));

    [Test]
    public void Sse_WithEm_RaisesUdEvenWithTs() => Assert.That(Run(a => a.paddd(xmm0, xmm1), cr0Set: X86CpuState.Cr0Em | X86CpuState.Cr0Ts), Is.EqualTo(6UL));

    [Test]
    public void Ldmxcsr_WithOsfxsrClear_RaisesUd() => Assert.That(Run(a => a.ldmxcsr(__dword_ptr[rsi]), cr4Clear: X86CpuState.Cr4Osfxsr), Is.EqualTo(6UL));

    [Test]
    public void X87_WithEmOrTs_RaisesNm()
    {
        Assert.That(Run(a => a.fninit(), cr0Set: X86CpuState.Cr0Em), Is.EqualTo(7UL));
        Assert.That(Run(a => a.fnstsw(ax), cr0Set: X86CpuState.Cr0Ts), Is.EqualTo(7UL));
        Assert.That(Run(a => a.fxsave64(__[rsi]), cr0Set: X86CpuState.Cr0Ts), Is.EqualTo(7UL));
        Assert.That(Run(a => a.fxrstor(__[rsi]), cr0Set: X86CpuState.Cr0Em), Is.EqualTo(7UL));
    }

    [Test]
    public void Wait_RaisesNmOnlyWithTsAndMp()
    {
        Assert.That(Run(a => a.wait(), cr0Set: X86CpuState.Cr0Ts), Is.EqualTo(NoFault));
        Assert.That(Run(a => a.wait(), cr0Set: X86CpuState.Cr0Ts | X86CpuState.Cr0Mp), Is.EqualTo(7UL));
    }

    [Test]
    public void Clts_ClearsTs_SoSseRuns() => Assert.That(Run(a => { a.clts(); a.pxor(xmm0, xmm0); a.fninit(); }, cr0Set: X86CpuState.Cr0Ts), Is.EqualTo(NoFault));

    [Test]
    public void AlignedForms_Misaligned_RaiseGp()
    {
        Assert.That(Run(a => a.movaps(xmm0, __xmmword_ptr[rsi + 8])), Is.EqualTo(13UL));
        Assert.That(Run(a => a.movdqa(__xmmword_ptr[rsi + 1], xmm0)), Is.EqualTo(13UL));
        Assert.That(Run(a => a.movntdq(__xmmword_ptr[rsi + 4], xmm0)), Is.EqualTo(13UL));
        Assert.That(Run(a => a.pxor(xmm0, __xmmword_ptr[rsi + 4])), Is.EqualTo(13UL));
        Assert.That(Run(a => a.fxsave64(__[rsi + 8])), Is.EqualTo(13UL));
        Assert.That(Run(a => a.movdqu(xmm0, __xmmword_ptr[rsi + 4])), Is.EqualTo(NoFault), "unaligned form");
    }

    [Test]
    public void Ldmxcsr_ReservedBit_RaisesGp()
    {
        Assert.That(Run(a => { a.mov(__dword_ptr[rsi], 0x1_1F80); a.ldmxcsr(__dword_ptr[rsi]); }), Is.EqualTo(13UL));
        Assert.That(Run(a => { a.mov(__dword_ptr[rsi], 0x1F80); a.ldmxcsr(__dword_ptr[rsi]); }), Is.EqualTo(NoFault));
    }

    [Test]
    public void Fxrstor_ReservedMxcsrBit_RaisesGp()
    {
        Assert.That(Run(a => { a.fxsave64(__[rsi]); a.mov(__dword_ptr[rsi + 24], 0x4_1F80); a.fxrstor64(__[rsi]); }), Is.EqualTo(13UL));
    }

    [Test]
    public void ResetState_HasQemusFpuDefaults()
    {
        var s = default(X86CpuState);
        s.Reset();
        Assert.Multiple(() =>
        {
            Assert.That(s.Fcw, Is.EqualTo((ushort)0x037F), "QEMU's reset value");
            Assert.That(s.Mxcsr, Is.EqualTo(0x1F80u));
        });
    }
}
