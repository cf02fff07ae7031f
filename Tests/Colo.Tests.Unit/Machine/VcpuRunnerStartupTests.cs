using Colo.Core.Cpu;
using Colo.Machine.Runtime;
using Colo.Tests.Unit.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Machine;

/// <summary>An application processor's runner: parked in wait-for-SIPI, started by INIT then SIPI at vector:0.</summary>
[TestFixture]
public sealed class VcpuRunnerStartupTests
{
    [Test]
    public void InitThenStartup_RunsRealModeCodeAtVectorTimes4K()
    {
        using var g = new GuestHarness();
        g.Memory.Write(0x9F000, GuestHarness.Assemble(16, 0x9F000, a =>
        {
            a.mov(al, 0x5A);
            a.@out(0xF4, al);
            a.hlt();
        }));
        using var runner = new VcpuRunner(g.Vcpu, "test AP");
        runner.WaitForStartup();
        runner.Resume();
        Thread.Sleep(50);
        Assert.That(g.Io.PortWrites, Is.Empty, "an AP waits for SIPI");
        runner.Startup(0x9F); // power-on already left it waiting for SIPI, so no INIT is needed first
        SpinWait.SpinUntil(() => g.Io.PortWrites.Count > 0, 5000);
        Assert.That(g.Io.PortWrites.Single().Value, Is.EqualTo(0x5AUL));
        runner.Pause();
        Assert.That(g.State.Segments[(int)SegmentIndex.Cs].Selector, Is.EqualTo((ushort)0x9F00));

        // INIT puts it back in wait-for-SIPI; a second SIPI runs the code again.
        runner.Resume();
        runner.Init();
        runner.Startup(0x9F);
        SpinWait.SpinUntil(() => g.Io.PortWrites.Count > 1, 5000);
        Assert.That(g.Io.PortWrites, Has.Count.EqualTo(2));
        runner.Pause();
    }
}
