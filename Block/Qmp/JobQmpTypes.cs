using System.Text.Json.Serialization;
using Colo.Core.Qmp;

namespace Colo.Block.Qmp;

// Records of the block-job commands and events (QEMU 7.2 block-core.json, job.json), members in schema order.

public sealed record DriveMirrorArgs
{
    [JsonPropertyName("job-id")]
    public string? JobId { get; init; }

    [JsonPropertyName("device")]
    public required string Device { get; init; }

    [JsonPropertyName("target")]
    public required string Target { get; init; }

    [JsonPropertyName("format")]
    public string? Format { get; init; }

    [JsonPropertyName("node-name")]
    public string? NodeName { get; init; }

    [JsonPropertyName("replaces")]
    public string? Replaces { get; init; }

    [JsonPropertyName("sync")]
    public required string Sync { get; init; }

    [JsonPropertyName("mode")]
    public string? Mode { get; init; }

    [JsonPropertyName("speed")]
    public long? Speed { get; init; }

    [JsonPropertyName("granularity")]
    public long? Granularity { get; init; }

    [JsonPropertyName("buf-size")]
    public long? BufSize { get; init; }

    [JsonPropertyName("on-source-error")]
    public string? OnSourceError { get; init; }

    [JsonPropertyName("on-target-error")]
    public string? OnTargetError { get; init; }

    [JsonPropertyName("unmap")]
    public bool? Unmap { get; init; }

    [JsonPropertyName("copy-mode")]
    public string? CopyMode { get; init; }

    [JsonPropertyName("auto-finalize")]
    public bool? AutoFinalize { get; init; }

    [JsonPropertyName("auto-dismiss")]
    public bool? AutoDismiss { get; init; }
}

public sealed record BlockJobCancelArgs
{
    [JsonPropertyName("device")]
    public required string Device { get; init; }

    [JsonPropertyName("force")]
    public bool? Force { get; init; }
}

/// <summary>block-job-complete, block-job-pause, block-job-resume, block-job-dismiss, block-job-finalize take a device.</summary>
public sealed record BlockJobDeviceArgs
{
    [JsonPropertyName("device")]
    public required string Device { get; init; }
}

public sealed record BlockJobSetSpeedArgs
{
    [JsonPropertyName("device")]
    public required string Device { get; init; }

    [JsonPropertyName("speed")]
    public required long Speed { get; init; }
}

/// <summary>job-cancel, job-pause, job-resume, job-complete, job-dismiss, job-finalize take an id.</summary>
public sealed record JobIdArgs
{
    [JsonPropertyName("id")]
    public required string Id { get; init; }
}

public sealed record BlockJobInfo(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("device")] string Device,
    [property: JsonPropertyName("len")] long Len,
    [property: JsonPropertyName("offset")] long Offset,
    [property: JsonPropertyName("busy")] bool Busy,
    [property: JsonPropertyName("paused")] bool Paused,
    [property: JsonPropertyName("speed")] long Speed,
    [property: JsonPropertyName("io-status")] string IoStatus,
    [property: JsonPropertyName("ready")] bool Ready,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("auto-finalize")] bool AutoFinalize,
    [property: JsonPropertyName("auto-dismiss")] bool AutoDismiss,
    [property: JsonPropertyName("error")] string? Error);

public sealed record JobInfo(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("current-progress")] long CurrentProgress,
    [property: JsonPropertyName("total-progress")] long TotalProgress,
    [property: JsonPropertyName("error")] string? Error);

public sealed record JobStatusChangeEvent(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("status")] string Status);

/// <summary>BLOCK_JOB_READY and BLOCK_JOB_CANCELLED; BLOCK_JOB_COMPLETED adds <c>error</c>.</summary>
public sealed record BlockJobEvent(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("device")] string Device,
    [property: JsonPropertyName("len")] long Len,
    [property: JsonPropertyName("offset")] long Offset,
    [property: JsonPropertyName("speed")] long Speed,
    [property: JsonPropertyName("error")] string? Error);

public sealed record BlockJobErrorEvent(
    [property: JsonPropertyName("device")] string Device,
    [property: JsonPropertyName("operation")] string Operation,
    [property: JsonPropertyName("action")] string Action);

// A context of its own beside BlockQmpJsonContext, so the jobs' records stay in the jobs' files.
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(QmpNoArgs))]
[JsonSerializable(typeof(QmpEmpty))]
[JsonSerializable(typeof(DriveMirrorArgs))]
[JsonSerializable(typeof(BlockJobCancelArgs))]
[JsonSerializable(typeof(BlockJobDeviceArgs))]
[JsonSerializable(typeof(BlockJobSetSpeedArgs))]
[JsonSerializable(typeof(JobIdArgs))]
[JsonSerializable(typeof(BlockJobInfo[]))]
[JsonSerializable(typeof(JobInfo[]))]
[JsonSerializable(typeof(JobStatusChangeEvent))]
[JsonSerializable(typeof(BlockJobEvent))]
[JsonSerializable(typeof(BlockJobErrorEvent))]
internal sealed partial class JobQmpJsonContext : JsonSerializerContext;
