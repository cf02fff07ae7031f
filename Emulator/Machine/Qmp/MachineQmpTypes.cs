using System.Text.Json;
using System.Text.Json.Serialization;
using Colo.Core.Qmp;

namespace Colo.Machine.Qmp;

// Argument, return and event records of the machine-level commands. Names and member order follow
// QEMU 7.2's QAPI schema: declare members in schema order, because QEMU builds its reply dictionaries in
// that order and the monitor derives QEMU's wire order (hash buckets, newest first) from it.

public sealed record StatusInfo(
    [property: JsonPropertyName("running")] bool Running,
    [property: JsonPropertyName("singlestep")] bool SingleStep,
    [property: JsonPropertyName("status")] string Status);

public sealed record NameInfo([property: JsonPropertyName("name")] string? Name);

public sealed record VersionTriple(
    [property: JsonPropertyName("major")] int Major,
    [property: JsonPropertyName("minor")] int Minor,
    [property: JsonPropertyName("micro")] int Micro);

public sealed record VersionInfo(
    [property: JsonPropertyName("qemu")] VersionTriple Qemu,
    [property: JsonPropertyName("package")] string Package);

public sealed record KvmInfo(
    [property: JsonPropertyName("enabled")] bool Enabled,
    [property: JsonPropertyName("present")] bool Present);

public sealed record IoThreadInfo(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("thread-id")] int ThreadId,
    [property: JsonPropertyName("poll-max-ns")] long PollMaxNs,
    [property: JsonPropertyName("poll-grow")] long PollGrow,
    [property: JsonPropertyName("poll-shrink")] long PollShrink,
    [property: JsonPropertyName("aio-max-batch")] long AioMaxBatch);

public sealed class ObjectAddArgs
{
    [JsonPropertyName("qom-type")]
    public required string QomType { get; init; }

    [JsonPropertyName("id")]
    public required string Id { get; init; }

    /// <summary>The type's own properties, flat as QEMU 7.2 takes them (and <c>props</c>, see the handler).</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Properties { get; set; } // set, not init: STJ binds init members through the constructor, which extension data cannot use
}

public sealed class DeviceAddArgs
{
    [JsonPropertyName("driver")]
    public required string Driver { get; init; }

    [JsonPropertyName("bus")]
    public string? Bus { get; init; }

    [JsonPropertyName("id")]
    public string? Id { get; init; }

    /// <summary>The device's own properties, flat.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Properties { get; set; }
}

/// <summary>DEVICE_DELETED's data (QAPI order: device, path).</summary>
public sealed record DeviceDeletedEvent(
    [property: JsonPropertyName("device"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Device,
    [property: JsonPropertyName("path")] string Path);

public sealed record IdArgs
{
    [JsonPropertyName("id")]
    public required string Id { get; init; }
}

public sealed record PathArgs
{
    [JsonPropertyName("path")]
    public required string Path { get; init; }
}

public sealed record QomGetArgs
{
    [JsonPropertyName("path")]
    public required string Path { get; init; }

    [JsonPropertyName("property")]
    public required string Property { get; init; }
}

public sealed record QomSetArgs
{
    [JsonPropertyName("path")]
    public required string Path { get; init; }

    [JsonPropertyName("property")]
    public required string Property { get; init; }

    [JsonPropertyName("value")]
    public required JsonElement Value { get; init; }
}

public sealed record ObjectPropertyInfo(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("description")] string? Description = null,
    [property: JsonPropertyName("default-value")] JsonElement? DefaultValue = null);

/// <summary>query-machines' MachineInfo (QAPI order).</summary>
public sealed record MachineInfo(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("alias")] string? Alias,
    [property: JsonPropertyName("is-default")] bool? IsDefault,
    [property: JsonPropertyName("cpu-max")] int CpuMax,
    [property: JsonPropertyName("hotpluggable-cpus")] bool HotpluggableCpus,
    [property: JsonPropertyName("numa-mem-supported")] bool NumaMemSupported,
    [property: JsonPropertyName("deprecated")] bool Deprecated,
    [property: JsonPropertyName("default-cpu-type")] string? DefaultCpuType,
    [property: JsonPropertyName("default-ram-id")] string? DefaultRamId);

/// <summary>CpuInstanceProperties: the topology ids a CPU was placed at (QAPI order).</summary>
public sealed record CpuInstanceProperties(
    [property: JsonPropertyName("node-id")] long? NodeId,
    [property: JsonPropertyName("socket-id")] long? SocketId,
    [property: JsonPropertyName("die-id")] long? DieId,
    [property: JsonPropertyName("cluster-id")] long? ClusterId,
    [property: JsonPropertyName("core-id")] long? CoreId,
    [property: JsonPropertyName("thread-id")] long? ThreadId);

/// <summary>query-cpus-fast's CpuInfoFast for x86 (QAPI order; the x86 target adds no members).</summary>
public sealed record CpuInfoFast(
    [property: JsonPropertyName("cpu-index")] int CpuIndex,
    [property: JsonPropertyName("qom-path")] string QomPath,
    [property: JsonPropertyName("thread-id")] int ThreadId,
    [property: JsonPropertyName("props")] CpuInstanceProperties Props,
    [property: JsonPropertyName("target")] string Target);

public sealed record QomListTypesArgs
{
    [JsonPropertyName("implements")]
    public string? Implements { get; init; }

    [JsonPropertyName("abstract")]
    public bool? Abstract { get; init; }
}

/// <summary>qom-list-types' ObjectTypeInfo: <c>abstract</c> appears only on abstract types, as QEMU sends it.</summary>
public sealed record QomTypeInfo(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("abstract")] bool? Abstract,
    [property: JsonPropertyName("parent")] string? Parent);

public sealed record DeviceListPropertiesArgs
{
    [JsonPropertyName("typename")]
    public required string TypeName { get; init; }
}

public sealed record ShutdownEvent(
    [property: JsonPropertyName("guest")] bool Guest,
    [property: JsonPropertyName("reason")] string Reason);

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(QmpNoArgs))]
[JsonSerializable(typeof(QmpEmpty))]
[JsonSerializable(typeof(StatusInfo))]
[JsonSerializable(typeof(NameInfo))]
[JsonSerializable(typeof(VersionInfo))]
[JsonSerializable(typeof(KvmInfo))]
[JsonSerializable(typeof(IoThreadInfo[]))]
[JsonSerializable(typeof(ObjectAddArgs))]
[JsonSerializable(typeof(IdArgs))]
[JsonSerializable(typeof(DeviceAddArgs))]
[JsonSerializable(typeof(DeviceDeletedEvent))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(PathArgs))]
[JsonSerializable(typeof(QomGetArgs))]
[JsonSerializable(typeof(QomSetArgs))]
[JsonSerializable(typeof(ObjectPropertyInfo[]))]
[JsonSerializable(typeof(JsonElement))]
[JsonSerializable(typeof(ShutdownEvent))]
[JsonSerializable(typeof(MachineInfo[]))]
[JsonSerializable(typeof(CpuInfoFast[]))]
[JsonSerializable(typeof(QomListTypesArgs))]
[JsonSerializable(typeof(QomTypeInfo[]))]
[JsonSerializable(typeof(DeviceListPropertiesArgs))]
internal sealed partial class MachineQmpJsonContext : JsonSerializerContext;
