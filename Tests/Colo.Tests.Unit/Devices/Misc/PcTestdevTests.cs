using Colo.Core.Irq;
using Colo.Devices.Misc;
using Colo.Tests.Unit.Core.Irq;

namespace Colo.Tests.Unit.Devices.Misc;

[TestFixture]
public sealed class PcTestdevTests
{
    private readonly RecordingIrqLine[] _irqs = new RecordingIrqLine[16];
    private PcTestdev _dev = null!;

    [SetUp]
    public void SetUp()
    {
        for (int i = 0; i < _irqs.Length; i++)
        {
            _irqs[i] = new RecordingIrqLine();
        }
        _dev = new PcTestdev(n => n < 16 ? _irqs[n].Line : null);
    }

    [Test]
    public void Ioport_LanesAndByteWindowShareOneRegister()
    {
        _dev.Ioport.Access(0, 4, 0xAABBCCDD);
        _dev.Ioport.Access(1, 1, 0x11);
        Assert.Multiple(() =>
        {
            Assert.That(_dev.Ioport.Access(0, 4), Is.EqualTo(0xAABB11DDul));
            Assert.That(_dev.Ioport.Access(2, 2), Is.EqualTo(0xAABBul));
            Assert.That(_dev.IoportByte.Access(0, 4), Is.EqualTo(0xAABB11DDul), "split into bytes, same value");
        });
        _dev.IoportByte.Access(0, 2, 0x2233);
        Assert.That(_dev.Ioport.Access(0, 4), Is.EqualTo(0xAABB2233ul));
    }

    [Test]
    public void IrqPorts_SetTheIsaLineToTheValuesTruth_AndIgnoreLinesBeyondIsa()
    {
        _dev.IrqLines.Access(5, 1, 0x80);
        Assert.That(_irqs[5].Level, Is.True);
        _dev.IrqLines.Access(5, 1, 0);
        Assert.That(_irqs[5].Changes, Is.EqualTo(new[] { true, false }));
        Assert.DoesNotThrow(() => _dev.IrqLines.Access(23, 1, 1));
        Assert.That(_dev.IrqLines.Access(5, 1), Is.EqualTo(0ul));
    }

    [Test]
    public void Iomem_HoldsWhatWasWritten_AndSaveRestoreRoundTrips()
    {
        _dev.Iomem.Access(0x100, 8, 0x1122334455667788);
        _dev.Ioport.Access(0, 4, 0xCAFE);
        PcTestdevState saved = _dev.Save();
        var fresh = new PcTestdev(_ => null);
        fresh.Restore(saved);
        Assert.Multiple(() =>
        {
            Assert.That(fresh.Save(), Is.EqualTo(saved));
            Assert.That(fresh.Iomem.Access(0x104, 4), Is.EqualTo(0x11223344ul));
            Assert.That(fresh.Ioport.Access(0, 4), Is.EqualTo(0xCAFEul));
        });
    }

    [Test]
    public void MalformedAccesses_AreHarmless()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_dev.Iomem.Access(PcTestdev.IomemSize - 2, 4), Is.EqualTo(0xFFFF0000ul), "past the end reads all-ones");
            Assert.DoesNotThrow(() => _dev.Iomem.Access(PcTestdev.IomemSize - 1, 8, ulong.MaxValue));
            Assert.DoesNotThrow(() => _dev.Flush.Access(0, 1, 0x1234));
            Assert.That(_dev.Flush.Access(0, 4), Is.EqualTo(0ul));
            Assert.Throws<ArgumentException>(() => _dev.Restore(new PcTestdevState(0, new byte[3])));
        });
    }
}
