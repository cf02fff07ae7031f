using System.Diagnostics;

namespace Colo.Tests.EndToEnd.QemuImg;

/// <summary>
/// Kill-during-write: Colo's qemu-img is SIGKILLed while it fills a qcow2 image with small
/// clusters (many metadata updates); real qemu-img check must then find at worst leaks.
/// </summary>
[TestFixture]
[Category("Interop")]
public sealed class QemuImgCrashTests
{
    [TestCase(512, 11)]
    [TestCase(4096, 12)]
    [TestCase(65536, 13)]
    public void KillDuringConvert_LeavesAtWorstLeaks(int clusterSize, int seed)
    {
        string dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "crash-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var data = new byte[48 << 20];
            var rng = new Random(seed);
            for (int i = 0; i < data.Length; i += 8192)
            {
                rng.NextBytes(data.AsSpan(i, 4096)); // every other 4 KiB block has data
            }

            File.WriteAllBytes(Path.Combine(dir, "in.raw"), data);
            string target = Path.Combine(dir, "t.qcow2");
            int killedRounds = 0;
            for (int round = 0; round < 4; round++)
            {
                File.Delete(target);
                var psi = new ProcessStartInfo(QemuImgRunner.ColoQemuImg)
                {
                    WorkingDirectory = dir,
                    UseShellExecute = false,
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                };
                foreach (string a in new[] { "convert", "-O", "qcow2", "-o", $"cluster_size={clusterSize}", "in.raw", "t.qcow2" })
                {
                    psi.ArgumentList.Add(a);
                }

                using Process p = Process.Start(psi)!;

                // Wait until creation is done and data is flowing, then kill at a random moment.
                var sw = Stopwatch.StartNew();
                while (!p.HasExited && (!File.Exists(target) || new FileInfo(target).Length < 3 * clusterSize + 65536) && sw.ElapsedMilliseconds < 20000)
                {
                    Thread.Yield();
                }

                Thread.Sleep(rng.Next(0, 150));
                bool killed = !p.HasExited;
                if (killed)
                {
                    p.Kill();
                    killedRounds++;
                }

                p.WaitForExit();
                var check = QemuImgRunner.Real(dir, "check", "t.qcow2");
                Assert.That(check.ExitCode, Is.AnyOf(0, 3), $"round {round} killed={killed}: {check.Stdout}{check.Stderr}");
            }

            if (clusterSize == 512)
            {
                Assert.That(killedRounds, Is.Positive, "the slowest layout should have been killed mid-write at least once");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
