using Colo.Core.Qmp;

namespace Colo.Core.Objects;

/// <summary>
/// The composition tree: <c>/objects</c> for <c>-object</c>, <c>/chardevs</c>, <c>/machine</c> with its
/// <c>peripheral</c> and <c>peripheral-anon</c> containers. Paths resolve absolutely or, like QEMU's
/// partial paths, by a unique trailing name anywhere in the tree.
/// </summary>
public sealed class ObjectTree
{
    public ObjectTree()
    {
        Root = new QomContainer();
        Objects = AddContainer(Root, "objects");
        Chardevs = AddContainer(Root, "chardevs");
        Machine = AddContainer(Root, "machine");
        Peripheral = AddContainer(Machine, "peripheral");
        PeripheralAnon = AddContainer(Machine, "peripheral-anon");
        Netdevs = AddContainer(Root, "netdevs");
    }

    public QomObject Root { get; }

    public QomObject Objects { get; }

    public QomObject Chardevs { get; }

    public QomObject Machine { get; }

    public QomObject Peripheral { get; }

    public QomObject PeripheralAnon { get; }

    /// <summary>Colo keeps netdevs in the tree too so qom-list can show them; QEMU does not list them.</summary>
    public QomObject Netdevs { get; }

    /// <exception cref="QmpException">No object, or an ambiguous partial path.</exception>
    public QomObject Resolve(string path)
    {
        QomObject? found = TryResolve(path, out bool ambiguous);
        if (found is not null)
        {
            return found;
        }
        throw new QmpException(ambiguous ? $"Path '{path}' is ambiguous" : $"Device '{path}' not found", QmpErrorClass.DeviceNotFound);
    }

    public QomObject? TryResolve(string path, out bool ambiguous)
    {
        ambiguous = false;
        if (path.StartsWith('/'))
        {
            QomObject? node = Root;
            foreach (string part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                node = node?.FindChild(part);
            }
            return node;
        }
        string[] parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        QomObject? match = null;
        int matches = 0;
        foreach (QomObject candidate in Walk(Root))
        {
            if (EndsWith(candidate, parts))
            {
                match = candidate;
                matches++;
            }
        }
        ambiguous = matches > 1;
        return matches == 1 ? match : null;
    }

    private static bool EndsWith(QomObject node, string[] parts)
    {
        QomObject? current = node;
        for (int i = parts.Length - 1; i >= 0; i--)
        {
            if (current is null || current.Parent is null || current.Name != parts[i])
            {
                return false;
            }
            current = current.Parent;
        }
        return true;
    }

    private static IEnumerable<QomObject> Walk(QomObject node)
    {
        yield return node;
        foreach (KeyValuePair<string, QomObject> child in node.Children)
        {
            foreach (QomObject descendant in Walk(child.Value))
            {
                yield return descendant;
            }
        }
    }

    private static QomContainer AddContainer(QomObject parent, string name)
    {
        var container = new QomContainer();
        parent.AddChild(name, container);
        return container;
    }
}
