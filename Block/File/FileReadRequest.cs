using System.Threading.Tasks.Sources;
using Microsoft.Win32.SafeHandles;

namespace Colo.Block.File;

/// <summary>
/// One positional read (pread) run on a <see cref="BlockIoThreads"/> worker and awaited as a <see cref="ValueTask"/>: the
/// asynchronous file read of <see cref="FileNode"/>. Linux has no asynchronous buffered file I/O that
/// .NET exposes, so, as QEMU's thread-pool AIO (aio=threads, qemu-img bench's default), the blocking call
/// runs on a worker while the caller keeps other requests in flight. Requests are pooled, so a read in
/// steady state allocates nothing (<see cref="RandomAccess.ReadAsync(SafeFileHandle, Memory{byte}, long, CancellationToken)"/>
/// caches only one such object per handle and allocates whenever two reads overlap).
/// </summary>
internal sealed class FileReadRequest : IValueTaskSource, IThreadPoolWorkItem
{
    // Enough for qemu-img bench's default depth (64) plus NBD's in-flight reads; beyond that requests
    // are allocated and dropped, which stays correct.
    private static readonly FileReadRequest?[] s_pool = new FileReadRequest?[256];

    private ManualResetValueTaskSourceCore<bool> _core;
    private SafeFileHandle? _handle;
    private Memory<byte> _buffer;
    private long _offset;
    private string _filename = "";

    private FileReadRequest()
    {
        // Completions resume the awaiting request on the worker that did the read (QEMU also completes
        // on the thread pool's side): a hop to .NET's pool would only add latency.
        _core.RunContinuationsAsynchronously = false;
    }

    public static ValueTask Start(SafeFileHandle handle, string filename, Memory<byte> buffer, long offset)
    {
        FileReadRequest r = Rent();
        r._handle = handle;
        r._filename = filename;
        r._buffer = buffer;
        r._offset = offset;
        short version = r._core.Version;
        BlockIoThreads.Queue(r);
        return new ValueTask(r, version);
    }

    /// <summary>Reads until the buffer is full; bytes past end of file read as zeroes (a sparse file's hole).</summary>
    public static void ReadFully(SafeFileHandle handle, string filename, Span<byte> buffer, long offset)
    {
        try
        {
            while (buffer.Length > 0)
            {
                int n = RandomAccess.Read(handle, buffer, offset);
                if (n <= 0)
                {
                    buffer.Clear();
                    return;
                }

                buffer = buffer[n..];
                offset += n;
            }
        }
        catch (Exception e) when (e is IOException or ArgumentOutOfRangeException or ObjectDisposedException)
        {
            throw new BlockException($"Could not read '{filename}' at offset {offset}: {e.Message}", e);
        }
    }

    void IThreadPoolWorkItem.Execute()
    {
        try
        {
            ReadFully(_handle!, _filename, _buffer.Span, _offset);
            _core.SetResult(true);
        }
        catch (Exception e)
        {
            _core.SetException(e);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    public void GetResult(short token)
    {
        try
        {
            _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            _handle = null;
            _buffer = default;
            Return(this);
        }
    }

    private static FileReadRequest Rent()
    {
        FileReadRequest?[] pool = s_pool;
        for (int i = 0; i < pool.Length; i++)
        {
            if (Volatile.Read(ref pool[i]) != null && Interlocked.Exchange(ref pool[i], null) is { } r)
            {
                return r;
            }
        }

        return new FileReadRequest();
    }

    private static void Return(FileReadRequest r)
    {
        FileReadRequest?[] pool = s_pool;
        for (int i = 0; i < pool.Length; i++)
        {
            if (Volatile.Read(ref pool[i]) == null && Interlocked.CompareExchange(ref pool[i], r, null) == null)
            {
                return;
            }
        }
    }
}
