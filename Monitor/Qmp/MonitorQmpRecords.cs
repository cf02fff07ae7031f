using System.Text.Json;
using System.Text.Json.Serialization;

namespace Colo.Monitor.Qmp;

/// <summary>Arguments of <c>qmp_capabilities</c>. <c>enable</c> stays raw so its elements get QEMU's per-element errors.</summary>
public sealed record QmpCapabilitiesArguments
{
    /// <summary>QMPCapability list; only "oob" exists.</summary>
    [JsonPropertyName("enable")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? Enable { get; init; }
}

/// <summary>One entry of <c>query-commands</c> (QAPI CommandInfo).</summary>
public sealed record CommandInfo
{
    /// <summary>The command name.</summary>
    [JsonPropertyName("name")]
    public required string Name { get; init; }
}

/// <summary>Arguments of <c>human-monitor-command</c>.</summary>
public sealed record HumanMonitorCommandArguments
{
    /// <summary>The HMP command line to run.</summary>
    [JsonPropertyName("command-line")]
    public required string CommandLine { get; init; }

    /// <summary>The CPU the command runs against (HMP's current CPU).</summary>
    [JsonPropertyName("cpu-index")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? CpuIndex { get; init; }
}

/// <summary>Source-generated metadata for the monitor's own commands.</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(QmpCapabilitiesArguments))]
[JsonSerializable(typeof(CommandInfo))]
[JsonSerializable(typeof(IReadOnlyList<CommandInfo>))]
[JsonSerializable(typeof(HumanMonitorCommandArguments))]
[JsonSerializable(typeof(Colo.Core.Qmp.QmpNoArgs))]
[JsonSerializable(typeof(Colo.Core.Qmp.QmpEmpty))]
[JsonSerializable(typeof(string))]
public sealed partial class MonitorQmpJsonContext : JsonSerializerContext;
