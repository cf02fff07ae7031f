using Colo.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>INS/OUTS (with and without REP) through the I/O bus.</summary>
[TestFixture]
public sealed class StringIoTests
{
    private const ulong Buffer = 0x30000;

    [Test]
    public void RepOutsb_WritesEachByteToDxAndAdvancesRsi()
    {
        using var g = new GuestHarness();
        g.Memory.Write(Buffer, [1, 2, 3, 4, 5]);
        g.Load64(a =>
        {
            a.mov(esi, (int)Buffer);
            a.mov(ecx, 5);
            a.mov(edx, 0x3F8);
            a.rep.outsb();
            a.hlt();
        });
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.Io.PortWrites, Is.EqualTo(new[] { ((ushort)0x3F8, 1UL, 1), ((ushort)0x3F8, 2UL, 1), ((ushort)0x3F8, 3UL, 1), ((ushort)0x3F8, 4UL, 1), ((ushort)0x3F8, 5UL, 1) }));
            Assert.That(g.State.Gpr[6], Is.EqualTo(Buffer + 5));
            Assert.That(g.State.Gpr[1], Is.EqualTo(0UL));
        });
    }

    [Test]
    public void RepInsw_StoresPortWordsAtRdi()
    {
        using var g = new GuestHarness();
        g.Io.PortReadValue = 0xBEEF;
        g.Load64(a =>
        {
            a.mov(edi, (int)Buffer);
            a.mov(ecx, 3);
            a.mov(edx, 0x1F0);
            a.rep.insw();
            a.hlt();
        });
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.Io.PortReads, Is.EqualTo(new[] { ((ushort)0x1F0, 2), ((ushort)0x1F0, 2), ((ushort)0x1F0, 2) }));
            Assert.That(g.ReadU64(Buffer), Is.EqualTo(0x0000_BEEF_BEEF_BEEFUL));
            Assert.That(g.State.Gpr[7], Is.EqualTo(Buffer + 6));
        });
    }

    [Test]
    public void Outsd_WithDfSet_GoesDownward()
    {
        using var g = new GuestHarness();
        g.Memory.Write(Buffer, [0x11, 0x22, 0x33, 0x44]);
        g.Load64(a =>
        {
            a.mov(esi, (int)Buffer);
            a.mov(edx, 0x80);
            a.std();
            a.outsd();
            a.hlt();
        });
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.Io.PortWrites.Single(), Is.EqualTo(((ushort)0x80, 0x4433_2211UL, 4)));
        Assert.That(g.State.Gpr[6], Is.EqualTo(Buffer - 4));
    }
}
