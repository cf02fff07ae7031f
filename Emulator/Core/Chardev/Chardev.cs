using Colo.Core.Loop;
using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Core.Chardev;

/// <summary>
/// Base of every chardev backend (socket, stdio, file, null, ...): one optional frontend, writes from any
/// thread, received bytes and connection events delivered on the frontend's event loop.
/// </summary>
public abstract class Chardev : QomObject
{
    private readonly Lock _frontendLock = new();
    private ICharFrontend? _frontend;
    private IEventLoop? _loop;

    // Received bytes the frontend has not taken yet (flow control), oldest first; guarded by _pendingLock.
    private readonly object _pendingLock = new();
    private readonly Queue<byte[]> _pending = new();
    private int _pendingOffset;
    private int _pendingBytes;
    private bool _pumpPosted;

    /// <summary>A reader stops taking input from its peer while this much waits for a slow frontend.</summary>
    private const int MaxPendingBytes = 1 << 20;

    protected Chardev(ObjectTypeInfo type, PropertyValues values)
        : base(type, values)
    {
    }

    /// <summary>True while bytes written reach a peer (always true for file/stdio/null).</summary>
    public abstract bool IsConnected { get; }

    public virtual bool HasFrontend => Volatile.Read(ref _frontend) is not null;

    /// <summary>Connects the consumer; QEMU allows one per chardev (mux aside).</summary>
    /// <exception cref="QmpException">The chardev already has a frontend.</exception>
    public virtual void Attach(ICharFrontend frontend, IEventLoop loop)
    {
        lock (_frontendLock)
        {
            if (_frontend is not null)
            {
                throw new QmpException($"Device '{Name}' is in use");
            }
            _frontend = frontend;
            _loop = loop;
        }
        frontend.SetReceiveSpaceHandler(() => SchedulePump(frontend, loop));
        OnAttached();
    }

    /// <summary>Disconnects <paramref name="frontend"/> if it is attached (a mux keeps its other frontends).</summary>
    public virtual void Detach(ICharFrontend frontend)
    {
        if (ReferenceEquals(Volatile.Read(ref _frontend), frontend))
        {
            Detach();
        }
    }

    public void Detach()
    {
        ICharFrontend? old;
        lock (_frontendLock)
        {
            old = _frontend;
            _frontend = null;
            _loop = null;
        }
        old?.SetReceiveSpaceHandler(null);
        lock (_pendingLock)
        {
            _pending.Clear();
            _pendingOffset = 0;
            _pendingBytes = 0;
            Monitor.PulseAll(_pendingLock);
        }
    }

    /// <summary>Writes all of <paramref name="data"/> or nothing (disconnected); returns bytes written.</summary>
    public abstract int Write(ReadOnlySpan<byte> data);

    /// <summary>A chardev's options are backend configuration, not QOM properties: QEMU lists only the run-time ones.</summary>
    public override IEnumerable<(string Name, string Type)> QomProperties => RuntimeProperties;

    public override string? DeleteBlocker() => HasFrontend ? $"Chardev '{Name}' is busy" : null;

    /// <summary>Called after a frontend attached; a connected backend reports <see cref="CharEvent.Opened"/> here.</summary>
    protected virtual void OnAttached()
    {
        if (IsConnected)
        {
            DeliverEvent(CharEvent.Opened);
        }
    }

    /// <summary>Hands received bytes to the frontend on its loop; dropped when no frontend is attached.</summary>
    protected void DeliverReceived(ReadOnlySpan<byte> data)
    {
        ICharFrontend? frontend;
        IEventLoop? loop;
        lock (_frontendLock)
        {
            frontend = _frontend;
            loop = _loop;
        }
        if (frontend is null || loop is null)
        {
            return;
        }
        // Backpressure: the backend's reader waits while a slow frontend (a guest UART) has much to catch up on.
        lock (_pendingLock)
        {
            if (_pendingBytes >= MaxPendingBytes)
            {
                Monitor.Wait(_pendingLock, TimeSpan.FromSeconds(1));
            }
            _pending.Enqueue(data.ToArray());
            _pendingBytes += data.Length;
        }
        SchedulePump(frontend, loop);
    }

    private void SchedulePump(ICharFrontend frontend, IEventLoop loop)
    {
        lock (_pendingLock)
        {
            if (_pumpPosted || _pendingBytes == 0)
            {
                return;
            }
            _pumpPosted = true;
        }
        loop.Post(() => Pump(frontend));
    }

    /// <summary>On the frontend's loop: hands over as many pending bytes as the frontend has room for.</summary>
    private void Pump(ICharFrontend frontend)
    {
        while (true)
        {
            lock (_pendingLock)
            {
                // Cleared before asking for space, so a space report from now on posts a new pump.
                _pumpPosted = false;
                if (!ReferenceEquals(frontend, Volatile.Read(ref _frontend)) || _pendingBytes == 0)
                {
                    return;
                }
            }
            // Asked outside _pendingLock: the frontend may take its device's lock, under which it reports space.
            int space = frontend.ReceiveSpace;
            if (space <= 0)
            {
                return;
            }
            byte[] chunk;
            int offset;
            int count;
            lock (_pendingLock)
            {
                if (_pending.Count == 0)
                {
                    return;
                }
                chunk = _pending.Peek();
                offset = _pendingOffset;
                count = Math.Min(space, chunk.Length - offset);
                _pendingOffset += count;
                if (_pendingOffset == chunk.Length)
                {
                    _pending.Dequeue();
                    _pendingOffset = 0;
                }
                _pendingBytes -= count;
                if (_pendingBytes < MaxPendingBytes / 2)
                {
                    Monitor.PulseAll(_pendingLock);
                }
            }
            frontend.Receive(chunk.AsSpan(offset, count));
        }
    }

    protected void DeliverEvent(CharEvent charEvent)
    {
        ICharFrontend? frontend;
        IEventLoop? loop;
        lock (_frontendLock)
        {
            frontend = _frontend;
            loop = _loop;
        }
        loop?.Post(() => frontend!.OnEvent(charEvent));
    }
}
