namespace Colo.Core.Qmp;

/// <summary>QEMU's QMP error classes (QAPI <c>QapiErrorClass</c>); the name is what goes on the wire.</summary>
public enum QmpErrorClass
{
    GenericError,
    CommandNotFound,
    DeviceNotActive,
    DeviceNotFound,
    KVMMissingCap,
}
