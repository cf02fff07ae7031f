using System.Text.Json;
using System.Text.Json.Serialization;
using Colo.Core.Qmp;

namespace Colo.Net.Qmp;

/// <summary>netdev_add: QAPI's Netdev union, flat: <c>type</c>, <c>id</c> and the backend's own members.</summary>
public sealed class NetdevAddArgs
{
    [JsonPropertyName("type")]
    public required string Type { get; init; }

    [JsonPropertyName("id")]
    public string? Id { get; init; }

    /// <summary>The backend's members (<c>fd</c>, <c>listen</c>, <c>hubid</c>, ...), checked against its schema.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Properties { get; set; } // set: extension data cannot bind through init
}

/// <summary>netdev_del.</summary>
public sealed record NetdevDelArgs([property: JsonPropertyName("id")] string Id);

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(NetdevAddArgs))]
[JsonSerializable(typeof(NetdevDelArgs))]
[JsonSerializable(typeof(QmpEmpty))]
internal sealed partial class NetQmpJsonContext : JsonSerializerContext;
