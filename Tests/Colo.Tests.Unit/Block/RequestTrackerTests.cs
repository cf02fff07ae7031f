using Colo.Block;

namespace Colo.Tests.Unit.Block;

/// <summary>The in-flight request tracker: who waits for whom, and no allocation without overlap.</summary>
[TestFixture]
public sealed class RequestTrackerTests
{
    [Test]
    public void Begin_NoOverlap_RunsAtOnce()
    {
        var t = new RequestTracker();
        int a = t.Begin(0, 4096, write: true, out Task? wa);
        int b = t.Begin(4096, 4096, write: true, out Task? wb);
        int c = t.Begin(100, 10, write: false, out Task? wc);
        Assert.Multiple(() =>
        {
            Assert.That(wa, Is.Null);
            Assert.That(wb, Is.Null);
            Assert.That(wc, Is.Not.Null, "a read overlapping an earlier write waits");
        });
        t.End(b);
        Assert.That(wc!.IsCompleted, Is.False);
        t.End(a);
        Assert.That(wc.IsCompleted, Is.True);
        t.End(c);
        Assert.That(t.Count, Is.Zero);
    }

    [Test]
    public void Begin_ReadsBesideReads_WritesWaitForEveryEarlierOverlap()
    {
        var t = new RequestTracker();
        int r1 = t.Begin(0, 100, write: false, out Task? w1);
        int r2 = t.Begin(50, 100, write: false, out Task? w2);
        int w = t.Begin(90, 20, write: true, out Task? ww);
        int r3 = t.Begin(95, 1, write: false, out Task? w3); // later read: waits for the write before it
        Assert.Multiple(() =>
        {
            Assert.That(w1, Is.Null);
            Assert.That(w2, Is.Null);
            Assert.That(ww, Is.Not.Null);
            Assert.That(w3, Is.Not.Null);
        });
        t.End(r1);
        Assert.That(ww!.IsCompleted, Is.False, "r2 still overlaps");
        t.End(r2);
        Assert.Multiple(() =>
        {
            Assert.That(ww.IsCompleted, Is.True);
            Assert.That(w3!.IsCompleted, Is.False, "issue order: the read waits for the write");
        });
        t.End(w);
        Assert.That(w3.IsCompleted, Is.True);
        t.End(r3);
        Assert.That(t.Count, Is.Zero);
    }

    [Test]
    public void Begin_WholeRange_WaitsForEverything()
    {
        var t = new RequestTracker();
        int r = t.Begin(1L << 40, 512, write: false, out _);
        int all = t.Begin(0, long.MaxValue, write: true, out Task? wait);
        int after = t.Begin(0, 1, write: false, out Task? afterWait);
        Assert.That(wait, Is.Not.Null);
        Assert.That(afterWait, Is.Not.Null);
        t.End(r);
        Assert.That(wait!.IsCompleted, Is.True);
        Assert.That(afterWait!.IsCompleted, Is.False);
        t.End(all);
        Assert.That(afterWait.IsCompleted, Is.True);
        t.End(after);
    }

    [Test]
    public void Begin_ManyInFlight_GrowsAndReusesSlots()
    {
        var t = new RequestTracker();
        var slots = new int[300];
        for (int i = 0; i < slots.Length; i++)
        {
            slots[i] = t.Begin(i * 10L, 10, write: true, out Task? w);
            Assert.That(w, Is.Null);
        }
        Assert.That(t.Count, Is.EqualTo(300));
        for (int i = 0; i < slots.Length; i += 2)
        {
            t.End(slots[i]);
        }
        int again = t.Begin(0, 10, write: true, out Task? w0);
        Assert.That(w0, Is.Null);
        t.End(again);
        for (int i = 1; i < slots.Length; i += 2)
        {
            t.End(slots[i]);
        }
        Assert.That(t.Count, Is.Zero);
    }

    [Test]
    public void BeginEnd_NoOverlap_AllocatesNothing()
    {
        var t = new RequestTracker();
        for (int i = 0; i < 1000; i++)
        {
            t.End(t.Begin(i, 1, write: (i & 1) == 0, out _));
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100_000; i++)
        {
            int a = t.Begin(i * 8L, 8, write: true, out _);
            int b = t.Begin((i * 8L) + 8, 8, write: false, out _);
            t.End(a);
            t.End(b);
        }
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }
}
