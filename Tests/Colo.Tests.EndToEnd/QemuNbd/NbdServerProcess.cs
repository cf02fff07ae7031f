using System.Globalization;
using Colo.Tests.EndToEnd.Infrastructure;
using Colo.Tests.EndToEnd.QemuIo;

namespace Colo.Tests.EndToEnd.QemuNbd;

/// <summary>
/// A qemu-nbd (Colo's or the real one) started with --fork --pid-file, so it is listening when
/// the launcher returns; disposing it sends SIGTERM to that pid and waits for the pid file to go.
/// </summary>
internal sealed partial class NbdServerProcess : IDisposable
{
    private readonly string _pidFile;

    private NbdServerProcess(string pidFile, int port, int pid)
    {
        _pidFile = pidFile;
        Port = port;
        Pid = pid;
    }

    public int Port { get; }

    public int Pid { get; }

    public string Uri(string export = "") => $"nbd://127.0.0.1:{Port}/{export}";

    /// <summary>Starts <paramref name="exe"/> on a free loopback port with <paramref name="args"/> before the image.</summary>
    public static NbdServerProcess Start(string exe, string workDir, string image, params string[] args)
    {
        int port = FreePort.Next();
        string pidFile = Path.Combine(workDir, $"nbd-{Guid.NewGuid():N}.pid");
        ToolResult r = ToolRunner.Run(exe, workDir, ["--fork", "--pid-file", pidFile, "-b", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), .. args, image]);
        Assert.That(r.ExitCode, Is.Zero, $"{exe} did not start: {r.Stderr}");
        int pid = int.Parse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture);
        return new NbdServerProcess(pidFile, port, pid);
    }

    /// <summary>
    /// True once the server has exited. Colo's qemu-nbd removes its pid file at exit, QEMU 7.2's
    /// does not; a forked server is no child of ours, so /proc tells whether it is gone or a zombie
    /// waiting for init to reap it.
    /// </summary>
    public bool HasExited
    {
        get
        {
            if (!File.Exists(_pidFile))
            {
                return true;
            }

            try
            {
                string stat = File.ReadAllText($"/proc/{Pid}/stat");
                char state = stat[(stat.LastIndexOf(')') + 2)..][0];
                return state is 'Z' or 'X';
            }
            catch (IOException)
            {
                return true;
            }
        }
    }

    public void WaitForExit() => ToolRunner.WaitFor(() => HasExited, $"qemu-nbd {Pid} to exit");

    public void Dispose()
    {
        if (HasExited)
        {
            return;
        }

        // SIGTERM: both servers exit cleanly. The pid is the one the server wrote and it has not
        // exited (HasExited above), so it is still that server.
        if (Kill(Pid, 15) == 0)
        {
            WaitForExit();
        }
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}
