using Colo.Core.Cpu;
using Colo.Core.Irq;
using Colo.Core.Time;
using Colo.Devices.Interrupt;

namespace Colo.Tests.Unit.Devices.Interrupt;

[TestFixture]
public sealed class LocalApicTests
{
    private ManualClock _clock = null!;
    private ApicBus _bus = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new ManualClock();
        _bus = new ApicBus();
    }

    private LocalApic Create(byte id = 0, bool bsp = true, IInterruptSource? pic = null) => new(id, bsp, _clock, _bus, pic);

    private static uint Reg(LocalApic apic, int reg) => (uint)apic.Read((uint)reg, 4);

    /// <summary>Takes the interrupt the APIC must have pending and ends it; returns its vector.</summary>
    private static byte AcknowledgeAndEoi(LocalApic apic, string because)
    {
        Assert.That(apic.TryAcknowledge(out byte vector), Is.True, because);
        Set(apic, LocalApic.RegEoi, 0);
        return vector;
    }

    /// <summary>Programs the timer as a guest does: divide configuration, LVT timer entry, then the initial count.</summary>
    private static void StartTimer(LocalApic apic, uint divide, uint lvt, uint count)
    {
        Set(apic, LocalApic.RegDivide, divide);
        Set(apic, LocalApic.RegLvtTimer, lvt);
        Set(apic, LocalApic.RegInitialCount, count);
    }

    private static void Set(LocalApic apic, int reg, uint value) => apic.Write((uint)reg, 4, value);

    private static void Enable(LocalApic apic) => Set(apic, LocalApic.RegSvr, LocalApic.SvrEnable | 0xFF);

    [Test]
    public void PowerOn_Registers()
    {
        LocalApic bsp = Create();
        LocalApic ap = Create(1, bsp: false);
        Assert.Multiple(() =>
        {
            Assert.That(Reg(bsp, LocalApic.RegVersion), Is.EqualTo(0x50014u));
            Assert.That(Reg(ap, LocalApic.RegId), Is.EqualTo(0x01000000u));
            Assert.That(bsp.BaseMsr, Is.EqualTo(0xFEE00900ul));
            Assert.That(ap.BaseMsr, Is.EqualTo(0xFEE00800ul));
            Assert.That(bsp.MmioBase, Is.EqualTo(0xFEE00000ul));
            Assert.That(Reg(bsp, LocalApic.RegSvr), Is.EqualTo(0xFFu));
            Assert.That(Reg(bsp, LocalApic.RegDfr), Is.EqualTo(0xFFFFFFFFu));
            Assert.That(Reg(bsp, LocalApic.RegLvtLint0), Is.EqualTo(0x700u), "BSP LINT0 is ExtINT");
            Assert.That(Reg(ap, LocalApic.RegLvtLint0), Is.EqualTo(LocalApic.LvtMasked));
            Assert.That(Reg(bsp, LocalApic.RegLvtTimer), Is.EqualTo(LocalApic.LvtMasked));
        });
    }

    [Test]
    public void BaseMsr_RelocatesAndDisables_BspBitReadOnly()
    {
        LocalApic apic = Create();
        apic.WriteBaseMsr(0xFED00800);
        Assert.That(apic.BaseMsr, Is.EqualTo(0xFED00900ul));
        Assert.That(apic.MmioBase, Is.EqualTo(0xFED00000ul));
        Enable(apic);
        apic.WriteBaseMsr(0xFED00000);
        Assert.That(apic.MmioBase, Is.EqualTo(ulong.MaxValue));
        Assert.That(Reg(apic, LocalApic.RegSvr) & LocalApic.SvrEnable, Is.Zero, "hardware disable resets the APIC");
    }

    [Test]
    public void FixedInterrupts_PriorityTprAndEoi()
    {
        LocalApic apic = Create();
        int notified = 0;
        apic.InterruptRequested = () => notified++;
        Enable(apic);
        apic.Accept(LocalApic.ModeFixed, 0x31, level: false);
        apic.Accept(LocalApic.ModeFixed, 0x52, level: false);
        Assert.That(notified, Is.GreaterThanOrEqualTo(2));
        Assert.That(Reg(apic, LocalApic.RegIrr + 0x10), Is.EqualTo(1u << 17), "IRR bits 32-63");

        Set(apic, LocalApic.RegTpr, 0x60);
        Assert.That(apic.TryAcknowledge(out _), Is.False, "TPR class 6 blocks 0x52 and 0x31");
        Set(apic, LocalApic.RegTpr, 0x40);
        Assert.That(apic.TryAcknowledge(out byte v), Is.True);
        Assert.That(v, Is.EqualTo(0x52));
        Assert.That(Reg(apic, LocalApic.RegIsr + 0x20), Is.EqualTo(1u << 18));
        Assert.That(Reg(apic, LocalApic.RegPpr), Is.EqualTo(0x50u));
        Assert.That(apic.TryAcknowledge(out _), Is.False, "0x31 is below the in-service class");
        Set(apic, LocalApic.RegEoi, 0);
        Assert.That(Reg(apic, LocalApic.RegPpr), Is.EqualTo(0x40u));
        Set(apic, LocalApic.RegTpr, 0);
        Assert.That(apic.TryAcknowledge(out v), Is.True);
        Assert.That(v, Is.EqualTo(0x31));
    }

    [Test]
    public void SoftwareDisabled_HoldsFixedInterrupts()
    {
        LocalApic apic = Create();
        apic.Accept(LocalApic.ModeFixed, 0x40, level: false);
        Assert.That(apic.TryAcknowledge(out _), Is.False);
        Enable(apic);
        Assert.That(apic.TryAcknowledge(out byte v), Is.True);
        Assert.That(v, Is.EqualTo(0x40));
    }

    [Test]
    public void LevelVectorEoi_IsBroadcastToIoApic()
    {
        var ioapic = new IoApic();
        ioapic.Deliver = _bus.Deliver;
        LocalApic apic = Create();
        apic.EoiBroadcast = ioapic.Eoi;
        Enable(apic);
        // Pin 9: level, active high, vector 0x49, physical destination 0.
        ioapic.Write(IoApic.RegSelect, 4, IoApic.IndexRedirection + 18 + 1);
        ioapic.Write(IoApic.RegWindow, 4, 0);
        ioapic.Write(IoApic.RegSelect, 4, IoApic.IndexRedirection + 18);
        ioapic.Write(IoApic.RegWindow, 4, (uint)IoApic.RteLevel | 0x49);
        ioapic.SetIrq(9, true);
        Assert.That(apic.TryAcknowledge(out byte v), Is.True);
        Assert.That(v, Is.EqualTo(0x49));
        Assert.That(Reg(apic, LocalApic.RegTmr + 0x20) & (1u << 9), Is.Not.Zero);
        Assert.That(ioapic.GetRedirection(9) & IoApic.RteRemoteIrr, Is.Not.Zero);
        ioapic.SetIrq(9, false);
        Set(apic, LocalApic.RegEoi, 0);
        Assert.That(ioapic.GetRedirection(9) & IoApic.RteRemoteIrr, Is.Zero, "EOI broadcast clears remote IRR");
    }

    [Test]
    public void ExtInt_PicThroughLint0_AndMaskedLint0Blocks()
    {
        var intr = new IrqLine();
        var pic = new I8259Pic(intr);
        LocalApic apic = Create(pic: pic);
        int notified = 0;
        apic.InterruptRequested = () => notified++;
        intr.Connect(apic.SetPicInterrupt);
        // ICW1-4: vector base 0x08 for the master, 0x70 for the slave.
        pic.Write(I8259Pic.MasterCommand, 1, 0x11);
        pic.Write(I8259Pic.MasterData, 1, 0x08);
        pic.Write(I8259Pic.MasterData, 1, 0x04);
        pic.Write(I8259Pic.MasterData, 1, 0x01);
        pic.Write(I8259Pic.MasterData, 1, 0x00);
        pic.Inputs[1].Raise();
        Assert.That(notified, Is.EqualTo(1), "the APIC passes INTR on while LINT0 is ExtINT");
        Assert.That(apic.TryAcknowledge(out byte v), Is.True);
        Assert.That(v, Is.EqualTo(0x09));

        Enable(apic);
        Set(apic, LocalApic.RegLvtLint0, LocalApic.LvtMasked | 0x700);
        pic.Write(I8259Pic.MasterCommand, 1, 0x20);
        pic.Inputs[1].Lower();
        pic.Inputs[1].Raise();
        Assert.That(apic.TryAcknowledge(out _), Is.False, "masked LINT0 blocks the PIC");
        apic.WriteBaseMsr(0);
        Assert.That(apic.TryAcknowledge(out v), Is.True, "a hardware-disabled APIC passes the PIC straight through");
        Assert.That(v, Is.EqualTo(0x09));
    }

    [Test]
    public void Timer_OneShotWithDivide()
    {
        LocalApic apic = Create();
        Enable(apic);
        StartTimer(apic, divide: 0x3, lvt: 0x40, count: 100); // divide by 16
        _clock.Advance(16 * 50);
        Assert.That(Reg(apic, LocalApic.RegCurrentCount), Is.EqualTo(50u));
        Assert.That(apic.TryAcknowledge(out _), Is.False);
        _clock.Advance(16 * 51);
        Assert.That(Reg(apic, LocalApic.RegCurrentCount), Is.Zero);
        Assert.That(apic.TryAcknowledge(out byte v), Is.True);
        Assert.That(v, Is.EqualTo(0x40));
        Set(apic, LocalApic.RegEoi, 0);
        _clock.Advance(16 * 1000);
        Assert.That(apic.TryAcknowledge(out _), Is.False, "one-shot fires once");
    }

    /// <summary>A clock whose time moves without its timers firing: a timer thread that is late (a loaded host).</summary>
    private sealed class LateClock : TimerClock
    {
        public long Now { get; set; }

        /// <summary>Time that passes with every read (a thread pre-empted between two reads).</summary>
        public long StepPerRead { get; init; }

        public override long NowNs => Now += StepPerRead;

        public int RunDue() => RunDueTimers(Now);

        protected override void SetNow(long ns)
        {
        }
    }

    [TestCase(LocalApic.RegLvtTimer, 0x40u)]
    [TestCase(LocalApic.RegDivide, 0xBu)]
    public void Timer_OneShotExpiredBeforeTheTimerThreadRan_StillFires_WhenTheGuestRewritesTimerRegisters(int reg, uint value)
    {
        // Linux rewrites LVTT/TDCR on clock-event state changes. A one-shot that expired while the timer thread was
        // late must still interrupt, not be cancelled as already over: that lost the guest's only timer.
        var clock = new LateClock();
        var apic = new LocalApic(0, true, clock, _bus, null);
        Enable(apic);
        StartTimer(apic, divide: 0xB, lvt: 0x40, count: 100); // divide by 1
        clock.Now = 1_000;
        Set(apic, reg, value);
        clock.RunDue();
        Assert.That(apic.TryAcknowledge(out byte v), Is.True, "the expired one-shot interrupted");
        Assert.That(v, Is.EqualTo(0x40));
        Set(apic, LocalApic.RegEoi, 0);
        clock.Now = 100_000;
        clock.RunDue();
        Assert.That(apic.TryAcknowledge(out _), Is.False, "and only once");
    }

    [Test]
    public void Timer_OneShotWhoseCountRunsOutBeforeItIsArmed_FiresOnce()
    {
        // The TMICT write reads the clock to load the count and again to arm: a vCPU pre-empted in between for
        // longer than a short count found it expired and took it as delivered, and an idle guest slept for good.
        var clock = new LateClock { StepPerRead = 1_000 };
        var apic = new LocalApic(0, true, clock, _bus, null);
        Enable(apic);
        StartTimer(apic, divide: 0xB, lvt: 0x40, count: 100); // divide by 1
        Assert.That(AcknowledgeAndEoi(apic, "the one-shot interrupted"), Is.EqualTo(0x40));
        clock.RunDue();
        Assert.That(apic.TryAcknowledge(out _), Is.False, "and only once");
    }

    [Test]
    public void Timer_DivideChangedWhileCounting_KeepsTheCountAndChangesTheRate()
    {
        LocalApic apic = Create();
        Enable(apic);
        StartTimer(apic, divide: 0xB, lvt: 0x40, count: 1000); // divide by 1
        _clock.Advance(400);
        Set(apic, LocalApic.RegDivide, 0x0); // divide by 2
        Assert.That(Reg(apic, LocalApic.RegCurrentCount), Is.EqualTo(600u), "the ticks counted so far stay counted");
        _clock.Advance(2 * 599);
        Assert.That(apic.TryAcknowledge(out _), Is.False, "the rest counts at the new rate");
        _clock.Advance(2 * 2);
        Assert.That(apic.TryAcknowledge(out byte v), Is.True);
        Assert.That(v, Is.EqualTo(0x40));
    }

    [Test]
    public void Timer_PeriodicSwitchedToOneShot_EndsWithTheCurrentPeriod()
    {
        var clock = new LateClock();
        var apic = new LocalApic(0, true, clock, _bus, null);
        Enable(apic);
        StartTimer(apic, divide: 0xB, lvt: LocalApic.LvtPeriodic | 0x40, count: 999); // period 1000 ns
        clock.Now = 2_500;
        clock.RunDue();
        while (apic.TryAcknowledge(out _))
        {
            Set(apic, LocalApic.RegEoi, 0);
        }
        Set(apic, LocalApic.RegLvtTimer, 0x40);
        Assert.That(apic.TryAcknowledge(out _), Is.False, "switching mode mid-period does not interrupt");
        Assert.That(Reg(apic, LocalApic.RegCurrentCount), Is.EqualTo(499u), "the count goes on (999 - 500)");
        clock.Now = 3_000;
        clock.RunDue();
        AcknowledgeAndEoi(apic, "the one-shot ends with the period");
        clock.Now = 10_000;
        clock.RunDue();
        Assert.That(apic.TryAcknowledge(out _), Is.False, "and does not repeat");
    }

    [Test]
    public void Timer_PeriodicFiresEachPeriod_AndMaskedDoesNotDeliver()
    {
        LocalApic apic = Create();
        Enable(apic);
        StartTimer(apic, divide: 0xB, lvt: LocalApic.LvtPeriodic | 0x41, count: 999); // divide by 1; period 1000 ns
        int fired = 0;
        for (int i = 0; i < 5; i++)
        {
            _clock.Advance(1000);
            if (apic.TryAcknowledge(out byte v))
            {
                Assert.That(v, Is.EqualTo(0x41));
                fired++;
                Set(apic, LocalApic.RegEoi, 0);
            }
        }
        Assert.That(fired, Is.EqualTo(5));
        Set(apic, LocalApic.RegLvtTimer, LocalApic.LvtMasked | LocalApic.LvtPeriodic | 0x41);
        _clock.Advance(5000);
        Assert.That(apic.TryAcknowledge(out _), Is.False);
        Assert.That(Reg(apic, LocalApic.RegCurrentCount), Is.Not.Zero, "the count keeps running while masked");
    }

    [Test]
    public void Ipi_FixedPhysicalLogicalAndShorthands()
    {
        LocalApic a = Create(0);
        LocalApic b = Create(1, bsp: false);
        Enable(a);
        Enable(b);
        Set(a, LocalApic.RegIcrHigh, 1u << 24);
        Set(a, LocalApic.RegIcrLow, 0x50);
        Assert.That(b.TryAcknowledge(out byte v), Is.True);
        Assert.That(v, Is.EqualTo(0x50));
        Assert.That(a.TryAcknowledge(out _), Is.False);

        // Logical flat: b's LDR bit 1.
        Set(b, LocalApic.RegLdr, 0x02000000);
        Set(a, LocalApic.RegIcrHigh, 0x02000000);
        Set(a, LocalApic.RegIcrLow, 0x800 | 0x60);
        Assert.That(b.TryAcknowledge(out v), Is.True);
        Assert.That(v, Is.EqualTo(0x60));

        // All including self.
        Set(a, LocalApic.RegIcrLow, (2u << 18) | 0x70);
        Assert.That(a.TryAcknowledge(out v) && v == 0x70, Is.True);
        Assert.That(b.TryAcknowledge(out v) && v == 0x70, Is.True);
        // Self (after a's EOI, so 0x71 is above its in-service class again).
        Set(a, LocalApic.RegEoi, 0);
        Set(a, LocalApic.RegIcrLow, (1u << 18) | 0x71);
        Assert.That(b.TryAcknowledge(out _), Is.False);
        Assert.That(a.TryAcknowledge(out v) && v == 0x71, Is.True);
    }

    [Test]
    public void Ipi_InitAndStartup()
    {
        LocalApic a = Create(0);
        LocalApic b = Create(1, bsp: false);
        int inits = 0;
        var startups = new List<byte>();
        b.InitReceived = () => inits++;
        b.StartupReceived = startups.Add;
        Enable(b);
        Enable(a);
        // INIT all-but-self, level de-assert (ignored), then SIPI vector 0x9F twice, as firmware does.
        Set(a, LocalApic.RegIcrLow, 0xC4500);
        Set(a, LocalApic.RegIcrLow, 0xC8500);
        Set(a, LocalApic.RegIcrLow, 0xC469F);
        Set(a, LocalApic.RegIcrLow, 0xC469F);
        Assert.That(inits, Is.EqualTo(1));
        Assert.That(startups, Is.EqualTo(new byte[] { 0x9F, 0x9F }));
        Assert.That(Reg(b, LocalApic.RegSvr) & LocalApic.SvrEnable, Is.Zero, "INIT resets the target APIC");
        Assert.That(Reg(a, LocalApic.RegSvr) & LocalApic.SvrEnable, Is.Not.Zero);
        Assert.That(Reg(a, LocalApic.RegIcrLow) & (1u << 12), Is.Zero, "delivery status idle");
    }

    [Test]
    public void SaveRestore_RoundTripAndResumesTimer()
    {
        LocalApic apic = Create();
        Enable(apic);
        Set(apic, LocalApic.RegLvtTimer, 0x42);
        Set(apic, LocalApic.RegDivide, 0xB);
        Set(apic, LocalApic.RegInitialCount, 500);
        apic.Accept(LocalApic.ModeFixed, 0x33, level: true);
        LocalApicState saved = apic.Save();
        var otherBus = new ApicBus();
        var other = new LocalApic(0, true, _clock, otherBus, null);
        other.Restore(saved);
        Assert.That(other.Save(), Is.EqualTo(saved));
        _clock.Advance(1000);
        Assert.That(other.TryAcknowledge(out byte v) && v == 0x42, Is.True, "restored timer fired");
        apic.Reset();
        Assert.That(apic.Save(), Is.EqualTo(new LocalApic(0, true, _clock, new ApicBus(), null).Save()));
    }
}
