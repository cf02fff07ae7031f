using System.Globalization;
using System.Text.Json;
using Colo.Core.Options;
using Colo.Core.Qmp;

namespace Colo.Core.Objects;

/// <summary>
/// The validated property values of one object: strings, bools, <c>long</c>s and <c>ulong</c>s keyed by
/// property name. Values arrive either as command-line strings or as QMP JSON; both paths check them
/// against the type's <see cref="PropertyDescriptor"/>s with QEMU's error texts.
/// </summary>
public sealed class PropertyValues
{
    private readonly ObjectTypeInfo _type;
    private readonly Dictionary<string, object> _values = new(StringComparer.Ordinal);

    public PropertyValues(ObjectTypeInfo type)
    {
        _type = type;
    }

    public bool Contains(string name) => _values.ContainsKey(name);

    public IEnumerable<string> Names => _values.Keys;

    public string? GetString(string name) => _values.TryGetValue(name, out object? v) ? (string)v : DefaultOf(name);

    public bool GetBool(string name, bool fallback = false) =>
        _values.TryGetValue(name, out object? v) ? (bool)v
        : DefaultOf(name) is { } d ? d == "true" || d == "on" : fallback;

    public long GetInt(string name, long fallback = 0) =>
        _values.TryGetValue(name, out object? v) ? (long)v
        : DefaultOf(name) is { } d ? long.Parse(d, CultureInfo.InvariantCulture) : fallback;

    public ulong GetUInt(string name, ulong fallback = 0) =>
        _values.TryGetValue(name, out object? v) ? (ulong)v
        : DefaultOf(name) is { } d ? ulong.Parse(d, CultureInfo.InvariantCulture) : fallback;

    /// <summary>Sets from a command-line string (<c>-object</c>, <c>-device</c>, ...).</summary>
    /// <exception cref="QmpException">Unknown property or a value of the wrong form.</exception>
    public void SetFromString(string name, string text)
    {
        PropertyDescriptor p = Describe(name, fromQmp: false);
        _values[name] = p.Kind switch
        {
            PropertyKind.String => text,
            PropertyKind.Bool => OptionValues.ParseBool(name, text),
            PropertyKind.Int => OptionValues.ParseInt64(name, text),
            PropertyKind.UInt => CheckMax(p, OptionValues.ParseUInt64(name, text)),
            PropertyKind.Size => OptionValues.ParseSize(name, text),
            PropertyKind.Enum => CheckEnum(p, text),
            _ => throw new InvalidOperationException(p.Kind.ToString()),
        };
    }

    /// <summary>Sets from a QMP JSON value (<c>object-add</c>, <c>qom-set</c>).</summary>
    public void SetFromJson(string name, JsonElement value)
    {
        PropertyDescriptor p = Describe(name, fromQmp: true);
        _values[name] = p.Kind switch
        {
            PropertyKind.String when value.ValueKind == JsonValueKind.String => value.GetString()!,
            PropertyKind.Bool when value.ValueKind is JsonValueKind.True or JsonValueKind.False => value.GetBoolean(),
            PropertyKind.Int when value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long l) => l,
            PropertyKind.UInt or PropertyKind.Size when value.ValueKind == JsonValueKind.Number && value.TryGetUInt64(out ulong u) => CheckMax(p, u),
            PropertyKind.Enum when value.ValueKind == JsonValueKind.String => CheckEnum(p, value.GetString()!),
            _ => throw new QmpException($"Invalid parameter type for '{name}', expected: {JsonKindName(p.Kind)}"),
        };
    }

    /// <summary>Sets an already-typed value (from code).</summary>
    public void Set(string name, object value)
    {
        Describe(name, fromQmp: true);
        _values[name] = value;
    }

    /// <summary>Checks that every required property was given.</summary>
    public void CheckRequired()
    {
        foreach (PropertyDescriptor p in _type.Properties)
        {
            if (p.Required && !_values.ContainsKey(p.Name))
            {
                throw new QmpException($"Parameter '{p.Name}' is missing");
            }
        }
    }

    /// <summary>Writes the current (or default) value of a property as JSON; null when it has neither.</summary>
    public bool TryWriteJson(PropertyDescriptor p, Utf8JsonWriter writer)
    {
        object? value = _values.GetValueOrDefault(p.Name);
        if (value is null && p.Default is null)
        {
            if (p.Kind is PropertyKind.String or PropertyKind.Enum)
            {
                writer.WriteStringValue("");
                return true;
            }
            return false;
        }
        switch (p.Kind)
        {
            case PropertyKind.String:
            case PropertyKind.Enum:
                writer.WriteStringValue((string?)value ?? p.Default);
                break;
            case PropertyKind.Bool:
                writer.WriteBooleanValue(value is bool b ? b : p.Default == "true");
                break;
            case PropertyKind.Int:
                writer.WriteNumberValue(value is long l ? l : long.Parse(p.Default!, CultureInfo.InvariantCulture));
                break;
            default:
                writer.WriteNumberValue(value is ulong u ? u : ulong.Parse(p.Default!, CultureInfo.InvariantCulture));
                break;
        }
        return true;
    }

    private PropertyDescriptor Describe(string name, bool fromQmp) =>
        _type.FindProperty(name) ?? throw new QmpException(TypeRegistry.UnknownPropertyText(_type, name, fromQmp));

    private string? DefaultOf(string name) => _type.FindProperty(name)?.Default;

    private static ulong CheckMax(PropertyDescriptor p, ulong value) =>
        value <= p.Max ? value : throw new QmpException($"Parameter '{p.Name}' expects a value at most {p.Max}");

    private static string CheckEnum(PropertyDescriptor p, string value) =>
        p.EnumValues!.Contains(value) ? value : throw new QmpException($"Parameter '{p.Name}' does not accept value '{value}'");

    private static string JsonKindName(PropertyKind kind) => kind switch
    {
        PropertyKind.Bool => "boolean",
        PropertyKind.Int or PropertyKind.UInt or PropertyKind.Size => "integer",
        _ => "string",
    };
}
