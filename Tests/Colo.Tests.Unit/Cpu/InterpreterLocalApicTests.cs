using Colo.Core.Cpu;
using Colo.Core.Time;
using Colo.Devices.Interrupt;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>The interpreter reaching its own local APIC: the MMIO page, IA32_APIC_BASE, CR8 and interrupt delivery.</summary>
[TestFixture]
public sealed class InterpreterLocalApicTests
{
    private const ushort ReportPort = 0xF4;

    private static LocalApic Attach(GuestHarness g)
    {
        var apic = new LocalApic(0, bsp: true, new ManualClock(), new ApicBus(), null);
        apic.InterruptRequested = g.Vcpu.NotifyInterruptRequest;
        g.Vcpu.LocalApic = apic;
        g.Vcpu.Interrupts = apic;
        g.InstallReportingIdt(0x1000, 0x2000, 0x20000, 80, ReportPort);
        return apic;
    }

    [Test]
    public void SelfIpiThroughMmio_IsDeliveredAndInService()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(ecx, 0x1B);
            a.rdmsr();
            a.mov(esi, eax);
            a.mov(edi, 0xFEE00000);
            a.mov(ebx, __dword_ptr[rdi + 0x30]); // version
            a.mov(__dword_ptr[rdi + 0xF0], 0x1FF); // SVR: software enable
            a.mov(__dword_ptr[rdi + 0x300], 0x40045); // ICR: fixed, self, vector 0x45
            a.sti();
            a.nop();
            a.hlt();
        });
        LocalApic apic = Attach(g);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.State.Gpr[6], Is.EqualTo(0xFEE00900UL), "RDMSR IA32_APIC_BASE comes from the APIC");
            Assert.That(g.State.Gpr[3], Is.EqualTo(0x50014UL), "version read through the APIC page");
            Assert.That(g.Io.PortWrites.Single().Value, Is.EqualTo(0x45UL));
            Assert.That(apic.Read(LocalApic.RegIsr + 0x20, 4), Is.EqualTo(1UL << 5), "0x45 in service");
        });
    }

    [Test]
    public void Cr8_IsTprHighNibble_AndApicBaseRelocates()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(eax, 9);
            a.mov(cr8, rax);
            a.mov(edi, 0xFEE00000);
            a.mov(ebx, __dword_ptr[rdi + 0x80]);
            a.mov(ecx, 0x1B);
            a.mov(eax, 0xFEC80800);
            a.xor(edx, edx);
            a.wrmsr();
            a.mov(edi, 0xFEC80000);
            a.mov(esi, __dword_ptr[rdi + 0x80]);
            a.hlt();
        });
        LocalApic apic = Attach(g);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.State.Gpr[3], Is.EqualTo(0x90UL));
            Assert.That(g.State.Gpr[6], Is.EqualTo(0x90UL), "the page moved with IA32_APIC_BASE");
            Assert.That(apic.BaseMsr, Is.EqualTo(0xFEC80900UL), "BSP bit kept");
        });
    }
}
