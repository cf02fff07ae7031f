using Colo.Core.Io;
using Colo.Core.Irq;
using Colo.Devices.Interrupt;
using Colo.Devices.Pc;
using Colo.Devices.Pci;
using Colo.Tests.Unit.Memory;

namespace Colo.Tests.Unit.Devices.Pc;

[TestFixture]
public sealed class PcInterruptRouterTests
{
    private sealed class Intx(string name) : PciDevice(name, 0x1af4, 0x1000, 0, 0x020000, interruptPin: 1)
    {
    }

    private static (PcInterruptRouter Router, I8259Pic Pic, PciBus Bus, Piix3 Piix3, List<(int Pin, bool Level)> IoApic) Build()
    {
        var bus = new PciBus(new PortIoSpace(), new MmioSpace(), new FakePhysicalMemory(16));
        var piix3 = new Piix3(() => { });
        bus.Plug(piix3, 1 << 3);
        var pic = new I8259Pic(new IrqLine());
        var router = new PcInterruptRouter(pic, new IoApic(), piix3, bus);
        var ioapic = new List<(int, bool)>();
        router.IoApicInterceptor = (pin, level) => ioapic.Add((pin, level));
        return (router, pic, bus, piix3, ioapic);
    }

    [Test]
    public void Swizzle_MatchesTheDsdtConvention()
    {
        Assert.That(PcInterruptRouter.Swizzle(1, 0), Is.EqualTo(0));
        Assert.That(PcInterruptRouter.Swizzle(3, 0), Is.EqualTo(2));
        Assert.That(PcInterruptRouter.Swizzle(3, 3), Is.EqualTo(1));
        Assert.That(PcInterruptRouter.Swizzle(0, 0), Is.EqualTo(3));
    }

    [Test]
    public void IsaIrq0_GoesToIoApicPin2()
    {
        (PcInterruptRouter router, _, _, _, List<(int Pin, bool Level)> ioapic) = Build();
        router.Isa(0).Raise();
        Assert.That(ioapic, Is.EqualTo(new[] { (2, true) }));
    }

    [Test]
    public void PciIntx_ReachesIoApicPin16PlusPirq_AndTheRoutedIsaIrq()
    {
        (PcInterruptRouter router, I8259Pic pic, PciBus bus, Piix3 piix3, List<(int Pin, bool Level)> ioapic) = Build();
        var dev = new Intx("a");
        bus.Plug(dev, 3 << 3);
        bus.ConfigWrite(1 << 3, Piix3.PirqRouteControl + 2, 1, 11); // PIRQC → IRQ 11
        pic.Write(I8259Pic.SlaveCommand, 1, 0x11); // init slave so its IRR is visible
        dev.SetIntx(true);
        Assert.That(ioapic, Is.EqualTo(new[] { (18, true) }), "slot 3 INTA is PIRQC");
        pic.Write(I8259Pic.SlaveCommand, 1, 0x0A); // OCW3: read IRR
        Assert.That(pic.Read(I8259Pic.SlaveCommand, 1) & 0x08, Is.Not.Zero, "IRQ 11 requested");
        _ = router;
    }

    [Test]
    public void SharedPirq_StaysHighUntilEveryDeviceDeasserts()
    {
        (_, _, PciBus bus, _, List<(int Pin, bool Level)> ioapic) = Build();
        var a = new Intx("a");
        var b = new Intx("b");
        bus.Plug(a, 3 << 3);
        bus.Plug(b, 7 << 3); // (7 + 0 - 1) & 3 = 2: the same PIRQ as slot 3
        a.SetIntx(true);
        b.SetIntx(true);
        a.SetIntx(false);
        Assert.That(ioapic, Is.EqualTo(new[] { (18, true) }));
        b.SetIntx(false);
        Assert.That(ioapic, Is.EqualTo(new[] { (18, true), (18, false) }));
    }
}
