using System.Text;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Machine;

/// <summary>QEMU's test devices as kvm-unit-tests uses them (pc-testdev's ports and memory, pci-testdev's I/O tests).</summary>
[TestFixture]
public sealed class TestDevicesTests
{
    [Test]
    public async Task PcTestdev_ScratchPortsIrqLinesAndIomem()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults", "-device", "pc-testdev");
        Assert.That(await q.OkAsync("irq_intercept_in ioapic"), Is.Empty);
        await q.OutAsync('l', 0xE0, 0x12345678);
        Assert.Multiple(async () =>
        {
            Assert.That(await q.InAsync('l', 0xE0), Is.EqualTo(0x12345678u));
            Assert.That(await q.InAsync('b', 0xE1), Is.EqualTo(0x56u), "byte lanes");
            Assert.That(await q.InAsync('w', 0xE2), Is.EqualTo(0x1234u));
            Assert.That(await q.InAsync('l', 0xE8), Is.EqualTo(0x12345678u), "0xE8 is the same register, byte-wise");
        });
        await q.OutAsync('b', 0xEA, 0xAB);
        Assert.That(await q.InAsync('l', 0xE0), Is.EqualTo(0x12AB5678u));
        Assert.That(await q.InAsync('l', 0xE4), Is.EqualTo(0u), "flush-page port reads zero");

        await q.OutAsync('b', 0x2000 + 10, 1);
        await q.OkAsync("endianness");
        Assert.That(q.GetIrq(10), Is.True, "ISA IRQ 10 raised through the IOAPIC");
        await q.OutAsync('b', 0x2000 + 10, 0);
        await q.OkAsync("endianness");
        Assert.That(q.GetIrq(10), Is.False);
        await q.OutAsync('b', 0x2000 + 20, 1); // beyond ISA's 16 lines: ignored (QEMU aborts)

        await q.WriteAsync('q', 0xFF000008, 0x0102030405060708);
        Assert.Multiple(async () =>
        {
            Assert.That(await q.ReadAsync('q', 0xFF000008), Is.EqualTo(0x0102030405060708ul));
            Assert.That(await q.ReadAsync('w', 0xFF00000A), Is.EqualTo(0x0506ul));
            Assert.That(await q.ReadAsync('l', 0xFF00FFFC), Is.EqualTo(0ul));
        });
    }

    [Test]
    public async Task PciTestdev_IdentityBarsAndIoTests()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults", "-device", "pci-testdev,addr=05.0");
        const int DevFn = 5 << 3;
        Assert.Multiple(async () =>
        {
            Assert.That(await q.PciConfigReadAsync(DevFn, 0x00), Is.EqualTo(0x00051B36u));
            Assert.That(await q.PciConfigReadAsync(DevFn, 0x08), Is.EqualTo(0x00FF0000u), "class 00ff, revision 0");
            Assert.That(await q.PciConfigReadAsync(DevFn, 0x2C), Is.EqualTo(0x11001AF4u));
            Assert.That(await q.PciConfigReadAsync(DevFn, 0x3D, 'b'), Is.EqualTo(0u), "no interrupt pin");
        });
        await q.PciConfigWriteAsync(DevFn, 0x10, 0xFFFFFFFF);
        await q.PciConfigWriteAsync(DevFn, 0x14, 0xFFFFFFFF);
        Assert.That(await q.PciConfigReadAsync(DevFn, 0x10), Is.EqualTo(0xFFFFF000u), "BAR0: 4 KiB memory");
        Assert.That(await q.PciConfigReadAsync(DevFn, 0x14), Is.EqualTo(0xFFFFFF01u), "BAR1: 256 ports");
        await q.PciConfigWriteAsync(DevFn, 0x10, 0xE0000000);
        await q.PciConfigWriteAsync(DevFn, 0x14, 0xC000);
        await q.PciConfigWriteAsync(DevFn, 0x04, 0x03, 'w');

        // Memory test 2 (datamatch): header, then a matching and a non-matching write at its offset.
        await q.WriteAsync('b', 0xE0000000, 2);
        Assert.Multiple(async () =>
        {
            Assert.That(await q.ReadAsync('b', 0xE0000000), Is.EqualTo(2ul), "test");
            Assert.That(await q.ReadAsync('b', 0xE0000001), Is.EqualTo(1ul), "width");
            Assert.That(await q.ReadAsync('l', 0xE0000004), Is.EqualTo(2048ul + 2), "offset");
            Assert.That(await q.ReadAsync('b', 0xE0000008), Is.EqualTo(0xFAul), "data");
            Assert.That(await Name(q, 0xE0000010), Is.EqualTo("mmio-datamatch-eventfd"));
        });
        await q.WriteAsync('b', 0xE0000000 + 2048 + 2, 0xFA);
        await q.WriteAsync('b', 0xE0000000 + 2048 + 2, 0x11);
        Assert.That(await q.ReadAsync('l', 0xE000000C), Is.EqualTo(1ul), "only the matching value counts");

        // Port test 1 (wildcard) counts any value; selecting a test resets its count.
        await q.OutAsync('b', 0xC000, 1);
        Assert.That(await q.InAsync('b', 0xC000), Is.EqualTo(4u), "portio tests are 3..5");
        Assert.That(await q.InAsync('b', 0xC008), Is.EqualTo(0xCEu), "wildcard data");
        await q.OutAsync('b', 0xC000 + 128 + 4, 0x33);
        await q.OutAsync('b', 0xC000 + 128 + 4, 0x44);
        Assert.That(await q.InAsync('l', 0xC00C), Is.EqualTo(2u));
        await q.OutAsync('b', 0xC000, 7);
        Assert.That(await q.InAsync('l', 0xC000), Is.EqualTo(0u), "no test selected: reads zero");
    }

    [Test]
    public void DeviceHelp_ListsTheTestDevices()
    {
        (int code, string stdout, _) = QemuProcess.Run("-device", "help");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(stdout, Does.Contain("name \"pc-testdev\", bus ISA\n").And.Contain("name \"pci-testdev\", bus PCI, desc \"PCI Test Device\"\n"));
        Assert.That(stdout, Does.Not.Contain("\"pci-device\"").And.Not.Contain("\"i440FX\""), "abstract and board-only types are not offered");
        (_, string none, _) = QemuProcess.Run("-device", "pc-testdev,help");
        Assert.That(none, Is.EqualTo("There are no options for pc-testdev.\n"));
        (_, string membar, _) = QemuProcess.Run("-device", "pci-testdev,help");
        Assert.That(membar, Does.Contain("  membar=<size>          -  (default: 0)\n").And.Contain("  addr=<int32>           - Slot and optional function number, example: 06.0 or 06 (default: -1)\n"));
    }

    private static async Task<string> Name(QtestClient q, ulong address)
    {
        var sb = new StringBuilder();
        for (ulong a = address; ; a++)
        {
            ulong c = await q.ReadAsync('b', a);
            if (c == 0)
            {
                return sb.ToString();
            }
            sb.Append((char)c);
        }
    }
}
