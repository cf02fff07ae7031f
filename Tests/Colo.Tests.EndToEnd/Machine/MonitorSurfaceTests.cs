using System.Text.Json;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Machine;

/// <summary>
/// The machine's monitor surface against QEMU 7.2's replies: query-machines, query-cpus-fast, qom-list-types,
/// device-list-properties, device_del refusals, HMP info qtree/cpus/pci, and the exit status on SIGTERM.
/// </summary>
[TestFixture]
public sealed class MonitorSurfaceTests
{
    private static async Task<(QtestClient Q, QmpClient Qmp)> StartAsync(params string[] args)
    {
        QtestClient q = await QtestClient.StartAsync(args);
        var qmp = QmpClient.OverStdio(q.Process);
        await qmp.HandshakeAsync();
        return (q, qmp);
    }

    private static async Task<string> HmpAsync(QmpClient qmp, string command)
    {
        string reply = await qmp.ExecuteAsync($"{{\"execute\":\"human-monitor-command\",\"arguments\":{{\"command-line\":\"{command}\"}}}}");
        return QmpClient.Parse(reply).GetProperty("return").GetString()!.Replace("\r\n", "\n", StringComparison.Ordinal);
    }

    [Test]
    public async Task QueryMachines_ReportsPcAsQemu72Does()
    {
        (QtestClient q, QmpClient qmp) = await StartAsync("-nodefaults");
        using (q)
        {
            string reply = await qmp.ExecuteAsync("{\"execute\":\"query-machines\"}");
            Assert.That(reply, Does.Contain("{\"hotpluggable-cpus\": true, \"name\": \"pc-i440fx-7.2\", \"numa-mem-supported\": false, \"default-cpu-type\": \"qemu64-x86_64-cpu\", \"is-default\": true, \"cpu-max\": 255, \"deprecated\": false, \"default-ram-id\": \"pc.ram\", \"alias\": \"pc\"}"));
            Assert.That(reply, Does.Contain("{\"hotpluggable-cpus\": false, \"name\": \"none\", \"numa-mem-supported\": false, \"cpu-max\": 1, \"deprecated\": false, \"default-ram-id\": \"ram\"}"));
        }
    }

    [Test]
    public async Task QueryCpusFast_ListsEachCpuWithQemuPathsAndTopology()
    {
        (QtestClient q, QmpClient qmp) = await StartAsync("-nodefaults", "-smp", "3");
        using (q)
        {
            JsonElement cpus = QmpClient.Parse(await qmp.ExecuteAsync("{\"execute\":\"query-cpus-fast\"}")).GetProperty("return");
            Assert.That(cpus.GetArrayLength(), Is.EqualTo(3));
            string[] paths = ["/machine/unattached/device[0]", "/machine/unattached/device[2]", "/machine/unattached/device[3]"];
            for (int i = 0; i < 3; i++)
            {
                JsonElement cpu = cpus[i];
                Assert.Multiple(() =>
                {
                    Assert.That(cpu.GetProperty("cpu-index").GetInt32(), Is.EqualTo(i));
                    Assert.That(cpu.GetProperty("qom-path").GetString(), Is.EqualTo(paths[i]));
                    Assert.That(cpu.GetProperty("target").GetString(), Is.EqualTo("x86_64"));
                    Assert.That(cpu.GetProperty("thread-id").GetInt32(), Is.GreaterThan(0));
                    Assert.That(cpu.GetProperty("props").GetRawText(), Is.EqualTo($"{{\"core-id\": {i}, \"thread-id\": 0, \"socket-id\": 0}}"));
                });
            }
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/machine/unattached/device[2]\",\"property\":\"type\"}}"),
                Is.EqualTo("{\"return\": \"qemu64-x86_64-cpu\"}"));
            string text = await HmpAsync(qmp, "info cpus");
            Assert.That(text, Does.Match(@"^\* CPU #0: thread_id=\d+\n  CPU #1: thread_id=\d+\n  CPU #2: thread_id=\d+\n$"));
        }
    }

    [Test]
    public async Task QomListTypes_FollowsParentsAndAbstractFlag()
    {
        (QtestClient q, QmpClient qmp) = await StartAsync("-nodefaults");
        using (q)
        {
            string isa = await qmp.ExecuteAsync("{\"execute\":\"qom-list-types\",\"arguments\":{\"implements\":\"isa-device\"}}");
            Assert.That(isa, Does.Contain("{\"name\": \"pc-testdev\", \"parent\": \"isa-device\"}").And.Contain("{\"name\": \"isa-debug-exit\", \"parent\": \"isa-device\"}")
                .And.Contain("{\"name\": \"isa-i8259\", \"parent\": \"pic-common\"}").And.Not.Contain("pci-testdev"));
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"qom-list-types\",\"arguments\":{\"implements\":\"pci-testdev\",\"abstract\":true}}"),
                Is.EqualTo("{\"return\": [{\"name\": \"pci-testdev\", \"parent\": \"pci-device\"}]}"));
            string all = await qmp.ExecuteAsync("{\"execute\":\"qom-list-types\",\"arguments\":{\"implements\":\"device\",\"abstract\":true}}");
            foreach (string name in new[] { "device", "pci-device", "isa-device", "usb-device", "sys-bus-device" })
            {
                Assert.That(all, Does.Contain($"{{\"abstract\": true, \"name\": \"{name}\""), name);
            }
            Assert.That(all, Does.Contain("{\"name\": \"usb-tablet\", \"parent\": \"usb-hid\"}").And.Contain("{\"name\": \"piix3-usb-uhci\", \"parent\": \"pci-uhci-usb\"}"));
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"qom-list-types\",\"arguments\":{\"implements\":\"nosuch\"}}"), Is.EqualTo("{\"return\": []}"));
        }
    }

    [Test]
    public async Task DeviceListProperties_GivesTypesDefaultsAndQemuErrors()
    {
        (QtestClient q, QmpClient qmp) = await StartAsync("-nodefaults");
        using (q)
        {
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device-list-properties\",\"arguments\":{\"typename\":\"isa-debug-exit\"}}"),
                Is.EqualTo("{\"return\": [{\"default-value\": 1281, \"name\": \"iobase\", \"type\": \"uint32\"}, {\"default-value\": 2, \"name\": \"iosize\", \"type\": \"uint32\"}]}"));
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device-list-properties\",\"arguments\":{\"typename\":\"pc-testdev\"}}"), Is.EqualTo("{\"return\": []}"));
            string pci = await qmp.ExecuteAsync("{\"execute\":\"device-list-properties\",\"arguments\":{\"typename\":\"pci-testdev\"}}");
            Assert.That(pci, Does.Contain("{\"default-value\": 0, \"name\": \"membar\", \"type\": \"size\"}")
                .And.Contain("{\"default-value\": -1, \"name\": \"addr\", \"description\": \"Slot and optional function number, example: 06.0 or 06\", \"type\": \"int32\"}")
                .And.Contain("{\"default-value\": false, \"name\": \"multifunction\", \"description\": \"on/off\", \"type\": \"bool\"}")
                .And.Not.Contain("\"bus\""));
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device-list-properties\",\"arguments\":{\"typename\":\"nosuch\"}}"),
                Is.EqualTo("{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'nosuch' not found\"}}"));
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device-list-properties\",\"arguments\":{\"typename\":\"pci-device\"}}"),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'typename' expects a non-abstract device type\"}}"));
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"i440FX\"}}"),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'driver' expects a pluggable device type\"}}"));
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"pci-device\"}}"),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'driver' expects a non-abstract device type\"}}"));
        }
    }

    [Test]
    public async Task DeviceDel_RefusesWhatCannotBeUnpluggedWithQemuTexts()
    {
        (QtestClient q, QmpClient qmp) = await StartAsync("-nodefaults", "-device", "isa-debugcon,id=dc", "-device", "pci-testdev,id=pt");
        using (q)
        {
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device_del\",\"arguments\":{\"id\":\"dc\"}}"),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Bus 'isa.0' does not support hotplugging\"}}"));
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device_del\",\"arguments\":{\"id\":\"pt\"}}"),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Bus 'pci.0' does not support hotplugging\"}}"));
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device_del\",\"arguments\":{\"id\":\"nope\"}}"),
                Is.EqualTo("{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'nope' not found\"}}"));
        }
    }

    [Test]
    public async Task InfoQtree_ShowsBusesDevicesPropertiesAndPciLines()
    {
        (QtestClient q, QmpClient qmp) = await StartAsync("-nodefaults", "-device", "piix3-usb-uhci,id=u", "-device", "usb-tablet,id=t",
            "-device", "isa-debug-exit", "-device", "pci-testdev");
        using (q)
        {
            string text = await HmpAsync(qmp, "info qtree");
            Assert.That(text, Does.StartWith("bus: main-system-bus\n  type System\n"));
            Assert.That(text, Does.Contain(
                "      dev: pci-testdev, id \"\"\n" +
                "        membar = 0 (0 B)\n" +
                "        addr = 03.0\n" +
                "        romfile = \"\"\n" +
                "        romsize = 4294967295 (0xffffffff)\n" +
                "        rombar = 1 (0x1)\n" +
                "        multifunction = false\n" +
                "        x-pcie-lnksta-dllla = true\n" +
                "        x-pcie-extcap-init = true\n" +
                "        failover_pair_id = \"\"\n" +
                "        acpi-index = 0 (0x0)\n" +
                "        class Class 00ff, addr 00:03.0, pci id 1b36:0005 (sub 1af4:1100)\n" +
                "        bar 0: mem at 0xffffffffffffffff [0xffe]\n" +
                "        bar 1: i/o at 0xffffffffffffffff [0xfe]\n" +
                "      dev: piix3-usb-uhci, id \"u\"\n"));
            Assert.That(text, Does.Contain(
                "        bus: u.0\n" +
                "          type usb-bus\n" +
                "          dev: usb-tablet, id \"t\"\n" +
                "            usb_version = 2 (0x2)\n" +
                "            display = \"\"\n" +
                "            head = 0 (0x0)\n" +
                "            port = \"\"\n" +
                "            serial = \"\"\n" +
                "            msos-desc = true\n" +
                "            pcap = \"\"\n" +
                "            addr 0.0, port 1, speed 12, name QEMU USB Tablet, attached\n"));
            Assert.That(text, Does.Contain(
                "        bus: isa.0\n" +
                "          type ISA\n" +
                "          dev: isa-debug-exit, id \"\"\n" +
                "            iobase = 1281 (0x501)\n" +
                "            iosize = 2 (0x2)\n" +
                "          dev: port92, id \"\"\n" +
                "            gpio-out \"a20\" 1\n"));
            Assert.That(text, Does.Contain("  dev: ioapic, id \"\"\n    gpio-in \"\" 24\n    version = 32 (0x20)\n    mmio 00000000fec00000/0000000000001000\n"));
            string pci = await HmpAsync(qmp, "info pci");
            Assert.That(pci, Does.Contain("    Class 0255: PCI device 1b36:0005\n      PCI subsystem 1af4:1100\n      BAR0: 32 bit memory at 0xffffffffffffffff [0x00000ffe].\n      BAR1: I/O at 0xffffffffffffffff [0x00fe].\n      id \"\"\n"));
            Assert.That(pci, Does.Contain("      BAR4: I/O at 0xffffffffffffffff [0x001e].\n      id \"u\"\n"));
        }
    }

    [Test]
    public async Task BoardParts_HaveQemuQomPathsAndRefuseUnplugWithQemuTexts()
    {
        (QtestClient q, QmpClient qmp) = await StartAsync("-nodefaults");
        using (q)
        {
            string[] expected = ["i440FX", "PIIX3", "mc146818rtc", "isa-pit", "i8042", "port92", "piix3-ide"];
            int[] indices = [2, 3, 9, 10, 13, 16, 17];
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.That(await qmp.ExecuteAsync($"{{\"execute\":\"qom-get\",\"arguments\":{{\"path\":\"/machine/unattached/device[{indices[i]}]\",\"property\":\"type\"}}}}"),
                    Is.EqualTo($"{{\"return\": \"{expected[i]}\"}}"), expected[i]);
            }
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device_del\",\"arguments\":{\"id\":\"/machine/unattached/device[17]\"}}"),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Device 'piix3-ide' does not support hotplugging\"}}"));
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device_del\",\"arguments\":{\"id\":\"/machine/unattached/device[9]\"}}"),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Bus 'isa.0' does not support hotplugging\"}}"));
            Assert.That(await qmp.ExecuteAsync("{\"execute\":\"device_del\",\"arguments\":{\"id\":\"/machine/i440fx\"}}"),
                Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Bus 'main-system-bus' does not support hotplugging\"}}"));
        }
    }

    [Test]
    public async Task IrqInterceptOut_ReportsTheRtcOutputAndStillDeliversIt()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        Assert.That(await q.CommandAsync("irq_intercept_out /machine/unattached/device[404]"), Is.EqualTo("FAIL Unknown device"));
        Assert.That(await q.CommandAsync("irq_intercept_out /machine/unattached/device[9]"), Is.EqualTo("OK"));
        Assert.That(await q.CommandAsync("irq_intercept_out /machine/unattached/device[9]"), Is.EqualTo("OK"), "again on the same device");
        Assert.That(await q.CommandAsync("irq_intercept_in ioapic"), Is.EqualTo("FAIL IRQ intercept already enabled"));
        // Periodic interrupt at 1024 Hz: register A rate 6, register B PIE.
        await q.OutAsync('b', 0x70, 0x0A);
        await q.OutAsync('b', 0x71, 0x26);
        await q.OutAsync('b', 0x70, 0x0B);
        await q.OutAsync('b', 0x71, 0x42);
        await q.ClockStepAsync(2_000_000);
        Assert.That(q.GetIrq(0), Is.True, "the RTC's output (its GPIO 0) raised");
        await q.OutAsync('b', 0x20, 0x0A); // OCW3: read IRR of the master PIC
        Assert.That(await q.InAsync('b', 0x20) & 0x04, Is.EqualTo(0x04u), "still delivered: cascade IRQ 2 pending for IRQ 8");
        await q.OutAsync('b', 0x70, 0x0C);
        await q.InAsync('b', 0x71);
        await q.OkAsync("endianness");
        Assert.That(q.GetIrq(0), Is.False, "reading register C lowers it");
    }

    [Test]
    public async Task Sigterm_EndsTheQtestMachineWithStatusZero()
    {
        QtestClient q = await QtestClient.StartAsync("-nodefaults");
        using (q)
        {
            await q.OkAsync("endianness");
            q.Process.Terminate();
            Assert.That(q.Process.WaitForExit(), Is.EqualTo(0));
            Assert.That(q.Process.Stderr, Does.Contain("qemu-system-x86_64: terminating on signal 15"));
        }
    }
}
