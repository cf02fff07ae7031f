namespace Colo.QemuSystem;

/// <summary>
/// <c>-pidfile</c>: the file holds our pid and stays locked while we run, so a second
/// instance given the same file refuses to start, as QEMU's does; it is removed at exit.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
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
            // A byte-range lock (fcntl), as QEMU takes: readers such as cat, or .NET's File.ReadAllText
            // (which takes a shared flock), are not blocked; a second instance is.
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
            try
            {
                stream.Lock(0, 1);
            }
            catch (IOException)
            {
                stream.Dispose();
                throw;
            }
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
