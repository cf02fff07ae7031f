using System.Diagnostics;
using System.Globalization;
using System.Text;
using Colo.Core.Loop;
using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Core.Chardev;

/// <summary>
/// QEMU's <c>mux</c> chardev (<c>mux=on</c>, <c>mon:</c>, <c>-nographic</c>): several frontends share one base
/// chardev. Every frontend's output goes to the base; input goes to the focused frontend only, and the escape
/// character (Ctrl-A unless <c>-echr</c>) introduces the commands <c>h x s t b c</c>. All frontends run on one
/// event loop (the main loop), so input is handed over directly on it.
/// </summary>
public sealed class MuxChardev : Chardev, IChardevInfo, ICharFrontend
{
    /// <summary>How many frontends one mux serves (QEMU's MAX_MUX).</summary>
    public const int MaxFrontends = 4;

    /// <summary>Bytes held per frontend after a focus switch handed it more than it had room for.</summary>
    private const int HeldLimit = 32;

    private readonly Lock _writeLock = new();
    private readonly List<Slot> _slots = [];
    private Chardev? _base;
    private IEventLoop? _loop;
    private Action? _baseSpaceHandler;
    private int _focus = -1;
    private bool _realized;
    private bool _baseOpened;
    private bool _escape;
    private bool _timestamps;
    private bool _lineStart = true;
    private long _timestampStart;

    internal MuxChardev(ObjectTypeInfo type, PropertyValues values)
        : base(type, values)
    {
    }

    /// <summary>The escape character (QEMU's <c>-echr</c>, default Ctrl-A); process-wide as in QEMU.</summary>
    public static byte EscapeChar { get; set; } = 0x01;

    /// <summary>Called on Ctrl-A x after "QEMU: Terminated" is printed; the VM ends with exit status 0.</summary>
    public Action? TerminateHandler { get; set; }

    /// <summary>The chardev the frontends share.</summary>
    public Chardev? Base => _base;

    /// <summary>Index of the frontend that receives input, in attach order; -1 before one attaches.</summary>
    public int FocusIndex => _focus;

    /// <summary>Number of attached frontends.</summary>
    public int FrontendCount => _slots.Count;

    /// <inheritdoc/>
    public override bool IsConnected => _base?.IsConnected ?? false;

    /// <inheritdoc/>
    public override bool HasFrontend => _slots.Count > 0;

    /// <inheritdoc/>
    public string Filename => "mux";

    /// <inheritdoc/>
    public override void Complete()
    {
    }

    /// <summary>Makes <paramref name="baseChardev"/> the shared backend (done once, at creation).</summary>
    internal void Bind(Chardev baseChardev) => _base = baseChardev;

    /// <inheritdoc/>
    public override void Attach(ICharFrontend frontend, IEventLoop loop)
    {
        Chardev shared = _base ?? throw new QmpException($"mux: base chardev of '{Name}' is missing");
        if (_slots.Count >= MaxFrontends)
        {
            throw new QmpException($"too many uses of multiplexed chardev '{Name}' (maximum is {MaxFrontends})");
        }
        if (_loop is not null && !ReferenceEquals(_loop, loop))
        {
            throw new QmpException($"Device '{Name}' is in use");
        }
        var slot = new Slot(frontend);
        _slots.Add(slot);
        frontend.SetReceiveSpaceHandler(() => OnFrontendSpace(slot));
        if (_loop is null)
        {
            _loop = loop;
            shared.Attach(this, loop);
        }
        if (_realized)
        {
            // After startup a new frontend takes the focus, as in QEMU.
            SetFocus(_slots.Count - 1);
            if (shared.IsConnected)
            {
                Post(slot, CharEvent.Opened);
            }
        }
    }

    /// <inheritdoc/>
    public override void Detach(ICharFrontend frontend)
    {
        int index = _slots.FindIndex(s => ReferenceEquals(s.Frontend, frontend));
        if (index < 0)
        {
            return;
        }
        _slots[index].Detached = true;
        _slots.RemoveAt(index);
        frontend.SetReceiveSpaceHandler(null);
        if (_slots.Count == 0)
        {
            _focus = -1;
            _base?.Detach(this);
            _loop = null;
        }
        else if (index <= _focus)
        {
            _focus = index == _focus ? _focus % _slots.Count : _focus - 1;
        }
    }

    /// <summary>
    /// Startup is over (QEMU's machine-done point): the first frontend attached (the serial port, which the board
    /// attaches before the monitors) gets the focus and every frontend hears that the backend is open. Call it on the
    /// loop, or before the loop runs.
    /// </summary>
    public void Realize()
    {
        if (_realized)
        {
            return;
        }
        _realized = true;
        if (_slots.Count == 0)
        {
            return;
        }
        // Focus events go out directly, so they precede the (posted) open event: a monitor out of focus keeps its banner.
        _focus = 0;
        for (int i = 0; i < _slots.Count; i++)
        {
            _slots[i].Frontend.OnEvent(i == 0 ? CharEvent.MuxIn : CharEvent.MuxOut);
        }
        if (_baseOpened)
        {
            foreach (Slot slot in _slots)
            {
                Post(slot, CharEvent.Opened);
            }
        }
    }

    /// <summary>Writes a frontend's output to the backend, with a time stamp at each line start while those are on.</summary>
    public override int Write(ReadOnlySpan<byte> data)
    {
        Chardev? shared = _base;
        if (shared is null)
        {
            return 0;
        }
        lock (_writeLock)
        {
            if (!_timestamps)
            {
                return shared.Write(data);
            }
            int start = 0;
            for (int i = 0; i < data.Length; i++)
            {
                if (_lineStart)
                {
                    shared.Write(data[start..i]);
                    start = i;
                    shared.Write(Encoding.ASCII.GetBytes(TimestampText()));
                    _lineStart = false;
                }
                if (data[i] == (byte)'\n')
                {
                    _lineStart = true;
                }
            }
            shared.Write(data[start..]);
            return data.Length;
        }
    }

    /// <summary>QEMU's escape help, with the escape character spelled as it does (<c>C-a</c> for control characters).</summary>
    public static string HelpText()
    {
        string e = EscapeName(EscapeChar);
        var text = new StringBuilder();
        if (EscapeChar > 26)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n\rEscape-Char set to Ascii: 0x{EscapeChar:x2}\n\r");
        }
        text.Append("\n\r");
        text.Append(e).Append(" h    print this help\n\r");
        text.Append(e).Append(" x    exit emulator\n\r");
        text.Append(e).Append(" s    save disk data back to file (if -snapshot)\n\r");
        text.Append(e).Append(" t    toggle console timestamps\n\r");
        text.Append(e).Append(" b    send break (magic sysrq)\n\r");
        text.Append(e).Append(" c    switch between console and monitor\n\r");
        text.Append(e).Append(' ').Append(e).Append("  sends ").Append(e).Append("\n\r");
        return text.ToString();
    }

    // ICharFrontend toward the base chardev: input arrives here on the loop.

    void ICharFrontend.Receive(ReadOnlySpan<byte> data)
    {
        int runStart = 0;
        for (int i = 0; i < data.Length; i++)
        {
            byte b = data[i];
            if (_escape)
            {
                _escape = false;
                runStart = i + 1;
                if (b == EscapeChar)
                {
                    DeliverToFocus(data.Slice(i, 1));
                }
                else
                {
                    Command(b);
                }
            }
            else if (b == EscapeChar)
            {
                DeliverToFocus(data[runStart..i]);
                _escape = true;
            }
        }
        if (!_escape && runStart < data.Length)
        {
            DeliverToFocus(data[runStart..]);
        }
    }

    void ICharFrontend.OnEvent(CharEvent charEvent)
    {
        if (charEvent == CharEvent.Opened && !_realized)
        {
            _baseOpened = true; // Realize announces the open backend once startup is over
            return;
        }
        foreach (Slot slot in _slots)
        {
            slot.Frontend.OnEvent(charEvent);
        }
    }

    /// <summary>The focused frontend's room, or what the mux can still hold for it.</summary>
    int ICharFrontend.ReceiveSpace
    {
        get
        {
            if (_focus < 0 || _focus >= _slots.Count)
            {
                return 0;
            }
            // Bytes beyond the frontend's room wait in the mux (bounded), so an escape still gets through to a full UART.
            Slot slot = _slots[_focus];
            int space = slot.Held.Count == 0 ? slot.Frontend.ReceiveSpace : 0;
            return space > 0 ? space : HeldLimit - slot.Held.Count;
        }
    }

    void ICharFrontend.SetReceiveSpaceHandler(Action? handler) => _baseSpaceHandler = handler;

    private void Command(byte b)
    {
        switch ((char)b)
        {
            case 'h':
                WriteText(HelpText());
                break;
            case 'x':
                WriteText("QEMU: Terminated\n\r");
                if (TerminateHandler is { } terminate)
                {
                    terminate();
                }
                else
                {
                    Environment.Exit(0);
                }
                break;
            case 's':
                // QEMU commits -snapshot overlays here; Colo has no -snapshot overlays to commit.
                WriteText("Colo: committing -snapshot disk data (C-a s) is not supported\n\r");
                break;
            case 't':
                lock (_writeLock)
                {
                    _timestamps = !_timestamps;
                    _timestampStart = 0; // the clock starts at the first stamp, so it reads 00:00:00.000 as QEMU's
                    _lineStart = false;
                }
                break;
            case 'b':
                if (_focus >= 0)
                {
                    _slots[_focus].Frontend.OnEvent(CharEvent.Break);
                }
                break;
            case 'c':
                if (_slots.Count > 0)
                {
                    SetFocus((_focus + 1) % _slots.Count);
                }
                break;
            default:
                break; // an unknown command byte is dropped, as in QEMU
        }
    }

    private void SetFocus(int index)
    {
        if (_focus >= 0 && _focus < _slots.Count && _focus != index)
        {
            _slots[_focus].Frontend.OnEvent(CharEvent.MuxOut);
        }
        _focus = index;
        _slots[index].Frontend.OnEvent(CharEvent.MuxIn);
        _baseSpaceHandler?.Invoke();
    }

    /// <summary>Hands bytes to the focused frontend; what it has no room for waits in the mux (a switch mid-chunk).</summary>
    private void DeliverToFocus(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty || _focus < 0 || _focus >= _slots.Count)
        {
            return;
        }
        Slot slot = _slots[_focus];
        int taken = 0;
        if (slot.Held.Count == 0)
        {
            taken = Math.Min(Math.Max(slot.Frontend.ReceiveSpace, 0), data.Length);
            if (taken > 0)
            {
                slot.Frontend.Receive(data[..taken]);
            }
        }
        for (int i = taken; i < data.Length && slot.Held.Count < HeldLimit; i++)
        {
            slot.Held.Enqueue(data[i]);
        }
    }

    private void OnFrontendSpace(Slot slot)
    {
        IEventLoop? loop = _loop;
        if (loop is null)
        {
            return;
        }
        // The frontend may report space from a vCPU thread: drain on the loop, where input is delivered.
        loop.Post(() =>
        {
            if (slot.Detached)
            {
                return;
            }
            int space = slot.Frontend.ReceiveSpace;
            if (slot.Held.Count > 0 && space > 0)
            {
                int n = Math.Min(space, slot.Held.Count);
                Span<byte> chunk = stackalloc byte[HeldLimit];
                for (int i = 0; i < n; i++)
                {
                    chunk[i] = slot.Held.Dequeue();
                }
                slot.Frontend.Receive(chunk[..n]);
            }
            if (_focus >= 0 && _focus < _slots.Count && ReferenceEquals(_slots[_focus], slot))
            {
                _baseSpaceHandler?.Invoke();
            }
        });
    }

    private void Post(Slot slot, CharEvent charEvent)
    {
        _loop?.Post(() =>
        {
            if (!slot.Detached)
            {
                slot.Frontend.OnEvent(charEvent);
            }
        });
    }

    private void WriteText(string text) => Write(Encoding.ASCII.GetBytes(text));

    private string TimestampText()
    {
        if (_timestampStart == 0)
        {
            _timestampStart = Stopwatch.GetTimestamp();
        }
        TimeSpan t = Stopwatch.GetElapsedTime(_timestampStart);
        return string.Create(CultureInfo.InvariantCulture, $"[{(int)t.TotalHours:D2}:{t.Minutes:D2}:{t.Seconds:D2}.{t.Milliseconds:D3}] ");
    }

    private static string EscapeName(byte c) =>
        c <= 26 ? $"C-{(char)('a' + c - 1)}" : "Escape-Char";

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _base?.Detach(this);
        }
        base.Dispose(disposing);
    }

    private sealed class Slot(ICharFrontend frontend)
    {
        public ICharFrontend Frontend { get; } = frontend;

        public Queue<byte> Held { get; } = new();

        public bool Detached { get; set; }
    }
}
