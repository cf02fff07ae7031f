using System.Buffers.Binary;

namespace Colo.Net;

/// <summary>What <see cref="StreamFrameReader.Next"/> found.</summary>
public enum FrameStatus
{
    /// <summary>The input is used up before a whole frame arrived; feed more.</summary>
    NeedMore,

    /// <summary>A frame is complete.</summary>
    Frame,

    /// <summary>A length prefix is larger than any frame may be: the stream is garbled and must be closed.</summary>
    Invalid,
}

/// <summary>
/// The stream framing of <c>-netdev socket</c> over TCP or a stream socket: each frame is preceded by its length as a
/// 4-byte big-endian number. The reader reassembles frames from reads of any size into one preallocated buffer.
/// </summary>
public sealed class StreamFrameReader
{
    /// <summary>QEMU's NET_BUFSIZE: the largest frame a socket netdev accepts (64 KiB plus room for headers).</summary>
    public const int MaxFrame = 4096 + 65536;

    private readonly byte[] _buffer = new byte[MaxFrame];
    private int _headerFill;
    private int _length = -1;
    private int _fill;

    /// <summary>
    /// Consumes bytes from <paramref name="input"/> (advancing it) until a frame is complete, the input ends, or the
    /// length prefix is invalid. A returned frame stays valid until the next call.
    /// </summary>
    public FrameStatus Next(ref ReadOnlySpan<byte> input, out ReadOnlySpan<byte> frame)
    {
        frame = default;
        if (_length < 0)
        {
            int take = Math.Min(4 - _headerFill, input.Length);
            input[..take].CopyTo(_buffer.AsSpan(_headerFill));
            _headerFill += take;
            input = input[take..];
            if (_headerFill < 4)
            {
                return FrameStatus.NeedMore;
            }
            uint length = BinaryPrimitives.ReadUInt32BigEndian(_buffer);
            _headerFill = 0;
            if (length > MaxFrame)
            {
                return FrameStatus.Invalid;
            }
            _length = (int)length;
            _fill = 0;
        }
        int n = Math.Min(_length - _fill, input.Length);
        input[..n].CopyTo(_buffer.AsSpan(_fill));
        _fill += n;
        input = input[n..];
        if (_fill < _length)
        {
            return FrameStatus.NeedMore;
        }
        frame = _buffer.AsSpan(0, _length);
        _length = -1;
        return FrameStatus.Frame;
    }

    /// <summary>Forgets a partial frame (a new connection starts clean).</summary>
    public void Reset()
    {
        _headerFill = 0;
        _length = -1;
        _fill = 0;
    }
}

/// <summary>Writes the stream framing's length prefix.</summary>
public static class StreamFrameWriter
{
    public const int HeaderSize = 4;

    public static void WriteHeader(Span<byte> header, int frameLength) =>
        BinaryPrimitives.WriteUInt32BigEndian(header, (uint)frameLength);
}
