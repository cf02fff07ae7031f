using Colo.Core.Objects;

namespace Colo.Core.Chardev;

/// <summary>The <c>null</c> backend: writes vanish, nothing is ever received.</summary>
public sealed class NullChardev : Chardev, IChardevInfo
{
    internal NullChardev(ObjectTypeInfo type, PropertyValues values)
        : base(type, values)
    {
    }

    /// <inheritdoc/>
    public override bool IsConnected => true;

    /// <inheritdoc/>
    public string Filename => "null";

    /// <inheritdoc/>
    public override void Complete() => ChardevTypes.RefuseUnimplemented(this);

    /// <inheritdoc/>
    public override int Write(ReadOnlySpan<byte> data) => data.Length;
}
