using Colo.Devices.Firmware;
using Colo.Devices.Pc.Boot;
using Colo.Tests.Unit.Memory;

namespace Colo.Tests.Unit.Devices.Firmware;

[TestFixture]
public sealed class PcFwCfgTests
{
    private static byte[] Read(FwCfg fw, ushort key, int count)
    {
        fw.Write(FwCfg.SelectorOffset, 2, key);
        byte[] b = new byte[count];
        for (int i = 0; i < count; i++)
        {
            b[i] = (byte)fw.Read(FwCfg.DataOffset, 1);
        }
        return b;
    }

    private static string Hex(byte[] b) => Convert.ToHexStringLower(b);

    [Test]
    public void AddDefaults_MatchesQemu72PcWith128M()
    {
        // Expected bytes read from `qemu-system-x86_64 -M pc -m 128M -nodefaults` 7.2 over qtest (24-byte reads).
        var fw = new FwCfg(new FakePhysicalMemory(0x1000));
        PcFwCfg.AddDefaults(fw, new PcFwCfgConfig(128 << 20, PcMemoryMap.Build(128 << 20, amdHtHole: true)));
        Assert.That(Hex(Read(fw, FwCfg.KeyRamSize, 24)), Is.EqualTo("000000080000000000000000000000000000000000000000"));
        Assert.That(Hex(Read(fw, FwCfg.KeyNbCpus, 24)), Is.EqualTo("010000000000000000000000000000000000000000000000"));
        Assert.That(Hex(Read(fw, FwCfg.KeyMaxCpus, 24)), Is.EqualTo("010000000000000000000000000000000000000000000000"));
        Assert.That(Hex(Read(fw, FwCfg.KeyIrq0Override, 24)), Is.EqualTo("010000000000000000000000000000000000000000000000"));
        Assert.That(Hex(Read(fw, FwCfg.KeyHpet, 24)), Is.EqualTo("0101a286800000d0fe000000000000000000000000000000"));
        foreach (ushort k in new[] { FwCfg.KeyNoGraphic, FwCfg.KeyBootMenu, FwCfg.KeyNuma, FwCfg.KeyUuid, FwCfg.KeyE820Table,
                     FwCfg.KeyAcpiTables })
        {
            Assert.That(Read(fw, k, 24), Is.EqualTo(new byte[24]), $"key 0x{k:x}");
        }
        Assert.That(fw.GetFile("etc/system-states"), Is.EqualTo(new byte[] { 0x80, 0, 0, 0x81, 0x82, 0x80 }));
        Assert.That(fw.GetFile("etc/boot-fail-wait"), Is.EqualTo(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }));
        Assert.That(fw.GetFile("bootorder"), Is.Empty);
        Assert.That(fw.GetFile("bios-geometry"), Is.Empty);
        byte[] e820 = fw.GetFile("etc/e820")!;
        Assert.That(e820, Has.Length.EqualTo(40));
        Assert.That(Hex(e820), Is.EqualTo(
            "00000000fd000000" + "0000000003000000" + "02000000" + "0000000000000000" + "0000000800000000" + "01000000"));
    }

    [Test]
    public void BootOrder_IsNewlineSeparatedAndNulTerminated()
    {
        // QEMU 7.2 with -kernel listed bootorder as 31 bytes: the linuxboot_dma.bin ROM path plus NUL.
        Assert.That(PcFwCfg.BootOrder([PcFwCfg.RomBootPath("linuxboot_dma.bin")]), Has.Length.EqualTo(31));
        Assert.That(PcFwCfg.BootOrder([PcFwCfg.RomBootPath(PvhLoader.OptionRomName)]), Has.Length.EqualTo(21));
        Assert.That(PcFwCfg.BootOrder(["/a", "/b"]), Is.EqualTo("/a\n/b\0"u8.ToArray()));
        Assert.That(PcFwCfg.BootOrder([]), Is.Empty);
        var fw = new FwCfg(new FakePhysicalMemory(0x1000));
        PcFwCfg.SetBootOrder(fw, ["/x"]);
        Assert.That(fw.GetFile("bootorder"), Is.EqualTo("/x\0"u8.ToArray()));
    }
}
