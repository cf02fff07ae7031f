using Colo.Devices.Interrupt;

namespace Colo.Tests.Unit.Devices.Interrupt;

[TestFixture]
public sealed class IoApicTests
{
    private static void WriteEntry(IoApic ioapic, int pin, ulong entry)
    {
        ioapic.Write(IoApic.RegSelect, 4, (uint)(IoApic.IndexRedirection + (2 * pin) + 1));
        ioapic.Write(IoApic.RegWindow, 4, (uint)(entry >> 32));
        ioapic.Write(IoApic.RegSelect, 4, (uint)(IoApic.IndexRedirection + (2 * pin)));
        ioapic.Write(IoApic.RegWindow, 4, (uint)entry);
    }

    private static uint ReadIndirect(IoApic ioapic, int index)
    {
        ioapic.Write(IoApic.RegSelect, 4, (uint)index);
        return ioapic.Read(IoApic.RegWindow, 4);
    }

    [Test]
    public void Version_Reports24PinsAndVersion0x20()
    {
        var ioapic = new IoApic();
        Assert.That(ReadIndirect(ioapic, IoApic.IndexVersion), Is.EqualTo(0x00170020u));
        Assert.That(ReadIndirect(ioapic, IoApic.IndexRedirection), Is.EqualTo((uint)IoApic.RteMasked), "entries start masked");
    }

    [Test]
    public void EdgePin_DeliversOncePerRisingEdge()
    {
        var ioapic = new IoApic();
        var sent = new List<ApicMessage>();
        ioapic.Deliver = sent.Add;
        WriteEntry(ioapic, 2, (1UL << 56) | 0x30);
        ioapic.SetIrq(2, true);
        ioapic.SetIrq(2, true);
        ioapic.SetIrq(2, false);
        ioapic.SetIrq(2, true);
        Assert.That(sent, Is.EqualTo(new[] { new ApicMessage(1, false, 0, 0x30, false), new ApicMessage(1, false, 0, 0x30, false) }));
    }

    [Test]
    public void MaskedPin_IsHeldUntilUnmasked()
    {
        var ioapic = new IoApic();
        var sent = new List<ApicMessage>();
        ioapic.Deliver = sent.Add;
        WriteEntry(ioapic, 4, IoApic.RteMasked | 0x34);
        ioapic.SetIrq(4, true);
        Assert.That(sent, Is.Empty);
        WriteEntry(ioapic, 4, 0x34);
        Assert.That(sent.Select(m => m.Vector), Is.EqualTo(new byte[] { 0x34 }));
    }

    [Test]
    public void LevelPin_WaitsForEoiThenRedeliversIfStillAsserted()
    {
        var ioapic = new IoApic();
        var sent = new List<ApicMessage>();
        ioapic.Deliver = sent.Add;
        WriteEntry(ioapic, 17, IoApic.RteLevel | 0x41);
        ioapic.SetIrq(17, true);
        Assert.That(sent, Has.Count.EqualTo(1));
        Assert.That(ioapic.GetRedirection(17) & IoApic.RteRemoteIrr, Is.Not.Zero);
        ioapic.Eoi(0x41);
        Assert.That(sent, Has.Count.EqualTo(2), "still asserted after EOI");
        ioapic.SetIrq(17, false);
        ioapic.Write(IoApic.RegEoi, 4, 0x41);
        Assert.That(sent, Has.Count.EqualTo(2));
        Assert.That(ioapic.GetRedirection(17) & IoApic.RteRemoteIrr, Is.Zero);
    }

    [Test]
    public void ReadOnlyBits_CannotBeWritten()
    {
        var ioapic = new IoApic();
        WriteEntry(ioapic, 0, IoApic.RteRemoteIrr | IoApic.RteDeliveryStatus | 0x20);
        Assert.That(ioapic.GetRedirection(0) & (IoApic.RteRemoteIrr | IoApic.RteDeliveryStatus), Is.Zero);
    }

    [Test]
    public void StateRoundTrip_AndRandomAccessesNeverThrow()
    {
        var ioapic = new IoApic();
        var random = new Random(9);
        for (int i = 0; i < 5000; i++)
        {
            ioapic.Write(random.Next(0x100), 1 << random.Next(3), (uint)random.Next());
            ioapic.Read(random.Next(0x100), 4);
            ioapic.SetIrq(random.Next(-2, 30), random.Next(2) == 0);
        }
        IoApicState saved = ioapic.Save();
        var copy = new IoApic();
        copy.Restore(saved);
        Assert.That(copy.Save(), Is.EqualTo(saved));
    }
}
