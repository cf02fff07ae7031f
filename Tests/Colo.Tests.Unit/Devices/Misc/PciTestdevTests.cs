using Colo.Devices.Misc;

namespace Colo.Tests.Unit.Devices.Misc;

[TestFixture]
public sealed class PciTestdevTests
{
    [Test]
    public void Headers_DescribeSixTestsWithQemuNamesOffsetsAndData()
    {
        var dev = new PciTestdev();
        string[] names = ["mmio-no-eventfd", "mmio-wildcard-eventfd", "mmio-datamatch-eventfd", "portio-no-eventfd", "portio-wildcard-eventfd", "portio-datamatch-eventfd"];
        for (int t = 0; t < 6; t++)
        {
            var bar = t < 3 ? dev.Mmio : dev.Portio;
            bar.Access(0, 1, (ulong)(t % 3));
            Assert.Multiple(() =>
            {
                Assert.That(bar.Access(0, 1), Is.EqualTo((ulong)t), "test");
                Assert.That(bar.Access(4, 4), Is.EqualTo((ulong)((t < 3 ? 2048 : 128) + t)), "offset");
                Assert.That(bar.Access(8, 1), Is.EqualTo(t % 3 == 1 ? 0xCEul : 0xFAul), "data");
                Assert.That(ReadName(bar), Is.EqualTo(names[t]));
            });
        }
    }

    [Test]
    public void Writes_CountOnlyAtTheOffsetAndMatchingData()
    {
        var dev = new PciTestdev();
        dev.Mmio.Access(0, 1, 0); // mmio-no-eventfd: data 0xFA must match
        dev.Mmio.Access(2048, 1, 0xFA);
        dev.Mmio.Access(2048, 1, 0x01);
        dev.Mmio.Access(2049, 1, 0xFA);
        Assert.That(dev.Mmio.Access(12, 4), Is.EqualTo(1ul));
        dev.Portio.Access(0, 1, 1); // portio-wildcard: anything counts
        dev.Portio.Access(132, 4, 0x12345678); // split into bytes: only the first lands on the offset
        Assert.That(dev.Portio.Access(12, 4), Is.EqualTo(1ul));
        dev.Portio.Access(0, 1, 9);
        Assert.Multiple(() =>
        {
            Assert.That(dev.CurrentTest, Is.EqualTo(-1));
            Assert.That(dev.Mmio.Access(0, 4), Is.EqualTo(0ul));
        });
    }

    [Test]
    public void SaveRestore_RoundTrips_AndResetDeselects()
    {
        var dev = new PciTestdev(membarSize: 1 << 20);
        dev.Mmio.Access(0, 1, 1);
        dev.Mmio.Access(2049, 1, 0x33);
        PciTestdevState saved = dev.Save();
        var fresh = new PciTestdev(membarSize: 1 << 20);
        fresh.Restore(saved);
        Assert.Multiple(() =>
        {
            Assert.That(fresh.CurrentTest, Is.EqualTo(1));
            Assert.That(fresh.Mmio.Access(12, 4), Is.EqualTo(1ul));
            Assert.That(fresh.Bars[2]!.Kind, Is.EqualTo(Colo.Devices.Pci.PciBarKind.Memory64));
        });
        fresh.Reset();
        Assert.That(fresh.CurrentTest, Is.EqualTo(-1));
        Assert.Throws<ArgumentException>(() => fresh.Restore(saved with { Current = 6 }));
    }

    private static string ReadName(Colo.Core.Io.IoRegion bar)
    {
        var chars = new List<char>();
        for (ulong at = 16; ; at++)
        {
            ulong c = bar.Access(at, 1);
            if (c == 0)
            {
                return new string([.. chars]);
            }
            chars.Add((char)c);
        }
    }
}
