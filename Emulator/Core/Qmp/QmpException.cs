namespace Colo.Core.Qmp;

/// <summary>
/// An error that becomes a QMP <c>{"error": {"class": ..., "desc": ...}}</c> reply, or the
/// <c>qemu-system-x86_64: OPTION: desc</c> line when raised while processing the command line.
/// Every subsystem's exception derives from this so the two surfaces share one text.
/// </summary>
public class QmpException : Exception
{
    public QmpException(string description, QmpErrorClass errorClass = QmpErrorClass.GenericError)
        : base(description)
    {
        ErrorClass = errorClass;
    }

    public QmpException(string description, Exception inner, QmpErrorClass errorClass = QmpErrorClass.GenericError)
        : base(description, inner)
    {
        ErrorClass = errorClass;
    }

    public QmpErrorClass ErrorClass { get; }
}
