using Colo.Core.Time;
using Colo.Devices.Timer;
using Colo.Tests.Unit.Core.Irq;

namespace Colo.Tests.Unit.Devices.Timer;

[TestFixture]
public sealed class I8254PitTests
{
    private ManualClock _clock = null!;
    private RecordingIrqLine _irq = null!;
    private I8254Pit _pit = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new ManualClock();
        _irq = new RecordingIrqLine();
        _pit = new I8254Pit(_clock, _irq.Line);
        _irq.Clear();
    }

    /// <summary>Nanoseconds for <paramref name="ticks"/> PIT clocks, rounded up.</summary>
    private static long Ns(long ticks) => (ticks * 1_000_000_000 + I8254Pit.Frequency - 1) / I8254Pit.Frequency;

    private void Program(int channel, int mode, int count, int access = 3, bool bcd = false)
    {
        _pit.Write(I8254Pit.ControlWord, 1, (uint)((channel << 6) | (access << 4) | (mode << 1) | (bcd ? 1 : 0)));
        if (access != 2)
        {
            _pit.Write(channel, 1, (uint)(count & 0xFF));
        }
        if (access != 1)
        {
            _pit.Write(channel, 1, (uint)((count >> 8) & 0xFF));
        }
    }

    private int ReadWord(int channel) => (int)(_pit.Read(channel, 1) | (_pit.Read(channel, 1) << 8));

    [Test]
    public void Mode2_RateGenerator_OneRisingEdgePerPeriod_FromTimersAlone()
    {
        Program(0, 2, 1193); // ~1 kHz, the rate Linux and SeaBIOS-era kernels use
        _irq.Clear();
        _clock.Advance(10 * Ns(1193) + 1);
        Assert.That(_irq.RisingEdges, Is.EqualTo(10));
        Assert.That(_irq.Level, Is.True);
    }

    [Test]
    public void Mode0_OneShot_OutRisesAtTerminalCountOnce()
    {
        Program(0, 0, 100);
        Assert.That(_irq.Level, Is.False);
        _clock.AdvanceTo(Ns(99));
        Assert.That(_irq.Level, Is.False);
        _clock.AdvanceTo(Ns(100));
        Assert.That(_irq.Level, Is.True);
        _clock.Advance(1_000_000_000);
        Assert.That(_irq.Changes, Is.EqualTo(new[] { false, true }), "low on programming, high at terminal count");
        Assert.That(_clock.NextDeadlineNs, Is.EqualTo(long.MaxValue), "no timer left armed");
    }

    [Test]
    public void Mode3_SquareWave_HighThenLowHalves()
    {
        Program(0, 3, 1000);
        _clock.AdvanceTo(Ns(499));
        Assert.That(_pit.GetOut(0), Is.True);
        _clock.AdvanceTo(Ns(500));
        Assert.That(_pit.GetOut(0), Is.False);
        _clock.AdvanceTo(Ns(1000));
        Assert.That(_pit.GetOut(0), Is.True);
        Assert.That(_irq.RisingEdges, Is.EqualTo(1));
    }

    [Test]
    public void CounterLatch_FreezesValueUntilBothBytesRead()
    {
        Program(0, 2, 0x1000);
        _clock.AdvanceTo(Ns(0x10));
        _pit.Write(I8254Pit.ControlWord, 1, 0x00); // latch channel 0
        _clock.AdvanceTo(Ns(0x100));
        Assert.That(ReadWord(0), Is.EqualTo(0x1000 - 0x10));
        Assert.That(ReadWord(0), Is.EqualTo(0x1000 - 0x100), "live again after the latch is read");
    }

    [Test]
    public void LobyteOnly_And_HibyteOnly_Access()
    {
        Program(1, 2, 0x50, access: 1);
        Assert.That(_pit.Read(1, 1), Is.EqualTo(0x50));
        Assert.That(_pit.Read(1, 1), Is.EqualTo(0x50));
        Program(1, 2, 0x3400, access: 2);
        Assert.That(_pit.Read(1, 1), Is.EqualTo(0x34));
    }

    [Test]
    public void ReadBack_LatchesStatusAndCount()
    {
        Program(2, 4, 500);
        _clock.AdvanceTo(Ns(20));
        _pit.Write(I8254Pit.ControlWord, 1, 0xC8); // read-back, count and status, channel 2
        // Status first: OUT high (mode 4 before terminal count), RW=3, mode 4, binary.
        Assert.That(_pit.Read(2, 1), Is.EqualTo(0x80 | 0x30 | (4 << 1)));
        Assert.That(ReadWord(2), Is.EqualTo(480));
    }

    [Test]
    public void Bcd_CountsAndReadsInDecimal()
    {
        Program(1, 2, 0x1000, bcd: true); // 1000 decimal
        _clock.AdvanceTo(Ns(1));
        Assert.That(ReadWord(1), Is.EqualTo(0x0999));
        _pit.Write(I8254Pit.ControlWord, 1, 0xE4); // read-back status only, channel 1
        Assert.That(_pit.Read(1, 1) & 1, Is.EqualTo(1));
    }

    [Test]
    public void Port61_Gate2StartsChannel2_Out2Visible()
    {
        _pit.WritePort61(0);
        Program(2, 0, 1000);
        Assert.That(_pit.ReadPort61() & I8254Pit.Port61Out2, Is.Zero);
        _pit.WritePort61(I8254Pit.Port61Gate2 | I8254Pit.Port61SpeakerData);
        Assert.That(_pit.ReadPort61() & 3, Is.EqualTo(3));
        _clock.Advance(Ns(1000));
        Assert.That(_pit.ReadPort61() & I8254Pit.Port61Out2, Is.EqualTo(I8254Pit.Port61Out2));
    }

    [Test]
    public void Port61_RefreshBitToggles()
    {
        byte a = (byte)(_pit.ReadPort61() & I8254Pit.Port61RefreshToggle);
        _clock.Advance(15_085);
        byte b = (byte)(_pit.ReadPort61() & I8254Pit.Port61RefreshToggle);
        Assert.That(a, Is.Not.EqualTo(b));
    }

    [Test]
    public void Gate2_RisingEdge_RetriggersMode1()
    {
        _pit.WritePort61(0);
        Program(2, 1, 100);
        _clock.Advance(Ns(200));
        Assert.That(_pit.GetOut(2), Is.True);
        _pit.WritePort61(I8254Pit.Port61Gate2);
        Assert.That(_pit.GetOut(2), Is.False);
        _clock.Advance(Ns(100));
        Assert.That(_pit.GetOut(2), Is.True);
    }

    [Test]
    public void SaveRestore_RoundTrips_ReRaisesIrqAndRearmsTimer()
    {
        Program(0, 2, 1000);
        _clock.Advance(Ns(1000) + 5);
        Program(1, 3, 0x1234);
        _pit.Write(I8254Pit.ControlWord, 1, 0x40); // latch channel 1, leave it unread
        I8254PitState saved = _pit.Save();

        var irq2 = new RecordingIrqLine();
        var pit2 = new I8254Pit(_clock, irq2.Line);
        pit2.Restore(saved);
        Assert.That(pit2.Save(), Is.EqualTo(saved));
        Assert.That(irq2.Level, Is.EqualTo(_irq.Level));
        Assert.That(irq2.Level, Is.True);
        irq2.Clear();
        _clock.Advance(3 * Ns(1000));
        Assert.That(irq2.RisingEdges, Is.EqualTo(3));
    }

    [Test]
    public void Reset_ReturnsToPowerOnModes()
    {
        Program(0, 0, 5);
        _pit.Reset();
        _pit.Write(I8254Pit.ControlWord, 1, 0xE2); // read-back status channel 0
        Assert.That(_pit.Read(0, 1) & 0x3F, Is.EqualTo(0x30 | (3 << 1)));
    }

    [Test]
    public void RandomAccess_EveryOffset_NeverThrows()
    {
        var rng = new Random(8254);
        for (int i = 0; i < 100_000; i++)
        {
            int offset = rng.Next(-2, I8254Pit.RegionSize + 2);
            if (rng.Next(2) == 0)
            {
                _pit.Read(offset, 1);
            }
            else
            {
                _pit.Write(offset, 1, (uint)rng.Next());
            }
            if (rng.Next(8) == 0)
            {
                _pit.WritePort61((byte)rng.Next());
                _pit.ReadPort61();
            }
            if (rng.Next(4) == 0)
            {
                _clock.Advance(rng.Next(0, 200_000));
            }
        }
        I8254PitState s = _pit.Save();
        var pit2 = new I8254Pit(_clock, new RecordingIrqLine().Line);
        pit2.Restore(s);
        Assert.That(pit2.Save(), Is.EqualTo(s));
    }

    /// <summary>A clock whose timers fire late, as a host timer thread does: now is past the deadline.</summary>
    private sealed class LateClock : Colo.Core.Time.TimerClock
    {
        public long Now;

        public override long NowNs => Now;

        public void RunTo(long ns)
        {
            Now = ns;
            RunDueTimers(ns);
        }

        protected override void SetNow(long ns)
        {
        }
    }

    [Test]
    public void Mode2_TimerFiringLate_StillGivesOneRisingEdgePerPeriod()
    {
        var clock = new LateClock();
        var irq = new RecordingIrqLine();
        var pit = new I8254Pit(clock, irq.Line);
        pit.Write(3, 1, 0x34); // channel 0, lobyte/hibyte, mode 2
        pit.Write(0, 1, 0xA9);
        pit.Write(0, 1, 0x04); // 1193 ticks ≈ 1 ms
        int before = irq.RisingEdges;
        // Wake 50 µs after each period ends: the one-tick low pulse (838 ns) is long over.
        for (int period = 1; period <= 10; period++)
        {
            clock.RunTo((period * 1_000_000L) + 50_000);
        }
        Assert.That(irq.RisingEdges - before, Is.EqualTo(10));
    }
}
