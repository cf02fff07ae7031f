using Colo.Core.Io;

namespace Colo.Tests.Unit.Core.Io;

[TestFixture]
public sealed class IoSpaceTests
{
    private static IoRegion Recording(string name, ulong size, List<string> log, int min = 1, int max = 4) =>
        new(name, size, (o, s) =>
        {
            log.Add($"{name} r {o} {s}");
            return 0x0706050403020100UL >> (int)(8 * o);
        }, (o, s, v) => log.Add($"{name} w {o} {s} {v:x}"), min, max);

    [Test]
    public void PortRead_UnclaimedPortsReadAllOnes()
    {
        var ports = new PortIoSpace();
        Assert.That(ports.Read(0x80, 1), Is.EqualTo(0xFFul));
        Assert.That(ports.Read(0x80, 4), Is.EqualTo(0xFFFFFFFFul));
    }

    [Test]
    public void PortAccess_SpanningTwoOwners_IsSplitBytewise()
    {
        var log = new List<string>();
        var ports = new PortIoSpace();
        ports.Map(0x100, Recording("a", 1, log));
        ports.Map(0x101, Recording("b", 1, log));
        Assert.That(ports.Read(0x100, 2), Is.EqualTo(0x0000ul));
        Assert.That(log, Is.EqualTo(new[] { "a r 0 1", "b r 0 1" }));
        log.Clear();
        ports.Write(0x100, 4, 0x44332211);
        Assert.That(log, Is.EqualTo(new[] { "a w 0 1 11", "b w 0 1 22" }), "bytes 2 and 3 land on unclaimed ports");
    }

    [Test]
    public void PortMap_LaterMappingHidesEarlierAndUnmapUncovers()
    {
        var log = new List<string>();
        var ports = new PortIoSpace();
        ports.Map(0xCF8, Recording("idx", 4, log, 4, 4));
        PortIoSpace.Mapping rcr = ports.Map(0xCF9, Recording("rcr", 1, log, 1, 1));
        ports.Write(0xCF9, 1, 6);
        ports.Write(0xCF8, 4, 0x80000000);
        Assert.That(log, Is.EqualTo(new[] { "rcr w 0 1 6", "idx w 0 4 80000000" }));
        ports.Unmap(rcr);
        Assert.That(ports.Find(0xCF9)!.Region.Name, Is.EqualTo("idx"));
    }

    [Test]
    public void RegionWiderThanMax_IsSplitIntoMaxSizedPieces()
    {
        var log = new List<string>();
        IoRegion r = Recording("r", 16, log, 1, 2);
        r.Access(4, 4, 0xAABBCCDD);
        Assert.That(log, Is.EqualTo(new[] { "r w 4 2 ccdd", "r w 6 2 aabb" }));
    }

    [Test]
    public void RegionNarrowerThanMin_ReadIsWidenedAndWriteDropped()
    {
        var log = new List<string>();
        IoRegion r = Recording("r", 8, log, 4, 4);
        Assert.That(r.Access(5, 1), Is.EqualTo(0x05ul));
        r.Access(5, 1, 0xFF);
        Assert.That(log, Is.EqualTo(new[] { "r r 4 4" }));
    }

    [Test]
    public void Mmio_UnassignedReadsZeroAndHigherPriorityWins()
    {
        var log = new List<string>();
        var mmio = new MmioSpace();
        Assert.That(mmio.Read(0x1000, 4), Is.EqualTo(0ul));
        mmio.Map(0x1000, Recording("low", 0x1000, log));
        mmio.Map(0x1800, Recording("high", 0x100, log), priority: 1);
        mmio.Map(0x1800, Recording("later-low", 0x100, log));
        Assert.Multiple(() =>
        {
            Assert.That(mmio.Find(0x17FF)!.Region.Name, Is.EqualTo("low"));
            Assert.That(mmio.Find(0x1800)!.Region.Name, Is.EqualTo("high"));
            Assert.That(mmio.Find(0x1900)!.Region.Name, Is.EqualTo("low"));
            Assert.That(mmio.Find(0x2000), Is.Null);
        });
    }

    [Test]
    public void Mmio_UnmapRestoresWhatWasHidden()
    {
        var log = new List<string>();
        var mmio = new MmioSpace();
        mmio.Map(0x1000, Recording("a", 0x1000, log));
        MmioSpace.Mapping b = mmio.Map(0x1000, Recording("b", 0x1000, log));
        Assert.That(mmio.Find(0x1000)!.Region.Name, Is.EqualTo("b"));
        mmio.Unmap(b);
        Assert.That(mmio.Find(0x1000)!.Region.Name, Is.EqualTo("a"));
        mmio.Unmap(b); // twice is harmless
    }

    [Test]
    public void Mmio_AccessCrossingIntoHole_IsSplit()
    {
        var log = new List<string>();
        var mmio = new MmioSpace();
        mmio.Map(0x1000, Recording("a", 2, log));
        Assert.That(mmio.Read(0x1000, 4), Is.EqualTo(0x0100ul));
    }
}
