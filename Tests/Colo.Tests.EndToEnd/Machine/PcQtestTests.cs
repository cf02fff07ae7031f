using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Machine;

/// <summary>The pc board driven through qtest against the built binary, as QEMU's own device tests do.</summary>
[TestFixture]
public sealed class PcQtestTests
{
    private const int HostBridge = 0;
    private const int IsaBridge = 1 << 3;

    [Test]
    public async Task PciBus_HasI440fxAndPiix3WithQemuIdentities()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        Assert.Multiple(async () =>
        {
            Assert.That(await q.PciConfigReadAsync(HostBridge, 0x00), Is.EqualTo(0x12378086u));
            Assert.That(await q.PciConfigReadAsync(HostBridge, 0x08) >> 8, Is.EqualTo(0x060000u));
            Assert.That(await q.PciConfigReadAsync(IsaBridge, 0x00), Is.EqualTo(0x70008086u));
            Assert.That(await q.PciConfigReadAsync(IsaBridge, 0x08) >> 8, Is.EqualTo(0x060100u));
            Assert.That(await q.PciConfigReadAsync(IsaBridge, 0x0E, 'b'), Is.EqualTo(0x80u), "PIIX3 is multi-function");
            Assert.That(await q.PciConfigReadAsync(IsaBridge, 0x60), Is.EqualTo(0x80808080u), "PIRQ routes start disabled");
            Assert.That(await q.PciConfigReadAsync(5 << 3, 0x00), Is.EqualTo(0xFFFFFFFFu), "empty slot");
        });
    }

    [Test]
    public async Task PiixPirqRoute_IsWritableButKeepsReservedBits()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        await q.PciConfigWriteAsync(IsaBridge, 0x60, 0x0B0A0B0A);
        Assert.That(await q.PciConfigReadAsync(IsaBridge, 0x60), Is.EqualTo(0x0B0A0B0Au));
        await q.PciConfigWriteAsync(IsaBridge, 0x61, 0x7F, 'b');
        Assert.That(await q.PciConfigReadAsync(IsaBridge, 0x61, 'b'), Is.EqualTo(0x0Fu), "bits 6:4 are reserved");
    }

    [Test]
    public async Task BiosRom_IsAtTopOf4GAndAliasedBelow1M()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        ulong high = await q.ReadAsync('q', 0xFFFFFFF0);
        ulong low = await q.ReadAsync('q', 0xFFFF0);
        Assert.That(low, Is.EqualTo(high), "isa-bios alias");
        Assert.That(high & 0xFF, Is.EqualTo(0xEAu), "SeaBIOS's reset vector is a far jump");
        await q.WriteAsync('q', 0xFFFFFFF0, 0);
        Assert.That(await q.ReadAsync('q', 0xFFFFFFF0), Is.EqualTo(high), "ROM ignores writes");
    }

    [Test]
    public async Task Pam_SteersLegacyWindowBetweenRomAndRam()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        ulong rom = await q.ReadAsync('l', 0xF0000);
        // PAM0 = 0x30: the 0xF0000 segment reads and writes DRAM.
        await q.PciConfigWriteAsync(HostBridge, 0x59, 0x30, 'b');
        await q.WriteAsync('l', 0xF0000, 0xC0FFEE);
        Assert.That(await q.ReadAsync('l', 0xF0000), Is.EqualTo(0xC0FFEEu));
        // PAM0 = 0x10: reads still DRAM, writes go to the bus and are lost.
        await q.PciConfigWriteAsync(HostBridge, 0x59, 0x10, 'b');
        await q.WriteAsync('l', 0xF0000, 0x1234);
        Assert.That(await q.ReadAsync('l', 0xF0000), Is.EqualTo(0xC0FFEEu));
        // PAM0 = 0: the ROM is back.
        await q.PciConfigWriteAsync(HostBridge, 0x59, 0x00, 'b');
        Assert.That(await q.ReadAsync('l', 0xF0000), Is.EqualTo(rom));
    }

    [Test]
    public async Task Ram_IsReadableAndWritableThroughQtest()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults", "-m", "64");
        byte[] data = new byte[5000];
        new Random(7).NextBytes(data);
        await q.MemWriteAsync(0x123456, data);
        Assert.That(await q.MemReadAsync(0x123456, data.Length), Is.EqualTo(data));
        Assert.That(await q.OkAsync("read 0x123456 0x2"), Is.EqualTo($"0x{data[0]:x2}{data[1]:x2}"));
        await q.OkAsync("memset 0x2000 0x10 0x5a");
        Assert.That(await q.ReadAsync('q', 0x2008), Is.EqualTo(0x5A5A5A5A5A5A5A5Aul));
    }

    [Test]
    public async Task Cmos_ReportsMemorySizesForSeaBios()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults", "-m", "512");
        async Task<ulong> Cmos(int index)
        {
            await q.OutAsync('b', 0x70, (ulong)index);
            return await q.InAsync('b', 0x71);
        }
        ulong above16M = await Cmos(0x34) | (await Cmos(0x35) << 8);
        ulong extended = await Cmos(0x30) | (await Cmos(0x31) << 8);
        Assert.Multiple(() =>
        {
            Assert.That(above16M, Is.EqualTo((512UL - 16) * 1024 * 1024 / 65536));
            Assert.That(extended, Is.EqualTo(0xFFFFu), "capped at 64 MiB - 1 KiB");
        });
    }

    [Test]
    public async Task Rtc_PeriodicInterrupt_ArrivesOnIoApicPin8()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        await q.OkAsync("irq_intercept_in ioapic");
        await q.OutAsync('b', 0x70, 0x0A);
        await q.OutAsync('b', 0x71, 0x26); // divider on, rate 6: 1024 Hz
        await q.OutAsync('b', 0x70, 0x0B);
        await q.OutAsync('b', 0x71, 0x42); // PIE, 24-hour
        Assert.That(q.GetIrq(8), Is.False);
        await q.ClockStepAsync(1_000_000);
        Assert.That(q.GetIrq(8), Is.True, "a periodic interrupt within 1 ms at 1024 Hz");
        await q.OutAsync('b', 0x70, 0x0C);
        ulong regC = await q.InAsync('b', 0x71);
        Assert.That(regC & 0xC0, Is.EqualTo(0xC0u), "IRQF and PF");
        await q.OkAsync("endianness"); // flush any IRQ line that follows the read
        Assert.That(q.GetIrq(8), Is.False, "reading C lowers the line");
    }

    [Test]
    public async Task Pit_Channel0_RaisesIoApicPin2()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        await q.OkAsync("irq_intercept_in ioapic");
        await q.OutAsync('b', 0x43, 0x34); // channel 0, lobyte/hibyte, mode 2
        await q.OutAsync('b', 0x40, 0xA9);
        await q.OutAsync('b', 0x40, 0x04); // 1193 ticks: ~1 ms
        bool sawHigh = false;
        for (int i = 0; i < 20 && !sawHigh; i++)
        {
            await q.ClockStepAsync(100_000);
            sawHigh = q.GetIrq(2);
        }
        Assert.That(sawHigh, Is.True);
    }

    [Test]
    public async Task Serial_WritesReachTheChardevFile()
    {
        string dir = Directory.CreateTempSubdirectory("colo-serial-").FullName;
        string file = Path.Combine(dir, "com1.txt");
        using (QtestClient q = await QtestClient.StartAsync("-nodefaults", "-serial", $"file:{file}"))
        {
            foreach (char c in "hello\n")
            {
                await q.OutAsync('b', 0x3F8, c);
            }
            Assert.That(await q.InAsync('b', 0x3FD) & 0x60, Is.EqualTo(0x60u), "THRE and TEMT after instant transmit");
            // Loopback: what goes out comes back on RBR.
            await q.OutAsync('b', 0x3FC, 0x10);
            await q.OutAsync('b', 0x3F8, 'Z');
            Assert.That(await q.InAsync('b', 0x3F8), Is.EqualTo((ulong)'Z'));
        }
        Assert.That(File.ReadAllText(file), Is.EqualTo("hello\n"));
        Directory.Delete(dir, recursive: true);
    }

    [Test]
    public async Task IsaDebugExit_EndsTheProcessWithQemusStatus()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04");
        await q.CommandAsync("outb 0xf4 0x2");
        Assert.That(q.Process.WaitForExit(), Is.EqualTo(5));
    }

    [Test]
    public async Task ResetControlRegister_ResetsTheMachine()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        var qmp = QmpClient.OverStdio(q.Process);
        await qmp.HandshakeAsync();
        await q.PciConfigWriteAsync(HostBridge, 0x59, 0x30, 'b');
        await q.OutAsync('b', 0xCF9, 0x06);
        string line = await qmp.NextLineAsync();
        Assert.That(line, Does.Contain("\"RESET\"").And.Contain("guest-reset"));
        await qmp.ExecuteAsync("{\"execute\":\"query-status\"}");
        Assert.That(await q.PciConfigReadAsync(HostBridge, 0x59, 'b'), Is.EqualTo(0u), "PAM back to power-on");
    }

    [Test]
    public async Task MalformedLines_GetFailRepliesAndTheServerCarriesOn()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        string[] bad = ["inb", "outb 0x80", "inb 0x10000", "inb zz", "read 0x0 0", "write 0x0 0x2 zz", "b64write 0 4 !!!", "frobnicate", "readq", "clock_set", "set_irq_in ioapic x 99 1"];
        foreach (string line in bad)
        {
            Assert.That(await q.CommandAsync(line), Does.StartWith("FAIL"), line);
        }
        Assert.That(await q.OkAsync("endianness"), Is.EqualTo("little"));
    }

    [Test]
    public async Task RandomPortAndMmioAccesses_NeverCrashTheEmulator()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults", "-m", "32");
        var random = new Random(1234);
        char[] sizes = ['b', 'w', 'l'];
        ulong[] holes = [0xA0000, 0xC0000, 0xFEC00000, 0xFED00000, 0xE0000000, 0xFFFC0000, 0x2000000, 0x100000000];
        for (int i = 0; i < 3000; i++)
        {
            char size = sizes[random.Next(3)];
            ushort port = (ushort)random.Next(0x10000);
            if (port is >= 0xCF8 and <= 0xCFF && random.Next(4) != 0)
            {
                continue; // keep most accesses away from config-space so the fuzz covers more devices
            }
            if (random.Next(2) == 0)
            {
                await q.InAsync(size, port);
            }
            else
            {
                await q.OutAsync(size, port, (ulong)random.NextInt64());
            }
            if (i % 4 == 0)
            {
                ulong address = holes[random.Next(holes.Length)] + (ulong)random.Next(0x1000);
                if (random.Next(2) == 0)
                {
                    await q.ReadAsync(size, address);
                }
                else
                {
                    await q.WriteAsync(size, address, (ulong)random.NextInt64());
                }
            }
        }
        Assert.That(await q.OkAsync("endianness"), Is.EqualTo("little"));
        Assert.That(q.Process.HasExited, Is.False);
    }

    [Test]
    public void MissingBios_FailsLikeQemu()
    {
        (int code, _, string stderr) = QemuProcess.Run("-M", "pc", "-accel", "qtest", "-display", "none", "-bios", "/nonexistent/bios.bin");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Is.EqualTo("qemu-system-x86_64: could not load PC BIOS '/nonexistent/bios.bin'\n"));
    }
}
