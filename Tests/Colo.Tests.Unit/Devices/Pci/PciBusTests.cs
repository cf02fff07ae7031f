using Colo.Core.Io;
using Colo.Devices.Pci;
using Colo.Tests.Unit.Memory;

namespace Colo.Tests.Unit.Devices.Pci;

[TestFixture]
public sealed class PciBusTests
{
    private sealed class TestFunction : PciDevice
    {
        public TestFunction()
            : base("test-fn", 0x1234, 0x5678, 0x01, 0x020000, interruptPin: 1)
        {
            Io = new IoRegion("test-io", 0x20, (o, _) => 0xA0 + o, (_, _, _) => { });
            Mem = new IoRegion("test-mem", 0x1000, (o, _) => 0xB0 + o, (_, _, _) => { });
            DeclareBar(0, PciBarKind.Io, Io);
            DeclareBar(1, PciBarKind.Memory32, Mem);
            FinishInit();
        }

        public IoRegion Io { get; }

        public IoRegion Mem { get; }
    }

    private static (PciBus Bus, TestFunction Fn, List<(int Pin, bool Level)> Intx) Build()
    {
        var memory = new FakePhysicalMemory(0x10000);
        var bus = new PciBus(new PortIoSpace(), new MmioSpace(), memory);
        var intx = new List<(int, bool)>();
        bus.IntxChanged = (_, pin, level) => intx.Add((pin, level));
        var fn = new TestFunction();
        bus.Plug(fn, 3 << 3);
        return (bus, fn, intx);
    }

    [Test]
    public void BarSizing_AllOnesReadsBackTheSizeMask()
    {
        (PciBus bus, _, _) = Build();
        bus.ConfigWrite(3 << 3, 0x10, 4, 0xFFFFFFFF);
        bus.ConfigWrite(3 << 3, 0x14, 4, 0xFFFFFFFF);
        Assert.That(bus.ConfigRead(3 << 3, 0x10, 4), Is.EqualTo(0xFFFFFFE1u), "32-byte I/O BAR");
        Assert.That(bus.ConfigRead(3 << 3, 0x14, 4), Is.EqualTo(0xFFFFF000u), "4 KiB memory BAR");
    }

    [Test]
    public void Bars_MapOnlyWhenDecodingIsEnabled()
    {
        (PciBus bus, _, _) = Build();
        bus.ConfigWrite(3 << 3, 0x10, 4, 0xC000);
        bus.ConfigWrite(3 << 3, 0x14, 4, 0xFEB00000);
        Assert.That(bus.Ports.Read(0xC004, 1), Is.EqualTo(0xFFul), "I/O decoding off");
        bus.ConfigWrite(3 << 3, 0x04, 2, PciDevice.CommandIo | PciDevice.CommandMemory);
        Assert.That(bus.Ports.Read(0xC004, 1), Is.EqualTo(0xA4ul));
        Assert.That(bus.Mmio.Read(0xFEB00010, 1), Is.EqualTo(0xC0ul));
        bus.ConfigWrite(3 << 3, 0x10, 4, 0xD000);
        Assert.That(bus.Ports.Read(0xC004, 1), Is.EqualTo(0xFFul), "moved away");
        Assert.That(bus.Ports.Read(0xD004, 1), Is.EqualTo(0xA4ul));
    }

    [Test]
    public void ReadOnlyRegisters_IgnoreWrites()
    {
        (PciBus bus, _, _) = Build();
        bus.ConfigWrite(3 << 3, 0x00, 4, 0);
        bus.ConfigWrite(3 << 3, 0x08, 4, 0);
        Assert.That(bus.ConfigRead(3 << 3, 0x00, 4), Is.EqualTo(0x56781234u));
        Assert.That(bus.ConfigRead(3 << 3, 0x08, 4), Is.EqualTo(0x02000001u));
        Assert.That(bus.ConfigRead(3 << 3, 0x3D, 1), Is.EqualTo(1u), "interrupt pin");
    }

    [Test]
    public void Intx_IsReportedAndMaskedByInterruptDisable()
    {
        (PciBus bus, TestFunction fn, List<(int Pin, bool Level)> intx) = Build();
        fn.SetIntx(true);
        Assert.That(intx[^1], Is.EqualTo((0, true)));
        Assert.That(bus.ConfigRead(3 << 3, 0x06, 2) & PciDevice.StatusInterrupt, Is.Not.Zero);
        bus.ConfigWrite(3 << 3, 0x04, 2, PciDevice.CommandIntxDisable);
        Assert.That(intx[^1], Is.EqualTo((0, false)));
        bus.ConfigWrite(3 << 3, 0x04, 2, 0);
        Assert.That(intx[^1], Is.EqualTo((0, true)));
    }

    [Test]
    public void Dma_RefusedWithoutBusMastering()
    {
        (PciBus bus, TestFunction fn, _) = Build();
        byte[] buffer = [1, 2, 3];
        Assert.That(fn.DmaWrite(0x100, buffer), Is.False);
        bus.ConfigWrite(3 << 3, 0x04, 2, PciDevice.CommandMaster);
        Assert.That(fn.DmaWrite(0x100, buffer), Is.True);
        byte[] back = new byte[3];
        Assert.That(fn.DmaRead(0x100, back), Is.True);
        Assert.That(back, Is.EqualTo(buffer));
    }

    [Test]
    public void Plug_OccupiedSlot_FailsWithQemusText()
    {
        (PciBus bus, _, _) = Build();
        Assert.That(() => bus.Plug(new TestFunction(), 3 << 3),
            Throws.InvalidOperationException.With.Message.EqualTo("PCI: slot 3 function 0 not available for test-fn, in use by test-fn"));
    }

    [Test]
    public void ResetAndStateRoundTrip()
    {
        (PciBus bus, TestFunction fn, _) = Build();
        bus.ConfigWrite(3 << 3, 0x10, 4, 0xC000);
        bus.ConfigWrite(3 << 3, 0x04, 2, PciDevice.CommandIo);
        PciDeviceState saved = fn.SavePci();
        fn.Reset();
        Assert.That(bus.Ports.Read(0xC004, 1), Is.EqualTo(0xFFul), "reset unmaps");
        fn.RestorePci(saved);
        Assert.That(bus.Ports.Read(0xC004, 1), Is.EqualTo(0xA4ul), "restore remaps");
        Assert.That(fn.SavePci(), Is.EqualTo(saved));
    }

    [Test]
    public void RandomConfigWrites_NeverThrow()
    {
        (PciBus bus, _, _) = Build();
        var random = new Random(5);
        for (int i = 0; i < 20000; i++)
        {
            int size = 1 << random.Next(3);
            int offset = random.Next(256) & ~(size - 1);
            bus.ConfigWrite(random.Next(256), offset, size, (uint)random.Next());
            bus.ConfigRead(random.Next(256), offset, size);
        }
    }
}
