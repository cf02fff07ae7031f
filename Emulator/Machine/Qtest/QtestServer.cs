using System.Diagnostics;
using System.Globalization;
using System.Text;
using Colo.Core.Chardev;
using Colo.Core.Irq;
using Colo.Core.Objects;
using Colo.Devices;
using Colo.Devices.Interrupt;
using Colo.Core.Memory;
using Colo.Core.Time;
using Colo.Devices.Pc;

namespace Colo.Machine.Qtest;

/// <summary>
/// QEMU's qtest line protocol (docs/devel/qtest.rst) on a chardev: a test drives ports, guest memory, the
/// virtual clock and interrupt lines of the board directly, one command per line, each answered <c>OK ...</c> or
/// <c>FAIL ...</c>, with <c>IRQ raise|lower N</c> lines sent asynchronously for intercepted lines. Unlike QEMU,
/// which aborts on a malformed line, a bad line gets a <c>FAIL</c> reply and the server carries on. Runs on the
/// main loop and holds the board lock per command, like any other device access.
/// </summary>
public sealed class QtestServer : ICharFrontend
{
    private readonly Chardev _chardev;
    private readonly PcBoard _board;
    private readonly ManualClock? _clock;
    private readonly TextWriter? _log;
    private readonly Stopwatch _sinceStart = Stopwatch.StartNew();
    private readonly StringBuilder _line = new();
    private readonly ObjectTree _tree;
    private QomObject? _interceptDevice;

    /// <param name="chardev">The transport (<c>-qtest</c>).</param>
    /// <param name="board">The machine's board.</param>
    /// <param name="tree">The QOM tree the interception commands resolve device paths in.</param>
    /// <param name="clock">The virtual clock when the qtest accelerator owns it (clock_step/clock_set); null otherwise.</param>
    /// <param name="log">Where <c>-qtest-log</c> goes (null: none).</param>
    public QtestServer(Chardev chardev, PcBoard board, ObjectTree tree, ManualClock? clock, TextWriter? log)
    {
        _chardev = chardev;
        _board = board;
        _tree = tree;
        _clock = clock;
        _log = log;
    }

    /// <summary>Lines longer than this are refused: a peer cannot grow the buffer without bound.</summary>
    public const int MaxLineLength = 1 << 20;

    /// <inheritdoc/>
    public void Receive(ReadOnlySpan<byte> data)
    {
        foreach (byte b in data)
        {
            if (b == '\n')
            {
                string line = _line.ToString();
                _line.Clear();
                Process(line.TrimEnd('\r'));
            }
            else if (_line.Length < MaxLineLength)
            {
                _line.Append((char)b);
            }
        }
    }

    /// <inheritdoc/>
    public void OnEvent(CharEvent charEvent)
    {
        if (charEvent == CharEvent.Opened)
        {
            _sinceStart.Restart();
            Log($"[I {0.0.ToString("F6", CultureInfo.InvariantCulture)}] OPENED");
        }
        else if (charEvent == CharEvent.Closed)
        {
            Log($"[I +{Elapsed()}] CLOSED");
            _line.Clear();
        }
    }

    /// <summary>Runs one command line and sends its reply (public for in-process tests).</summary>
    public void Process(string line)
    {
        Log($"[R +{Elapsed()}] {line}");
        string reply;
        try
        {
            lock (_board.Lock)
            {
                reply = Execute(line.Split(' ', StringSplitOptions.RemoveEmptyEntries));
            }
        }
        catch (QtestException e)
        {
            reply = "FAIL " + e.Message;
        }
        Send(reply);
    }

    private string Execute(string[] w)
    {
        if (w.Length == 0)
        {
            throw new QtestException("empty command");
        }
        switch (w[0])
        {
            case "outb" or "outw" or "outl":
            {
                Args(w, 2);
                ushort port = Port(w[1]);
                ulong value = Number(w[2]);
                _board.Ports.Write(port, Size(w[0][3]), value);
                return "OK";
            }
            case "inb" or "inw" or "inl":
            {
                Args(w, 1);
                ulong value = _board.Ports.Read(Port(w[1]), Size(w[0][2]));
                return $"OK 0x{value:x4}";
            }
            case "writeb" or "writew" or "writel" or "writeq":
            {
                Args(w, 2);
                ulong address = Number(w[1]);
                ulong value = Number(w[2]);
                Span<byte> bytes = stackalloc byte[8];
                int size = Size(w[0][5]);
                for (int i = 0; i < size; i++)
                {
                    bytes[i] = (byte)(value >> (8 * i));
                }
                _board.Memory.Write(address, bytes[..size]);
                return "OK";
            }
            case "readb" or "readw" or "readl" or "readq":
            {
                Args(w, 1);
                int size = Size(w[0][4]);
                Span<byte> bytes = stackalloc byte[8];
                bytes.Clear();
                _board.Memory.Read(Number(w[1]), bytes[..size]);
                ulong value = 0;
                for (int i = 0; i < size; i++)
                {
                    value |= (ulong)bytes[i] << (8 * i);
                }
                return $"OK 0x{value:x16}";
            }
            case "read" or "b64read":
            {
                Args(w, 2);
                byte[] data = new byte[Length(w[2])];
                _board.Memory.Read(Number(w[1]), data);
                return w[0] == "read" ? "OK 0x" + Convert.ToHexStringLower(data) : "OK " + Convert.ToBase64String(data);
            }
            case "write":
            {
                Args(w, 3);
                ulong address = Number(w[1]);
                byte[] data = new byte[Length(w[2])];
                string hex = w[3].StartsWith("0x", StringComparison.Ordinal) ? w[3][2..] : throw new QtestException("data must start with 0x");
                // Missing digits leave zero bytes, as QEMU fills the rest of the buffer.
                for (int i = 0; i < data.Length && 2 * i < hex.Length; i++)
                {
                    string pair = 2 * i + 1 < hex.Length ? hex.Substring(2 * i, 2) : hex.Substring(2 * i, 1);
                    if (!byte.TryParse(pair, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out data[i]))
                    {
                        throw new QtestException($"invalid hex data '{w[3]}'");
                    }
                }
                _board.Memory.Write(address, data);
                return "OK";
            }
            case "b64write":
            {
                Args(w, 3);
                ulong address = Number(w[1]);
                ulong length = Length(w[2]);
                byte[] decoded;
                try
                {
                    decoded = Convert.FromBase64String(w[3]);
                }
                catch (FormatException)
                {
                    throw new QtestException("invalid base64 data");
                }
                // QEMU writes at most the declared size of what was decoded.
                _board.Memory.Write(address, decoded.AsSpan(0, (int)Math.Min(length, (ulong)decoded.Length)));
                return "OK";
            }
            case "memset":
            {
                Args(w, 3);
                ulong address = Number(w[1]);
                byte[] data = new byte[Length(w[2], allowZero: true)];
                data.AsSpan().Fill((byte)Number(w[3]));
                _board.Memory.Write(address, data);
                return "OK";
            }
            case "endianness":
                return "OK little";
            case "clock_step" when _clock is not null:
            {
                long target;
                if (w.Length > 1)
                {
                    target = _clock.NowNs + (long)Number(w[1]);
                }
                else
                {
                    long next = _clock.NextDeadlineNs;
                    target = next == long.MaxValue ? _clock.NowNs : Math.Max(next, _clock.NowNs);
                }
                _clock.AdvanceTo(target);
                return $"OK {_clock.NowNs.ToString(CultureInfo.InvariantCulture)}";
            }
            case "clock_set" when _clock is not null:
            {
                Args(w, 1);
                _clock.AdvanceTo((long)Number(w[1]));
                return $"OK {_clock.NowNs.ToString(CultureInfo.InvariantCulture)}";
            }
            case "irq_intercept_in" or "irq_intercept_out":
            {
                Args(w, 1);
                return Intercept(w[1], outputs: w[0] == "irq_intercept_out");
            }
            case "set_irq_in":
            {
                Args(w, 4);
                if (!IsIoApic(w[1]))
                {
                    return "FAIL Unknown device";
                }
                int pin = (int)Number(w[3]);
                if (pin < 0 || pin >= 24)
                {
                    throw new QtestException($"pin {pin} out of range");
                }
                _board.Interrupts.SetIoApicPin(pin, Number(w[4]) != 0);
                return "OK";
            }
            case "module_load":
                return "FAIL";
            default:
                return $"FAIL Unknown command '{w[0]}'";
        }
    }

    private bool IsIoApic(string path) => Resolve(path) is DeviceObject { Model: IoApic };

    private QomObject? Resolve(string path) => _tree.TryResolve(path, out _);

    /// <summary>
    /// <c>irq_intercept_in|out PATH</c>: one device at a time, as in QEMU (again on the same device is OK). Its
    /// input pins (the IOAPIC's) or output lines are reported as <c>IRQ raise|lower N</c>, N numbering the
    /// device's unnamed GPIOs; an intercepted output still reaches what it is wired to, as QEMU forwards it.
    /// </summary>
    private string Intercept(string path, bool outputs)
    {
        if (Resolve(path) is not DeviceObject device)
        {
            return "FAIL Unknown device";
        }
        if (_interceptDevice is not null)
        {
            return _interceptDevice == device ? "OK" : "FAIL IRQ intercept already enabled";
        }
        if (!outputs)
        {
            if (device.Model is not IoApic)
            {
                return $"FAIL intercepting the inputs of {device.TypeName} is not implemented yet in Colo";
            }
            _board.Interrupts.IoApicInterceptor = (pin, level) => Send($"IRQ {(level ? "raise" : "lower")} {pin}");
        }
        else
        {
            IReadOnlyList<IrqLine> lines = device.Model is null ? [] : _board.GpioOutputs(device.Model);
            for (int i = 0; i < lines.Count; i++)
            {
                int n = i;
                Action<bool>? forward = lines[i].Sink;
                bool reported = lines[i].Level;
                lines[i].Connect(level =>
                {
                    forward?.Invoke(level);
                    if (level != reported)
                    {
                        reported = level;
                        Send($"IRQ {(level ? "raise" : "lower")} {n}");
                    }
                });
            }
        }
        _interceptDevice = device;
        return "OK";
    }

    private void Send(string reply)
    {
        Log($"[S +{Elapsed()}] {reply}");
        _chardev.Write(Encoding.ASCII.GetBytes(reply + "\n"));
    }

    private void Log(string text)
    {
        if (_log is not null)
        {
            _log.WriteLine(text);
            _log.Flush();
        }
    }

    private string Elapsed() => _sinceStart.Elapsed.TotalSeconds.ToString("F6", CultureInfo.InvariantCulture);

    private static void Args(string[] w, int count)
    {
        if (w.Length < count + 1)
        {
            throw new QtestException($"'{w[0]}' needs {count} argument{(count == 1 ? "" : "s")}");
        }
    }

    private static int Size(char suffix) => suffix switch
    {
        'b' => 1,
        'w' => 2,
        'l' => 4,
        _ => 8,
    };

    private static ushort Port(string text)
    {
        ulong port = Number(text);
        return port <= 0xFFFF ? (ushort)port : throw new QtestException($"port {text} is beyond 0xffff");
    }

    private static ulong Length(string text, bool allowZero = false)
    {
        ulong length = Number(text);
        if (length == 0 && !allowZero)
        {
            throw new QtestException("length must be non-zero");
        }
        // One reply line carries the data: keep it to what a test can sensibly ask for.
        return length <= 64 << 20 ? length : throw new QtestException($"length {text} is too large");
    }

    /// <summary>Parses like strtoull with base 0: 0x hex, leading-0 octal, else decimal.</summary>
    private static ulong Number(string text)
    {
        try
        {
            if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            {
                return ulong.Parse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
            }
            if (text.Length > 1 && text[0] == '0')
            {
                return Convert.ToUInt64(text[1..], 8);
            }
            if (text.StartsWith('-'))
            {
                return unchecked((ulong)long.Parse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture));
            }
            return ulong.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
        {
            throw new QtestException($"invalid number '{text}'");
        }
    }

    private sealed class QtestException(string message) : Exception(message);
}
