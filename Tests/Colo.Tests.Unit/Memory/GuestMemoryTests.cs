using Colo.Core.Memory;
using Colo.Tests.Unit.Cpu;

namespace Colo.Tests.Unit.Memory;

[TestFixture]
public sealed class GuestMemoryTests
{
    [Test]
    public void RamBlock_IsZeroedAndPageRounded()
    {
        using var ram = new RamBlock("pc.ram", 10_000);
        Assert.That(ram.Size, Is.EqualTo(12_288UL));
        Assert.That(ram.GetSpan(0, (int)ram.Size).ToArray(), Is.All.EqualTo((byte)0));
        Assert.That(ram.CodePages.PageCount, Is.EqualTo(3UL));
    }

    [Test]
    public void RamBlock_SpanOutsideBlock_Throws()
    {
        using var ram = new RamBlock("pc.ram", 4096);
        Assert.That(() => ram.GetSpan(4000, 200), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void Write_ThenRead_RoundTripsAcrossPages()
    {
        using var ram = new RamBlock("pc.ram", 3 * 4096);
        var memory = new GuestMemory(ram, new RecordingIoBus());
        byte[] data = new byte[6000];
        new Random(3).NextBytes(data);
        memory.Write(1000, data);
        byte[] back = new byte[6000];
        memory.Read(1000, back);
        Assert.That(back, Is.EqualTo(data));
        Assert.That(ram.DirtyPages.Test(0) && ram.DirtyPages.Test(1), Is.True);
    }

    [Test]
    public void BeyondRam_GoesToMmio()
    {
        using var ram = new RamBlock("pc.ram", 4096);
        var io = new RecordingIoBus();
        var memory = new GuestMemory(ram, io);
        memory.Write(4094, [1, 2, 3, 4]);
        byte[] back = new byte[4];
        memory.Read(4094, back);
        Assert.Multiple(() =>
        {
            Assert.That(io.MmioWrites, Is.EqualTo(new[] { (4096UL, 0x0403UL, 2) }));
            Assert.That(back, Is.EqualTo(new byte[] { 1, 2, 0xFF, 0xFF }));
        });
    }

    [Test]
    public void WriteToCodePage_BumpsGenerationOnce()
    {
        using var ram = new RamBlock("pc.ram", 2 * 4096);
        var memory = new GuestMemory(ram, new RecordingIoBus());
        int start = memory.CodeGeneration;
        memory.MarkCode(1);
        memory.Write(10, [1]);
        Assert.That(memory.CodeGeneration, Is.EqualTo(start), "page 0 holds no code");
        memory.Write(4096 + 10, [1]);
        Assert.That(memory.CodeGeneration, Is.EqualTo(start + 1));
        memory.Write(4096 + 11, [1]);
        Assert.That(memory.CodeGeneration, Is.EqualTo(start + 1), "bit cleared after the first write");
    }

    [Test]
    public void PageBitmap_SetTestClear()
    {
        var bitmap = new PageBitmap(130);
        bitmap.Set(129);
        Assert.That(bitmap.Test(129), Is.True);
        Assert.That(bitmap.Test(128), Is.False);
        Assert.That(bitmap.TestAndClear(129), Is.True);
        Assert.That(bitmap.TestAndClear(129), Is.False);
    }
}
