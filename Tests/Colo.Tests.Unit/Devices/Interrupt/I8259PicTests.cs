using Colo.Devices.Interrupt;
using Colo.Tests.Unit.Core.Irq;

namespace Colo.Tests.Unit.Devices.Interrupt;

[TestFixture]
public sealed class I8259PicTests
{
    private RecordingIrqLine _intr = null!;
    private I8259Pic _pic = null!;

    [SetUp]
    public void SetUp()
    {
        _intr = new RecordingIrqLine();
        _pic = new I8259Pic(_intr.Line);
    }

    /// <summary>The BIOS/Linux programming: ICW1 edge+ICW4, bases 0x08/0x70 (or given), cascade on IR2, 8086 mode.</summary>
    private void InitPair(byte masterBase = 0x08, byte slaveBase = 0x70, byte icw4 = 0x01)
    {
        _pic.Write(I8259Pic.MasterCommand, 1, 0x11);
        _pic.Write(I8259Pic.MasterData, 1, masterBase);
        _pic.Write(I8259Pic.MasterData, 1, 0x04);
        _pic.Write(I8259Pic.MasterData, 1, icw4);
        _pic.Write(I8259Pic.SlaveCommand, 1, 0x11);
        _pic.Write(I8259Pic.SlaveData, 1, slaveBase);
        _pic.Write(I8259Pic.SlaveData, 1, 0x02);
        _pic.Write(I8259Pic.SlaveData, 1, icw4);
        _pic.Write(I8259Pic.MasterData, 1, 0x00);
        _pic.Write(I8259Pic.SlaveData, 1, 0x00);
    }

    [Test]
    public void EdgeIrq_RaisesIntr_AckReturnsVectorAndSetsIsr()
    {
        InitPair();
        _pic.Inputs[0].Raise();
        Assert.That(_intr.Level, Is.True);
        Assert.That(_pic.Read(I8259Pic.MasterCommand, 1), Is.EqualTo(0x01), "IRR");
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x08));
        Assert.That(_intr.Level, Is.False);
        _pic.Write(I8259Pic.MasterCommand, 1, 0x0B); // OCW3: read ISR
        Assert.That(_pic.Read(I8259Pic.MasterCommand, 1), Is.EqualTo(0x01), "ISR");
        _pic.Write(I8259Pic.MasterCommand, 1, 0x20); // non-specific EOI
        Assert.That(_pic.Read(I8259Pic.MasterCommand, 1), Is.Zero);
    }

    [Test]
    public void EdgeIrq_HeldHigh_DoesNotRetriggerUntilNewEdge()
    {
        InitPair();
        _pic.Inputs[1].Raise();
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x09));
        _pic.Write(I8259Pic.MasterCommand, 1, 0x20);
        Assert.That(_intr.Level, Is.False);
        _pic.Inputs[1].Lower();
        _pic.Inputs[1].Raise();
        Assert.That(_intr.Level, Is.True);
    }

    [Test]
    public void SlaveIrq_CascadesThroughIr2_VectorFromSlaveBase()
    {
        InitPair();
        _pic.Inputs[8 + 6].Raise(); // IRQ14
        Assert.That(_intr.Level, Is.True);
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x76));
        _pic.Write(I8259Pic.MasterCommand, 1, 0x0B);
        _pic.Write(I8259Pic.SlaveCommand, 1, 0x0B);
        Assert.That(_pic.Read(I8259Pic.MasterCommand, 1), Is.EqualTo(0x04));
        Assert.That(_pic.Read(I8259Pic.SlaveCommand, 1), Is.EqualTo(0x40));
    }

    [Test]
    public void Imr_MasksRequest_UnmaskDelivers()
    {
        InitPair();
        _pic.Write(I8259Pic.MasterData, 1, 0x10);
        _pic.Inputs[4].Raise();
        Assert.That(_intr.Level, Is.False);
        Assert.That(_pic.Read(I8259Pic.MasterData, 1), Is.EqualTo(0x10));
        _pic.Write(I8259Pic.MasterData, 1, 0x00);
        Assert.That(_intr.Level, Is.True);
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x0C));
    }

    [Test]
    public void Priority_LowerIrqNumberWins_InServiceBlocksLower()
    {
        InitPair();
        _pic.Inputs[3].Raise();
        _pic.Inputs[1].Raise();
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x09));
        // IR3 is lower priority than in-service IR1: held off until EOI.
        Assert.That(_intr.Level, Is.False);
        _pic.Inputs[0].Raise();
        Assert.That(_intr.Level, Is.True, "IR0 preempts IR1");
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x08));
        _pic.Write(I8259Pic.MasterCommand, 1, 0x20); // EOI clears IR0 (highest in service)
        _pic.Write(I8259Pic.MasterCommand, 1, 0x20); // then IR1
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x0B));
    }

    [Test]
    public void SpecificEoi_ClearsNamedLevel()
    {
        InitPair();
        _pic.Inputs[5].Raise();
        _pic.Acknowledge();
        _pic.Write(I8259Pic.MasterCommand, 1, 0x60 | 5);
        _pic.Write(I8259Pic.MasterCommand, 1, 0x0B);
        Assert.That(_pic.Read(I8259Pic.MasterCommand, 1), Is.Zero);
    }

    [Test]
    public void RotateOnNonSpecificEoi_ServicedLevelBecomesLowest()
    {
        InitPair();
        _pic.Inputs[0].Raise();
        _pic.Acknowledge();
        _pic.Write(I8259Pic.MasterCommand, 1, 0xA0); // rotate on non-specific EOI
        _pic.Inputs[0].Lower();
        _pic.Inputs[0].Raise();
        _pic.Inputs[7].Raise();
        // IR0 is now lowest priority, so IR7 (highest after rotation is IR1) comes first.
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x0F));
    }

    [Test]
    public void SetPriority_Ocw2_MakesNextLevelHighest()
    {
        InitPair();
        _pic.Write(I8259Pic.MasterCommand, 1, 0xC0 | 4); // IR4 lowest, IR5 highest
        _pic.Inputs[3].Raise();
        _pic.Inputs[6].Raise();
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x0E));
    }

    [Test]
    public void AutoEoi_AckLeavesIsrClear()
    {
        InitPair(icw4: 0x03);
        _pic.Inputs[0].Raise();
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x08));
        _pic.Write(I8259Pic.MasterCommand, 1, 0x0B);
        Assert.That(_pic.Read(I8259Pic.MasterCommand, 1), Is.Zero);
    }

    [Test]
    public void SpecialMask_AllowsLowerPriorityWhileMaskedLevelInService()
    {
        InitPair();
        _pic.Inputs[1].Raise();
        _pic.Acknowledge();
        _pic.Write(I8259Pic.MasterData, 1, 0x02); // mask IR1 (in service)
        _pic.Inputs[5].Raise();
        Assert.That(_intr.Level, Is.False);
        _pic.Write(I8259Pic.MasterCommand, 1, 0x68); // OCW3: ESMM|SMM
        Assert.That(_intr.Level, Is.True);
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x0D));
        _pic.Write(I8259Pic.MasterCommand, 1, 0x48); // special mask off
        _pic.Inputs[6].Raise();
        Assert.That(_intr.Level, Is.False);
    }

    [Test]
    public void PollMode_ReturnsLevelWithBit7_AndActsAsAck()
    {
        InitPair();
        _pic.Inputs[3].Raise();
        _pic.Write(I8259Pic.MasterCommand, 1, 0x0C); // OCW3 poll
        Assert.That(_pic.Read(I8259Pic.MasterCommand, 1), Is.EqualTo(0x83));
        Assert.That(_intr.Level, Is.False);
        _pic.Write(I8259Pic.MasterCommand, 1, 0x0C);
        Assert.That(_pic.Read(I8259Pic.MasterCommand, 1), Is.Zero);
        _pic.Write(I8259Pic.MasterCommand, 1, 0x0B);
        Assert.That(_pic.Read(I8259Pic.MasterCommand, 1), Is.EqualTo(0x08));
    }

    [Test]
    public void Spurious_NothingPending_ReturnsIr7Vectors()
    {
        InitPair();
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x0F));
        Assert.That(_pic.TryAcknowledge(out _), Is.False);
        // Slave request withdrawn (level-triggered) between INTR and INTA: slave spurious IR7 (IRQ15).
        _pic.Write(I8259Pic.ElcrSlave, 1, 0x08); // IRQ11 level
        _pic.Inputs[11].Raise();
        _pic.Write(I8259Pic.SlaveData, 1, 0x08); // mask at the slave after master saw IR2
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x77));
    }

    [Test]
    public void LevelTriggered_ViaElcr_StaysPendingWhileHigh()
    {
        InitPair();
        _pic.Write(I8259Pic.ElcrSlave, 1, 0xFF);
        Assert.That(_pic.Read(I8259Pic.ElcrSlave, 1), Is.EqualTo(I8259Pic.ElcrMaskSlave));
        _pic.Inputs[11].Raise();
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x73));
        _pic.Write(I8259Pic.SlaveCommand, 1, 0x20);
        _pic.Write(I8259Pic.MasterCommand, 1, 0x20);
        Assert.That(_intr.Level, Is.True, "still asserted");
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x73));
        _pic.Inputs[11].Lower();
        _pic.Write(I8259Pic.SlaveCommand, 1, 0x20);
        _pic.Write(I8259Pic.MasterCommand, 1, 0x20);
        Assert.That(_intr.Level, Is.False);
    }

    [Test]
    public void SaveRestore_RoundTrips_AndReRaisesIntr()
    {
        InitPair();
        _pic.Write(I8259Pic.ElcrMaster, 1, 0x20);
        _pic.Inputs[4].Raise();
        _pic.Acknowledge();
        _pic.Inputs[5].Raise();
        _pic.Inputs[9].Raise(); // cascade IR2 outranks IR4 in service
        I8259PicState saved = _pic.Save();

        var intr2 = new RecordingIrqLine();
        var pic2 = new I8259Pic(intr2.Line);
        pic2.Restore(saved);
        Assert.That(pic2.Save(), Is.EqualTo(saved));
        Assert.That(intr2.Level, Is.EqualTo(_intr.Level));
        Assert.That(intr2.Level, Is.True);
        Assert.That(pic2.Acknowledge(), Is.EqualTo(_pic.Acknowledge()));
    }

    [Test]
    public void Reset_ReturnsToPowerOn_AndLowersIntr()
    {
        InitPair();
        _pic.Inputs[0].Raise();
        _pic.Reset();
        Assert.That(_intr.Level, Is.False);
        Assert.That(_pic.Save(), Is.EqualTo(I8259PicState.PowerOn));
    }

    [Test]
    public void RandomAccess_EveryOffset_NeverThrows()
    {
        var rng = new Random(8259);
        for (int i = 0; i < 100_000; i++)
        {
            int offset = rng.Next(-2, I8259Pic.RegionSize + 2);
            int size = 1 << rng.Next(0, 3);
            if (rng.Next(2) == 0)
            {
                _pic.Read(offset, size);
            }
            else
            {
                _pic.Write(offset, size, (uint)rng.Next());
            }
            if (rng.Next(8) == 0)
            {
                _pic.SetIrq(rng.Next(-1, 17), rng.Next(2) == 0);
            }
            if (rng.Next(16) == 0)
            {
                byte v = _pic.Acknowledge();
                Assert.That(v & 7, Is.LessThanOrEqualTo(7));
            }
        }
        I8259PicState s = _pic.Save();
        var pic2 = new I8259Pic(new RecordingIrqLine().Line);
        pic2.Restore(s);
        Assert.That(pic2.Save(), Is.EqualTo(s));
    }
}
