using System.Text;
using Colo.Core.Chardev;
using Colo.Core.Loop;

namespace Colo.Monitor.Hmp;

/// <summary>
/// The interactive human monitor on a chardev (<c>-monitor stdio</c>): banner, <c>(qemu) </c> prompt,
/// one command per line. Like QEMU's readline, both '\r' and '\n' end a line. Line editing (cursor
/// keys, history, completion) is not implemented: the typed line is echoed once, without escape sequences.
/// </summary>
public sealed class HmpMonitor : ICharFrontend, IDisposable
{
    /// <summary>Longest line kept; QEMU's readline buffer is similarly bounded, extra bytes are dropped.</summary>
    public const int MaxLineLength = 4096;

    private const string Prompt = "(qemu) ";

    private readonly Chardev _chardev;
    private readonly IEventLoop _loop;
    private readonly HmpCommandRegistry _commands;
    private readonly string _banner;
    private readonly List<byte> _line = [];

    /// <summary>Creates the monitor; call <see cref="Start"/> to attach it.</summary>
    /// <param name="chardev">Where the user is.</param>
    /// <param name="loop">The loop commands run on.</param>
    /// <param name="commands">The HMP command table.</param>
    /// <param name="qemuVersion">Version shown in the banner, e.g. "7.2.0".</param>
    public HmpMonitor(Chardev chardev, IEventLoop loop, HmpCommandRegistry commands, string qemuVersion)
    {
        _chardev = chardev;
        _loop = loop;
        _commands = commands;
        _banner = $"QEMU {qemuVersion} monitor - type 'help' for more information\r\n";
    }

    /// <summary>Attaches to the chardev.</summary>
    public void Start() => _chardev.Attach(this, _loop);

    /// <inheritdoc/>
    public void Receive(ReadOnlySpan<byte> data)
    {
        foreach (byte b in data)
        {
            if (b is (byte)'\r' or (byte)'\n')
            {
                RunLine();
            }
            else if (_line.Count < MaxLineLength)
            {
                _line.Add(b);
            }
        }
    }

    /// <inheritdoc/>
    public void OnEvent(CharEvent charEvent)
    {
        _line.Clear();
        if (charEvent == CharEvent.Opened)
        {
            Write(_banner + Prompt);
        }
    }

    /// <summary>Detaches from the chardev.</summary>
    public void Dispose() => _chardev.Detach();

    private void RunLine()
    {
        string line = Encoding.UTF8.GetString([.. _line]);
        _line.Clear();
        string output;
        try
        {
            output = _commands.Execute(line);
        }
        catch (Exception e)
        {
            // A failing handler prints its message instead of killing the monitor.
            output = e.Message + "\r\n";
        }
        Write(line + "\r\n" + output + Prompt);
    }

    private void Write(string text) => _chardev.Write(Encoding.UTF8.GetBytes(text));
}
