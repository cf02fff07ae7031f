using System.Text;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Chardev;

/// <summary>
/// <c>-nographic</c> and the mux chardev through pipes: serial and HMP monitor share stdio, Ctrl-A commands switch
/// between them and end the process, as QEMU 7.2 does.
/// </summary>
[TestFixture]
public sealed class NographicMuxTests
{
    [Test]
    public async Task Nographic_CtrlAC_ReachesMonitor_CtrlAX_Terminates()
    {
        using QemuProcess qemu = QemuProcess.Start("-nographic", "-M", "pc", "-S");
        await qemu.SendAsync("\u0001c");
        Assert.That(await ReadUntil(qemu, "QEMU 7.2.0 monitor - type 'help' for more information"), Is.True);
        await qemu.SendAsync("info status\r");
        Assert.That(await ReadUntil(qemu, "VM status: paused (prelaunch)"), Is.True);
        await qemu.SendAsync("\u0001x");
        Assert.That(await ReadUntil(qemu, "QEMU: Terminated"), Is.True);
        Assert.That(qemu.WaitForExit(), Is.Zero);
    }

    [Test]
    public async Task Nographic_CtrlAH_PrintsQemuHelp_FocusStartsOnSerial()
    {
        using QemuProcess qemu = QemuProcess.Start("-nographic", "-M", "pc", "-S");
        // The serial has the focus first: this line goes to the guest's UART, not to the monitor.
        await qemu.SendAsync("info status\r\u0001h");
        Assert.That(await ReadUntil(qemu, "C-a C-a  sends C-a"), Is.True);
        await qemu.SendAsync("\u0001c");
        Assert.That(await ReadUntil(qemu, "monitor - type 'help' for more information"), Is.True);
        await qemu.SendAsync("\u0001x");
        Assert.That(qemu.WaitForExit(), Is.Zero);
    }

    [Test]
    public async Task Nographic_InfoChardev_QemuLabels()
    {
        using QemuProcess qemu = QemuProcess.Start("-nographic", "-M", "pc", "-S");
        await qemu.SendAsync("\u0001cinfo chardev\r");
        Assert.That(await ReadUntil(qemu, "serial0: filename=mux"), Is.True);
        Assert.That(await ReadUntil(qemu, "serial0-base: filename=stdio"), Is.True);
        await qemu.SendAsync("\u0001x");
        Assert.That(qemu.WaitForExit(), Is.Zero);
    }

    [Test]
    public async Task NographicWithQmp_SerialAloneOnStdio()
    {
        // Any monitor option drops QEMU's default monitor, so serial0 is plain stdio.
        int port = FreePort.Next();
        using QemuProcess qemu = QemuProcess.Start("-nographic", "-M", "pc", "-S", "-qmp", $"tcp:127.0.0.1:{port},server=on,wait=off");
        using QmpClient qmp = await QmpClient.ConnectTcpAsync(port);
        await qmp.HandshakeAsync();
        string reply = await qmp.ExecuteAsync("""{"execute": "query-chardev"}""");
        Assert.That(reply, Does.Contain("""{"frontend-open": true, "filename": "stdio", "label": "serial0"}"""));
        Assert.That(reply, Does.Not.Contain("mux"));
        await qmp.ExecuteAsync("""{"execute": "quit"}""");
        Assert.That(qemu.WaitForExit(), Is.Zero);
    }

    [Test]
    public async Task SerialMonStdio_AndMuxOnChardev_ShareStdio()
    {
        using QemuProcess qemu = QemuProcess.Start("-M", "pc", "-nodefaults", "-display", "none", "-S",
            "-chardev", "stdio,id=x,mux=on", "-serial", "chardev:x", "-mon", "chardev=x", "-echr", "0x14");
        await qemu.SendAsync("\u0014cinfo status\r");
        Assert.That(await ReadUntil(qemu, "VM status: paused (prelaunch)"), Is.True);
        await qemu.SendAsync("\u0014x");
        Assert.That(await ReadUntil(qemu, "QEMU: Terminated"), Is.True);
        Assert.That(qemu.WaitForExit(), Is.Zero);

        using QemuProcess mon = QemuProcess.Start("-M", "pc", "-nodefaults", "-display", "none", "-S", "-serial", "mon:stdio");
        await mon.SendAsync("\u0001cinfo status\r");
        Assert.That(await ReadUntil(mon, "VM status: paused (prelaunch)"), Is.True);
        await mon.SendAsync("\u0001x");
        Assert.That(mon.WaitForExit(), Is.Zero);
    }

    [Test]
    public void NographicWithSerialStdio_MonitorClaimsStdioFirst()
    {
        (int code, _, string stderr) = QemuProcess.Run("-nographic", "-M", "pc", "-S", "-serial", "stdio");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("qemu-system-x86_64: -serial stdio: cannot use stdio by multiple character devices"));
    }

    private static async Task<bool> ReadUntil(QemuProcess qemu, string text)
    {
        var seen = new StringBuilder();
        while (await qemu.Stdout.NextAsync(TimeSpan.FromSeconds(10)) is { } line)
        {
            seen.Append(line).Append('\n');
            if (line.Contains(text, StringComparison.Ordinal))
            {
                return true;
            }
        }
        TestContext.Out.WriteLine(seen.ToString());
        return false;
    }
}
