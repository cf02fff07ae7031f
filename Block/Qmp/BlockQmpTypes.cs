using System.Text.Json.Serialization;
using Colo.Core.Qmp;

namespace Colo.Block.Qmp;

// Records of the block-layer QMP commands. Names and member order follow QEMU 7.2's QAPI schema
// (block-core.json): members are declared in schema order and the monitor derives the wire order.

public sealed record BlockdevCacheInfo(
    [property: JsonPropertyName("writeback")] bool Writeback,
    [property: JsonPropertyName("direct")] bool Direct,
    [property: JsonPropertyName("no-flush")] bool NoFlush);

public sealed record ImageInfoSpecificQCow2(
    [property: JsonPropertyName("compat")] string Compat,
    [property: JsonPropertyName("extended-l2")] bool? ExtendedL2,
    [property: JsonPropertyName("lazy-refcounts")] bool? LazyRefcounts,
    [property: JsonPropertyName("corrupt")] bool? Corrupt,
    [property: JsonPropertyName("refcount-bits")] int RefcountBits,
    [property: JsonPropertyName("compression-type")] string CompressionType);

/// <summary>QAPI's ImageInfoSpecific, a simple union: <c>{"type": "qcow2", "data": {...}}</c>.</summary>
public sealed record ImageInfoSpecific(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("data")] ImageInfoSpecificQCow2 Data);

public sealed record ImageInfo(
    [property: JsonPropertyName("filename")] string Filename,
    [property: JsonPropertyName("format")] string Format,
    [property: JsonPropertyName("dirty-flag")] bool? DirtyFlag,
    [property: JsonPropertyName("actual-size")] long? ActualSize,
    [property: JsonPropertyName("virtual-size")] long VirtualSize,
    [property: JsonPropertyName("cluster-size")] long? ClusterSize,
    [property: JsonPropertyName("backing-filename")] string? BackingFilename,
    [property: JsonPropertyName("full-backing-filename")] string? FullBackingFilename,
    [property: JsonPropertyName("backing-filename-format")] string? BackingFilenameFormat,
    [property: JsonPropertyName("backing-image")] ImageInfo? BackingImage,
    [property: JsonPropertyName("format-specific")] ImageInfoSpecific? FormatSpecific);

public sealed record BlockDeviceInfo(
    [property: JsonPropertyName("file")] string File,
    [property: JsonPropertyName("node-name")] string NodeName,
    [property: JsonPropertyName("ro")] bool ReadOnly,
    [property: JsonPropertyName("drv")] string Driver,
    [property: JsonPropertyName("backing_file")] string? BackingFile,
    [property: JsonPropertyName("backing_file_depth")] int BackingFileDepth,
    [property: JsonPropertyName("encrypted")] bool Encrypted,
    [property: JsonPropertyName("detect_zeroes")] string DetectZeroes,
    [property: JsonPropertyName("bps")] long Bps,
    [property: JsonPropertyName("bps_rd")] long BpsRd,
    [property: JsonPropertyName("bps_wr")] long BpsWr,
    [property: JsonPropertyName("iops")] long Iops,
    [property: JsonPropertyName("iops_rd")] long IopsRd,
    [property: JsonPropertyName("iops_wr")] long IopsWr,
    [property: JsonPropertyName("image")] ImageInfo Image,
    [property: JsonPropertyName("cache")] BlockdevCacheInfo Cache,
    [property: JsonPropertyName("write_threshold")] long WriteThreshold);

public sealed record BlockInfo(
    [property: JsonPropertyName("device")] string Device,
    [property: JsonPropertyName("qdev")] string? Qdev,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("removable")] bool Removable,
    [property: JsonPropertyName("locked")] bool Locked,
    [property: JsonPropertyName("inserted")] BlockDeviceInfo? Inserted);

public sealed record QueryNamedBlockNodesArgs
{
    [JsonPropertyName("flat")]
    public bool? Flat { get; init; }
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(QmpNoArgs))]
[JsonSerializable(typeof(QmpEmpty))]
[JsonSerializable(typeof(BlockInfo[]))]
[JsonSerializable(typeof(BlockDeviceInfo[]))]
[JsonSerializable(typeof(QueryNamedBlockNodesArgs))]
[JsonSerializable(typeof(NbdServerStartArgs))]
[JsonSerializable(typeof(InetSocketAddress))]
[JsonSerializable(typeof(UnixSocketAddress))]
[JsonSerializable(typeof(VsockSocketAddress))]
[JsonSerializable(typeof(SocketAddressString))]
[JsonSerializable(typeof(NbdServerAddArgs))]
[JsonSerializable(typeof(NbdServerRemoveArgs))]
[JsonSerializable(typeof(BlockExportInfo[]))]
[JsonSerializable(typeof(BlockExportDeletedEvent))]
[JsonSerializable(typeof(XBlockdevChangeArgs))]
[JsonSerializable(typeof(QuorumFailureEvent))]
[JsonSerializable(typeof(QuorumReportBadEvent))]
[JsonSerializable(typeof(XenSetReplicationArgs))]
[JsonSerializable(typeof(ReplicationStatusInfo))]
internal sealed partial class BlockQmpJsonContext : JsonSerializerContext;
