using System.Diagnostics;

namespace Colo.Tests.EndToEnd.QemuImg;

/// <summary>
/// qemu-img bench -w keeps 64 writes in flight in Colo (in-place ones run side by side, allocations under the
/// metadata lock): the image it writes equals the one real qemu-img bench writes with the same requests
/// (qemu-img compare) and checks clean; killed in the middle of such a run it leaves at worst leaks.
/// </summary>
[TestFixture]
[Category("Interop")]
public sealed class QemuImgConcurrentWriteTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        Assume.That(File.Exists(QemuImgRunner.RealQemuImg), "qemu-utils not installed");
        _dir = Path.Combine(Path.GetTempPath(), "colo-cw-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown()
    {
        if (_dir != null)
        {
            Directory.Delete(_dir, true);
        }
    }

    [TestCase(512)]
    [TestCase(65536)]
    public void BenchWritesInFlight_SameImageAsQemu_CheckClean(int clusterSize)
    {
        foreach (string img in new[] { "colo.qcow2", "real.qcow2" })
        {
            Assert.That(QemuImgRunner.Real(_dir, "create", "-q", "-f", "qcow2", "-o", $"cluster_size={clusterSize}", img, "32M").ExitCode, Is.Zero);
        }

        // Scattered 4 KiB writes (allocation and copy-on-write of partial clusters), then unaligned 12 KiB
        // writes at an 8 KiB step, each overlapping the next (in-place and allocating, in flight side by side).
        string[][] runs =
        [
            ["-c", "3000", "-s", "4096", "-S", (7919 * 4096).ToString(), "--pattern=0x11"],
            ["-c", "4000", "-s", "12288", "-S", "8192", "-o", "1536", "--pattern=0x22"],
        ];
        foreach (string[] run in runs)
        {
            string[] common = ["bench", "-w", "-d", "64", "-f", "qcow2", .. run];
            var colo = QemuImgRunner.Colo(_dir, [.. common, "colo.qcow2"]);
            Assert.That(colo.ExitCode, Is.Zero, colo.Stdout + colo.Stderr);
            var real = QemuImgRunner.Real(_dir, [.. common, "real.qcow2"]);
            Assert.That(real.ExitCode, Is.Zero, real.Stdout + real.Stderr);
        }

        var check = QemuImgRunner.Real(_dir, "check", "colo.qcow2");
        Assert.That(check.ExitCode, Is.Zero, check.Stdout + check.Stderr);
        var compare = QemuImgRunner.Real(_dir, "compare", "colo.qcow2", "real.qcow2");
        Assert.That(compare.ExitCode, Is.Zero, compare.Stdout + compare.Stderr);
    }

    [Test]
    public void KillDuringConcurrentWrites_LeavesAtWorstLeaks()
    {
        var rng = new Random(17);
        int killed = 0;
        for (int round = 0; round < 4; round++)
        {
            string img = Path.Combine(_dir, "k.qcow2");
            File.Delete(img);
            Assert.That(QemuImgRunner.Real(_dir, "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "k.qcow2", "64M").ExitCode, Is.Zero);
            long created = new FileInfo(img).Length;
            var psi = new ProcessStartInfo(QemuImgRunner.ColoQemuImg)
            {
                WorkingDirectory = _dir,
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            // Unaligned writes all over the image: data, refcount-block and L2 allocations, copy-on-write of
            // partial clusters, 64 in flight (offsets 256 + k * 8 KiB, so none crosses the end).
            foreach (string a in new[] { "bench", "-w", "-d", "64", "-c", "8000", "-s", "6144", "-o", "256", "-S", (7919 * 8192).ToString(), "--pattern=0x33", "k.qcow2" })
            {
                psi.ArgumentList.Add(a);
            }

            using Process p = Process.Start(psi)!;
            var sw = Stopwatch.StartNew();
            while (!p.HasExited && new FileInfo(img).Length < created + (256 << 10) && sw.ElapsedMilliseconds < 20000)
            {
                Thread.Yield();
            }

            Thread.Sleep(rng.Next(0, 200));
            if (!p.HasExited)
            {
                p.Kill();
                killed++;
            }

            p.WaitForExit();
            var check = QemuImgRunner.Real(_dir, "check", "k.qcow2");
            Assert.That(check.ExitCode, Is.AnyOf(0, 3), $"round {round}: {check.Stdout}{check.Stderr}");
        }

        Assert.That(killed, Is.Positive, "the run should have been killed mid-write at least once");
    }
}
