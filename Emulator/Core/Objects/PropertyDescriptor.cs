namespace Colo.Core.Objects;

/// <summary>The value kinds an object property can hold.</summary>
public enum PropertyKind
{
    /// <summary>A string; a name of another object (netdev, chardev, iothread) is a String too.</summary>
    String,
    Bool,
    /// <summary>int64.</summary>
    Int,
    /// <summary>uint64 (also narrower unsigned QEMU types; <see cref="PropertyDescriptor.Max"/> bounds them).</summary>
    UInt,
    /// <summary>A byte count with K/M/G/T suffixes on the command line.</summary>
    Size,
    /// <summary>One of <see cref="PropertyDescriptor.EnumValues"/>.</summary>
    Enum,
}

/// <summary>
/// One typed property of an object type, as <c>-device DRIVER,help</c>, <c>qom-list</c> and
/// <c>device-list-properties</c> show it.
/// </summary>
/// <param name="Name">The property name, as written on the command line.</param>
/// <param name="Kind">Value kind.</param>
/// <param name="Description">One line of help.</param>
/// <param name="Default">The default as QEMU prints it, or null if none.</param>
/// <param name="EnumValues">Allowed values of an <see cref="PropertyKind.Enum"/>.</param>
/// <param name="TypeName">QAPI type name shown by qom-list (e.g. <c>NetFilterDirection</c>); derived from the kind if null.</param>
/// <param name="Required">Creation fails without it.</param>
/// <param name="Writable">Settable by qom-set after creation.</param>
public sealed record PropertyDescriptor(
    string Name,
    PropertyKind Kind,
    string? Description = null,
    string? Default = null,
    IReadOnlyList<string>? EnumValues = null,
    string? TypeName = null,
    bool Required = false,
    bool Writable = false)
{
    /// <summary>Largest accepted value of an unsigned property (uint8/16/32 in QEMU).</summary>
    public ulong Max { get; init; } = ulong.MaxValue;

    /// <summary>
    /// Accepted but left out of help and property listings (qdev's own <c>bus</c> option, which QEMU consumes
    /// before the device's properties).
    /// </summary>
    public bool Hidden { get; init; }

    /// <summary>The type as qom-list reports it.</summary>
    public string QomTypeName => TypeName ?? Kind switch
    {
        PropertyKind.String => "string",
        PropertyKind.Bool => "bool",
        PropertyKind.Int => "int",
        PropertyKind.UInt => Max switch
        {
            byte.MaxValue => "uint8",
            ushort.MaxValue => "uint16",
            uint.MaxValue => "uint32",
            _ => "uint64",
        },
        PropertyKind.Size => "size",
        PropertyKind.Enum => "str",
        _ => "str",
    };

    public static PropertyDescriptor Str(string name, string? description = null, bool required = false) =>
        new(name, PropertyKind.String, description, Required: required);

    public static PropertyDescriptor Flag(string name, bool defaultValue, string? description = null) =>
        new(name, PropertyKind.Bool, description, defaultValue ? "true" : "false");

    public static PropertyDescriptor Int64(string name, long? defaultValue = null, string? description = null) =>
        new(name, PropertyKind.Int, description, defaultValue?.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public static PropertyDescriptor UInt(string name, ulong max, ulong? defaultValue = null, string? description = null) =>
        new(name, PropertyKind.UInt, description, defaultValue?.ToString(System.Globalization.CultureInfo.InvariantCulture)) { Max = max };

    public static PropertyDescriptor OneOf(string name, string typeName, IReadOnlyList<string> values, string? defaultValue = null, string? description = null) =>
        new(name, PropertyKind.Enum, description, defaultValue, values, typeName);
}
