using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// Floating-point faults the host oracle cannot show: unmasked SSE exceptions (#XM, or #UD without
/// CR4.OSXMMEXCPT) leave the destination unchanged and set MXCSR's flag; a pending unmasked x87 exception raises #MF
/// on the next waiting instruction when CR0.NE is set; CR0.EM/TS make x87 arithmetic raise #NM.
/// </summary>
[TestFixture]
public sealed class FloatFaultTests
{
    private const ulong GdtAddress = 0x1000;
    private const ulong IdtAddress = 0x2000;
    private const ulong HandlerAddress = 0x20000;
    private const ulong DataAddress = 0x30000;
    private const ushort DebugExitPort = 0xF4;
    private const ulong NoFault = 0xFF;
    private const ulong Cr0Ne = 1UL << 5;

    private static (ulong Vector, GuestHarness Guest) Run(Action<Assembler> body, ulong cr0Set = 0, ulong cr0Clear = 0, ulong cr4Clear = 0)
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
        g.State.Cr0 = (g.State.Cr0 | cr0Set) & ~cr0Clear;
        g.Memory.Write(DataAddress, BitConverter.GetBytes(1.0f));
        g.Memory.Write(DataAddress + 4, BitConverter.GetBytes(0.0f));
        g.Memory.Write(DataAddress + 8, BitConverter.GetBytes(0x1D80u)); // MXCSR: ZE unmasked
        g.Memory.Write(DataAddress + 12, BitConverter.GetBytes((ushort)0x037B)); // FCW: ZE unmasked
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        return (g.Io.PortWrites.Single().Value, g);
    }

    private static float Xmm0Low(GuestHarness g) => BitConverter.ToSingle(((ReadOnlySpan<byte>)g.State.Fx).Slice(X86CpuState.FxXmm0, 4));

    private static void DivideByZero(Assembler a)
    {
        a.movss(xmm0, __dword_ptr[rsi]);
        a.movss(xmm1, __dword_ptr[rsi + 4]);
        a.ldmxcsr(__dword_ptr[rsi + 8]);
        a.divss(xmm0, xmm1);
    }

    [Test]
    public void UnmaskedSseException_RaisesXm_LeavesDestination_SetsFlag()
    {
        (ulong vector, GuestHarness g) = Run(DivideByZero);
        using (g)
        {
            Assert.That(vector, Is.EqualTo(19UL));
            Assert.That(g.State.Mxcsr & 0x3F, Is.EqualTo(4u), "ZE set");
            Assert.That(Xmm0Low(g), Is.EqualTo(1.0f), "destination unchanged");
        }
    }

    [Test]
    public void UnmaskedSseException_WithoutOsxmmexcpt_RaisesUd()
    {
        (ulong vector, GuestHarness g) = Run(DivideByZero, cr4Clear: X86CpuState.Cr4Osxmmexcpt);
        using (g)
        {
            Assert.That(vector, Is.EqualTo(6UL));
        }
    }

    [Test]
    public void MaskedSseException_GivesInfinity()
    {
        (ulong vector, GuestHarness g) = Run(a =>
        {
            a.movss(xmm0, __dword_ptr[rsi]);
            a.movss(xmm1, __dword_ptr[rsi + 4]);
            a.divss(xmm0, xmm1);
        });
        using (g)
        {
            Assert.That(vector, Is.EqualTo(NoFault));
            Assert.That(g.State.Mxcsr & 0x3F, Is.EqualTo(4u));
            Assert.That(Xmm0Low(g), Is.EqualTo(float.PositiveInfinity));
        }
    }

    private static void X87DivideByZero(Assembler a)
    {
        a.fldcw(__word_ptr[rsi + 12]);
        a.fld1();
        a.fldz();
        a.fdivp(st1, st0);
        a.fnstsw(ax); // non-waiting: no #MF
        a.mov(__word_ptr[rsi + 16], ax);
        a.fld1(); // waiting: #MF here
    }

    [Test]
    public void PendingX87Exception_RaisesMfOnNextWaitingInstruction()
    {
        (ulong vector, GuestHarness g) = Run(X87DivideByZero, cr0Set: Cr0Ne);
        using (g)
        {
            Assert.That(vector, Is.EqualTo(16UL));
            Span<byte> fsw = stackalloc byte[2];
            g.Memory.Read(DataAddress + 16, fsw);
            Assert.That(BitConverter.ToUInt16(fsw) & 0x80FF, Is.EqualTo(0x8084), "ZE, ES and B after the division");
        }
    }

    [Test]
    public void PendingX87Exception_WithoutNe_StaysPending()
    {
        (ulong vector, GuestHarness g) = Run(X87DivideByZero, cr0Clear: Cr0Ne);
        using (g)
        {
            Assert.That(vector, Is.EqualTo(NoFault));
            Assert.That(g.State.Fsw & 0x80, Is.EqualTo(0x80));
        }
    }

    [Test]
    public void X87Arithmetic_WithEmOrTs_RaisesNm()
    {
        foreach (ulong cr0 in new[] { X86CpuState.Cr0Em, X86CpuState.Cr0Ts })
        {
            (ulong vector, GuestHarness g) = Run(a => a.fadd(st0, st1), cr0Set: cr0);
            using (g)
            {
                Assert.That(vector, Is.EqualTo(7UL), $"CR0 bit {cr0:X}");
            }
        }
    }

    [Test]
    public void SseArithmetic_WithTs_RaisesNm_AndWithEm_RaisesUd()
    {
        (ulong vector, GuestHarness g) = Run(a => a.addps(xmm0, xmm1), cr0Set: X86CpuState.Cr0Ts);
        using (g)
        {
            Assert.That(vector, Is.EqualTo(7UL));
        }
        (vector, g) = Run(a => a.mulsd(xmm0, xmm1), cr0Set: X86CpuState.Cr0Em);
        using (g)
        {
            Assert.That(vector, Is.EqualTo(6UL));
        }
    }

    [Test]
    public void PackedSource_Misaligned_RaisesGp()
    {
        (ulong vector, GuestHarness g) = Run(a => a.addps(xmm0, __xmmword_ptr[rsi + 4]));
        using (g)
        {
            Assert.That(vector, Is.EqualTo(13UL));
        }
    }
}
