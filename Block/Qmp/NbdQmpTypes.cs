using System.Text.Json;
using System.Text.Json.Serialization;

namespace Colo.Block.Qmp;

// Records of the NBD server commands (QEMU 7.2 block-export.json, sockets.json), members in schema order.

/// <summary>
/// QAPI's SocketAddressLegacy, a simple union <c>{"type": T, "data": {...}}</c>. <see cref="Data"/> stays raw
/// so the branch can be checked after <see cref="Type"/>, in QEMU's order ("type" first, then "addr.data").
/// </summary>
public sealed record SocketAddressLegacy
{
    [JsonPropertyName("type")]
    public required string Type { get; init; }

    [JsonPropertyName("data")]
    public JsonElement? Data { get; init; }
}

public sealed record InetSocketAddress
{
    [JsonPropertyName("host")]
    public required string Host { get; init; }

    [JsonPropertyName("port")]
    public required string Port { get; init; }

    [JsonPropertyName("numeric")]
    public bool? Numeric { get; init; }

    [JsonPropertyName("to")]
    public ushort? To { get; init; }

    [JsonPropertyName("ipv4")]
    public bool? Ipv4 { get; init; }

    [JsonPropertyName("ipv6")]
    public bool? Ipv6 { get; init; }

    [JsonPropertyName("keep-alive")]
    public bool? KeepAlive { get; init; }

    [JsonPropertyName("mptcp")]
    public bool? Mptcp { get; init; }
}

public sealed record UnixSocketAddress
{
    [JsonPropertyName("path")]
    public required string Path { get; init; }

    [JsonPropertyName("abstract")]
    public bool? Abstract { get; init; }

    [JsonPropertyName("tight")]
    public bool? Tight { get; init; }
}

public sealed record VsockSocketAddress
{
    [JsonPropertyName("cid")]
    public required string Cid { get; init; }

    [JsonPropertyName("port")]
    public required string Port { get; init; }
}

/// <summary>QAPI's String, the <c>fd</c> branch.</summary>
public sealed record SocketAddressString
{
    [JsonPropertyName("str")]
    public required string Str { get; init; }
}

public sealed record NbdServerStartArgs
{
    [JsonPropertyName("addr")]
    public required SocketAddressLegacy Addr { get; init; }

    [JsonPropertyName("tls-creds")]
    public string? TlsCreds { get; init; }

    [JsonPropertyName("tls-authz")]
    public string? TlsAuthz { get; init; }

    /// <summary>A uint32 in QAPI; read wide so a negative value gets QEMU's own text.</summary>
    [JsonPropertyName("max-connections")]
    public long? MaxConnections { get; init; }
}

public sealed record NbdServerAddArgs
{
    [JsonPropertyName("device")]
    public required string Device { get; init; }

    [JsonPropertyName("name")]
    public string? Name { get; init; }

    [JsonPropertyName("description")]
    public string? Description { get; init; }

    [JsonPropertyName("writable")]
    public bool? Writable { get; init; }

    [JsonPropertyName("bitmap")]
    public string? Bitmap { get; init; }
}

public sealed record NbdServerRemoveArgs
{
    [JsonPropertyName("name")]
    public required string Name { get; init; }

    /// <summary>BlockExportRemoveMode: "safe" (default) or "hard".</summary>
    [JsonPropertyName("mode")]
    public string? Mode { get; init; }
}

public sealed record BlockExportInfo(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("node-name")] string NodeName,
    [property: JsonPropertyName("shutting-down")] bool ShuttingDown);

public sealed record BlockExportDeletedEvent(
    [property: JsonPropertyName("id")] string Id);

// Quorum (block-core.json).

public sealed record XBlockdevChangeArgs
{
    [JsonPropertyName("parent")]
    public required string Parent { get; init; }

    [JsonPropertyName("child")]
    public string? Child { get; init; }

    [JsonPropertyName("node")]
    public string? Node { get; init; }
}

public sealed record QuorumFailureEvent(
    [property: JsonPropertyName("reference")] string Reference,
    [property: JsonPropertyName("sector-num")] long SectorNum,
    [property: JsonPropertyName("sectors-count")] long SectorsCount);

public sealed record QuorumReportBadEvent(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("error")] string? Error,
    [property: JsonPropertyName("node-name")] string NodeName,
    [property: JsonPropertyName("sector-num")] long SectorNum,
    [property: JsonPropertyName("sectors-count")] long SectorsCount);
