using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Colo.Tests.EndToEnd.Infrastructure;

/// <summary>
/// A qtest session the way QEMU's libqtest opens one: the test listens on a unix socket, starts
/// <c>qemu-system-x86_64 -accel qtest -qtest unix:PATH</c>, and talks the line protocol over the accepted
/// connection; QMP is on the process's stdio. Asynchronous <c>IRQ raise|lower N</c> lines are recorded as they
/// arrive, so <see cref="GetIrq"/> answers from the latest one, as libqtest's <c>get_irq</c> does.
/// </summary>
internal sealed class QtestClient : IDisposable
{
    private readonly Socket _socket;
    private readonly LineReader _lines;
    private readonly Dictionary<int, bool> _irqs = [];
    private readonly string _dir;

    private QtestClient(QemuProcess process, Socket socket, string dir)
    {
        Process = process;
        _socket = socket;
        _dir = dir;
        _lines = new LineReader(new NetworkStream(socket, ownsSocket: false));
    }

    /// <summary>The emulator process (QMP on its stdio).</summary>
    public QemuProcess Process { get; }

    /// <summary>Starts <c>-M pc -accel qtest</c> with <paramref name="extraArgs"/> and connects.</summary>
    public static async Task<QtestClient> StartAsync(params string[] extraArgs)
    {
        string dir = Directory.CreateTempSubdirectory("colo-qtest-").FullName;
        string path = Path.Combine(dir, "qtest.sock");
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        string[] args = ["-M", "pc", "-accel", "qtest", "-qtest", $"unix:{path}", "-qtest-log", "none", "-display", "none", "-qmp", "stdio", .. extraArgs];
        QemuProcess process = QemuProcess.Start(args);
        using var cts = new CancellationTokenSource(QemuProcess.Timeout);
        Socket socket;
        try
        {
            socket = await listener.AcceptAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            string stderr = process.Stderr;
            process.Dispose();
            throw new AssertionException($"qemu-system-x86_64 did not connect to the qtest socket; stderr:\n{stderr}");
        }
        finally
        {
            listener.Dispose();
        }
        return new QtestClient(process, socket, dir);
    }

    /// <summary>Sends one command and returns its reply line (IRQ lines in between are recorded).</summary>
    public async Task<string> CommandAsync(string command)
    {
        await _socket.SendAsync(Encoding.ASCII.GetBytes(command + "\n")).ConfigureAwait(false);
        while (true)
        {
            string line = await _lines.NextAsync(QemuProcess.Timeout).ConfigureAwait(false)
                ?? throw new AssertionException($"qtest connection closed after '{command}'; stderr:\n{Process.Stderr}");
            if (line.StartsWith("IRQ ", StringComparison.Ordinal))
            {
                RecordIrq(line);
                continue;
            }
            return line;
        }
    }

    /// <summary>
    /// Pipelines many commands (sent in large writes, replies read afterwards) and returns the replies in order;
    /// the reader task drains the socket meanwhile, so the server never blocks on a full buffer.
    /// </summary>
    public async Task<List<string>> BatchAsync(IReadOnlyList<string> commands)
    {
        var text = new StringBuilder();
        foreach (string c in commands)
        {
            text.Append(c).Append('\n');
            if (text.Length > 1 << 16)
            {
                await _socket.SendAsync(Encoding.ASCII.GetBytes(text.ToString())).ConfigureAwait(false);
                text.Clear();
            }
        }
        await _socket.SendAsync(Encoding.ASCII.GetBytes(text.ToString())).ConfigureAwait(false);
        var replies = new List<string>(commands.Count);
        while (replies.Count < commands.Count)
        {
            string line = await _lines.NextAsync(QemuProcess.Timeout).ConfigureAwait(false)
                ?? throw new AssertionException($"qtest connection closed after {replies.Count} of {commands.Count} replies (last command sent: '{commands[replies.Count]}'); stderr:\n{Process.Stderr}");
            if (line.StartsWith("IRQ ", StringComparison.Ordinal))
            {
                RecordIrq(line);
                continue;
            }
            replies.Add(line);
        }
        return replies;
    }

    /// <summary>Sends a command that must answer <c>OK [value]</c>; returns the value part.</summary>
    public async Task<string> OkAsync(string command)
    {
        string reply = await CommandAsync(command).ConfigureAwait(false);
        Assert.That(reply, Does.StartWith("OK"), $"reply to '{command}'");
        return reply.Length > 3 ? reply[3..] : "";
    }

    public async Task<ulong> InAsync(char size, ushort port) => Hex(await OkAsync($"in{size} 0x{port:x}").ConfigureAwait(false));

    public Task OutAsync(char size, ushort port, ulong value) => OkAsync($"out{size} 0x{port:x} 0x{value:x}");

    public async Task<ulong> ReadAsync(char size, ulong address) => Hex(await OkAsync($"read{size} 0x{address:x}").ConfigureAwait(false));

    public Task WriteAsync(char size, ulong address, ulong value) => OkAsync($"write{size} 0x{address:x} 0x{value:x}");

    public async Task<byte[]> MemReadAsync(ulong address, int length) =>
        Convert.FromBase64String(await OkAsync($"b64read 0x{address:x} 0x{length:x}").ConfigureAwait(false));

    public Task MemWriteAsync(ulong address, byte[] data) => OkAsync($"b64write 0x{address:x} 0x{data.Length:x} {Convert.ToBase64String(data)}");

    /// <summary>PCI config read through mechanism #1.</summary>
    public async Task<uint> PciConfigReadAsync(int devFn, int offset, char size = 'l')
    {
        await OutAsync('l', 0xCF8, 0x80000000u | ((uint)devFn << 8) | (uint)(offset & 0xFC)).ConfigureAwait(false);
        return (uint)await InAsync(size, (ushort)(0xCFC + (offset & 3))).ConfigureAwait(false);
    }

    /// <summary>PCI config write through mechanism #1.</summary>
    public async Task PciConfigWriteAsync(int devFn, int offset, uint value, char size = 'l')
    {
        await OutAsync('l', 0xCF8, 0x80000000u | ((uint)devFn << 8) | (uint)(offset & 0xFC)).ConfigureAwait(false);
        await OutAsync(size, (ushort)(0xCFC + (offset & 3)), value).ConfigureAwait(false);
    }

    /// <summary>Advances the virtual clock by <paramref name="ns"/> (or to the next deadline); returns the new time.</summary>
    public async Task<long> ClockStepAsync(long? ns = null) =>
        long.Parse(await OkAsync(ns is long n ? $"clock_step {n}" : "clock_step").ConfigureAwait(false), CultureInfo.InvariantCulture);

    /// <summary>The last level reported for intercepted line <paramref name="irq"/> (false if never reported).</summary>
    public bool GetIrq(int irq) => _irqs.GetValueOrDefault(irq);

    private void RecordIrq(string line)
    {
        string[] parts = line.Split(' ');
        _irqs[int.Parse(parts[2], CultureInfo.InvariantCulture)] = parts[1] == "raise";
    }

    private static ulong Hex(string text) => ulong.Parse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    public void Dispose()
    {
        _socket.Dispose();
        Process.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
