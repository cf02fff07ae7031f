namespace Colo.Core.Chardev;

/// <summary>
/// What chardev backends need from the process: where informational lines go (QEMU's
/// <c>info: QEMU waiting for connection on: ...</c>, background reconnect failures) and the standard
/// streams the stdio backend uses. Tests inject their own; the executable uses <see cref="CreateDefault"/>.
/// </summary>
public sealed class ChardevEnvironment
{
    private int _stdioInUse;

    /// <summary>
    /// Receives one message per call, without the <c>qemu-system-x86_64: </c> prefix, e.g.
    /// <c>info: QEMU waiting for connection on: disconnected:tcp:127.0.0.1:4444,server=on</c>.
    /// </summary>
    public required Action<string> Report { get; init; }

    /// <summary>Opens the input the stdio backend reads (process stdin by default).</summary>
    public Func<Stream> OpenStdin { get; init; } = Console.OpenStandardInput;

    /// <summary>Opens the output the stdio backend writes (process stdout by default).</summary>
    public Func<Stream> OpenStdout { get; init; } = Console.OpenStandardOutput;

    /// <summary>True when stdio is the process's own (a terminal there is switched to raw mode); tests inject streams.</summary>
    public bool UsesProcessStdio { get; init; }

    /// <summary>Messages go to stderr prefixed like QEMU's <c>error_report</c>.</summary>
    public static ChardevEnvironment CreateDefault() => new()
    {
        Report = static message => Console.Error.WriteLine("qemu-system-x86_64: " + message),
        UsesProcessStdio = true,
        // Plain descriptor streams: .NET's console streams re-apply their own terminal settings around each read,
        // which would undo the raw mode, and announce keypad mode on a terminal.
        OpenStdin = static () => new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(0, ownsHandle: false), FileAccess.Read, bufferSize: 0),
        OpenStdout = static () => new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(1, ownsHandle: false), FileAccess.Write, bufferSize: 0),
    };

    /// <summary>QEMU allows one stdio chardev per process; claims it or returns false.</summary>
    internal bool TryClaimStdio() => Interlocked.CompareExchange(ref _stdioInUse, 1, 0) == 0;

    internal void ReleaseStdio() => Volatile.Write(ref _stdioInUse, 0);
}

/// <summary>What <c>query-chardev</c> reports for a backend beyond its label.</summary>
public interface IChardevInfo
{
    /// <summary>QEMU's <c>filename</c>, e.g. <c>disconnected:tcp:127.0.0.1:9003,server=on</c>, <c>null</c>, <c>file</c>.</summary>
    string Filename { get; }
}
