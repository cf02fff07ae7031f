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

    protected Chardev(ObjectTypeInfo type, PropertyValues values)
        : base(type, values)
    {
    }

    /// <summary>True while bytes written reach a peer (always true for file/stdio/null).</summary>
    public abstract bool IsConnected { get; }

    public bool HasFrontend => Volatile.Read(ref _frontend) is not null;

    /// <summary>Connects the consumer; QEMU allows one per chardev (mux aside).</summary>
    /// <exception cref="QmpException">The chardev already has a frontend.</exception>
    public void Attach(ICharFrontend frontend, IEventLoop loop)
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
        OnAttached();
    }

    public void Detach()
    {
        lock (_frontendLock)
        {
            _frontend = null;
            _loop = null;
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
        byte[] copy = data.ToArray();
        loop.Post(() => frontend.Receive(copy));
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
