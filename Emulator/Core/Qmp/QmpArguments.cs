using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Colo.Core.Qmp;

/// <summary>
/// Turns a QMP <c>arguments</c> object into a typed record with QEMU's error texts. The checks walk the
/// source-generated metadata (member names, <c>required</c>, member types) before deserializing, because
/// System.Text.Json's own exceptions neither name the member the QEMU way nor keep QEMU's order
/// (schema members first, then unexpected extras).
/// </summary>
public static class QmpArguments
{
    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    public static T Deserialize<T>(JsonElement? arguments, JsonTypeInfo<T> typeInfo)
    {
        JsonElement args = arguments ?? EmptyObject;
        Validate(args, typeInfo, prefix: "");
        try
        {
            return args.Deserialize(typeInfo) ?? throw new QmpException("Invalid parameter type, expected: object");
        }
        catch (JsonException e)
        {
            string member = e.Path is { Length: > 2 } path ? path[2..] : "arguments";
            throw new QmpException($"Invalid parameter '{member}': {e.Message}", e);
        }
    }

    /// <summary>Checks <paramref name="value"/> against the metadata of an object-shaped type, recursively.</summary>
    public static void Validate(JsonElement value, JsonTypeInfo typeInfo, string prefix)
    {
        if (typeInfo.Kind != JsonTypeInfoKind.Object)
        {
            return;
        }
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new QmpException(prefix.Length == 0
                ? "QMP input member 'arguments' must be an object"
                : $"Invalid parameter type for '{prefix.TrimEnd('.')}', expected: object");
        }

        bool openEnded = false;
        foreach (JsonPropertyInfo property in typeInfo.Properties)
        {
            if (property.IsExtensionData)
            {
                openEnded = true;
                continue;
            }
            string path = prefix + property.Name;
            if (!value.TryGetProperty(property.Name, out JsonElement member))
            {
                if (property.IsRequired)
                {
                    throw new QmpException($"Parameter '{path}' is missing");
                }
                continue;
            }
            CheckType(member, property.PropertyType, typeInfo.Options, path);
        }

        if (openEnded)
        {
            return;
        }
        foreach (JsonProperty member in value.EnumerateObject())
        {
            bool known = false;
            foreach (JsonPropertyInfo property in typeInfo.Properties)
            {
                if (property.Name == member.Name)
                {
                    known = true;
                    break;
                }
            }
            if (!known)
            {
                throw new QmpException($"Parameter '{prefix}{member.Name}' is unexpected");
            }
        }
    }

    private static void CheckType(JsonElement member, Type type, JsonSerializerOptions options, string path)
    {
        Type target = Nullable.GetUnderlyingType(type) ?? type;
        if (target == typeof(JsonElement))
        {
            return;
        }
        string? expected = ExpectedKind(member, target);
        if (expected is not null)
        {
            throw new QmpException($"Invalid parameter type for '{path}', expected: {expected}");
        }
        if (options.TryGetTypeInfo(target, out JsonTypeInfo? nested) && nested.Kind == JsonTypeInfoKind.Object)
        {
            Validate(member, nested, path + ".");
        }
        else if (member.ValueKind == JsonValueKind.Array && ElementType(target) is { } element)
        {
            int index = 0;
            foreach (JsonElement item in member.EnumerateArray())
            {
                CheckType(item, element, options, $"{path}[{index++}]");
            }
        }
    }

    private static Type? ElementType(Type listType) =>
        listType.IsArray ? listType.GetElementType()
        : listType.IsGenericType && listType.GetGenericTypeDefinition() == typeof(IReadOnlyList<>) ? listType.GetGenericArguments()[0]
        : null;

    /// <summary>Returns QEMU's name of the expected JSON kind when <paramref name="member"/> doesn't fit, else null.</summary>
    private static string? ExpectedKind(JsonElement member, Type target)
    {
        if (target == typeof(string))
        {
            return member.ValueKind == JsonValueKind.String ? null : "string";
        }
        if (target == typeof(bool))
        {
            return member.ValueKind is JsonValueKind.True or JsonValueKind.False ? null : "boolean";
        }
        if (target == typeof(long) || target == typeof(int) || target == typeof(short) || target == typeof(sbyte))
        {
            return member.ValueKind == JsonValueKind.Number && member.TryGetInt64(out _) ? null : "integer";
        }
        if (target == typeof(ulong) || target == typeof(uint) || target == typeof(ushort) || target == typeof(byte))
        {
            return member.ValueKind == JsonValueKind.Number && member.TryGetUInt64(out _) ? null : "integer";
        }
        if (target == typeof(double) || target == typeof(float))
        {
            return member.ValueKind == JsonValueKind.Number ? null : "number";
        }
        if (target.IsArray || (target.IsGenericType && target.GetGenericTypeDefinition() == typeof(IReadOnlyList<>)))
        {
            return member.ValueKind == JsonValueKind.Array ? null : "array";
        }
        if (target.IsEnum)
        {
            return member.ValueKind == JsonValueKind.String ? null : "string";
        }
        return null;
    }
}
