using System.Text;
using System.Text.Json;
using Colo.Core.Qmp;

namespace Colo.Core.Objects;

/// <summary>
/// All creatable types, by category. Every creation path (command line and QMP) goes through
/// <see cref="CreateFromStrings"/> or <see cref="CreateFromJson"/>, so the error texts live in one place.
/// </summary>
public sealed class TypeRegistry
{
    private const string IdentifierHelp = "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter.";

    private readonly Dictionary<(ObjectCategory, string), ObjectTypeInfo> _types = [];

    public void Register(ObjectTypeInfo type)
    {
        if (!_types.TryAdd((type.Category, type.Name), type))
        {
            throw new InvalidOperationException($"type '{type.Name}' registered twice");
        }
    }

    public IEnumerable<ObjectTypeInfo> TypesOf(ObjectCategory category) =>
        _types.Values.Where(t => t.Category == category).OrderBy(t => t.Name, StringComparer.Ordinal);

    public ObjectTypeInfo? Find(ObjectCategory category, string name) => _types.GetValueOrDefault((category, name));

    /// <summary>A creatable type by name.</summary>
    /// <exception cref="QmpException">Unknown type with the category's QEMU text, or an abstract or board-only device type.</exception>
    public ObjectTypeInfo Get(ObjectCategory category, string name)
    {
        ObjectTypeInfo type = Find(category, name) ?? throw new QmpException(category switch
        {
            ObjectCategory.Object => $"Parameter 'qom-type' does not accept value '{name}'",
            ObjectCategory.Device => $"'{name}' is not a valid device model name",
            ObjectCategory.Netdev => $"Parameter 'type' does not accept value '{name}'",
            _ => $"'{name}' is not a valid char driver name",
        });
        if (type.Abstract)
        {
            throw new QmpException("Parameter 'driver' expects a non-abstract device type");
        }
        if (!type.UserCreatable)
        {
            throw new QmpException("Parameter 'driver' expects a pluggable device type");
        }
        return type;
    }

    /// <summary>Whether <paramref name="type"/> is <paramref name="ancestor"/> or derives from it (QOM's implements).</summary>
    public bool Implements(ObjectTypeInfo type, string ancestor)
    {
        for (ObjectTypeInfo? t = type; t is not null; t = t.Parent is null ? null : Find(t.Category, t.Parent))
        {
            if (t.Name == ancestor)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Checks the type and every property value without creating anything; returns the type.</summary>
    public ObjectTypeInfo Validate(ObjectCategory category, string typeName, IEnumerable<KeyValuePair<string, string>> properties) =>
        ValuesFromStrings(category, typeName, properties).Type;

    /// <summary>Creates and completes an object from command-line strings (everything but type and id).</summary>
    public QomObject CreateFromStrings(ObjectCategory category, string typeName, string? id, IEnumerable<KeyValuePair<string, string>> properties)
    {
        (ObjectTypeInfo type, PropertyValues values) = ValuesFromStrings(category, typeName, properties);
        return Instantiate(type, id, values);
    }

    /// <summary>Creates and completes an object from QMP JSON members.</summary>
    public QomObject CreateFromJson(ObjectCategory category, string typeName, string? id, IEnumerable<JsonProperty> properties) =>
        CreateFromJson(category, typeName, id, properties.Select(p => KeyValuePair.Create(p.Name, p.Value)));

    /// <summary>Creates and completes an object from QMP JSON name/value pairs.</summary>
    public QomObject CreateFromJson(ObjectCategory category, string typeName, string? id, IEnumerable<KeyValuePair<string, JsonElement>> properties)
    {
        ObjectTypeInfo type = Get(category, typeName);
        var values = new PropertyValues(type);
        foreach (KeyValuePair<string, JsonElement> p in properties)
        {
            values.SetFromJson(p.Key, p.Value);
        }
        return Instantiate(type, id, values);
    }

    /// <summary>QEMU's identifier rule for ids: a letter, then letters, digits, '-', '.', '_'.</summary>
    public static void CheckId(string? id)
    {
        if (id is null)
        {
            throw new QmpException("Parameter 'id' is missing");
        }
        if (!IsIdentifier(id))
        {
            throw new QmpException($"Parameter 'id' expects an identifier\n{IdentifierHelp}");
        }
    }

    public static bool IsIdentifier(string id)
    {
        if (id.Length == 0 || !char.IsAsciiLetter(id[0]))
        {
            return false;
        }
        foreach (char c in id)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not '-' and not '.' and not '_')
            {
                return false;
            }
        }
        return true;
    }

    internal static string UnknownPropertyText(ObjectTypeInfo type, string name, bool fromQmp) => type.Category switch
    {
        ObjectCategory.Device => $"Property '{type.Name}.{name}' not found",
        _ when fromQmp => $"Parameter '{name}' is unexpected",
        _ => $"Invalid parameter '{name}'",
    };

    /// <summary>The text of <c>-device help</c>, <c>-object help</c>, <c>-netdev help</c>, <c>-chardev help</c>.</summary>
    public string ListHelp(ObjectCategory category)
    {
        var sb = new StringBuilder();
        switch (category)
        {
            case ObjectCategory.Device:
                foreach (IGrouping<string, ObjectTypeInfo> group in TypesOf(category).Where(t => !t.Abstract && t.UserCreatable).GroupBy(t => t.HelpGroup ?? "Uncategorized devices").OrderBy(g => g.Key, StringComparer.Ordinal))
                {
                    sb.Append(group.Key).Append(":\n");
                    foreach (ObjectTypeInfo t in group)
                    {
                        sb.Append("name \"").Append(t.Name).Append('"');
                        if (t.Bus is not null)
                        {
                            sb.Append(", bus ").Append(t.Bus);
                        }
                        if (t.Description is not null)
                        {
                            sb.Append(", desc \"").Append(t.Description).Append('"');
                        }
                        sb.Append('\n');
                    }
                    sb.Append('\n');
                }
                break;
            case ObjectCategory.Object:
                sb.Append("List of user creatable objects:\n");
                foreach (ObjectTypeInfo t in TypesOf(category))
                {
                    sb.Append("  ").Append(t.Name).Append('\n');
                }
                break;
            case ObjectCategory.Netdev:
                sb.Append("Available netdev backend types:\n");
                foreach (ObjectTypeInfo t in TypesOf(category))
                {
                    sb.Append(t.Name).Append('\n');
                }
                break;
            default:
                sb.Append("Available chardev backend types: \n");
                foreach (ObjectTypeInfo t in TypesOf(category))
                {
                    sb.Append("  ").Append(t.Name).Append('\n');
                }
                break;
        }
        return sb.ToString();
    }

    /// <summary>
    /// The text of <c>-device NAME,help</c> / <c>-object NAME,help</c> in QEMU's layout: <c>name=&lt;type&gt;</c>
    /// padded to 24 columns, then <c>- description (default: value)</c> when there is either.
    /// </summary>
    public static string PropertyHelp(ObjectTypeInfo type)
    {
        var sb = new StringBuilder();
        PropertyDescriptor[] listed = [.. type.Properties.Where(p => !p.Hidden).OrderBy(p => p.Name, StringComparer.Ordinal)];
        if (listed.Length == 0 && type.Category == ObjectCategory.Device)
        {
            return $"There are no options for {type.Name}.\n";
        }
        sb.Append(type.Name).Append(" options:\n");
        foreach (PropertyDescriptor p in listed)
        {
            string left = $"  {p.Name}=<{p.QomTypeName}>";
            string? enumText = p.EnumValues is null ? null : $"({string.Join('/', p.EnumValues)})";
            string description = string.Join(' ', new[] { p.Description, enumText }.Where(t => t is not null));
            if (description.Length == 0 && p.Default is null)
            {
                sb.Append(left).Append('\n');
                continue;
            }
            sb.Append(left.PadRight(24)).Append(" - ").Append(description);
            if (p.Default is not null)
            {
                sb.Append(" (default: ").Append(p.Default).Append(')');
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private (ObjectTypeInfo Type, PropertyValues Values) ValuesFromStrings(ObjectCategory category, string typeName, IEnumerable<KeyValuePair<string, string>> properties)
    {
        ObjectTypeInfo type = Get(category, typeName);
        var values = new PropertyValues(type);
        foreach (KeyValuePair<string, string> p in properties)
        {
            values.SetFromString(p.Key, p.Value);
        }
        return (type, values);
    }

    /// <summary>The refusal for a registered type that is not built yet; names the type and what builds it.</summary>
    public static string NotImplementedText(ObjectTypeInfo type)
    {
        string noun = type.Category switch
        {
            ObjectCategory.Device => "device",
            ObjectCategory.Netdev => "netdev",
            ObjectCategory.Chardev => "chardev backend",
            _ => "object type",
        };
        return $"{noun} '{type.Name}' is not implemented yet in Colo{(type.NotImplemented is null ? "" : $" ({type.NotImplemented})")}";
    }

    private static QomObject Instantiate(ObjectTypeInfo type, string? id, PropertyValues values)
    {
        if (type.Category != ObjectCategory.Device || id is not null)
        {
            CheckId(id);
        }
        values.CheckRequired();
        if (type.Factory is null)
        {
            throw new QmpException(NotImplementedText(type));
        }
        QomObject obj = type.Factory(type, id ?? "", values);
        try
        {
            obj.Complete();
        }
        catch
        {
            obj.Dispose();
            throw;
        }
        return obj;
    }
}
