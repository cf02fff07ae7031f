using System.Text.Json.Serialization;

namespace Colo.Block.Qmp;

// Replication control (QEMU 7.2 migration.json, built with CONFIG_REPLICATION). Despite the names they act
// on every replication node whatever the accelerator, and Debian's build offers them.

public sealed record XenSetReplicationArgs
{
    [JsonPropertyName("enable")]
    public required bool Enable { get; init; }

    [JsonPropertyName("primary")]
    public required bool Primary { get; init; }

    [JsonPropertyName("failover")]
    public bool? Failover { get; init; }
}

/// <summary>QAPI ReplicationStatus.</summary>
public sealed record ReplicationStatusInfo(
    [property: JsonPropertyName("error")] bool Error,
    [property: JsonPropertyName("desc")] string? Desc);
