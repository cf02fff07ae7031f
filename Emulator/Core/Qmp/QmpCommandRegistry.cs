using System.Collections.Frozen;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Colo.Core.Qmp;

/// <summary>Arguments record for commands that take none.</summary>
public sealed record QmpNoArgs;

/// <summary>The empty return value <c>{}</c>.</summary>
public sealed record QmpEmpty
{
    public static readonly QmpEmpty Instance = new();
}

/// <summary>What a handler may know about the request it serves: the monitor session it came from.</summary>
public sealed class QmpContext(object? session)
{
    /// <summary>The monitor session (owned by the Monitor layer) that issued the command, if any.</summary>
    public object? Session { get; } = session;
}

/// <summary>One registered command: its name and how to run it on a raw JSON arguments object.</summary>
public sealed class QmpCommand
{
    private readonly Func<JsonElement?, QmpContext, string> _invoke;

    internal QmpCommand(string name, JsonTypeInfo argsInfo, Func<JsonElement?, QmpContext, string> invoke, bool allowedBeforeNegotiation)
    {
        Name = name;
        ArgumentsInfo = argsInfo;
        _invoke = invoke;
        AllowedBeforeNegotiation = allowedBeforeNegotiation;
    }

    public string Name { get; }

    /// <summary>Source-generated metadata of the arguments record, used for validation and <c>query-qmp-schema</c>.</summary>
    public JsonTypeInfo ArgumentsInfo { get; }

    /// <summary>True only for <c>qmp_capabilities</c>: the one command a monitor accepts before negotiation.</summary>
    public bool AllowedBeforeNegotiation { get; }

    /// <summary>Validates and runs the command; returns the compact JSON of the return value.</summary>
    /// <exception cref="QmpException">The arguments are wrong or the command failed.</exception>
    public string Invoke(JsonElement? arguments, QmpContext context) => _invoke(arguments, context);
}

/// <summary>
/// The table of QMP commands. Each subsystem registers its commands in one place, one line each;
/// the Monitor layer dispatches through it without knowing any command's types.
/// </summary>
public sealed class QmpCommandRegistry
{
    private readonly Dictionary<string, QmpCommand> _building = new(StringComparer.Ordinal);
    private FrozenDictionary<string, QmpCommand>? _frozen;

    public void Register<TArgs, TResult>(
        string name,
        JsonTypeInfo<TArgs> argsInfo,
        JsonTypeInfo<TResult> resultInfo,
        Func<TArgs, QmpContext, TResult> handler,
        bool allowedBeforeNegotiation = false)
    {
        if (_frozen is not null)
        {
            throw new InvalidOperationException($"QMP command table is frozen; cannot add '{name}'");
        }
        if (!_building.TryAdd(name, new QmpCommand(name, argsInfo, Invoke, allowedBeforeNegotiation)))
        {
            throw new InvalidOperationException($"QMP command '{name}' registered twice");
        }

        string Invoke(JsonElement? arguments, QmpContext context)
        {
            TArgs args = QmpArguments.Deserialize(arguments, argsInfo);
            TResult result = handler(args, context);
            return QmpJson.Serialize(result, resultInfo);
        }
    }

    /// <summary>Convenience for handlers that ignore the context.</summary>
    public void Register<TArgs, TResult>(string name, JsonTypeInfo<TArgs> argsInfo, JsonTypeInfo<TResult> resultInfo, Func<TArgs, TResult> handler) =>
        Register(name, argsInfo, resultInfo, (a, _) => handler(a));

    /// <summary>Ends registration; lookups are then lock-free.</summary>
    public void Freeze() => _frozen ??= _building.ToFrozenDictionary(StringComparer.Ordinal);

    public bool TryGet(string name, out QmpCommand command)
    {
        FrozenDictionary<string, QmpCommand> table = _frozen ?? throw new InvalidOperationException("QMP command table used before Freeze()");
        return table.TryGetValue(name, out command!);
    }

    /// <summary>Command names in registration order is not kept; sorted for stable output.</summary>
    public IReadOnlyList<string> Names
    {
        get
        {
            string[] names = [.. (_frozen ?? (IReadOnlyDictionary<string, QmpCommand>)_building).Keys];
            Array.Sort(names, StringComparer.Ordinal);
            return names;
        }
    }
}
