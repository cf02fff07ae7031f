using Colo.Core.Objects;
using Colo.Core.Qmp;
using P = Colo.Core.Objects.PropertyDescriptor;

namespace Colo.Core.Chardev;

/// <summary>
/// Registers every chardev backend QEMU 7.2 lists in <c>-chardev help</c>, each with its <c>-chardev</c>
/// options. Backends Colo does not build yet are listed with their schema and refused at creation;
/// options a built backend does not support yet are refused when set, never ignored.
/// </summary>
public static class ChardevTypes
{
    /// <summary>Options every backend takes (QEMU's ChardevCommon plus <c>mux</c>).</summary>
    private static readonly P[] Common =
    [
        P.Str("logfile", "file to copy all output to"),
        P.Flag("logappend", false, "append to the log file instead of truncating it"),
        P.Flag("mux", false, "multiplex the chardev between several frontends"),
    ];

    /// <summary>Options that exist in the schema but whose behaviour Colo lacks, per backend.</summary>
    private static readonly Dictionary<string, string[]> Unimplemented = new(StringComparer.Ordinal)
    {
        ["socket"] = ["telnet", "tn3270", "websocket", "tls-creds", "tls-authz"],
    };

    /// <summary>Registers all chardev types with a default environment (stderr messages, process stdio).</summary>
    public static void Register(TypeRegistry registry) => Register(registry, ChardevEnvironment.CreateDefault());

    /// <summary>Registers all chardev types; backends report and use stdio through <paramref name="env"/>.</summary>
    public static void Register(TypeRegistry registry, ChardevEnvironment env)
    {
        Add(registry, "socket", (t, id, v) => new SocketChardev(t, id, v, env),
            P.Str("host", "host name or address (TCP)"),
            P.Str("port", "port number or service name (TCP)"),
            P.Str("path", "unix socket path"),
            P.Flag("server", false, "listen instead of connecting"),
            P.Flag("wait", true, "in server mode, block creation until a client connects"),
            P.Int64("reconnect", 0, "in client mode, seconds between reconnection attempts (0: never)"),
            P.Flag("nodelay", false, "set TCP_NODELAY"),
            P.Flag("delay", true, "deprecated inverse of nodelay"),
            P.UInt("to", ushort.MaxValue, description: "in server mode, try ports from port up to this one"),
            new P("ipv4", PropertyKind.Bool, "use IPv4 only"),
            new P("ipv6", PropertyKind.Bool, "use IPv6 only"),
            P.Flag("abstract", false, "use the Linux abstract socket namespace"),
            P.Flag("tight", true, "abstract socket address length is exactly the name"),
            P.Flag("telnet", false, "speak telnet"),
            P.Flag("tn3270", false, "speak tn3270"),
            P.Flag("websocket", false, "speak websocket"),
            P.Str("tls-creds", "id of TLS credentials"),
            P.Str("tls-authz", "id of TLS authorization"),
            P.Str("fd", "file descriptor of a connected or listening socket"));
        Add(registry, "stdio", (t, _, v) => new StdioChardev(t, v, env),
            P.Flag("signal", true, "Ctrl-C on stdio raises SIGINT"));
        Add(registry, "file", (t, _, v) => new FileChardev(t, v),
            P.Str("path", "output file"),
            P.Flag("append", false, "append instead of truncating"),
            P.Str("in", "input file (QMP ChardevFile.in)"));
        Add(registry, "null", (t, _, v) => new NullChardev(t, v));
        Add(registry, "ringbuf", (t, _, v) => new RingbufChardev(t, v),
            new P("size", PropertyKind.Size, "ring size in bytes, a power of two", "65536"));
        Add(registry, "memory", (t, _, v) => new RingbufChardev(t, v),
            new P("size", PropertyKind.Size, "ring size in bytes, a power of two", "65536"));

        AddMissing(registry, "pipe", "the pipe backend", P.Str("path", "base name of the FIFOs (path.in, path.out) or one FIFO"));
        AddMissing(registry, "pty", "the pty backend");
        AddMissing(registry, "vc", "the virtual console backend (Colo is headless)",
            P.UInt("width", uint.MaxValue), P.UInt("height", uint.MaxValue), P.UInt("cols", uint.MaxValue), P.UInt("rows", uint.MaxValue));
        AddMissing(registry, "udp", "the udp backend",
            P.Str("host"), P.Str("port"), P.Str("localaddr"), P.Str("localport"),
            new P("ipv4", PropertyKind.Bool), new P("ipv6", PropertyKind.Bool));
        AddMissing(registry, "serial", "the host serial port backend", P.Str("path"));
        AddMissing(registry, "parallel", "the host parallel port backend", P.Str("path"));
        AddMissing(registry, "msmouse", "the msmouse backend");
        AddMissing(registry, "wctablet", "the wctablet backend");
        AddMissing(registry, "testdev", "the testdev backend");
        AddMissing(registry, "qemu-vdagent", "the qemu-vdagent backend", P.Flag("mouse", true), P.Flag("clipboard", false));
        Add(registry, "mux", (t, _, v) => new MuxChardev(t, v), P.Str("chardev", "id of the chardev the frontends share"));
    }

    /// <summary>The text shown when an option Colo lacks is used.</summary>
    public static string NotImplementedText(string backend, string option) =>
        $"chardev '{backend}': option '{option}' is not implemented yet in Colo";

    /// <summary>Refuses creation when an option this backend lists but lacks is set to something other than its default.</summary>
    internal static void RefuseUnimplemented(Chardev chardev)
    {
        if (!Unimplemented.TryGetValue(chardev.TypeName, out string[]? names))
        {
            return;
        }
        foreach (string name in names)
        {
            if (!chardev.Values.Contains(name))
            {
                continue;
            }
            P p = chardev.Type.FindProperty(name)!;
            bool used = p.Kind == PropertyKind.Bool
                ? chardev.Values.GetBool(name) != (p.Default == "true")
                : !string.IsNullOrEmpty(chardev.Values.GetString(name));
            if (used)
            {
                throw new QmpException(NotImplementedText(chardev.TypeName, name));
            }
        }
    }

    /// <summary>Opens a file with QEMU's <c>Could not open 'PATH': reason</c> error.</summary>
    internal static FileStream OpenFile(string path, FileMode mode, FileAccess access)
    {
        try
        {
            return new FileStream(path, mode, access, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new QmpException($"Could not open '{path}': {Reason(e, path)}", e);
        }
    }

    /// <summary>Waits for a background task to end during dispose; its faults were already handled.</summary>
    internal static void WaitQuietly(Task? task)
    {
        if (task is null)
        {
            return;
        }
        try
        {
            task.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
    }

    /// <summary>strerror-like text for file errors (.NET messages quote the path; QEMU's do not).</summary>
    private static string Reason(Exception e, string path) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException => "No such file or directory",
        UnauthorizedAccessException => "Permission denied",
        _ when path.Length == 0 => "No such file or directory",
        _ => e.Message,
    };

    private static void Add(TypeRegistry registry, string name, ObjectFactory factory, params P[] properties) =>
        registry.Register(new ObjectTypeInfo(name, ObjectCategory.Chardev, [.. properties, .. Common], factory));

    private static void AddMissing(TypeRegistry registry, string name, string what, params P[] properties) =>
        registry.Register(new ObjectTypeInfo(name, ObjectCategory.Chardev, [.. properties, .. Common], factory: null) { NotImplemented = what });
}
