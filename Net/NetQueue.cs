using System.Buffers;

namespace Colo.Net;

/// <summary>
/// Frames waiting for a client that could not take them (QEMU's per-client incoming queue): each frame is copied
/// into a pooled buffer, so queueing allocates nothing once the pool and the ring have warmed up. Like QEMU, a full
/// queue drops new frames instead of growing without bound.
/// </summary>
public sealed class NetQueue
{
    /// <summary>QEMU's default queue length, in frames.</summary>
    public const int DefaultCapacity = 10000;

    private readonly Queue<(byte[] Buffer, int Length)> _frames = new();
    private readonly int _capacity;

    public NetQueue(int capacity = DefaultCapacity)
    {
        _capacity = capacity;
    }

    public int Count => _frames.Count;

    /// <summary>Frames refused because the queue was full.</summary>
    public long Dropped { get; private set; }

    /// <summary>Copies <paramref name="frame"/> to the tail; false (and counted as dropped) when the queue is full.</summary>
    public bool Append(ReadOnlySpan<byte> frame)
    {
        if (_frames.Count >= _capacity)
        {
            Dropped++;
            return false;
        }
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(frame.Length, 1));
        frame.CopyTo(buffer);
        _frames.Enqueue((buffer, frame.Length));
        return true;
    }

    /// <summary>
    /// Offers queued frames to <paramref name="receiver"/> in order until it refuses one (returns 0 or cannot receive),
    /// which stays at the head. Returns true when the queue is empty afterwards.
    /// </summary>
    public bool Flush(NetClient receiver)
    {
        while (_frames.TryPeek(out (byte[] Buffer, int Length) head))
        {
            if (!receiver.CanReceive() || receiver.Receive(head.Buffer.AsSpan(0, head.Length)) == 0)
            {
                return false;
            }
            _frames.Dequeue();
            ArrayPool<byte>.Shared.Return(head.Buffer);
        }
        return true;
    }

    /// <summary>Drops every queued frame (the client goes away).</summary>
    public void Purge()
    {
        while (_frames.TryDequeue(out (byte[] Buffer, int Length) frame))
        {
            ArrayPool<byte>.Shared.Return(frame.Buffer);
        }
    }
}
