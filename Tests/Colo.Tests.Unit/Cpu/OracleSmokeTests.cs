namespace Colo.Tests.Unit.Cpu;

[TestFixture]
[NonParallelizable]
public sealed class OracleSmokeTests
{
    [Test]
    public void Native_DivBl_Runs()
    {
        using NativeOracle? o = NativeOracle.TryCreate();
        if (o is null)
        {
            Assert.Ignore("no oracle");
        }
        o.Load([0xF6, 0xF3]);
        ulong[] r = new ulong[17];
        r[0] = 0x59;
        r[3] = 0x33;
        r[16] = 2;
        o.Run(r);
        Assert.That(r[0] & 0xFFFF, Is.EqualTo(0x2601UL));
    }
}
