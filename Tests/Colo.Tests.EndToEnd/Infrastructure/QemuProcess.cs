using System.Diagnostics;
using System.Text;

namespace Colo.Tests.EndToEnd.Infrastructure;

/// <summary>A running <c>qemu-system-x86_64</c> (ours by default) with its stdio captured.</summary>
internal sealed class QemuProcess : IDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource _stderrDone = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private QemuProcess(Process process)
    {
        _process = process;
        Stdout = new LineReader(process.StandardOutput.BaseStream);
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _stderrDone.TrySetResult();
                return;
            }
            lock (_stderr)
            {
                _stderr.Append(e.Data).Append('\n');
            }
        };
        _process.BeginErrorReadLine();
    }

    public LineReader Stdout { get; }

    public Stream Stdin => _process.StandardInput.BaseStream;

    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public static QemuProcess Start(params string[] args) => Start(ColoBinaries.QemuSystem, args);

    public static QemuProcess Start(string binary, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(binary)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        return new QemuProcess(Process.Start(info)!);
    }

    /// <summary>Runs to completion (stdin closed at once); returns exit code and stderr.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(params string[] args)
    {
        using QemuProcess p = Start(args);
        p.Stdin.Close();
        int code = p.WaitForExit();
        var stdout = new StringBuilder();
        while (p.Stdout.NextAsync(TimeSpan.FromSeconds(5)).GetAwaiter().GetResult() is { } line)
        {
            stdout.Append(line).Append('\n');
        }
        return (code, stdout.ToString(), p.Stderr);
    }

    public async Task SendAsync(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        await Stdin.WriteAsync(bytes).ConfigureAwait(false);
        await Stdin.FlushAsync().ConfigureAwait(false);
    }

    public int WaitForExit()
    {
        if (!_process.WaitForExit(Timeout))
        {
            _process.Kill(entireProcessTree: true);
            Assert.Fail($"qemu-system-x86_64 did not exit within {Timeout}; stderr:\n{Stderr}");
        }
        _stderrDone.Task.Wait(TimeSpan.FromSeconds(5));
        return _process.ExitCode;
    }

    /// <summary>Sends SIGTERM, as a user's kill does.</summary>
    public void Terminate()
    {
        if (!_process.HasExited)
        {
            Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        _process.Dispose();
    }
}
