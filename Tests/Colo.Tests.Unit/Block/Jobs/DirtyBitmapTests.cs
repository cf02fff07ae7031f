using Colo.Block.Jobs;

namespace Colo.Tests.Unit.Block.Jobs;

[TestFixture]
public sealed class DirtyBitmapTests
{
    [Test]
    public void Set_PartialChunks_MarksEveryTouchedChunkOnce()
    {
        var b = new DirtyBitmap(10 * 4096 + 100, 4096);
        Assert.That(b.Chunks, Is.EqualTo(11));
        Assert.That(b.Set(4000, 200), Is.EqualTo(2 * 4096));
        Assert.That(b.Set(4096, 1), Is.Zero);
        Assert.That(b.Count, Is.EqualTo(2));
        Assert.That(b.Set(10 * 4096, 50), Is.EqualTo(100), "the last chunk counts only up to the size");
        Assert.That(b.DirtyBytes, Is.EqualTo(2 * 4096 + 100));
    }

    [Test]
    public void NextDirty_WrapsAndRunLengthStopsAtClean()
    {
        var b = new DirtyBitmap(200 * 512, 512);
        b.Set(3 * 512, 3 * 512);
        b.Set(150 * 512, 512);
        Assert.That(b.NextDirty(0), Is.EqualTo(3));
        Assert.That(b.RunLength(3, 100), Is.EqualTo(3));
        Assert.That(b.RunLength(3, 2), Is.EqualTo(2));
        Assert.That(b.NextDirty(6), Is.EqualTo(150));
        Assert.That(b.NextDirty(151), Is.EqualTo(3), "wraps to the start");
        b.Clear(3, 3);
        b.Clear(150, 1);
        Assert.That(b.NextDirty(0), Is.EqualTo(-1));
        Assert.That(b.Count, Is.Zero);
    }

    [Test]
    public void AnySet_RangeTouchingADirtyChunk_True()
    {
        var b = new DirtyBitmap(1 << 20, 65536);
        b.Set(3 * 65536 + 10, 1);
        Assert.That(b.AnySet(0, 3 * 65536), Is.False);
        Assert.That(b.AnySet(3 * 65536 - 1, 2), Is.True);
        Assert.That(b.AnySet(4 * 65536, 65536 * 12), Is.False);
        Assert.That(b.AnySet(0, 1 << 20), Is.True);
    }

    [Test]
    public void Range_ClipsToSize()
    {
        var b = new DirtyBitmap(5000, 4096);
        Assert.That(b.Range(1, 1), Is.EqualTo((4096L, 904L)));
        Assert.That(b.Range(0, 2), Is.EqualTo((0L, 5000L)));
    }
}
