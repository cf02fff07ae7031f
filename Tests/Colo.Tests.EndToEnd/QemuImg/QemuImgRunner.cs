using System.Diagnostics;

namespace Colo.Tests.EndToEnd.QemuImg;

/// <summary>Runs Colo's published qemu-img and, for interop tests, the real one.</summary>
internal static class QemuImgRunner
{
    public const string RealQemuImg = "/usr/bin/qemu-img";
    public const string RealQemuIo = "/usr/bin/qemu-io";
    /// <summary>build/bin/qemu-img, published by tools/build.sh (tools/test.sh runs it first).</summary>
    public static string ColoQemuImg => Infrastructure.ColoBinaries.QemuImg;

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
}
