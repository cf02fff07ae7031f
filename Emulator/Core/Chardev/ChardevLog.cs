using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Core.Chardev;

/// <summary>
/// The <c>logfile</c>/<c>logappend</c> options every backend takes: a copy of everything the frontend
/// writes, as QEMU keeps it (monitor-side writes such as <c>ringbuf-write</c> are not logged, as in QEMU).
/// </summary>
internal sealed class ChardevLog : IDisposable
{
    private readonly Lock _lock = new();
    private readonly FileStream _stream;

    private ChardevLog(FileStream stream)
    {
        _stream = stream;
    }

    /// <summary>Opens the log a chardev's options ask for, or returns null when there is none.</summary>
    /// <exception cref="QmpException">QEMU's <c>Could not create 'PATH': reason</c>.</exception>
    public static ChardevLog? Open(PropertyValues values)
    {
        string? path = values.GetString("logfile");
        if (string.IsNullOrEmpty(path))
        {
            return null;
        }
        FileMode mode = values.GetBool("logappend") ? FileMode.Append : FileMode.Create;
        try
        {
            return new ChardevLog(new FileStream(path, mode, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string reason = e switch
            {
                FileNotFoundException or DirectoryNotFoundException => "No such file or directory",
                UnauthorizedAccessException => "Permission denied",
                _ => e.Message,
            };
            throw new QmpException($"Could not create '{path}': {reason}", e);
        }
    }

    /// <summary>Appends written bytes; a failing log never fails the write itself.</summary>
    public void Append(ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            try
            {
                _stream.Write(data);
                _stream.Flush();
            }
            catch (IOException)
            {
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _stream.Dispose();
        }
    }
}
