using System.Diagnostics;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Guest;

/// <summary>
/// Debian's kernel with the project's busybox initramfs (tools/guest/build.sh, which tools/test.sh runs) boots on
/// the interpreter to the ready marker, and its shell answers on the serial console.
/// </summary>
[TestFixture]
[Category("Guest")]
public sealed class LinuxBootTests
{
    private const string ReadyMarker = "COLO-GUEST-READY";

    // Generous: a loaded 2-core CI machine runs the interpreter several times slower than an idle one.
    private static readonly TimeSpan BootTimeout = TimeSpan.FromMinutes(12);

    private static string GuestFile(string name)
    {
        string path = Path.Combine(ColoBinaries.RepositoryRoot, "build", "guest", name);
        if (!File.Exists(path))
        {
            Assert.Fail($"{path} is missing: run tools/guest/build.sh (tools/test.sh does) before the guest tests");
        }
        return path;
    }

    [TestCase("bzImage", 1)]
    [TestCase("bzImage", 2)]
    [TestCase("vmlinux", 1)]
    [TestCase("vmlinux", 2)]
    public async Task Kernel_BootsToReadyMarker_AndTheShellAnswers(string kernel, int cpus)
    {
        string cmdline = File.ReadAllText(GuestFile("cmdline")).Trim();
        using QemuProcess vm = QemuProcess.Start(
            "-M", "pc", "-nodefaults", "-display", "none", "-no-reboot", "-m", "256", "-smp", cpus.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-kernel", GuestFile(kernel), "-initrd", GuestFile("initramfs.cpio.gz"), "-append", cmdline,
            "-serial", "stdio");
        var log = new List<string>();
        var clock = Stopwatch.StartNew();
        await WaitForLineAsync(vm, log, l => l.Contains(ReadyMarker, StringComparison.Ordinal), BootTimeout);
        TestContext.Out.WriteLine($"{kernel}, -smp {cpus}: ready marker after {clock.Elapsed.TotalSeconds:F1} s");

        await vm.SendAsync("echo colo-$((6*7)); grep -c ^processor /proc/cpuinfo\n");
        await WaitForLineAsync(vm, log, l => l.TrimEnd('\r') == "colo-42", TimeSpan.FromMinutes(2));
        string cpuCount = await NextLineAsync(vm, log, TimeSpan.FromMinutes(1));
        Assert.That(cpuCount.TrimEnd('\r'), Is.EqualTo(cpus.ToString(System.Globalization.CultureInfo.InvariantCulture)), "CPUs the guest brought up");
    }

    [TestCase(1)]
    [TestCase(2)]
    public async Task DiskImage_BootsThroughSeaBiosAndSyslinux_ToReadyMarker_AndTheShellAnswers(int cpus)
    {
        // SeaBIOS reads the MBR, syslinux's boot sector and ldlinux load linux + initrd.gz from the FAT partition.
        // The guest may write its disk: boot a private copy, never build/guest/disk.img itself.
        string dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "guest-disk-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        string disk = Path.Combine(dir, "disk.img");
        File.Copy(GuestFile("disk.img"), disk);
        try
        {
            using QemuProcess vm = QemuProcess.Start(
                "-M", "pc", "-nodefaults", "-display", "none", "-no-reboot", "-m", "256", "-smp", cpus.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "-drive", $"file={disk},format=raw,if=ide", "-serial", "stdio");
            var log = new List<string>();
            var clock = Stopwatch.StartNew();
            await WaitForLineAsync(vm, log, l => l.Contains("SYSLINUX", StringComparison.Ordinal), BootTimeout);
            await WaitForLineAsync(vm, log, l => l.Contains(ReadyMarker, StringComparison.Ordinal), BootTimeout);
            TestContext.Out.WriteLine($"disk.img, -smp {cpus}: ready marker after {clock.Elapsed.TotalSeconds:F1} s");
            Assert.That(log, Has.Some.Contains("BOOT_IMAGE=/linux"), "the kernel command line came from syslinux.cfg");

            await vm.SendAsync("echo colo-$((6*7)); grep -c ^processor /proc/cpuinfo\n");
            await WaitForLineAsync(vm, log, l => l.TrimEnd('\r') == "colo-42", TimeSpan.FromMinutes(2));
            string cpuCount = await NextLineAsync(vm, log, TimeSpan.FromMinutes(1));
            Assert.That(cpuCount.TrimEnd('\r'), Is.EqualTo(cpus.ToString(System.Globalization.CultureInfo.InvariantCulture)), "CPUs the guest brought up");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<string> NextLineAsync(QemuProcess vm, List<string> log, TimeSpan timeout)
    {
        string? line;
        try
        {
            line = await vm.Stdout.NextAsync(timeout);
        }
        catch (TimeoutException)
        {
            line = null;
        }
        if (line is null)
        {
            Assert.Fail($"no console line within {timeout}; last lines:\n{string.Join('\n', log.TakeLast(30))}\nstderr:\n{vm.Stderr}");
        }
        log.Add(line!);
        return line!;
    }

    private static async Task WaitForLineAsync(QemuProcess vm, List<string> log, Func<string, bool> match, TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            TimeSpan left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                Assert.Fail($"console line not seen within {timeout}; last lines:\n{string.Join('\n', log.TakeLast(30))}\nstderr:\n{vm.Stderr}");
            }
            if (match(await NextLineAsync(vm, log, left)))
            {
                return;
            }
        }
    }
}
