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
    private bool _opened;

    // Output kept while a mux has the focus elsewhere (QEMU's monitor is suspended then); null while focused.
    private StringBuilder? _held;

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
        switch (charEvent)
        {
            case CharEvent.Opened:
                _line.Clear();
                _opened = true;
                Write(_banner + Prompt);
                break;
            case CharEvent.Closed:
                _line.Clear();
                break;
            case CharEvent.MuxOut:
                // Leaving the focus ends the shown line; later output waits until the monitor has the focus again.
                if (_opened && _held is null)
                {
                    Write("\r\n");
                }
                _held ??= new StringBuilder();
                break;
            case CharEvent.MuxIn:
                StringBuilder? held = _held;
                _held = null;
                if (held is { Length: > 0 })
                {
                    Write(held.ToString());
                }
                else if (_opened)
                {
                    Write(Prompt);
                }
                break;
            default:
                break;
        }
    }

    /// <summary>Detaches from the chardev.</summary>
    public void Dispose() => _chardev.Detach(this);

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

    private void Write(string text)
    {
        if (_held is not null)
        {
            _held.Append(text);
            return;
        }
        _chardev.Write(Encoding.UTF8.GetBytes(text));
    }
}
