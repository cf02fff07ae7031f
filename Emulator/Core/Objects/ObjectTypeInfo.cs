namespace Colo.Core.Objects;

/// <summary>Where a type is created from: each has its own option, error texts and QOM container.</summary>
public enum ObjectCategory
{
    /// <summary><c>-object</c> / <c>object-add</c>, under <c>/objects</c>.</summary>
    Object,
    /// <summary><c>-device</c> / <c>device_add</c>, under <c>/machine/peripheral</c>.</summary>
    Device,
    /// <summary><c>-netdev</c> / <c>netdev_add</c>.</summary>
    Netdev,
    /// <summary><c>-chardev</c> / <c>chardev-add</c>, under <c>/chardevs</c>.</summary>
    Chardev,
}

/// <summary>Builds a configured instance from validated property values.</summary>
public delegate QomObject ObjectFactory(ObjectTypeInfo type, string id, PropertyValues values);

/// <summary>
/// A creatable type: its name, properties and factory. A type whose behaviour a later issue builds is
/// registered with its full schema and a <see cref="NotImplemented"/> note instead of a factory, so it
/// is listed and validated but creating it fails with a message naming it.
/// </summary>
public sealed class ObjectTypeInfo
{
    public ObjectTypeInfo(string name, ObjectCategory category, IReadOnlyList<PropertyDescriptor> properties, ObjectFactory? factory, string? description = null)
    {
        Name = name;
        Category = category;
        Properties = properties;
        Factory = factory;
        Description = description;
    }

    public string Name { get; }

    public ObjectCategory Category { get; }

    public IReadOnlyList<PropertyDescriptor> Properties { get; }

    /// <summary>Null when the type is registered but not built yet.</summary>
    public ObjectFactory? Factory { get; }

    public string? Description { get; }

    /// <summary>For devices: the <c>-device help</c> group (e.g. "Network devices") and bus.</summary>
    public string? HelpGroup { get; init; }

    public string? Bus { get; init; }

    /// <summary>The QOM parent type (e.g. <c>pci-device</c>), for <c>qom-list-types</c>; null at the root.</summary>
    public string? Parent { get; init; }

    /// <summary>An abstract QOM type (<c>device</c>, <c>pci-device</c>): listed, never created.</summary>
    public bool Abstract { get; init; }

    /// <summary>
    /// False for parts the board builds itself (QEMU's <c>user_creatable = false</c>, e.g. <c>i440FX</c>): described
    /// by <c>qom-list-types</c> and <c>device-list-properties</c>, but not offered by <c>-device help</c>.
    /// </summary>
    public bool UserCreatable { get; init; } = true;

    /// <summary>What is missing, e.g. "the rtl8139 NIC model"; shown when creation is refused.</summary>
    public string? NotImplemented { get; init; }

    public PropertyDescriptor? FindProperty(string name)
    {
        foreach (PropertyDescriptor p in Properties)
        {
            if (p.Name == name)
            {
                return p;
            }
        }
        return null;
    }
}
