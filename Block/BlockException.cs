using Colo.Core.Qmp;

namespace Colo.Block;

/// <summary>
/// The block layer's one exception type. It is a <see cref="QmpException"/>, so a block error that
/// escapes a QMP handler reaches the client with its class ("GenericError", "DeviceNotFound") and
/// text, and a command-line error becomes the usual <c>qemu-system-x86_64: -drive ...: text</c> line.
/// </summary>
public sealed class BlockException : QmpException
{
    public BlockException(string message)
        : base(message)
    {
    }

    public BlockException(QmpErrorClass errorClass, string message, Exception? inner = null)
        : base(message, inner!, errorClass)
    {
    }

    public BlockException()
        : base("block layer error")
    {
    }

    public BlockException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
