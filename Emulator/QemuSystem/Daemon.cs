using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Colo.QemuSystem;

/// <summary>
/// <c>-daemonize</c> without fork(), which .NET cannot do safely: the first process starts a copy of
/// itself and waits. The copy builds the VM with the terminal still attached, so configuration errors
/// reach the user; once built it reports success over a unix socket, starts its own session and
/// points stdio at /dev/null, and the first process exits 0 (or with the copy's status if it failed).
/// </summary>
internal static partial class Daemon
{
    private const string StatusSocketVariable = "COLO_DAEMONIZE_STATUS_SOCKET";

    /// <summary>The status socket path when this process is the daemon half, else null.</summary>
    public static string? StatusSocket { get; } = Environment.GetEnvironmentVariable(StatusSocketVariable);

    /// <summary>Starts the daemon half with the same arguments and waits until it is up or has failed.</summary>
    public static int RunLauncher(string[] args)
    {
        string path = Path.Combine(Path.GetTempPath(), $"colo-daemonize-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        try
        {
            var info = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
            foreach (string arg in args)
            {
                info.ArgumentList.Add(arg);
            }
            info.Environment[StatusSocketVariable] = path;
            using Process child = Process.Start(info)!;
            Task<Socket> accepted = listener.AcceptAsync();
            Task exited = child.WaitForExitAsync();
            if (Task.WaitAny(accepted, exited) == 0)
            {
                using Socket status = accepted.Result;
                byte[] buffer = new byte[2];
                int n = status.Receive(buffer);
                return n == 2 && buffer[0] == (byte)'o' && buffer[1] == (byte)'k' ? 0 : 1;
            }
            return child.ExitCode == 0 ? 1 : child.ExitCode;
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>In the daemon half, after a successful build: tell the launcher, leave its session, drop the terminal.</summary>
    public static void Detach()
    {
        using (var status = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            status.Connect(new UnixDomainSocketEndPoint(StatusSocket!));
            status.Send("ok"u8);
        }
        _ = SetSid();
        // .NET's console streams hold their own duplicates of fds 0-2, so swap the writers too.
        Console.SetOut(TextWriter.Null);
        Console.SetError(TextWriter.Null);
        Console.SetIn(TextReader.Null);
        int devNull = Open("/dev/null", 2 /* O_RDWR */);
        if (devNull < 0)
        {
            return;
        }
        // The runtime keeps private duplicates of the terminal fds (seen at fd 251); a launcher reading
        // our stdout would never see end-of-file while one survives, so every duplicate goes too.
        var terminal = new HashSet<string>(StringComparer.Ordinal);
        for (int fd = 0; fd <= 2; fd++)
        {
            if (Target(fd) is { } target)
            {
                terminal.Add(target);
            }
        }
        foreach (string entry in Directory.GetFileSystemEntries("/proc/self/fd"))
        {
            if (int.TryParse(Path.GetFileName(entry), out int fd) && fd != devNull && (fd <= 2 || (Target(fd) is { } target && terminal.Contains(target))))
            {
                _ = Dup2(devNull, fd);
            }
        }
    }

    private static string? Target(int fd)
    {
        try
        {
            return new FileInfo($"/proc/self/fd/{fd}").LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
    }

    [LibraryImport("libc", EntryPoint = "setsid")]
    private static partial int SetSid();

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "dup2")]
    private static partial int Dup2(int oldFd, int newFd);
}
