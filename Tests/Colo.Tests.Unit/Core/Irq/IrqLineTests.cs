using Colo.Core.Irq;

namespace Colo.Tests.Unit.Core.Irq;

[TestFixture]
public sealed class IrqLineTests
{
    [Test]
    public void Set_SameLevelTwice_SinkHearsOneChange()
    {
        var rec = new RecordingIrqLine();
        rec.Line.Raise();
        rec.Line.Raise();
        rec.Line.Set(true);
        rec.Line.Lower();
        rec.Line.Lower();
        Assert.That(rec.Changes, Is.EqualTo(new[] { true, false }));
        Assert.That(rec.Level, Is.False);
    }

    [Test]
    public void Pulse_DeliversRiseThenFall()
    {
        var rec = new RecordingIrqLine();
        rec.Line.Pulse();
        Assert.That(rec.Changes, Is.EqualTo(new[] { true, false }));
    }

    [Test]
    public void Connect_WhileHigh_NewSinkSeesLevel()
    {
        var line = new IrqLine();
        line.Raise();
        var seen = new List<bool>();
        line.Connect(seen.Add);
        Assert.That(seen, Is.EqualTo(new[] { true }));
    }

    [Test]
    public void Unconnected_SetDoesNotThrow()
    {
        var line = new IrqLine();
        line.Pulse();
        line.Raise();
        Assert.That(line.Level, Is.True);
    }
}
