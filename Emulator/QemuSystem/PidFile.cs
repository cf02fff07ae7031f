namespace Colo.QemuSystem;

/// <summary>
/// <c>-pidfile</c>: the file holds our pid and stays exclusively locked while we run, so a second
/// instance given the same file refuses to start, as QEMU's does; it is removed at exit.
/// </summary>
internal sealed class PidFile : IDisposable
{
    private readonly string _path;
    private readonly FileStream _stream;

    private PidFile(string path, FileStream stream)
    {
        _path = path;
        _stream = stream;
    }

    public static PidFile? Create(string path, out string? error)
    {
        try
        {
            // .NET takes an exclusive advisory lock (flock) for FileShare.None on Unix.
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            stream.SetLength(0);
            byte[] text = System.Text.Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n");
            stream.Write(text);
            stream.Flush();
            error = null;
            return new PidFile(path, stream);
        }
        catch (IOException e)
        {
            error = $"Cannot lock pid file: {e.Message}";
            return null;
        }
        catch (UnauthorizedAccessException e)
        {
            error = $"Cannot open pid file: {e.Message}";
            return null;
        }
    }

    public void Dispose()
    {
        _stream.Dispose();
        try
        {
            File.Delete(_path);
        }
        catch (IOException)
        {
            // Someone else's problem now; QEMU ignores this too.
        }
    }
}
