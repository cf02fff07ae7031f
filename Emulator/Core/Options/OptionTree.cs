namespace Colo.Core.Options;

/// <summary>
/// A nested option value: a scalar string, or an ordered map of named children. Built from dotted keys
/// (<c>file.backing.file.filename=x</c>) the way QEMU's keyval/qdict_crumple does; a map whose keys are
/// exactly 0..n-1 is a list (<see cref="IsList"/>), as with <c>children.0</c>, <c>children.1</c>.
/// </summary>
public sealed class OptionTree
{
    private readonly List<KeyValuePair<string, OptionTree>>? _children;

    private OptionTree(string? scalar, List<KeyValuePair<string, OptionTree>>? children)
    {
        Scalar = scalar;
        _children = children;
    }

    /// <summary>The value when this node is a leaf, else null.</summary>
    public string? Scalar { get; }

    public bool IsScalar => Scalar is not null;

    public IReadOnlyList<KeyValuePair<string, OptionTree>> Children => _children ?? [];

    /// <summary>True when the children are named 0, 1, ... n-1 in some order.</summary>
    public bool IsList
    {
        get
        {
            if (_children is null || _children.Count == 0)
            {
                return false;
            }
            var seen = new bool[_children.Count];
            foreach (KeyValuePair<string, OptionTree> child in _children)
            {
                if (!int.TryParse(child.Key, System.Globalization.NumberStyles.None, null, out int index)
                    || index >= seen.Length || seen[index] || child.Key != index.ToString(System.Globalization.CultureInfo.InvariantCulture))
                {
                    return false;
                }
                seen[index] = true;
            }
            return true;
        }
    }

    public OptionTree? this[string key]
    {
        get
        {
            if (_children is null)
            {
                return null;
            }
            foreach (KeyValuePair<string, OptionTree> child in _children)
            {
                if (child.Key == key)
                {
                    return child.Value;
                }
            }
            return null;
        }
    }

    /// <summary>Scalar value of a direct child, or null.</summary>
    public string? GetString(string key) => this[key]?.Scalar;

    /// <summary>Follows a dotted path (<c>file.backing.driver</c>).</summary>
    public OptionTree? Find(string dottedPath)
    {
        OptionTree? node = this;
        foreach (string part in dottedPath.Split('.'))
        {
            node = node?[part];
        }
        return node;
    }

    /// <summary>Flattens back to dotted pairs, in tree order.</summary>
    public IEnumerable<KeyValuePair<string, string>> Flatten(string prefix = "")
    {
        foreach (KeyValuePair<string, OptionTree> child in Children)
        {
            string key = prefix.Length == 0 ? child.Key : prefix + "." + child.Key;
            if (child.Value.IsScalar)
            {
                yield return new(key, child.Value.Scalar!);
            }
            else
            {
                foreach (KeyValuePair<string, string> pair in child.Value.Flatten(key))
                {
                    yield return pair;
                }
            }
        }
    }

    public static OptionTree Leaf(string value) => new(value, null);

    /// <exception cref="OptionsException">A key used both as a value and as a prefix (<c>a=1,a.b=2</c>).</exception>
    public static OptionTree FromFlat(IEnumerable<KeyValuePair<string, string>> pairs)
    {
        var root = new OptionTree(null, []);
        foreach (KeyValuePair<string, string> pair in pairs)
        {
            string[] parts = pair.Key.Split('.');
            OptionTree node = root;
            for (int i = 0; i < parts.Length; i++)
            {
                string part = parts[i];
                if (part.Length == 0)
                {
                    throw new OptionsException($"Invalid parameter '{pair.Key}'");
                }
                bool last = i == parts.Length - 1;
                int index = node._children!.FindIndex(c => c.Key == part);
                if (last)
                {
                    if (index >= 0 && !node._children[index].Value.IsScalar)
                    {
                        throw new OptionsException($"Parameters '{string.Join('.', parts[..(i + 1)])}.*' used inconsistently");
                    }
                    var leaf = Leaf(pair.Value);
                    if (index >= 0)
                    {
                        node._children[index] = new(part, leaf); // a repeated key: the last value wins
                    }
                    else
                    {
                        node._children.Add(new(part, leaf));
                    }
                }
                else
                {
                    if (index < 0)
                    {
                        var inner = new OptionTree(null, []);
                        node._children.Add(new(part, inner));
                        node = inner;
                    }
                    else if (node._children[index].Value.IsScalar)
                    {
                        throw new OptionsException($"Parameters '{string.Join('.', parts[..(i + 1)])}.*' used inconsistently");
                    }
                    else
                    {
                        node = node._children[index].Value;
                    }
                }
            }
        }
        return root;
    }
}
