namespace Colo.Core.Chardev;

/// <summary>Connection changes a chardev reports to its frontend.</summary>
public enum CharEvent
{
    /// <summary>A peer connected (sockets) or the backend became usable.</summary>
    Opened,
    /// <summary>The peer went away; for a server socket, a new peer may connect later.</summary>
    Closed,
}

/// <summary>
/// The consumer side of a chardev (a monitor, a serial port, a net filter). Its methods are called on
/// the event loop the frontend attached with, never on a backend's I/O thread.
/// </summary>
public interface ICharFrontend
{
    void Receive(ReadOnlySpan<byte> data);

    void OnEvent(CharEvent charEvent);
}
