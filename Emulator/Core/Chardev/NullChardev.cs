using Colo.Core.Objects;

namespace Colo.Core.Chardev;

/// <summary>The <c>null</c> backend: writes vanish, nothing is ever received.</summary>
public sealed class NullChardev : Chardev, IChardevInfo
{
    private ChardevLog? _log;

    internal NullChardev(ObjectTypeInfo type, PropertyValues values)
        : base(type, values)
    {
    }

    /// <inheritdoc/>
    public override bool IsConnected => true;

    /// <inheritdoc/>
    public string Filename => "null";

    /// <inheritdoc/>
    public override void Complete()
    {
        ChardevTypes.RefuseUnimplemented(this);
        _log = ChardevLog.Open(Values);
    }

    /// <inheritdoc/>
    public override int Write(ReadOnlySpan<byte> data)
    {
        _log?.Append(data);
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
}
