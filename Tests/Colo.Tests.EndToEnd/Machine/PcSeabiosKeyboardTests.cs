using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Machine;

/// <summary>SeaBIOS on the interpreter finds the 8042 and its PS/2 keyboard, and every CPU (its debugcon log says so).</summary>
[TestFixture]
public sealed class PcSeabiosKeyboardTests
{
    [TestCase(1)]
    [TestCase(2)]
    [CancelAfter(90_000)]
    public async Task SeaBios_InitializesPs2KeyboardWithoutI8042Timeout_AndCountsCpus(int cpus)
    {
        string log = Path.Combine(Path.GetTempPath(), $"colo-seabios-{Guid.NewGuid():N}.txt");
        try
        {
            using QemuProcess qemu = QemuProcess.Start(
                "-M", "pc", "-smp", cpus.ToString(System.Globalization.CultureInfo.InvariantCulture), "-nodefaults", "-display", "none",
                "-chardev", $"file,id=d,path={log}", "-device", "isa-debugcon,iobase=0x402,chardev=d");
            string text = "";
            // The interpreter is slow: SeaBIOS needs tens of seconds to reach its boot menu prompt.
            DateTime deadline = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < deadline && !qemu.HasExited)
            {
                text = File.Exists(log) ? ReadShared(log) : "";
                if (text.Contains("Press ESC for boot menu", StringComparison.Ordinal))
                {
                    break;
                }
                await Task.Delay(500);
            }
            qemu.Terminate();
            Assert.That(text, Does.Contain("Press ESC for boot menu"), $"stderr:\n{qemu.Stderr}");
            Assert.That(text, Does.Contain("PS2 keyboard initialized"));
            Assert.That(text, Does.Not.Contain("Timeout at i8042"));
            // With -smp 2 the AP must answer the BSP's INIT-SIPI-SIPI through the local APICs.
            Assert.That(text, Does.Contain($"Found {cpus} cpu(s) max supported {cpus} cpu(s)"));
        }
        finally
        {
            File.Delete(log);
        }
    }

    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
