namespace Colo.Core.Chardev;

/// <summary>
/// The write side of the stream-backed chardevs (file, stdio): whole writes under a lock, flushed at
/// once and copied to the <c>logfile</c>; after <see cref="Close"/> writes report 0 bytes.
/// </summary>
internal sealed class ChardevOutput
{
    private readonly Lock _lock = new();
    private readonly ChardevLog? _log;
    private Stream? _stream;

    public ChardevOutput(Stream stream, ChardevLog? log)
    {
        _stream = stream;
        _log = log;
    }

    public int Write(ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            if (_stream is null)
            {
                return 0;
            }
            try
            {
                _stream.Write(data);
                _stream.Flush();
                _log?.Append(data);
                return data.Length;
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                return 0;
            }
        }
    }

    /// <summary>Stops writing; disposes the stream when the chardev owns it (a file), else only flushes it (stdout).</summary>
    public void Close(bool ownsStream)
    {
        lock (_lock)
        {
            if (ownsStream)
            {
                _stream?.Dispose();
            }
            else
            {
                _stream?.Flush();
            }
            _stream = null;
        }
        _log?.Dispose();
    }
}
