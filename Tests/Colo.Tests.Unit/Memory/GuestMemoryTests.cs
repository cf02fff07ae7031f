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
    public void WriteToCodePage_BumpsThatPagesVersionOnce()
    {
        using var ram = new RamBlock("pc.ram", 2 * 4096);
        var memory = new GuestMemory(ram, new RecordingIoBus());
        int start = memory.CodeGeneration;
        int slot = memory.CodeVersionIndex(1);
        memory.MarkCode(1);
        memory.Write(10, [1]);
        Assert.That(memory.CodeVersions, Is.All.Zero, "page 0 holds no code");
        memory.Write(4096 + 10, [1]);
        Assert.That(memory.CodeVersions[slot], Is.EqualTo(1));
        memory.Write(4096 + 11, [1]);
        Assert.That(memory.CodeVersions[slot], Is.EqualTo(1), "bit cleared after the first write");
        memory.MarkCode(1);
        memory.NotifyCodeWrite(1);
        Assert.That(memory.CodeVersions[slot], Is.EqualTo(2), "a vCPU's own store to a code page");
        Assert.That(memory.CodeVersions[memory.CodeVersionIndex(0)], Is.Zero);
        Assert.That(memory.CodeGeneration, Is.EqualTo(start), "no machine-wide flush for one page");
    }

    [Test]
    public unsafe void LegacyWindow_StartsAsBusAndFollowsPageSettings()
    {
        using var ram = new RamBlock("pc.ram", 2 << 20);
        var io = new RecordingIoBus();
        var memory = new GuestMemory(ram, io, ram.Size, legacyWindow: true);
        using var rom = new RomBlock("rom", new byte[] { 0xEA, 0x5B, 0xE0 });
        Assert.Multiple(() =>
        {
            Assert.That(memory.IsDirect(0x9F000), Is.True);
            Assert.That(memory.IsDirect(0xA0000), Is.False);
            Assert.That(memory.IsDirect(0xFFFFF), Is.False);
            Assert.That(memory.IsDirect(0x100000), Is.True);
        });
        memory.Write(0xF0000, [1]);
        Assert.That(io.MmioWrites, Has.Count.EqualTo(1), "bus write while unmapped");
        memory.SetLegacyPage(0xF0000, LegacyPageRead.Rom, writeRam: false, rom, 0);
        int generation = memory.CodeGeneration;
        Assert.That(memory.ReadSlow(0xF0000, 2), Is.EqualTo(0x5BEAul));
        memory.WriteSlow(0xF0000, 1, 0x99);
        Assert.That(memory.ReadSlow(0xF0000, 1), Is.EqualTo(0xEAul), "ROM discards writes");
        Assert.That(memory.GetFetchPointer(0xF0001) == rom.HostPointer + 1, Is.True);
        memory.SetLegacyPage(0xF0000, LegacyPageRead.Ram, writeRam: true);
        Assert.That(memory.CodeGeneration, Is.GreaterThan(generation), "remapping drops decoded code");
        memory.WriteSlow(0xF0000, 1, 0x77);
        Assert.That(ram.GetSpan(0xF0000, 1)[0], Is.EqualTo(0x77));
    }

    [Test]
    public unsafe void HighRam_IsMappedAt4GAndRomAtTheTop()
    {
        using var ram = new RamBlock("pc.ram", 3 * 4096);
        var memory = new GuestMemory(ram, new RecordingIoBus(), 4096, legacyWindow: false);
        memory.Write(GuestMemory.HighRamBase + 4, [9, 8]);
        Assert.That(ram.GetSpan(4096 + 4, 2).ToArray(), Is.EqualTo(new byte[] { 9, 8 }));
        Assert.That(memory.IsDirect(4096), Is.False);
        using var rom = new RomBlock("bios", new byte[8192]);
        memory.AddRom(0xFFFFE000, rom);
        Assert.That(memory.GetFetchPointer(0xFFFFF000) == rom.HostPointer + 0x1000, Is.True);
        memory.MarkCode(GuestMemory.HighRamBase / 4096);
        Assert.That(ram.CodePages.Test(1), Is.True, "code tracking follows the RAM offset");
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
