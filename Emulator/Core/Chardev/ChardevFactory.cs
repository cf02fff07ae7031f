using Colo.Core.Objects;
using Colo.Core.Options;
using Colo.Core.Qmp;

namespace Colo.Core.Chardev;

/// <summary>
/// Creates chardevs from <c>-chardev</c> option text or legacy specs and keeps them under
/// <see cref="ObjectTree.Chardevs"/> by id; the QMP commands use the same lookups.
/// </summary>
public static class ChardevFactory
{
    /// <summary>Boolean options of all backends, accepted in QEMU's deprecated short form (<c>server</c>, <c>nowait</c>).</summary>
    private static readonly HashSet<string> ShortFormFlags =
        ["server", "wait", "nodelay", "delay", "ipv4", "ipv6", "telnet", "tn3270", "websocket", "abstract", "tight",
         "mux", "logappend", "append", "signal", "mouse", "clipboard"];

    /// <summary>Creates a chardev from a <c>-chardev</c> argument such as <c>socket,id=red0,host=127.0.0.1,port=9003</c>.</summary>
    /// <exception cref="QmpException">QEMU's text for a missing id or backend, duplicate id, bad option or failed open.</exception>
    public static Chardev CreateFromOption(TypeRegistry types, ObjectTree tree, string optionText) =>
        CreateFromOptions(types, tree, KeyValParser.Parse(optionText, impliedKey: "backend", ShortFormFlags));

    /// <summary>Creates a chardev from an already parsed <c>-chardev</c> argument.</summary>
    public static Chardev CreateFromOptions(TypeRegistry types, ObjectTree tree, KeyValList options)
    {
        string? id = options["id"];
        string? backend = options["backend"];
        if (id is null)
        {
            throw new QmpException("chardev: no id specified");
        }
        if (backend is null)
        {
            throw new QmpException($"chardev: \"{id}\" missing backend");
        }
        TypeRegistry.CheckId(id);
        if (Find(tree, id) is not null)
        {
            throw new QmpException($"Duplicate ID '{id}' for chardev");
        }
        return Create(types, tree, backend, id, options.Except("backend", "id"));
    }

    /// <summary>
    /// Creates the chardev a legacy <c>-serial</c>/<c>-monitor</c>/<c>-qmp</c> spec names, labelled
    /// <paramref name="label"/> (QEMU uses <c>serial0</c>, <c>compat_monitor0</c>, ...); <c>chardev:ID</c>
    /// returns the existing chardev and <c>none</c> returns null.
    /// </summary>
    public static Chardev? CreateFromCompat(TypeRegistry types, ObjectTree tree, string label, string spec)
    {
        ChardevSpec parsed = ChardevCompat.Parse(spec);
        switch (parsed.Kind)
        {
            case ChardevSpecKind.None:
                return null;
            case ChardevSpecKind.Reference:
                return Find(tree, parsed.ReferenceId!) ?? throw new QmpException($"Chardev '{parsed.ReferenceId}' not found");
            default:
                if (Find(tree, label) is not null)
                {
                    throw new QmpException($"Duplicate ID '{label}' for chardev");
                }
                return Create(types, tree, parsed.Backend!, label, parsed.Properties);
        }
    }

    /// <summary>Creates, completes and adds a chardev; the caller has checked the id is free.</summary>
    public static Chardev Create(TypeRegistry types, ObjectTree tree, string backend, string id, IEnumerable<KeyValuePair<string, string>> properties)
    {
        List<KeyValuePair<string, string>> list = [.. properties];
        int mux = list.FindIndex(p => p.Key == "mux");
        if (mux >= 0 && backend != "mux")
        {
            bool on = list[mux].Value switch
            {
                "on" or "yes" or "true" or "y" => true,
                "off" or "no" or "false" or "n" => false,
                _ => throw new QmpException("Parameter 'mux' expects 'on' or 'off'"),
            };
            list.RemoveAt(mux);
            if (on)
            {
                return CreateMux(types, tree, backend, id, list);
            }
        }
        QomObject created = types.CreateFromStrings(ObjectCategory.Chardev, backend, id, list);
        var chardev = (Chardev)created;
        if (chardev is MuxChardev muxChardev)
        {
            string baseId = chardev.Values.GetString("chardev") is { Length: > 0 } given ? given : throw new QmpException("chardev: mux: no chardev given");
            Chardev shared = Find(tree, baseId) ?? throw new QmpException($"mux: base chardev {baseId} not found");
            muxChardev.Bind(shared);
        }
        tree.Chardevs.AddChild(id, chardev);
        return chardev;
    }

    /// <summary>
    /// <c>mux=on</c>: the backend becomes <c>ID-base</c> and a mux chardev takes <c>ID</c>, as QEMU names them
    /// (listed mux first, as <c>query-chardev</c> shows them in QEMU).
    /// </summary>
    private static Chardev CreateMux(TypeRegistry types, ObjectTree tree, string backend, string id, List<KeyValuePair<string, string>> properties)
    {
        string baseId = id + "-base";
        if (Find(tree, baseId) is not null)
        {
            throw new QmpException($"Duplicate ID '{baseId}' for chardev");
        }
        var mux = (MuxChardev)types.CreateFromStrings(ObjectCategory.Chardev, "mux", id, [new("chardev", baseId)]);
        tree.Chardevs.AddChild(id, mux);
        try
        {
            var shared = (Chardev)types.CreateFromStrings(ObjectCategory.Chardev, backend, baseId, properties);
            tree.Chardevs.AddChild(baseId, shared);
            mux.Bind(shared);
        }
        catch
        {
            tree.Chardevs.RemoveChild(mux);
            mux.Dispose();
            throw;
        }
        return mux;
    }

    /// <summary>The chardev with this id, or null.</summary>
    public static Chardev? Find(ObjectTree tree, string id) => tree.Chardevs.FindChild(id) as Chardev;

    /// <summary>All chardevs in creation order.</summary>
    public static IEnumerable<Chardev> All(ObjectTree tree)
    {
        foreach (KeyValuePair<string, QomObject> child in tree.Chardevs.Children)
        {
            if (child.Value is Chardev chardev)
            {
                yield return chardev;
            }
        }
    }

    /// <summary>Removes and disposes a chardev, with QEMU's not-found and busy errors.</summary>
    public static void Remove(ObjectTree tree, string id)
    {
        Chardev chardev = Find(tree, id) ?? throw new QmpException($"Chardev '{id}' not found");
        if (chardev.DeleteBlocker() is { } reason)
        {
            throw new QmpException(reason);
        }
        tree.Chardevs.RemoveChild(chardev);
        chardev.Dispose();
    }

    /// <summary>Disposes every chardev (process exit).</summary>
    public static void RemoveAll(ObjectTree tree)
    {
        foreach (Chardev chardev in All(tree).ToArray())
        {
            tree.Chardevs.RemoveChild(chardev);
            chardev.Dispose();
        }
    }
}
