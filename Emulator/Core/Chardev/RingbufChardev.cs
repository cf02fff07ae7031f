using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Core.Chardev;

/// <summary>
/// The <c>ringbuf</c> backend (alias <c>memory</c>): a power-of-two ring that keeps the newest
/// <c>size</c> bytes written by the frontend, read back with QMP <c>ringbuf-read</c>.
/// </summary>
public sealed class RingbufChardev : Chardev, IChardevInfo
{
    /// <summary>QEMU's default ring size.</summary>
    public const ulong DefaultSize = 65536;

    private readonly Lock _lock = new();
    private byte[] _buffer = [];
    private long _produced;
    private long _consumed;
    private ChardevLog? _log;

    internal RingbufChardev(ObjectTypeInfo type, PropertyValues values)
        : base(type, values)
    {
    }

    /// <inheritdoc/>
    public override bool IsConnected => true;

    /// <inheritdoc/>
    public string Filename => TypeName;

    /// <summary>Capacity in bytes.</summary>
    public int Size => _buffer.Length;

    /// <summary>Bytes currently held.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return (int)(_produced - _consumed);
            }
        }
    }

    /// <inheritdoc/>
    public override void Complete()
    {
        ChardevTypes.RefuseUnimplemented(this);
        ulong size = Values.Contains("size") ? Values.GetUInt("size") : DefaultSize;
        if ((size & (size - 1)) != 0)
        {
            throw new QmpException("size of ringbuf chardev must be power of two");
        }
        if (size > 1UL << 30)
        {
            // QEMU would try to allocate it; Colo refuses rings beyond 1 GiB rather than risk the host.
            throw new QmpException("size of ringbuf chardev is larger than Colo supports (1G)");
        }
        _buffer = new byte[size];
        _log = ChardevLog.Open(Values);
    }

    /// <summary>A frontend's output: stored in the ring and copied to the log file.</summary>
    public override int Write(ReadOnlySpan<byte> data)
    {
        _log?.Append(data);
        return Store(data);
    }

    /// <summary>Stores bytes in the ring without logging (QMP <c>ringbuf-write</c>).</summary>
    public int Store(ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            int size = _buffer.Length;
            if (size == 0)
            {
                return data.Length;
            }
            foreach (byte b in data)
            {
                _buffer[(int)(_produced & (size - 1))] = b;
                _produced++;
                if (_produced - _consumed > size)
                {
                    _consumed = _produced - size; // the oldest byte is overwritten
                }
            }
        }
        return data.Length;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _log?.Dispose();
        }
        base.Dispose(disposing);
    }

    /// <summary>Removes and returns up to <paramref name="max"/> of the oldest bytes.</summary>
    public byte[] Read(long max)
    {
        lock (_lock)
        {
            int count = (int)Math.Min(max, _produced - _consumed);
            byte[] result = new byte[Math.Max(count, 0)];
            for (int i = 0; i < result.Length; i++)
            {
                result[i] = _buffer[(int)(_consumed & (_buffer.Length - 1))];
                _consumed++;
            }
            return result;
        }
    }
}
