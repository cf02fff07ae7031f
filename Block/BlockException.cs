namespace Colo.Block;

/// <summary>
/// The block layer's one exception type. <see cref="ErrorClass"/> is the QMP error class
/// ("GenericError", "DeviceNotFound", ...) a QMP reply would carry; the message is the user-facing text.
/// </summary>
public sealed class BlockException : Exception
{
    public const string GenericError = "GenericError";

    public BlockException(string message)
        : this(GenericError, message)
    {
    }

    public BlockException(string errorClass, string message, Exception? inner = null)
        : base(message, inner)
    {
        ErrorClass = errorClass;
    }

    public BlockException()
        : this(GenericError, "block layer error")
    {
    }

    public BlockException(string message, Exception inner)
        : this(GenericError, message, inner)
    {
    }

    /// <summary>QMP error class, e.g. "GenericError".</summary>
    public string ErrorClass { get; }
}
