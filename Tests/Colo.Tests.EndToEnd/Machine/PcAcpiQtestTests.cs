using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Machine;

/// <summary>
/// The PIIX4 power-management function and the ACPI tables through qtest: fw_cfg files read with the DMA interface
/// and linked by a loader written here (independently of Colo's), PM registers, the power button and S5.
/// </summary>
[TestFixture]
public sealed class PcAcpiQtestTests
{
    private const int PmDevFn = (1 << 3) | 3;
    private const ushort PmBase = 0x600;
    private const ulong DmaDescriptor = 0x1000;
    private const ulong DmaBuffer = 0x100000;

    [Test]
    public async Task Piix4Pm_HasQemusIdentityAndDefaults()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        Assert.That(await q.PciConfigReadAsync(PmDevFn, 0x00), Is.EqualTo(0x71138086u));
        Assert.That(await q.PciConfigReadAsync(PmDevFn, 0x08), Is.EqualTo(0x06800003u));
        Assert.That(await q.PciConfigReadAsync(PmDevFn, 0x3C), Is.EqualTo(0x00000100u), "INTA, line unset");
        Assert.That(await q.PciConfigReadAsync(PmDevFn, 0x40), Is.EqualTo(1u), "PMBA");
        Assert.That(await q.PciConfigReadAsync(PmDevFn, 0x90), Is.EqualTo(0xB101u), "SMBus base");
        Assert.That(await q.InAsync('w', PmBase), Is.EqualTo(0xFFFFUL), "block disabled until PMREGMISC");

        var qmp = QmpClient.OverStdio(q.Process);
        await qmp.HandshakeAsync();
        string pci = await qmp.ExecuteAsync("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info pci\"}}");
        Assert.That(pci, Does.Contain("Bus  0, device   1, function 3:\\r\\n    Bridge: PCI device 8086:7113\\r\\n      PCI subsystem 1af4:1100\\r\\n      IRQ 0, pin A\\r\\n"));
    }

    [Test]
    public async Task PmTimer_AdvancesAt3579545HzWithClockStep()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        await EnablePmBlock(q);
        ulong t0 = await q.InAsync('l', PmBase + 8);
        await q.ClockStepAsync(1_000_000_000);
        ulong t1 = await q.InAsync('l', PmBase + 8);
        Assert.That((t1 - t0) & 0xFFFFFF, Is.InRange(3_579_544UL, 3_579_546UL));
        Assert.That(t1, Is.LessThan(1UL << 24), "24-bit timer");
    }

    [Test]
    public async Task S5_PowersOffWithQemusShutdownEventAndStatus()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        var qmp = QmpClient.OverStdio(q.Process);
        await qmp.HandshakeAsync();
        await EnablePmBlock(q);
        await q.CommandAsync($"outw 0x{PmBase + 4:x} 0x2000"); // SLP_TYP 0 (\_S5), SLP_EN
        string line = await qmp.NextLineAsync();
        Assert.That(line, Does.Contain("\"event\": \"SHUTDOWN\"").And.Contain("\"guest\": true").And.Contain("\"reason\": \"guest-shutdown\""));
        Assert.That(q.Process.WaitForExit(), Is.Zero);
    }

    [Test]
    public async Task S5_WithNoShutdown_StopsInTheShutdownState()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults", "-no-shutdown");
        var qmp = QmpClient.OverStdio(q.Process);
        await qmp.HandshakeAsync();
        await EnablePmBlock(q);
        await q.OutAsync('w', PmBase + 4, 0x2000);
        Assert.That(await qmp.NextLineAsync(), Does.Contain("\"SHUTDOWN\""));
        Assert.That(await qmp.NextLineAsync(), Does.Contain("\"STOP\""));
        Assert.That(await qmp.ExecuteAsync("{\"execute\":\"query-status\"}"), Does.Contain("\"status\": \"shutdown\""));
    }

    [Test]
    public async Task SystemPowerdown_SetsPwrbtnStsAndRaisesTheSciOnIrq9()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        var qmp = QmpClient.OverStdio(q.Process);
        await qmp.HandshakeAsync();
        await q.OkAsync("irq_intercept_in ioapic");
        await EnablePmBlock(q);
        await q.OutAsync('w', PmBase, 0xFFFF); // clear TMR_STS, set at reset as on QEMU

        // Power button not enabled: the event still goes out, the guest sees nothing.
        await qmp.SendAsync("{\"execute\":\"system_powerdown\"}\n");
        Assert.That(await qmp.NextLineAsync(), Does.Contain("\"event\": \"POWERDOWN\""));
        Assert.That(await qmp.NextLineAsync(), Is.EqualTo("{\"return\": {}}"));
        Assert.That(await q.InAsync('w', PmBase) & 0x100, Is.Zero);
        Assert.That(q.GetIrq(9), Is.False);

        await q.OutAsync('w', PmBase + 2, 0x0100); // PWRBTN_EN
        await qmp.SendAsync("{\"execute\":\"system_powerdown\"}\n");
        Assert.That(await qmp.NextLineAsync(), Does.Contain("\"event\": \"POWERDOWN\""));
        Assert.That(await qmp.NextLineAsync(), Is.EqualTo("{\"return\": {}}"));
        Assert.That(await q.InAsync('w', PmBase) & 0x100, Is.EqualTo(0x100UL), "PWRBTN_STS");
        Assert.That(q.GetIrq(9), Is.True, "SCI on GSI 9");
        await q.OutAsync('w', PmBase, 0x0100);
        await q.InAsync('w', PmBase);
        Assert.That(q.GetIrq(9), Is.False, "SCI drops once the status is cleared");
    }

    [Test]
    public async Task SystemWakeup_FailsLikeQemuWhenNotSuspended()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults");
        var qmp = QmpClient.OverStdio(q.Process);
        await qmp.HandshakeAsync();
        Assert.That(await qmp.ExecuteAsync("{\"execute\":\"system_wakeup\"}"),
            Is.EqualTo("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Unable to wake up: guest is not in suspended state\"}}"));
    }

    [Test]
    public async Task AcpiFiles_LinkIntoValidTablesThatSeeThePmBaseTheFirmwareSet()
    {
        using QtestClient q = await QtestClient.StartAsync("-nodefaults", "-smp", "2", "-serial", "null");
        // As SeaBIOS: program the PM base first; the tables are generated when first read.
        await EnablePmBlock(q);
        Dictionary<string, (ushort Key, int Size)> dir = await FwCfgDirectory(q);
        Assert.That(dir["etc/acpi/rsdp"].Size, Is.EqualTo(20));
        Assert.That(dir["etc/acpi/tables"].Size, Is.EqualTo(0x20000));
        Assert.That(dir["etc/table-loader"].Size, Is.EqualTo(4096));
        byte[] loader = await FwCfgRead(q, dir["etc/table-loader"].Key, 4096);
        byte[] tables = await FwCfgRead(q, dir["etc/acpi/tables"].Key, 0x20000);
        byte[] rsdp = await FwCfgRead(q, dir["etc/acpi/rsdp"].Key, 20);

        const ulong TablesAt = 0x07F0_0000, RsdpAt = 0xF_0000;
        Link(loader, new() { ["etc/acpi/tables"] = (tables, TablesAt), ["etc/acpi/rsdp"] = (rsdp, RsdpAt) });

        Assert.That(Encoding.ASCII.GetString(rsdp, 0, 8), Is.EqualTo("RSD PTR "));
        Assert.That(Sum(rsdp), Is.Zero, "RSDP checksum");
        byte[] rsdt = TableAt(tables, BinaryPrimitives.ReadUInt32LittleEndian(rsdp.AsSpan(16)) - TablesAt);
        var signatures = new List<string>();
        byte[]? fadt = null, madt = null;
        for (int i = 36; i < rsdt.Length; i += 4)
        {
            byte[] t = TableAt(tables, BinaryPrimitives.ReadUInt32LittleEndian(rsdt.AsSpan(i)) - TablesAt);
            string sig = Encoding.ASCII.GetString(t, 0, 4);
            signatures.Add(sig);
            fadt = sig == "FACP" ? t : fadt;
            madt = sig == "APIC" ? t : madt;
        }
        Assert.That(signatures, Is.EqualTo(new[] { "FACP", "APIC", "WAET" }), "no HPET: Colo has none");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fadt!.AsSpan(56)), Is.EqualTo((uint)PmBase), "PM1a_EVT_BLK");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fadt.AsSpan(76)), Is.EqualTo(PmBase + 8u), "PM_TMR_BLK");
        byte[] facs = tables.AsSpan((int)(BinaryPrimitives.ReadUInt32LittleEndian(fadt.AsSpan(36)) - TablesAt), 64).ToArray();
        Assert.That(Encoding.ASCII.GetString(facs, 0, 4), Is.EqualTo("FACS"));
        byte[] dsdt = TableAt(tables, BinaryPrimitives.ReadUInt32LittleEndian(fadt.AsSpan(40)) - TablesAt);
        Assert.That(Encoding.ASCII.GetString(dsdt, 0, 4), Is.EqualTo("DSDT"));
        Assert.That(Encoding.ASCII.GetString(dsdt), Does.Contain("COM1").And.Contain("LNKS").And.Contain("C001"));
        // MADT: two local APICs then the IOAPIC at 0xFEC00000.
        Assert.That(madt![44], Is.Zero);
        Assert.That(madt[52], Is.Zero);
        Assert.That(madt[53], Is.EqualTo(8));
        Assert.That(madt[60], Is.EqualTo(1));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(madt.AsSpan(64)), Is.EqualTo(0xFEC00000u));
    }

    [Test]
    public async Task Dsdt_IsAcceptedByIasl()
    {
        string? iasl = FindOnPath("iasl");
        if (iasl is null)
        {
            Assert.Inconclusive("iasl (Debian acpica-tools, see tools/install-deps.sh) is not installed");
        }
        using QtestClient q = await QtestClient.StartAsync("-nodefaults", "-smp", "2", "-serial", "null");
        Dictionary<string, (ushort Key, int Size)> dir = await FwCfgDirectory(q);
        byte[] tables = await FwCfgRead(q, dir["etc/acpi/tables"].Key, 0x20000);
        byte[] loader = await FwCfgRead(q, dir["etc/table-loader"].Key, 4096);
        byte[] rsdp = await FwCfgRead(q, dir["etc/acpi/rsdp"].Key, 20);
        Link(loader, new() { ["etc/acpi/tables"] = (tables, 0x0100_0000), ["etc/acpi/rsdp"] = (rsdp, 0xF_0000) });
        byte[] dsdt = TableAt(tables, 0x40);

        string dir2 = Directory.CreateTempSubdirectory("colo-iasl-").FullName;
        try
        {
            File.WriteAllBytes(Path.Combine(dir2, "dsdt.dat"), dsdt);
            (int rc, string output) = Run(iasl!, dir2, "-d", "dsdt.dat");
            Assert.That(rc, Is.Zero, output);
            Assert.That(output, Does.Not.Contain("Error"));
            string dsl = File.ReadAllText(Path.Combine(dir2, "dsdt.dsl"));
            Assert.That(dsl, Does.Contain("Device (LNKA)").And.Contain("Name (\\_S5, Package (0x04)").And.Contain("Method (_SRS, 1, NotSerialized)"));
            // Recompiling the disassembly must give no errors either (warnings about _STA-less devices are fine).
            (int rc2, string output2) = Run(iasl!, dir2, "-p", "recompiled", "dsdt.dsl");
            Assert.That(rc2, Is.Zero, output2);
            Assert.That(output2, Does.Contain("0 Errors"));
        }
        finally
        {
            Directory.Delete(dir2, recursive: true);
        }
    }

    [Test]
    public async Task DirectKernelBoot_PlacesTablesWhereLinuxFindsThem()
    {
        string dir = Directory.CreateTempSubdirectory("colo-acpi-mb-").FullName;
        string kernel = Path.Combine(dir, "kernel.bin");
        File.WriteAllBytes(kernel, TinyMultibootImage());
        try
        {
            using QtestClient q = await QtestClient.StartAsync("-nodefaults", "-m", "128", "-kernel", kernel);
            Assert.That(await q.ReadAsync('w', 0x40E), Is.EqualTo(0x9FC0UL), "BDA's EBDA segment");
            byte[] rsdp = await q.MemReadAsync(0x9FC00, 20);
            Assert.That(Encoding.ASCII.GetString(rsdp, 0, 8), Is.EqualTo("RSD PTR "));
            Assert.That(Sum(rsdp), Is.Zero);
            uint rsdtAt = BinaryPrimitives.ReadUInt32LittleEndian(rsdp.AsSpan(16));
            Assert.That(rsdtAt, Is.InRange(0x07FE_0000u, 0x07FF_FFFFu), "tables in the top 128 KiB below 128 MiB");
            byte[] header = await q.MemReadAsync(rsdtAt, 36);
            byte[] rsdt = await q.MemReadAsync(rsdtAt, BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4)));
            Assert.That(Sum(rsdt), Is.Zero, "RSDT checksum");
            uint fadtAt = BinaryPrimitives.ReadUInt32LittleEndian(rsdt.AsSpan(36));
            byte[] fadt = await q.MemReadAsync(fadtAt, 116);
            Assert.That(Sum(fadt), Is.Zero, "FADT checksum");
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(fadt.AsSpan(56)), Is.EqualTo((uint)PmBase));
            Assert.That(await q.InAsync('w', PmBase + 4), Is.Zero, "PM block decodes at 0x600 (SCI_EN clear until the OS enables ACPI)");

            // The multiboot memory map (at 0x9000, as QEMU) lists the window as ACPI data.
            byte[] info = await q.MemReadAsync(0x9500, 52);
            uint mmapLength = BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(44));
            uint mmapAddr = BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(48));
            byte[] mmap = await q.MemReadAsync(mmapAddr, (int)mmapLength);
            bool found = false;
            for (int at = 0; at < mmap.Length; at += 4 + BinaryPrimitives.ReadInt32LittleEndian(mmap.AsSpan(at)))
            {
                ulong addr = BinaryPrimitives.ReadUInt64LittleEndian(mmap.AsSpan(at + 4));
                ulong len = BinaryPrimitives.ReadUInt64LittleEndian(mmap.AsSpan(at + 12));
                uint type = BinaryPrimitives.ReadUInt32LittleEndian(mmap.AsSpan(at + 20));
                found |= type == 3 && addr <= rsdtAt && rsdtAt < addr + len;
            }
            Assert.That(found, Is.True, "an e820 ACPI entry covers the tables");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task EnablePmBlock(QtestClient q)
    {
        await q.PciConfigWriteAsync(PmDevFn, 0x40, PmBase | 1u);
        await q.PciConfigWriteAsync(PmDevFn, 0x80, 1, 'b');
    }

    /// <summary>The fw_cfg file directory (key 0x19): name → (key, size).</summary>
    private static async Task<Dictionary<string, (ushort, int)>> FwCfgDirectory(QtestClient q)
    {
        byte[] head = await FwCfgRead(q, 0x19, 4);
        int count = (int)BinaryPrimitives.ReadUInt32BigEndian(head);
        byte[] all = await FwCfgRead(q, 0x19, 4 + 64 * count);
        var dir = new Dictionary<string, (ushort, int)>();
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> e = all.AsSpan(4 + 64 * i, 64);
            string name = Encoding.ASCII.GetString(e[8..]).TrimEnd('\0');
            dir[name] = (BinaryPrimitives.ReadUInt16BigEndian(e[4..]), (int)BinaryPrimitives.ReadUInt32BigEndian(e));
        }
        return dir;
    }

    /// <summary>Reads an fw_cfg item with one DMA transfer (select + read), as SeaBIOS does.</summary>
    private static async Task<byte[]> FwCfgRead(QtestClient q, ushort key, int length)
    {
        byte[] descriptor = new byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(descriptor, ((uint)key << 16) | 0x08 | 0x02);
        BinaryPrimitives.WriteUInt32BigEndian(descriptor.AsSpan(4), (uint)length);
        BinaryPrimitives.WriteUInt64BigEndian(descriptor.AsSpan(8), DmaBuffer);
        await q.MemWriteAsync(DmaDescriptor, descriptor);
        await q.OutAsync('l', 0x514, 0);
        await q.OutAsync('l', 0x518, BinaryPrimitives.ReverseEndianness((uint)DmaDescriptor));
        byte[] status = await q.MemReadAsync(DmaDescriptor, 4);
        Assert.That(status, Is.EqualTo(new byte[4]), "DMA finished without error");
        return await q.MemReadAsync(DmaBuffer, length);
    }

    /// <summary>Runs table-loader commands (ADD_POINTER, ADD_CHECKSUM) over files at the given addresses.</summary>
    private static void Link(byte[] loader, Dictionary<string, (byte[] Data, ulong Address)> files)
    {
        for (int at = 0; at + 128 <= loader.Length; at += 128)
        {
            ReadOnlySpan<byte> c = loader.AsSpan(at, 128);
            uint kind = BinaryPrimitives.ReadUInt32LittleEndian(c);
            int cmd = at;
            string Name(int offset) => Encoding.ASCII.GetString(loader, cmd + offset, 56).TrimEnd('\0');
            if (kind == 2)
            {
                byte[] dest = files[Name(4)].Data;
                ulong source = files[Name(60)].Address;
                int offset = (int)BinaryPrimitives.ReadUInt32LittleEndian(c[116..]);
                Assert.That(c[120], Is.EqualTo(4), "pointer size");
                uint value = BinaryPrimitives.ReadUInt32LittleEndian(dest.AsSpan(offset));
                BinaryPrimitives.WriteUInt32LittleEndian(dest.AsSpan(offset), (uint)(value + source));
            }
            else if (kind == 3)
            {
                byte[] data = files[Name(4)].Data;
                int offset = (int)BinaryPrimitives.ReadUInt32LittleEndian(c[60..]);
                int start = (int)BinaryPrimitives.ReadUInt32LittleEndian(c[64..]);
                int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(c[68..]);
                data[offset] = 0;
                data[offset] = (byte)-Sum(data.AsSpan(start, length));
            }
            else
            {
                Assert.That(kind, Is.EqualTo(1).Or.EqualTo(0), $"command at {at}");
            }
        }
    }

    private static byte[] TableAt(byte[] tables, ulong offset)
    {
        int length = BinaryPrimitives.ReadInt32LittleEndian(tables.AsSpan((int)offset + 4));
        byte[] t = tables.AsSpan((int)offset, length).ToArray();
        Assert.That(Sum(t), Is.Zero, $"{Encoding.ASCII.GetString(t, 0, 4)} checksum");
        return t;
    }

    private static byte Sum(ReadOnlySpan<byte> data)
    {
        byte s = 0;
        foreach (byte b in data)
        {
            s += b;
        }
        return s;
    }

    /// <summary>A 4 KiB multiboot a.out-kludge image loaded at 1 MiB whose code is one <c>hlt</c> loop.</summary>
    private static byte[] TinyMultibootImage()
    {
        byte[] image = new byte[4096];
        Span<byte> h = image;
        const uint Flags = 1u << 16;
        BinaryPrimitives.WriteUInt32LittleEndian(h, 0x1BADB002);
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(h[8..], unchecked(0u - 0x1BADB002u - Flags));
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], 0x100000); // header_addr
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], 0x100000); // load_addr
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], 0);        // load_end_addr: whole file
        BinaryPrimitives.WriteUInt32LittleEndian(h[24..], 0);        // bss_end_addr: none
        BinaryPrimitives.WriteUInt32LittleEndian(h[28..], 0x100020); // entry
        image[32] = 0xF4; // hlt
        image[33] = 0xEB; // jmp $-3
        image[34] = 0xFD;
        return image;
    }

    private static string? FindOnPath(string name)
    {
        foreach (string d in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            string p = Path.Combine(d, name);
            if (File.Exists(p))
            {
                return p;
            }
        }
        return null;
    }

    private static (int, string) Run(string exe, string cwd, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
