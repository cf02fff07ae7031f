using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

[TestFixture]
public sealed class InterpreterTests
{
    [Test]
    public void Div_InRange_Divides()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(eax, 0x59);
            a.mov(ebx, 0x33);
            a.div(bl);
            a.hlt();
        });
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.State.Gpr[0], Is.EqualTo((ulong)((0x59 % 0x33) << 8 | 1)));
    }
}
