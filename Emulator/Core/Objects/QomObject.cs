using System.Text.Json;
using Colo.Core.Qmp;

namespace Colo.Core.Objects;

/// <summary>
/// A node of the QOM-like object tree: typed, named in its parent, with typed properties and children.
/// User-creatable objects are configured from <see cref="PropertyValues"/>, then <see cref="Complete"/>
/// brings them to life (opens sockets, starts threads); <see cref="Dispose"/> releases them on
/// <c>object-del</c> or exit.
/// </summary>
public abstract class QomObject : IDisposable
{
    private readonly List<KeyValuePair<string, QomObject>> _children = [];

    protected QomObject(ObjectTypeInfo type, PropertyValues values)
    {
        Type = type;
        Values = values;
    }

    public ObjectTypeInfo Type { get; }

    public string TypeName => Type.Name;

    public PropertyValues Values { get; }

    /// <summary>Name within the parent (the id for user-created objects); empty for the root.</summary>
    public string Name { get; private set; } = "";

    public QomObject? Parent { get; private set; }

    public IReadOnlyList<KeyValuePair<string, QomObject>> Children => _children;

    public string CanonicalPath => Parent is null ? "/" : Parent.Parent is null ? "/" + Name : Parent.CanonicalPath + "/" + Name;

    /// <summary>Brings a configured object to life; may throw <see cref="QmpException"/> to refuse creation.</summary>
    public virtual void Complete()
    {
    }

    /// <summary>Why the object cannot be deleted now (e.g. another object uses it), or null.</summary>
    public virtual string? DeleteBlocker() => null;

    public QomObject? FindChild(string name)
    {
        foreach (KeyValuePair<string, QomObject> child in _children)
        {
            if (child.Key == name)
            {
                return child.Value;
            }
        }
        return null;
    }

    /// <exception cref="QmpException">A child of that name exists (QEMU's duplicate-property text).</exception>
    public void AddChild(string name, QomObject child)
    {
        if (FindChild(name) is not null)
        {
            throw new QmpException($"attempt to add duplicate property '{name}' to object (type '{TypeName}')");
        }
        child.Name = name;
        child.Parent = this;
        _children.Add(new(name, child));
    }

    public void RemoveChild(QomObject child)
    {
        _children.RemoveAll(c => ReferenceEquals(c.Value, child));
        child.Parent = null;
    }

    /// <summary>Properties beyond the type's schema that exist at run time (e.g. a chardev's <c>connected</c>).</summary>
    public virtual IEnumerable<(string Name, string Type)> RuntimeProperties => [];

    /// <summary>The properties qom-list shows besides <c>type</c> and the children: the schema's, then the run-time ones.</summary>
    public virtual IEnumerable<(string Name, string Type)> QomProperties =>
        Type.Properties.Select(p => (p.Name, p.QomTypeName)).Concat(RuntimeProperties);

    /// <summary>Writes a property's current value as JSON (qom-get).</summary>
    /// <exception cref="QmpException">No such property.</exception>
    public virtual void WriteProperty(string name, Utf8JsonWriter writer)
    {
        if (name == "type")
        {
            writer.WriteStringValue(TypeName);
            return;
        }
        PropertyDescriptor? p = Type.FindProperty(name);
        if (p is null || !Values.TryWriteJson(p, writer))
        {
            throw new QmpException($"Property '{TypeName}.{name}' not found");
        }
    }

    /// <summary>Changes a property after creation (qom-set).</summary>
    public virtual void SetProperty(string name, JsonElement value)
    {
        PropertyDescriptor? p = Type.FindProperty(name);
        if (p is null)
        {
            throw new QmpException($"Property '{TypeName}.{name}' not found");
        }
        if (!p.Writable)
        {
            throw new QmpException($"Property '{TypeName}.{name}' can not be set after creation");
        }
        Values.SetFromJson(name, value);
        OnPropertyChanged(p);
    }

    protected virtual void OnPropertyChanged(PropertyDescriptor property)
    {
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }
}

/// <summary>A plain directory node (<c>/objects</c>, <c>/chardevs</c>, <c>/machine/peripheral</c>).</summary>
public sealed class QomContainer : QomObject
{
    public static readonly ObjectTypeInfo ContainerType = new("container", ObjectCategory.Object, [], factory: null);

    public QomContainer()
        : base(ContainerType, new PropertyValues(ContainerType))
    {
    }
}
