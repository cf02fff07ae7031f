using Colo.Devices.Pc.Boot;

namespace Colo.Tests.Unit.Devices.Pc.Boot;

[TestFixture]
public sealed class E820Tests
{
    private const ulong M = 1UL << 20;
    private const ulong G = 1UL << 30;

    // Expected values read from qemu-system-x86_64 7.2's fw_cfg etc/e820 (TCG, qtest port reads).
    [TestCase(128 * M, PcChipset.I440fx, 128 * M, 0UL)]
    [TestCase(3 * G, PcChipset.I440fx, 3 * G, 0UL)]
    [TestCase(3583 * M, PcChipset.I440fx, 3583 * M, 0UL)]
    [TestCase(3584 * M, PcChipset.I440fx, 3 * G, 512 * M)]
    [TestCase(4 * G, PcChipset.I440fx, 3 * G, 1 * G)]
    [TestCase(8 * G, PcChipset.I440fx, 3 * G, 5 * G)]
    [TestCase(4 * G, PcChipset.Q35, 2 * G, 2 * G)]
    [TestCase(2 * G, PcChipset.Q35, 2 * G, 0UL)]
    public void Build_SplitsAroundPciHole(ulong ram, PcChipset chipset, ulong below, ulong above)
    {
        List<E820Entry> map = PcMemoryMap.Build(ram, chipset);
        Assert.That(map[0], Is.EqualTo(new E820Entry(0, below, E820Type.Ram)));
        if (above == 0)
        {
            Assert.That(map, Has.Count.EqualTo(1));
        }
        else
        {
            Assert.That(map[1], Is.EqualTo(new E820Entry(4 * G, above, E820Type.Ram)));
        }
    }

    [Test]
    public void Build_AmdCpu_ReservesHtHoleFirst_AsQemu()
    {
        List<E820Entry> map = PcMemoryMap.Build(4 * G, amdHtHole: true);
        Assert.That(map, Is.EqualTo(new[]
        {
            new E820Entry(0xFD_0000_0000, 0x3_0000_0000, E820Type.Reserved),
            new E820Entry(0, 0xC000_0000, E820Type.Ram),
            new E820Entry(0x1_0000_0000, 0x4000_0000, E820Type.Ram),
        }));
        Assert.That(PcMemoryMap.Build(128 * M, amdHtHole: true, kvmIdentityMap: true)[0],
            Is.EqualTo(new E820Entry(0xFEFF_C000, 0x4000, E820Type.Reserved)));
    }

    [Test]
    public void MaxRamBelow4G_LowersTheSplit()
    {
        Assert.That(PcMemoryMap.BelowFourGiB(4 * G, PcChipset.I440fx, 2 * G), Is.EqualTo(2 * G));
        Assert.That(PcMemoryMap.BelowFourGiB(1 * G, PcChipset.I440fx, 2 * G), Is.EqualTo(1 * G));
        Assert.That(PcMemoryMap.BelowFourGiB(4 * G, PcChipset.Q35, 1 * G), Is.EqualTo(1 * G));
    }

    [Test]
    public void Encode_Is20BytePackedLittleEndian()
    {
        byte[] b = E820Entry.Encode([new E820Entry(0x1122, 0x3344, E820Type.Reserved)]);
        Assert.That(b, Is.EqualTo(new byte[] { 0x22, 0x11, 0, 0, 0, 0, 0, 0, 0x44, 0x33, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0 }));
    }

    [Test]
    public void ForDirectBoot_CarvesLowMemoryLikeSeaBios()
    {
        List<E820Entry> map = PcMemoryMap.ForDirectBoot(PcMemoryMap.Build(128 * M, amdHtHole: true));
        Assert.That(map, Is.EqualTo(new[]
        {
            new E820Entry(0, 0x9_FC00, E820Type.Ram),
            new E820Entry(0x9_FC00, 0x400, E820Type.Reserved),
            new E820Entry(0xF_0000, 0x1_0000, E820Type.Reserved),
            new E820Entry(0x10_0000, 127 * M, E820Type.Ram),
            new E820Entry(0xFD_0000_0000, 0x3_0000_0000, E820Type.Reserved),
        }));
    }
}
