namespace Colo.Core.Options;

/// <summary>
/// One parsed option argument such as <c>socket,id=red0,host=127.0.0.1,port=9003,reconnect=1</c>:
/// its pairs in the order given (a key may repeat; the last one wins on lookup) and the original text,
/// which error messages quote.
/// </summary>
public sealed class KeyValList
{
    private readonly List<KeyValuePair<string, string>> _pairs;

    internal KeyValList(string text, List<KeyValuePair<string, string>> pairs)
    {
        Text = text;
        _pairs = pairs;
    }

    public string Text { get; }

    public IReadOnlyList<KeyValuePair<string, string>> Pairs => _pairs;

    public string? this[string key]
    {
        get
        {
            for (int i = _pairs.Count - 1; i >= 0; i--)
            {
                if (_pairs[i].Key == key)
                {
                    return _pairs[i].Value;
                }
            }
            return null;
        }
    }

    public bool Contains(string key) => this[key] is not null;

    /// <summary>The pairs without the named keys, in order (e.g. everything but <c>qom-type</c> and <c>id</c>).</summary>
    public IEnumerable<KeyValuePair<string, string>> Except(params ReadOnlySpan<string> keys)
    {
        var skip = new HashSet<string>(keys.Length, StringComparer.Ordinal);
        foreach (string k in keys)
        {
            skip.Add(k);
        }
        return _pairs.Where(p => !skip.Contains(p.Key));
    }

    /// <summary>Nests dotted keys (<c>children.0.file.filename</c>) into a tree, as QEMU's keyval does.</summary>
    public OptionTree ToTree() => OptionTree.FromFlat(_pairs);
}
