using Colo.Core.Objects;

namespace Colo.Devices;

/// <summary>
/// A <c>-device</c>/<c>device_add</c> instance in the QOM tree: its validated properties, and the model the board
/// created for it once plugged (QEMU's realize). Disposing it does not unplug; <c>device_del</c> goes through the
/// board.
/// </summary>
public sealed class DeviceObject : QomObject
{
    public DeviceObject(ObjectTypeInfo type, PropertyValues values)
        : base(type, values)
    {
    }

    /// <summary>The chardev named by a <c>chardev</c> property, resolved by the machine before plugging.</summary>
    public Colo.Core.Chardev.Chardev? Chardev { get; set; }

    /// <summary>The device model behind this instance, set when the board plugs it.</summary>
    public object? Model { get; set; }

    /// <summary>Creates the QOM object for any device type; the board gives it a model.</summary>
    public static QomObject Create(ObjectTypeInfo type, string id, PropertyValues values) => new DeviceObject(type, values);
}
