using System.Threading.Tasks.Sources;
using Microsoft.Win32.SafeHandles;

namespace Colo.Block.File;

/// <summary>
/// One positional read or write (pread/pwrite) run on a <see cref="BlockIoThreads"/> worker and awaited as a
/// <see cref="ValueTask"/>: the asynchronous file I/O of <see cref="FileNode"/>. Linux has no asynchronous buffered file I/O that
/// .NET exposes, so, as QEMU's thread-pool AIO (aio=threads, qemu-img bench's default), the blocking call
/// runs on a worker while the caller keeps other requests in flight. Requests are pooled, so a read in
/// steady state allocates nothing (<see cref="RandomAccess.ReadAsync(SafeFileHandle, Memory{byte}, long, CancellationToken)"/>
/// caches only one such object per handle and allocates whenever two reads overlap).
/// </summary>
internal sealed class FileIoRequest : IValueTaskSource, IThreadPoolWorkItem
{
    // Enough for qemu-img bench's default depth (64) plus NBD's in-flight reads; beyond that requests
    // are allocated and dropped, which stays correct.
    private static readonly FileIoRequest?[] s_pool = new FileIoRequest?[256];

    private ManualResetValueTaskSourceCore<bool> _core;
    private SafeFileHandle? _handle;
    private Memory<byte> _buffer;
    private ReadOnlyMemory<byte> _source;
    private bool _write;
    private long _offset;
    private string _filename = "";

    private FileIoRequest()
    {
        // Completions resume the awaiting request on the worker that did the read (QEMU also completes
        // on the thread pool's side): a hop to .NET's pool would only add latency.
        _core.RunContinuationsAsynchronously = false;
    }

    public static ValueTask Start(SafeFileHandle handle, string filename, Memory<byte> buffer, long offset)
    {
        FileIoRequest r = Rent();
        r._handle = handle;
        r._filename = filename;
        r._buffer = buffer;
        r._write = false;
        r._offset = offset;
        short version = r._core.Version;
        BlockIoThreads.Queue(r);
        return new ValueTask(r, version);
    }

    public static ValueTask StartWrite(SafeFileHandle handle, string filename, ReadOnlyMemory<byte> source, long offset)
    {
        FileIoRequest r = Rent();
        r._handle = handle;
        r._filename = filename;
        r._source = source;
        r._write = true;
        r._offset = offset;
        short version = r._core.Version;
        BlockIoThreads.Queue(r);
        return new ValueTask(r, version);
    }

    /// <summary>pwrite of the whole buffer, with the block layer's error shape.</summary>
    public static void WriteFully(SafeFileHandle handle, string filename, ReadOnlySpan<byte> source, long offset)
    {
        try
        {
            RandomAccess.Write(handle, source, offset);
        }
        catch (Exception e) when (e is IOException or ArgumentOutOfRangeException or ObjectDisposedException)
        {
            throw new BlockException($"Could not write '{filename}' at offset {offset}: {e.Message}", e);
        }
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
            if (_write)
            {
                WriteFully(_handle!, _filename, _source.Span, _offset);
            }
            else
            {
                ReadFully(_handle!, _filename, _buffer.Span, _offset);
            }

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
            _source = default;
            Return(this);
        }
    }

    private static FileIoRequest Rent()
    {
        FileIoRequest?[] pool = s_pool;
        for (int i = 0; i < pool.Length; i++)
        {
            if (Volatile.Read(ref pool[i]) != null && Interlocked.Exchange(ref pool[i], null) is { } r)
            {
                return r;
            }
        }

        return new FileIoRequest();
    }

    private static void Return(FileIoRequest r)
    {
        FileIoRequest?[] pool = s_pool;
        for (int i = 0; i < pool.Length; i++)
        {
            if (Volatile.Read(ref pool[i]) == null && Interlocked.CompareExchange(ref pool[i], r, null) == null)
            {
                return;
            }
        }
    }
}
