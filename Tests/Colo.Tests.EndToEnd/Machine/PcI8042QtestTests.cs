using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Machine;

/// <summary>The 8042 on ports 0x60/0x64 through qtest; expected values recorded from QEMU 7.2 with the same script.</summary>
[TestFixture]
public sealed class PcI8042QtestTests
{
    [Test]
    public async Task I8042_StatusCommandByteKeyboardAndMouse_MatchQemu()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        Assert.That(await q.InAsync('b', 0x64), Is.EqualTo(0x18u), "A2 and unlocked at power-on");
        await q.OutAsync('b', 0x64, 0x20);
        Assert.That(await q.InAsync('b', 0x64), Is.EqualTo(0x19u));
        Assert.That(await q.InAsync('b', 0x60), Is.EqualTo(0x03u), "both interrupts enabled");
        await q.OutAsync('b', 0x64, 0xD0);
        Assert.That(await q.InAsync('b', 0x60), Is.EqualTo(0xCFu), "output port");
        await q.OutAsync('b', 0x60, 0xF2);
        Assert.That(await q.InAsync('b', 0x64), Is.EqualTo(0x19u));
        Assert.That(await q.InAsync('b', 0x60), Is.EqualTo(0xFAu));
        Assert.That(await q.InAsync('b', 0x60), Is.EqualTo(0xABu));
        Assert.That(await q.InAsync('b', 0x60), Is.EqualTo(0x83u));
        Assert.That(await q.InAsync('b', 0x64), Is.EqualTo(0x18u));
        await q.OutAsync('b', 0x64, 0xD4);
        await q.OutAsync('b', 0x60, 0xFF);
        Assert.That(await q.InAsync('b', 0x64), Is.EqualTo(0x39u), "mouse data flagged");
        Assert.That(await q.InAsync('b', 0x60), Is.EqualTo(0xFAu));
        Assert.That(await q.InAsync('b', 0x60), Is.EqualTo(0xAAu));
        Assert.That(await q.InAsync('b', 0x60), Is.EqualTo(0x00u));
        await q.OutAsync('b', 0x64, 0xAA);
        Assert.That(await q.InAsync('b', 0x64), Is.EqualTo(0x1Du), "system flag after self-test");
        Assert.That(await q.InAsync('b', 0x60), Is.EqualTo(0x55u));
        await q.OutAsync('b', 0x64, 0xC0);
        Assert.That(await q.InAsync('b', 0x60), Is.EqualTo(0x80u));
    }
}
