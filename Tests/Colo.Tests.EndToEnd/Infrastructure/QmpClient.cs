using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Colo.Tests.EndToEnd.Infrastructure;

/// <summary>A minimal QMP client over a line-oriented stream: send text, read the next reply or event line.</summary>
internal sealed class QmpClient : IDisposable
{
    private readonly Func<string, Task> _send;
    private readonly LineReader _lines;
    private readonly IDisposable? _owned;

    public QmpClient(Func<string, Task> send, LineReader lines, IDisposable? owned = null)
    {
        _send = send;
        _lines = lines;
        _owned = owned;
    }

    public static QmpClient OverStdio(QemuProcess process) => new(process.SendAsync, process.Stdout);

    /// <summary>Connects to a unix-socket monitor, retrying while the server starts.</summary>
    public static async Task<QmpClient> ConnectUnixAsync(string path)
    {
        DateTime deadline = DateTime.UtcNow + QemuProcess.Timeout;
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path)).ConfigureAwait(false);
                var stream = new NetworkStream(socket, ownsSocket: true);
                return new QmpClient(async text => await stream.WriteAsync(Encoding.UTF8.GetBytes(text)).ConfigureAwait(false), new LineReader(stream), stream);
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                socket.Dispose();
                await Task.Delay(50).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Connects to a TCP monitor on loopback, retrying while the server starts.</summary>
    public static async Task<QmpClient> ConnectTcpAsync(int port)
    {
        DateTime deadline = DateTime.UtcNow + QemuProcess.Timeout;
        while (true)
        {
            var client = new TcpClient();
            try
            {
                await client.ConnectAsync(System.Net.IPAddress.Loopback, port).ConfigureAwait(false);
                NetworkStream stream = client.GetStream();
                return new QmpClient(async text => await stream.WriteAsync(Encoding.UTF8.GetBytes(text)).ConfigureAwait(false), new LineReader(stream), client);
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                client.Dispose();
                await Task.Delay(50).ConfigureAwait(false);
            }
        }
    }

    public Task SendAsync(string text) => _send(text);

    /// <summary>The next line (reply or event), failing the test on timeout or end of stream.</summary>
    public async Task<string> NextLineAsync()
    {
        string? line = await _lines.NextAsync(QemuProcess.Timeout).ConfigureAwait(false);
        Assert.That(line, Is.Not.Null, "monitor closed");
        return line!;
    }

    /// <summary>Sends one command line and returns the next line that is not an event.</summary>
    public async Task<string> ExecuteAsync(string commandJson)
    {
        await SendAsync(commandJson + "\n").ConfigureAwait(false);
        while (true)
        {
            string line = await NextLineAsync().ConfigureAwait(false);
            if (!line.Contains("\"event\":", StringComparison.Ordinal))
            {
                return line;
            }
        }
    }

    /// <summary>Reads the greeting and negotiates capabilities.</summary>
    public async Task<string> HandshakeAsync()
    {
        string greeting = await NextLineAsync().ConfigureAwait(false);
        Assert.That(await ExecuteAsync("{\"execute\": \"qmp_capabilities\"}").ConfigureAwait(false), Is.EqualTo("{\"return\": {}}"));
        return greeting;
    }

    public static JsonElement Parse(string line) => JsonDocument.Parse(line).RootElement.Clone();

    public void Dispose() => _owned?.Dispose();
}
