using System.Text;
using System.Threading.Channels;

namespace Colo.Tests.EndToEnd.Infrastructure;

/// <summary>Reads lines from a stream on a background task so tests can wait for the next one with a timeout.</summary>
internal sealed class LineReader
{
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();

    public LineReader(Stream stream)
    {
        _ = Task.Run(async () =>
        {
            using var reader = new StreamReader(stream, Encoding.UTF8);
            try
            {
                while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line)
                {
                    await _lines.Writer.WriteAsync(line).ConfigureAwait(false);
                }
            }
            catch (IOException)
            {
            }
            catch (ObjectDisposedException)
            {
            }
            _lines.Writer.TryComplete();
        });
    }

    /// <summary>The next line, or null at end of stream.</summary>
    /// <exception cref="TimeoutException">No line within <paramref name="timeout"/>.</exception>
    public async Task<string?> NextAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            return await _lines.Reader.WaitToReadAsync(cts.Token).ConfigureAwait(false) && _lines.Reader.TryRead(out string? line) ? line : null;
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"no line within {timeout}");
        }
    }
}
