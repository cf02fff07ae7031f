using System.Text;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Machine;

/// <summary>The documentation's device set on the pc board (IDE disk, UHCI + tablet), driven over qtest and QMP.</summary>
[TestFixture]
public sealed class PcDevicesTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("colo-pcdev-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string RawDisk(int megabytes)
    {
        string path = Path.Combine(_dir, "disk.raw");
        using (FileStream f = File.Create(path))
        {
            f.SetLength(megabytes << 20);
        }
        return path;
    }

    [Test]
    public async Task Ide_IdentifyThroughLegacyPorts_ShowsQemuHarddisk()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults", "-drive", $"file={RawDisk(16)},format=raw,if=ide");
        Assert.That(await q.PciConfigReadAsync((1 << 3) | 1, 0), Is.EqualTo(0x70108086u));
        await q.OutAsync('b', 0x1F6, 0xA0);
        await q.OutAsync('b', 0x1F7, 0xEC); // IDENTIFY DEVICE
        Assert.That(await q.InAsync('b', 0x1F7) & 0x08, Is.EqualTo(0x08u), "DRQ");
        var words = new ushort[256];
        for (int i = 0; i < 256; i++)
        {
            words[i] = (ushort)await q.InAsync('w', 0x1F0);
        }
        var model = new StringBuilder();
        for (int i = 27; i < 47; i++)
        {
            model.Append((char)(words[i] >> 8)).Append((char)(words[i] & 0xFF));
        }
        Assert.Multiple(() =>
        {
            Assert.That(model.ToString().TrimEnd(), Is.EqualTo("QEMU HARDDISK"));
            Assert.That(words[60] | (words[61] << 16), Is.EqualTo(16 * 2048), "LBA28 capacity in sectors");
        });
    }

    [Test]
    public async Task Ide_WriteThenReadSectorByPio_ReachesTheImage()
    {
        string disk = RawDisk(4);
        using (QtestClient q = await QtestClient.StartAsync("-nodefaults", "-drive", $"file={disk},format=raw,if=ide"))
        {
            await q.OutAsync('b', 0x1F6, 0xE0); // LBA, master
            await q.OutAsync('b', 0x1F2, 1);
            await q.OutAsync('b', 0x1F3, 5);
            await q.OutAsync('b', 0x1F4, 0);
            await q.OutAsync('b', 0x1F5, 0);
            await q.OutAsync('b', 0x1F7, 0x30); // WRITE SECTORS
            for (int i = 0; i < 256; i++)
            {
                await q.OutAsync('w', 0x1F0, (ulong)(0x4100 + i));
            }
            await q.OutAsync('b', 0x1F7, 0xE7); // FLUSH CACHE
            Assert.That(await q.InAsync('b', 0x1F7) & 0x01, Is.Zero, "no error");
        }
        byte[] image = File.ReadAllBytes(disk);
        Assert.That(image[5 * 512], Is.EqualTo(0x00));
        Assert.That(image[(5 * 512) + 1], Is.EqualTo(0x41));
        Assert.That(image[(5 * 512) + 510], Is.EqualTo(0xFF));
    }

    [Test]
    public async Task Usb_TabletOnUhci_ShowsConnectedPortAndHotUnplugs()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults", "-device", "piix3-usb-uhci,id=usb0,addr=05.0", "-device", "usb-tablet,id=tab0");
        var qmp = QmpClient.OverStdio(q.Process);
        await qmp.HandshakeAsync();
        const int Uhci = 5 << 3;
        Assert.That(await q.PciConfigReadAsync(Uhci, 0), Is.EqualTo(0x70208086u));
        Assert.That(await q.PciConfigReadAsync(Uhci, 0x3D, 'b'), Is.EqualTo(4u), "INTD");
        await q.PciConfigWriteAsync(Uhci, 0x20, 0xC040); // BAR4
        await q.PciConfigWriteAsync(Uhci, 0x04, 0x0005, 'w'); // I/O + bus master
        ulong portsc1 = await q.InAsync('w', 0xC050);
        Assert.That(portsc1 & 0x3, Is.EqualTo(0x3u), "connected, connect status changed");
        // USB unplugs at once, so DEVICE_DELETED goes out while the command runs, before its reply (as QEMU).
        await qmp.SendAsync("{\"execute\":\"device_del\",\"arguments\":{\"id\":\"tab0\"}}\n");
        string evt = await qmp.NextLineAsync();
        Assert.That(evt, Does.Contain("\"DEVICE_DELETED\"").And.Contain("\"device\": \"tab0\"").And.Contain("/machine/peripheral/tab0"));
        string reply = await qmp.NextLineAsync();
        Assert.That(reply, Is.EqualTo("{\"return\": {}}"));
        Assert.That(await q.InAsync('w', 0xC050) & 0x1, Is.Zero, "disconnected");
        reply = await qmp.ExecuteAsync("{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"usb-tablet\",\"id\":\"tab1\",\"port\":\"2\"}}");
        Assert.That(reply, Is.EqualTo("{\"return\": {}}"));
        Assert.That(await q.InAsync('w', 0xC052) & 0x1, Is.EqualTo(1u), "port 2 connected");
    }

    [Test]
    public async Task DeviceAdd_Errors_AreQemus()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        var qmp = QmpClient.OverStdio(q.Process);
        await qmp.HandshakeAsync();
        Assert.Multiple(async () =>
        {
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"usb-tablet\"}}"),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"No 'usb-bus' bus found for device 'usb-tablet'\"}}"));
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device_del\",\"arguments\":{\"id\":\"nope\"}}"),
                Is.EqualTo("{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'nope' not found\"}}"));
        });
    }

    [Test]
    public async Task DocumentationDeviceSet_StartsWithInfoPciListingIt()
    {
        using QtestClient q = await QtestClient.StartAsync("-device", "piix3-usb-uhci", "-device", "usb-tablet",
            "-drive", $"if=ide,id=colo-disk0,driver=raw,file.filename={RawDisk(8)}");
        var qmp = QmpClient.OverStdio(q.Process);
        await qmp.HandshakeAsync();
        string pci = await qmp.ExecuteAsync("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info pci\"}}");
        Assert.That(pci, Does.Contain("PCI device 8086:1237").And.Contain("PCI device 8086:7000").And.Contain("PCI device 8086:7010").And.Contain("PCI device 8086:7020"));
    }

    /// <summary>
    /// One SeaBIOS boot on the interpreter checks the whole board as firmware sees it (one boot, since each takes
    /// tens of seconds): fw_cfg, PCI, the 8042 and its keyboard, both CPUs through INIT-SIPI-SIPI, the IDE disk,
    /// and the boot attempt that ends POST.
    /// </summary>
    [Test]
    [CancelAfter(400_000)]
    public async Task SeaBios_BootsOnTheInterpreter_FindingKeyboardCpusAndIdeDisk()
    {
        string log = Path.Combine(_dir, "seabios.log");
        using QemuProcess qemu = QemuProcess.Start("-M", "pc", "-smp", "2", "-nodefaults", "-display", "none", "-no-reboot",
            "-drive", $"file={RawDisk(16)},format=raw,if=ide",
            "-chardev", $"file,id=dbg,path={log}", "-device", "isa-debugcon,iobase=0x402,chardev=dbg");
        DateTime deadline = DateTime.UtcNow.AddSeconds(360);
        string text = "";
        while (DateTime.UtcNow < deadline && !text.Contains("No bootable device.", StringComparison.Ordinal))
        {
            await Task.Delay(500);
            text = File.Exists(log) ? ReadShared(log) : "";
            Assert.That(qemu.HasExited, Is.False, $"emulator exited; stderr:\n{qemu.Stderr}\nlog:\n{text}");
        }
        qemu.Terminate();
        Assert.Multiple(() =>
        {
            Assert.That(text, Does.StartWith("SeaBIOS (version "));
            Assert.That(text, Does.Contain("Found QEMU fw_cfg"));
            Assert.That(text, Does.Contain("Found 2 cpu(s) max supported 2 cpu(s)"), "the AP answered INIT-SIPI-SIPI");
            Assert.That(text, Does.Contain("PS2 keyboard initialized"));
            Assert.That(text, Does.Not.Contain("Timeout at i8042"));
            Assert.That(text, Does.Contain("ata0-0: QEMU HARDDISK ATA-7 Hard-Disk (16 MiBytes)"));
            Assert.That(text, Does.Contain("Booting from Hard Disk...\nBoot failed: not a bootable disk"));
            Assert.That(text, Does.Contain("No bootable device."), text);
        });
    }

    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
