using Colo.Core.Time;
using Colo.Devices.Pc;
using Colo.Tests.Unit.Core.Irq;

namespace Colo.Tests.Unit.Devices.Pc;

[TestFixture]
public sealed class Piix4PmTests
{
    private static (Piix4Pm Pm, ManualClock Clock, RecordingIrqLine Sci, List<string> Events) Build()
    {
        var clock = new ManualClock();
        var sci = new RecordingIrqLine();
        var events = new List<string>();
        var pm = new Piix4Pm(clock, sci.Line, () => events.Add("poweroff"));
        return (pm, clock, sci, events);
    }

    [Test]
    public void ConfigSpace_MatchesQemu72Defaults()
    {
        (Piix4Pm pm, _, _, _) = Build();
        // Dwords read from qemu-system-x86_64 7.2 -machine smm=off at 00:01.3 before SeaBIOS ran.
        Assert.That(pm.ReadConfigDword(0x00), Is.EqualTo(0x71138086u));
        Assert.That(pm.ReadConfigDword(0x04), Is.EqualTo(0x02800000u));
        Assert.That(pm.ReadConfigDword(0x08), Is.EqualTo(0x06800003u));
        Assert.That(pm.ReadConfigDword(0x2C), Is.EqualTo(0x11001AF4u));
        Assert.That(pm.ReadConfigDword(0x3C), Is.EqualTo(0x00000100u));
        Assert.That(pm.ReadConfigDword(0x40), Is.EqualTo(0x00000001u));
        Assert.That(pm.ReadConfigDword(0x58), Is.EqualTo(0x02000000u), "APMC_EN preset: QEMU's value without SMM");
        Assert.That(pm.ReadConfigDword(0x5C), Is.EqualTo(0x10000000u));
        Assert.That(pm.ReadConfigDword(0x60), Is.EqualTo(0x60000000u));
        Assert.That(pm.ReadConfigDword(0x90), Is.EqualTo(0x0000B101u));
        Assert.That(pm.ReadConfigDword(0xD0), Is.EqualTo(0x00090000u));
        Assert.That(pm.PmIoBase, Is.Null, "PMREGMISC disables the block at power-on");
    }

    [Test]
    public void Pmba_AndPmRegMisc_PlaceTheBlock()
    {
        (Piix4Pm pm, _, _, _) = Build();
        int changes = 0;
        pm.PmIoChanged += () => changes++;
        pm.ConfigWrite(Piix4Pm.Pmba, 4, 0x0000_B03F);
        Assert.That(pm.PmIoBase, Is.Null);
        pm.ConfigWrite(Piix4Pm.PmRegMisc, 1, 1);
        Assert.That(pm.PmIoBase, Is.EqualTo((ushort)0xB000), "bits 5:0 are not address bits");
        Assert.That(changes, Is.EqualTo(2));
    }

    [Test]
    public void TimerStatus_IsSetAfterReset_AndClearsUntilBit23Toggles()
    {
        (Piix4Pm pm, ManualClock clock, _, _) = Build();
        Assert.That(pm.PmRegion.Read(Piix4Pm.Pm1Status, 2) & Piix4Pm.TimerBit, Is.EqualTo(1UL), "as QEMU: set until first cleared");
        pm.PmRegion.Write(Piix4Pm.Pm1Status, 2, Piix4Pm.TimerBit);
        Assert.That(pm.PmRegion.Read(Piix4Pm.Pm1Status, 2) & Piix4Pm.TimerBit, Is.Zero);
        clock.Advance(2_340_000_000); // 2^23 ticks at 3.579545 MHz is 2.3435 s
        Assert.That(pm.PmRegion.Read(Piix4Pm.Pm1Status, 2) & Piix4Pm.TimerBit, Is.Zero);
        clock.Advance(10_000_000);
        Assert.That(pm.PmRegion.Read(Piix4Pm.Pm1Status, 2) & Piix4Pm.TimerBit, Is.EqualTo(1UL));
    }

    [Test]
    public void Timer_CountsAt3579545HzIn24Bits()
    {
        (Piix4Pm pm, ManualClock clock, _, _) = Build();
        clock.Advance(1_000_000_000);
        Assert.That(pm.PmRegion.Read(Piix4Pm.PmTimer, 4), Is.EqualTo(3_579_545UL));
        clock.Advance(4_000_000_000); // 5 s: 17897725 ticks wraps 24 bits once
        Assert.That(pm.PmRegion.Read(Piix4Pm.PmTimer, 4), Is.EqualTo((5UL * 3_579_545) & 0xFFFFFF));
        Assert.That(pm.PmRegion.Read(Piix4Pm.PmTimer + 2, 1), Is.EqualTo(((5UL * 3_579_545) >> 16) & 0xFF));
    }

    [Test]
    public void TimerEnable_RaisesSciOnOverflow()
    {
        (Piix4Pm pm, ManualClock clock, RecordingIrqLine sci, _) = Build();
        pm.PmRegion.Write(Piix4Pm.Pm1Status, 2, 0xFFFF);
        pm.PmRegion.Write(Piix4Pm.Pm1Enable, 2, Piix4Pm.TimerBit);
        Assert.That(sci.Level, Is.False);
        clock.Advance(2_400_000_000);
        Assert.That(sci.Level, Is.True);
        pm.PmRegion.Write(Piix4Pm.Pm1Status, 2, Piix4Pm.TimerBit);
        Assert.That(sci.Level, Is.False);
    }

    [Test]
    public void PowerButton_SetsStatusAndSciOnlyWhenEnabled()
    {
        (Piix4Pm pm, _, RecordingIrqLine sci, _) = Build();
        pm.PmRegion.Write(Piix4Pm.Pm1Status, 2, 0xFFFF);
        pm.PressPowerButton();
        Assert.That(pm.PmRegion.Read(Piix4Pm.Pm1Status, 2) & Piix4Pm.PowerButtonBit, Is.Zero, "disabled: the press is lost, as QEMU");
        pm.PmRegion.Write(Piix4Pm.Pm1Enable, 2, Piix4Pm.PowerButtonBit);
        pm.PressPowerButton();
        Assert.That(pm.PmRegion.Read(Piix4Pm.Pm1Status, 2) & Piix4Pm.PowerButtonBit, Is.EqualTo((ulong)Piix4Pm.PowerButtonBit));
        Assert.That(sci.Level, Is.True);
        pm.PmRegion.Write(Piix4Pm.Pm1Status, 2, Piix4Pm.PowerButtonBit);
        Assert.That(sci.Level, Is.False);
    }

    [Test]
    public void SleepEnable_WithS5OrS4_PowersOff_S3IsIgnored()
    {
        (Piix4Pm pm, _, _, List<string> events) = Build();
        pm.PmRegion.Write(Piix4Pm.Pm1Control, 2, (1 << Piix4Pm.SleepTypeShift) | Piix4Pm.SleepEnable);
        Assert.That(events, Is.Empty);
        Assert.That(pm.PmRegion.Read(Piix4Pm.Pm1Control, 2), Is.EqualTo((ulong)(1 << Piix4Pm.SleepTypeShift)), "SLP_EN reads 0");
        pm.PmRegion.Write(Piix4Pm.Pm1Control, 2, Piix4Pm.SleepEnable);
        Assert.That(events, Is.EqualTo(new[] { "poweroff" }));
        pm.PmRegion.Write(Piix4Pm.Pm1Control, 2, (2 << Piix4Pm.SleepTypeShift) | Piix4Pm.SleepEnable);
        Assert.That(events, Has.Count.EqualTo(2));
    }

    [Test]
    public void ControlByteWrites_KeepTheOtherByte()
    {
        (Piix4Pm pm, _, _, List<string> events) = Build();
        pm.PmRegion.Write(Piix4Pm.Pm1Control, 1, 0x01);
        pm.PmRegion.Write(Piix4Pm.Pm1Control + 1, 1, 0x20); // SLP_EN, SLP_TYP 0
        Assert.That(events, Is.EqualTo(new[] { "poweroff" }));
        Assert.That(pm.PmRegion.Read(Piix4Pm.Pm1Control, 2), Is.EqualTo(1UL));
    }

    [Test]
    public void Apm_AcpiEnableAndDisable_ToggleSciEn()
    {
        (Piix4Pm pm, _, _, _) = Build();
        pm.ApmRegion.Write(0, 1, Piix4Pm.ApmAcpiEnable);
        Assert.That(pm.PmRegion.Read(Piix4Pm.Pm1Control, 2), Is.EqualTo((ulong)Piix4Pm.SciEnable));
        Assert.That(pm.ApmRegion.Read(0, 1), Is.EqualTo((ulong)Piix4Pm.ApmAcpiEnable));
        pm.ApmRegion.Write(1, 1, 0x5A);
        Assert.That(pm.ApmRegion.Read(1, 1), Is.EqualTo(0x5AUL));
        pm.ApmRegion.Write(0, 1, Piix4Pm.ApmAcpiDisable);
        Assert.That(pm.PmRegion.Read(Piix4Pm.Pm1Control, 2), Is.Zero);
    }

    [Test]
    public void Gpe0_StatusIsWriteOneToClear_EnableRaisesSci()
    {
        (Piix4Pm pm, _, RecordingIrqLine sci, _) = Build();
        pm.GpeRegion.Write(2, 2, 0xFFFF);
        Assert.That(pm.GpeRegion.Read(0, 4), Is.EqualTo(0xFFFF0000UL));
        Assert.That(sci.Level, Is.False, "no GPE status set");
        pm.GpeRegion.Write(0, 2, 0xFFFF);
        Assert.That(pm.GpeRegion.Read(0, 2), Is.Zero);
    }

    [Test]
    public void UndecodedBlockBytes_ReadAllOnes_AndWritesAreHarmless()
    {
        (Piix4Pm pm, _, _, _) = Build();
        Assert.That(pm.PmRegion.Read(0x0C, 4), Is.EqualTo(0xFFFFFFFFUL));
        Assert.That(pm.PmRegion.Read(0x3F, 1), Is.EqualTo(0xFFUL));
        Assert.DoesNotThrow(() => pm.PmRegion.Write(0x20, 4, 0xDEADBEEF));
    }

    [Test]
    public void SaveRestore_RoundTripsAndReRaisesSci()
    {
        (Piix4Pm pm, ManualClock clock, _, _) = Build();
        pm.ProgramPmBase(0x600);
        pm.PmRegion.Write(Piix4Pm.Pm1Status, 2, 0xFFFF);
        pm.PmRegion.Write(Piix4Pm.Pm1Enable, 2, Piix4Pm.PowerButtonBit);
        pm.PressPowerButton();
        pm.GpeRegion.Write(2, 1, 0x04);
        pm.ApmRegion.Write(1, 1, 0x33);
        Piix4PmState saved = pm.Save();

        var sci = new RecordingIrqLine();
        var copy = new Piix4Pm(clock, sci.Line, () => { });
        copy.Restore(saved);
        Assert.That(copy.Save(), Is.EqualTo(saved));
        Assert.That(sci.Level, Is.True, "pending power-button SCI re-raised");
        Assert.That(copy.PmIoBase, Is.EqualTo((ushort)0x600));

        copy.Reset();
        Assert.That(copy.PmIoBase, Is.Null);
        Assert.That(sci.Level, Is.False);
    }
}
