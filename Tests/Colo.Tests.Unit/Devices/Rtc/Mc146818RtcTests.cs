using Colo.Core.Time;
using Colo.Devices.Rtc;
using Colo.Tests.Unit.Core.Irq;

namespace Colo.Tests.Unit.Devices.Rtc;

[TestFixture]
public sealed class Mc146818RtcTests
{
    private static readonly DateTimeOffset Base = new(2026, 11, 25, 13, 59, 58, TimeSpan.Zero); // a Wednesday

    private ManualClock _clock = null!;
    private RecordingIrqLine _irq = null!;
    private Mc146818Rtc _rtc = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new ManualClock();
        _irq = new RecordingIrqLine();
        _rtc = new Mc146818Rtc(_clock, _irq.Line, () => Base);
    }

    private byte ReadReg(int index)
    {
        _rtc.Write(Mc146818Rtc.IndexPort, 1, (uint)index);
        return (byte)_rtc.Read(Mc146818Rtc.DataPort, 1);
    }

    private void WriteReg(int index, byte value)
    {
        _rtc.Write(Mc146818Rtc.IndexPort, 1, (uint)index);
        _rtc.Write(Mc146818Rtc.DataPort, 1, value);
    }

    [Test]
    public void PowerOn_TimeFromHostClock_InBcd24h()
    {
        Assert.That(ReadReg(Mc146818Rtc.RegSeconds), Is.EqualTo(0x58));
        Assert.That(ReadReg(Mc146818Rtc.RegMinutes), Is.EqualTo(0x59));
        Assert.That(ReadReg(Mc146818Rtc.RegHours), Is.EqualTo(0x13));
        Assert.That(ReadReg(Mc146818Rtc.RegDayOfWeek), Is.EqualTo(4));
        Assert.That(ReadReg(Mc146818Rtc.RegDayOfMonth), Is.EqualTo(0x25));
        Assert.That(ReadReg(Mc146818Rtc.RegMonth), Is.EqualTo(0x11));
        Assert.That(ReadReg(Mc146818Rtc.RegYear), Is.EqualTo(0x26));
        Assert.That(ReadReg(Mc146818Rtc.RegCentury), Is.EqualTo(0x20));
        Assert.That(ReadReg(Mc146818Rtc.RegD), Is.EqualTo(Mc146818Rtc.RegDVrt));
    }

    [Test]
    public void Time_AdvancesWithVirtualClockOnly()
    {
        _clock.Advance(3_000_000_000);
        Assert.That(ReadReg(Mc146818Rtc.RegSeconds), Is.EqualTo(0x01));
        Assert.That(ReadReg(Mc146818Rtc.RegMinutes), Is.EqualTo(0x00));
        Assert.That(ReadReg(Mc146818Rtc.RegHours), Is.EqualTo(0x14));
    }

    [Test]
    public void BinaryAnd12Hour_Formats()
    {
        WriteReg(Mc146818Rtc.RegB, Mc146818Rtc.RegBDm);
        Assert.That(ReadReg(Mc146818Rtc.RegHours), Is.EqualTo(0x80 | 1), "1 PM in binary 12-hour");
        Assert.That(ReadReg(Mc146818Rtc.RegSeconds), Is.EqualTo(58));
        WriteReg(Mc146818Rtc.RegB, 0);
        Assert.That(ReadReg(Mc146818Rtc.RegHours), Is.EqualTo(0x81), "1 PM in BCD 12-hour");
    }

    [Test]
    public void SetBit_FreezesThenGuestTimeTakesEffect()
    {
        WriteReg(Mc146818Rtc.RegB, Mc146818Rtc.RegBSet | Mc146818Rtc.RegB24h);
        WriteReg(Mc146818Rtc.RegHours, 0x08);
        WriteReg(Mc146818Rtc.RegMinutes, 0x30);
        WriteReg(Mc146818Rtc.RegSeconds, 0x00);
        _clock.Advance(5_000_000_000);
        Assert.That(ReadReg(Mc146818Rtc.RegSeconds), Is.Zero, "frozen while SET");
        WriteReg(Mc146818Rtc.RegB, Mc146818Rtc.RegB24h);
        _clock.Advance(2_000_000_000);
        Assert.That(ReadReg(Mc146818Rtc.RegSeconds), Is.EqualTo(0x02));
        Assert.That(ReadReg(Mc146818Rtc.RegHours), Is.EqualTo(0x08));
    }

    [Test]
    public void UpdateInProgress_SetJustBeforeTheSecondTicks()
    {
        Assert.That(ReadReg(Mc146818Rtc.RegA) & Mc146818Rtc.RegAUip, Is.Zero);
        _clock.AdvanceTo(1_000_000_000 - 100_000);
        Assert.That(ReadReg(Mc146818Rtc.RegA) & Mc146818Rtc.RegAUip, Is.EqualTo(Mc146818Rtc.RegAUip));
        _clock.AdvanceTo(1_000_000_000);
        Assert.That(ReadReg(Mc146818Rtc.RegA) & Mc146818Rtc.RegAUip, Is.Zero);
    }

    [Test]
    public void UpdateEndedInterrupt_RaisesIrq8_RegCReadClears()
    {
        WriteReg(Mc146818Rtc.RegB, Mc146818Rtc.RegB24h | Mc146818Rtc.RegBUie);
        _clock.Advance(1_000_000_000);
        Assert.That(_irq.Level, Is.True);
        byte c = ReadReg(Mc146818Rtc.RegC);
        Assert.That(c & (Mc146818Rtc.RegCIrqf | Mc146818Rtc.RegCUf), Is.EqualTo(Mc146818Rtc.RegCIrqf | Mc146818Rtc.RegCUf));
        Assert.That(_irq.Level, Is.False);
        Assert.That(ReadReg(Mc146818Rtc.RegC), Is.Zero);
    }

    [Test]
    public void AlarmInterrupt_FiresAtMatchingTime_DontCareBytes()
    {
        WriteReg(Mc146818Rtc.RegSecondsAlarm, 0x00);
        WriteReg(Mc146818Rtc.RegMinutesAlarm, 0xC0);
        WriteReg(Mc146818Rtc.RegHoursAlarm, 0xFF);
        WriteReg(Mc146818Rtc.RegB, Mc146818Rtc.RegB24h | Mc146818Rtc.RegBAie);
        _clock.Advance(1_000_000_000);
        Assert.That(_irq.Level, Is.False, "13:59:59 is not :00");
        _clock.Advance(1_000_000_000);
        Assert.That(_irq.Level, Is.True);
        Assert.That(ReadReg(Mc146818Rtc.RegC) & Mc146818Rtc.RegCAf, Is.EqualTo(Mc146818Rtc.RegCAf));
    }

    [TestCase(0x26, 976_562)] // 1024 Hz, the PC default
    [TestCase(0x23, 122_070)] // 8192 Hz
    [TestCase(0x21, 3_906_250)] // rate 1 repeats rate 8
    [TestCase(0x2F, 500_000_000)] // 2 Hz
    public void PeriodicRate_FromRegisterA(int regA, long periodNs)
    {
        WriteReg(Mc146818Rtc.RegA, (byte)regA);
        Assert.That(_rtc.PeriodicPeriodNs(), Is.EqualTo(periodNs));
    }

    [Test]
    public void PeriodicInterrupt_OneRisingEdgePerPeriodAfterRegCRead()
    {
        WriteReg(Mc146818Rtc.RegA, 0x2F); // 2 Hz
        WriteReg(Mc146818Rtc.RegB, Mc146818Rtc.RegB24h | Mc146818Rtc.RegBPie);
        int edges = 0;
        for (int i = 0; i < 4; i++)
        {
            _clock.Advance(500_000_000);
            if (_irq.Level)
            {
                edges++;
                Assert.That(ReadReg(Mc146818Rtc.RegC) & Mc146818Rtc.RegCPf, Is.EqualTo(Mc146818Rtc.RegCPf));
            }
        }
        Assert.That(edges, Is.EqualTo(4));
    }

    [Test]
    public void PeriodicFlag_SetsWithoutPie_NoIrq()
    {
        _clock.Advance(2_000_000);
        Assert.That(ReadReg(Mc146818Rtc.RegC), Is.EqualTo(Mc146818Rtc.RegCPf));
        Assert.That(_irq.Changes, Is.Empty);
    }

    [Test]
    public void Nvram_BoardFilledBytesReadable_GuestWritable()
    {
        _rtc.SetCmos(0x34, 0x00);
        _rtc.SetCmos(0x35, 0x3F); // memory above 16 MiB in 64 KiB units, as SeaBIOS reads it
        Assert.That(ReadReg(0x35), Is.EqualTo(0x3F));
        WriteReg(0x7F, 0xA5);
        Assert.That(_rtc.GetCmos(0x7F), Is.EqualTo(0xA5));
        _rtc.Write(Mc146818Rtc.IndexPort, 1, 0x80 | 0x10);
        Assert.That(_rtc.NmiDisabled, Is.True);
    }

    [Test]
    public void SaveRestore_RoundTrips_ReRaisesIrq8()
    {
        WriteReg(Mc146818Rtc.RegB, Mc146818Rtc.RegB24h | Mc146818Rtc.RegBUie);
        _rtc.SetCmos(0x40, 7);
        _clock.Advance(1_500_000_000);
        Mc146818RtcState saved = _rtc.Save();
        var irq2 = new RecordingIrqLine();
        var rtc2 = new Mc146818Rtc(_clock, irq2.Line, () => DateTimeOffset.UnixEpoch);
        rtc2.Restore(saved);
        Assert.That(rtc2.Save(), Is.EqualTo(saved));
        Assert.That(irq2.Level, Is.True);
        rtc2.Write(Mc146818Rtc.IndexPort, 1, Mc146818Rtc.RegSeconds);
        Assert.That(rtc2.Read(Mc146818Rtc.DataPort, 1), Is.EqualTo(0x59));
    }

    [Test]
    public void Reset_ClearsInterruptEnablesAndFlags_KeepsNvram()
    {
        _rtc.SetCmos(0x50, 9);
        WriteReg(Mc146818Rtc.RegB, Mc146818Rtc.RegB24h | Mc146818Rtc.RegBUie);
        _clock.Advance(1_000_000_000);
        _rtc.Reset();
        Assert.That(_irq.Level, Is.False);
        Assert.That(ReadReg(Mc146818Rtc.RegB) & Mc146818Rtc.RegBUie, Is.Zero);
        Assert.That(_rtc.GetCmos(0x50), Is.EqualTo(9));
    }

    [Test]
    public void RandomAccess_EveryOffset_NeverThrows()
    {
        var rng = new Random(146818);
        for (int i = 0; i < 100_000; i++)
        {
            int offset = rng.Next(-1, Mc146818Rtc.RegionSize + 2);
            if (rng.Next(2) == 0)
            {
                _rtc.Read(offset, 1);
            }
            else
            {
                _rtc.Write(offset, 1, (uint)rng.Next());
            }
            if (rng.Next(8) == 0)
            {
                _clock.Advance(rng.Next(0, 300_000_000));
            }
        }
        Mc146818RtcState s = _rtc.Save();
        var rtc2 = new Mc146818Rtc(_clock, new RecordingIrqLine().Line, () => Base);
        rtc2.Restore(s);
        Assert.That(rtc2.Save(), Is.EqualTo(s));
    }
}
