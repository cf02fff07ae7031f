using System.Runtime.CompilerServices;
using Colo.Core.Qmp;
using Microsoft.Win32.SafeHandles;

namespace Colo.Block.File;

/// <summary>The "file" protocol driver: a host file accessed with pread/pwrite.</summary>
public sealed class FileNode : BlockNode
{
    private readonly SafeFileHandle _handle;
    private readonly RequestTracker _tracker = new();

    private FileNode(string filename, SafeFileHandle handle, bool readOnly, string? nodeName)
        : base(nodeName, readOnly)
    {
        Filename = filename;
        _handle = handle;
    }

    public override string DriverName => "file";

    public override string Filename { get; }

    public override long Size => RandomAccess.GetLength(_handle);

    public static FileNode Open(string filename, bool readOnly, string? nodeName = null)
    {
        try
        {
            SafeFileHandle h = System.IO.File.OpenHandle(
                filename,
                FileMode.Open,
                readOnly ? FileAccess.Read : FileAccess.ReadWrite,
                readOnly ? FileShare.ReadWrite : FileShare.Read);
            return new FileNode(filename, h, readOnly, nodeName);
        }
        catch (FileNotFoundException e)
        {
            throw new BlockException(QmpErrorClass.GenericError, $"Could not open '{filename}': No such file or directory", e);
        }
        catch (DirectoryNotFoundException e)
        {
            throw new BlockException(QmpErrorClass.GenericError, $"Could not open '{filename}': No such file or directory", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new BlockException(QmpErrorClass.GenericError, $"Could not open '{filename}': Permission denied", e);
        }
        catch (IOException e)
        {
            throw new BlockException(QmpErrorClass.GenericError, $"Could not open '{filename}': {e.Message}", e);
        }
    }

    /// <summary>Creates (or truncates) the host file, as QEMU's file driver does for image creation.</summary>
    public static void Create(string filename, long size)
    {
        try
        {
            using SafeFileHandle h = System.IO.File.OpenHandle(filename, FileMode.Create, FileAccess.ReadWrite);
            RandomAccess.SetLength(h, size);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string reason = e is UnauthorizedAccessException ? "Permission denied"
                : e is DirectoryNotFoundException ? "No such file or directory" : e.Message;
            throw new BlockException(QmpErrorClass.GenericError, $"Could not create '{filename}': {reason}", e);
        }
    }

    /// <summary>Reads past end of file return zeroes, as a sparse host file would.</summary>
    public override void Read(long offset, Span<byte> buffer)
    {
        int slot = _tracker.BeginSync(offset, buffer.Length, write: false);
        try
        {
            FileIoRequest.ReadFully(_handle, Filename, buffer, offset);
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    /// <summary>pread/pwrite are positional; overlapping requests are ordered by the node's tracker.</summary>
    public override bool ConcurrentReads => true;

    public override bool ConcurrentWrites => !ReadOnly;

    /// <summary>Requests in flight on this file (running or waiting for an overlapping one); for tests.</summary>
    internal int RequestsInFlight => _tracker.Count;

    /// <summary>The read runs on a block-io worker (QEMU's aio=threads); the request object is pooled.</summary>
    public override ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        return buffer.Length == 0 ? ValueTask.CompletedTask : IoAsync(offset, buffer, default, write: false);
    }

    /// <summary>The pwrite runs on a block-io worker; overlapping requests in flight complete in issue order.</summary>
    public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        if (ReadOnly)
        {
            return ValueTask.FromException(new BlockException($"Block node '{NodeName}' is read-only"));
        }

        return buffer.Length == 0 ? ValueTask.CompletedTask : IoAsync(offset, default, buffer, write: true);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask IoAsync(long offset, Memory<byte> dest, ReadOnlyMemory<byte> source, bool write)
    {
        int slot = _tracker.Begin(offset, write ? source.Length : dest.Length, write, out Task? wait);
        try
        {
            if (wait != null)
            {
                await wait.ConfigureAwait(false);
            }

            if (write)
            {
                await FileIoRequest.StartWrite(_handle, Filename, source, offset).ConfigureAwait(false);
            }
            else
            {
                await FileIoRequest.Start(_handle, Filename, dest, offset).ConfigureAwait(false);
            }
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    public override void Write(long offset, ReadOnlySpan<byte> buffer)
    {
        CheckWritable();
        int slot = _tracker.BeginSync(offset, buffer.Length, write: true);
        try
        {
            FileIoRequest.WriteFully(_handle, Filename, buffer, offset);
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    public override void Flush()
    {
        if (!ReadOnly)
        {
            RandomAccess.FlushToDisk(_handle);
        }
    }

    public override void Truncate(long size)
    {
        CheckWritable();
        int slot = _tracker.BeginSync(0, long.MaxValue, write: true); // after every request in flight
        try
        {
            RandomAccess.SetLength(_handle, size);
        }
        finally
        {
            _tracker.End(slot);
        }
    }

    /// <summary>Host bytes actually allocated (st_blocks * 512), for "disk size".</summary>
    public long AllocatedSize => HostFile.AllocatedBytes(Filename);

    /// <summary>Host bytes allocated to <paramref name="path"/> (st_blocks * 512).</summary>
    public static long GetAllocatedSize(string path) => HostFile.AllocatedBytes(path);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _handle.Dispose();
        }

        base.Dispose(disposing);
    }
}
