using System.Diagnostics;

namespace Colo.Tests.EndToEnd.QemuImg;

/// <summary>Runs Colo's published qemu-img and, for interop tests, the real one.</summary>
internal static class QemuImgRunner
{
    public const string RealQemuImg = "/usr/bin/qemu-img";
    public const string RealQemuIo = "/usr/bin/qemu-io";
    private static readonly Lazy<string> s_colo = new(FindOrPublish);

    /// <summary>build/bin/qemu-img under the repo root (nearest ancestor holding Colo.sln).</summary>
    public static string ColoQemuImg => s_colo.Value;

    public static (int ExitCode, string Stdout, string Stderr) Colo(string workDir, params string[] args) => Run(ColoQemuImg, workDir, args);

    public static (int ExitCode, string Stdout, string Stderr) Real(string workDir, params string[] args) => Run(RealQemuImg, workDir, args);

    public static (int ExitCode, string Stdout, string Stderr) Run(string exe, string workDir, params string[] args)
    {
        var psi = new ProcessStartInfo(exe)
        {
            WorkingDirectory = workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi)!;
        Task<string> err = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout, err.Result);
    }

    private static string FindOrPublish()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir != null && !File.Exists(Path.Combine(dir, "Colo.sln")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        if (dir == null)
        {
            throw new InvalidOperationException("Colo.sln not found above the test directory");
        }

        // Publish once per test run so the tests never exercise a stale binary; set
        // COLO_NO_PUBLISH=1 to reuse an existing build/bin/qemu-img (e.g. in CI after publishing).
        string exe = Path.Combine(dir, "build", "bin", "qemu-img");
        if (!File.Exists(exe) || Environment.GetEnvironmentVariable("COLO_NO_PUBLISH") != "1")
        {
            // Same command as documented for CI: dotnet publish Emulator/QemuImg -c Release -o build/bin
            (int rc, string o, string e) = Run("dotnet", dir, "publish", "Emulator/QemuImg", "-c", "Release", "-o", "build/bin");
            if (rc != 0)
            {
                throw new InvalidOperationException($"publishing qemu-img failed:\n{o}\n{e}");
            }
        }

        return exe;
    }
}
