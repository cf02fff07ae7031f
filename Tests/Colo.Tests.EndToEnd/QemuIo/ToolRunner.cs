using System.Diagnostics;

namespace Colo.Tests.EndToEnd.QemuIo;

/// <summary>Result of one tool run: exit status and both streams.</summary>
internal sealed record ToolResult(int ExitCode, string Stdout, string Stderr)
{
    /// <summary>Stdout without qemu-io's timing lines, which differ run to run.</summary>
    public string StableStdout => string.Concat(Stdout.Split('\n').Where(l => !l.Contains(" ops; ", StringComparison.Ordinal)).Select(l => l + "\n")).TrimEnd('\n');
}

/// <summary>Runs Colo's published qemu-io/qemu-nbd and, for interop tests, the real QEMU 7.2 ones.</summary>
internal static class ToolRunner
{
    public const string RealQemuIo = "/usr/bin/qemu-io";
    public const string RealQemuNbd = "/usr/bin/qemu-nbd";
    public const string RealQemuImg = "/usr/bin/qemu-img";

    public static string ColoQemuIo => Infrastructure.ColoBinaries.QemuIo;

    public static string ColoQemuNbd => Infrastructure.ColoBinaries.QemuNbd;

    public static string ColoQemuImg => Infrastructure.ColoBinaries.QemuImg;

    public static ToolResult Run(string exe, string workDir, IEnumerable<string> args, string? stdin = null)
    {
        var psi = new ProcessStartInfo(exe)
        {
            WorkingDirectory = workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi)!;
        Task<string> err = p.StandardError.ReadToEndAsync();
        Task<string> output = p.StandardOutput.ReadToEndAsync();
        if (stdin != null)
        {
            p.StandardInput.Write(stdin);
        }

        p.StandardInput.Close();
        if (!p.WaitForExit(60_000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{exe} {string.Join(' ', args)} did not finish within 60 s");
        }

        return new ToolResult(p.ExitCode, output.Result, err.Result);
    }

    /// <summary>qemu-io with each command as its own -c, then the image.</summary>
    public static ToolResult Io(string exe, string workDir, string image, IEnumerable<string> commands, params string[] options) =>
        Run(exe, workDir, [.. options, .. commands.SelectMany(c => new[] { "-c", c }), image]);

    /// <summary>Polls <paramref name="condition"/> until it holds; fails the test after <paramref name="timeoutMs"/>.</summary>
    public static void WaitFor(Func<bool> condition, string what, int timeoutMs = 20_000)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.ElapsedMilliseconds > timeoutMs)
            {
                Assert.Fail($"timed out waiting for {what}");
            }

            Thread.Sleep(10);
        }
    }
}
