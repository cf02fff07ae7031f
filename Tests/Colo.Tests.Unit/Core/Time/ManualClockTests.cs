using Colo.Core.Time;

namespace Colo.Tests.Unit.Core.Time;

[TestFixture]
public sealed class ManualClockTests
{
    [Test]
    public void Advance_FiresDueTimersInDeadlineOrder_AtTheirDeadline()
    {
        var clock = new ManualClock();
        var log = new List<(string, long)>();
        var a = new ClockTimer(clock, () => log.Add(("a", clock.NowNs)));
        var b = new ClockTimer(clock, () => log.Add(("b", clock.NowNs)));
        var c = new ClockTimer(clock, () => log.Add(("c", clock.NowNs)));
        b.Modify(300);
        a.Modify(100);
        c.Modify(1000);
        int fired = clock.Advance(500);
        Assert.That(fired, Is.EqualTo(2));
        Assert.That(log, Is.EqualTo(new[] { ("a", 100L), ("b", 300L) }));
        Assert.That(clock.NowNs, Is.EqualTo(500));
        Assert.That(c.IsPending, Is.True);
        Assert.That(clock.NextDeadlineNs, Is.EqualTo(1000));
    }

    [Test]
    public void Callback_ReArming_FiresEveryPeriodWithinOneAdvance()
    {
        var clock = new ManualClock();
        var times = new List<long>();
        ClockTimer? t = null;
        t = new ClockTimer(clock, () =>
        {
            times.Add(clock.NowNs);
            t!.Modify(clock.NowNs + 10);
        });
        t.Modify(10);
        clock.Advance(45);
        Assert.That(times, Is.EqualTo(new long[] { 10, 20, 30, 40 }));
        Assert.That(t.DeadlineNs, Is.EqualTo(50));
    }

    [Test]
    public void Cancel_And_Modify_MoveOrRemoveDeadline()
    {
        var clock = new ManualClock();
        int fired = 0;
        var t = new ClockTimer(clock, () => fired++);
        t.Modify(10);
        t.Modify(100);
        clock.Advance(50);
        Assert.That(fired, Is.Zero);
        t.Cancel();
        t.Cancel();
        clock.Advance(100);
        Assert.That(fired, Is.Zero);
        Assert.That(clock.NextDeadlineNs, Is.EqualTo(long.MaxValue));
    }

    [Test]
    public void PastDeadline_FiresOnNextAdvance_WithoutMovingTimeBack()
    {
        var clock = new ManualClock(1000);
        long at = -1;
        var t = new ClockTimer(clock, () => at = clock.NowNs);
        t.Modify(5);
        clock.Advance(0);
        Assert.That(at, Is.EqualTo(1000));
    }

    [Test]
    public void StepToNextDeadline_StopsAtDeadline()
    {
        var clock = new ManualClock();
        var t = new ClockTimer(clock, () => { });
        Assert.That(clock.StepToNextDeadline(), Is.False);
        t.Modify(77);
        Assert.That(clock.StepToNextDeadline(), Is.True);
        Assert.That(clock.NowNs, Is.EqualTo(77));
    }
}
