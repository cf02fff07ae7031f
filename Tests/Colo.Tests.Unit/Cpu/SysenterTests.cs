using Colo.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>SYSENTER/SYSEXIT in long mode.</summary>
[TestFixture]
public sealed class SysenterTests
{
    private const ulong Target = 0x40000;

    [Test]
    public void Sysenter_LoadsRing0FlatSegmentsAndMsrTargets()
    {
        using var g = new GuestHarness();
        g.Memory.Write(Target, [0xF4]);
        g.Load64(a =>
        {
            a.sti();
            a.sysenter();
        });
        g.State.SysenterCs = 0x10;
        g.State.SysenterEsp = 0x8_0000;
        g.State.SysenterEip = Target;
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.State.Rip, Is.EqualTo(Target + 1));
            Assert.That(g.State.Gpr[4], Is.EqualTo(0x8_0000UL));
            Assert.That(g.State.Segments[(int)SegmentIndex.Cs].Selector, Is.EqualTo((ushort)0x10));
            Assert.That(g.State.Segments[(int)SegmentIndex.Cs].Attributes & SegmentRegister.L, Is.Not.Zero, "64-bit CS in IA-32e mode");
            Assert.That(g.State.Segments[(int)SegmentIndex.Ss].Selector, Is.EqualTo((ushort)0x18));
            Assert.That(g.State.Rflags & X86CpuState.FlagIf, Is.Zero, "IF cleared");
        });
    }

    [Test]
    public void Sysexitq_ReturnsToRing3AtRdxWithRcxStack()
    {
        using var g = new GuestHarness();
        g.Memory.Write(Target, [0xEB, 0xFE]);
        g.Load64(a =>
        {
            a.mov(edx, (int)Target);
            a.mov(ecx, 0x7_0000);
            a.sysexitq();
        });
        g.State.SysenterCs = 0x10;
        using var timer = new Timer(_ => g.Vcpu.Kick(), null, 100, Timeout.Infinite);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Kicked));
        Assert.Multiple(() =>
        {
            Assert.That(g.State.Rip, Is.EqualTo(Target));
            Assert.That(g.State.Gpr[4], Is.EqualTo(0x7_0000UL));
            Assert.That(g.State.Segments[(int)SegmentIndex.Cs].Selector, Is.EqualTo((ushort)0x33));
            Assert.That(g.State.Segments[(int)SegmentIndex.Ss].Selector, Is.EqualTo((ushort)0x3B));
            Assert.That(g.State.Cpl, Is.EqualTo(3));
        });
    }

    [Test]
    public void Sysenter_WithNullSysenterCs_Faults()
    {
        using var g = new GuestHarness();
        g.Load64(a => a.sysenter());
        g.State.Idtr = new DescriptorTableRegister { Base = 0, Limit = 0 };
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Shutdown), "#GP with no IDT escalates to a triple fault");
    }
}
