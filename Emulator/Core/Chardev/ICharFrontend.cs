namespace Colo.Core.Chardev;

/// <summary>Connection changes a chardev reports to its frontend.</summary>
public enum CharEvent
{
    /// <summary>A peer connected (sockets) or the backend became usable.</summary>
    Opened,
    /// <summary>The peer went away; for a server socket, a new peer may connect later.</summary>
    Closed,
    /// <summary>The user sent a break (mux escape <c>b</c>): a serial port reports a line break.</summary>
    Break,
    /// <summary>A mux gave this frontend the input focus.</summary>
    MuxIn,
    /// <summary>A mux moved the input focus away from this frontend.</summary>
    MuxOut,
}

/// <summary>
/// The consumer side of a chardev (a monitor, a serial port, a net filter). Its methods are called on
/// the event loop the frontend attached with, never on a backend's I/O thread.
/// </summary>
public interface ICharFrontend
{
    void Receive(ReadOnlySpan<byte> data);

    void OnEvent(CharEvent charEvent);

    /// <summary>
    /// How many bytes <see cref="Receive"/> can take now (QEMU's can_read): the chardev holds the rest back, in order,
    /// until the frontend reports space through the handler of <see cref="SetReceiveSpaceHandler"/>.
    /// </summary>
    int ReceiveSpace => int.MaxValue;

    /// <summary>The chardev's callback for "space freed"; a frontend with a bounded <see cref="ReceiveSpace"/> keeps and calls it.</summary>
    void SetReceiveSpaceHandler(Action? handler)
    {
    }
}
