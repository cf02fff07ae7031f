using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Core.Chardev.Qmp;

/// <summary>
/// The chardev QMP commands: <c>chardev-add</c>, <c>chardev-remove</c>, <c>query-chardev</c>,
/// <c>query-chardev-backends</c>, <c>ringbuf-write</c>, <c>ringbuf-read</c>. <c>chardev-add</c> takes QEMU's
/// <c>ChardevBackend</c> union and turns it into the backend's <c>-chardev</c> options, so both surfaces
/// share one creation path and one set of error texts.
/// </summary>
public static class ChardevQmpCommands
{
    /// <summary>Registers the commands, creating chardevs with <paramref name="types"/> under <paramref name="tree"/>.</summary>
    public static void Register(QmpCommandRegistry r, TypeRegistry types, ObjectTree tree)
    {
        ChardevQmpJsonContext c = ChardevQmpJsonContext.Default;
        r.Register("chardev-add", c.ChardevAddArguments, c.ChardevReturn, a => Add(types, tree, a));
        r.Register("chardev-remove", c.ChardevRemoveArguments, c.QmpEmpty, a => Remove(tree, a));
        r.Register("query-chardev", c.QmpNoArgs, c.IReadOnlyListChardevInfo, _ => QueryChardev(tree));
        r.Register("query-chardev-backends", c.QmpNoArgs, c.IReadOnlyListChardevBackendInfo, _ => QueryBackends(types));
        r.Register("ringbuf-write", c.RingbufWriteArguments, c.QmpEmpty, a => RingbufWrite(tree, a));
        r.Register("ringbuf-read", c.RingbufReadArguments, c.String, a => RingbufRead(tree, a));
    }

    private static ChardevReturn Add(TypeRegistry types, ObjectTree tree, ChardevAddArguments args)
    {
        if (ChardevFactory.Find(tree, args.Id) is not null)
        {
            throw new QmpException($"Chardev with id '{args.Id}' already exists");
        }
        List<KeyValuePair<string, string>> properties = ToProperties(args.Backend, types);
        try
        {
            ChardevFactory.Create(types, tree, args.Backend.Type, args.Id, properties);
        }
        catch (QmpException e)
        {
            throw new QmpException($"Failed to add chardev '{args.Id}': {e.Message}", e, e.ErrorClass);
        }
        return new ChardevReturn();
    }

    private static QmpEmpty Remove(ObjectTree tree, ChardevRemoveArguments args)
    {
        ChardevFactory.Remove(tree, args.Id);
        return QmpEmpty.Instance;
    }

    private static IReadOnlyList<ChardevInfo> QueryChardev(ObjectTree tree)
    {
        var list = new List<ChardevInfo>();
        foreach (Chardev chardev in ChardevFactory.All(tree))
        {
            string filename = chardev is IChardevInfo info ? info.Filename : chardev.TypeName;
            list.Add(new ChardevInfo { Label = chardev.Name, Filename = filename, FrontendOpen = chardev.HasFrontend });
        }
        return list;
    }

    private static IReadOnlyList<ChardevBackendInfo> QueryBackends(TypeRegistry types)
    {
        var list = new List<ChardevBackendInfo>();
        foreach (ObjectTypeInfo type in types.TypesOf(ObjectCategory.Chardev))
        {
            list.Add(new ChardevBackendInfo { Name = type.Name });
        }
        return list;
    }

    private static QmpEmpty RingbufWrite(ObjectTree tree, RingbufWriteArguments args)
    {
        RingbufChardev ring = FindRing(tree, args.Device);
        byte[] data;
        if (args.Format is null or "utf8")
        {
            data = Encoding.UTF8.GetBytes(args.Data);
        }
        else if (args.Format == "base64")
        {
            // QEMU decodes leniently; Colo insists on well-formed base64 rather than guess.
            data = DecodeBase64(args.Data);
        }
        else
        {
            throw new QmpException($"Parameter 'format' does not accept value '{args.Format}'");
        }
        ring.Store(data);
        return QmpEmpty.Instance;
    }

    private static string RingbufRead(ObjectTree tree, RingbufReadArguments args)
    {
        if (args.Format is not (null or "utf8" or "base64"))
        {
            throw new QmpException($"Parameter 'format' does not accept value '{args.Format}'");
        }
        RingbufChardev ring = FindRing(tree, args.Device);
        if (args.Size < 0)
        {
            throw new QmpException("size must be greater than zero");
        }
        byte[] data = ring.Read(args.Size);
        return args.Format == "base64" ? Convert.ToBase64String(data) : Encoding.UTF8.GetString(data);
    }

    private static RingbufChardev FindRing(ObjectTree tree, string device) => ChardevFactory.Find(tree, device) switch
    {
        null => throw new QmpException($"Device '{device}' not found", QmpErrorClass.DeviceNotFound),
        RingbufChardev ring => ring,
        _ => throw new QmpException($"{device} is not a ringbuf device"),
    };

    private static byte[] DecodeBase64(string text)
    {
        byte[] buffer = new byte[(text.Length * 3 / 4) + 3];
        return Convert.TryFromBase64String(text, buffer, out int written)
            ? buffer[..written]
            : throw new QmpException("Invalid base64 data");
    }

    /// <summary>Maps a ChardevBackend branch onto the backend's <c>-chardev</c> options.</summary>
    private static List<KeyValuePair<string, string>> ToProperties(ChardevBackend backend, TypeRegistry types)
    {
        // Check the type first: QEMU names an unknown union tag before looking at its data.
        if (types.Find(ObjectCategory.Chardev, backend.Type) is null)
        {
            throw new QmpException($"Parameter 'type' does not accept value '{backend.Type}'");
        }
        ChardevQmpJsonContext c = ChardevQmpJsonContext.Default;
        var p = new List<KeyValuePair<string, string>>();
        const string Prefix = "backend.data.";
        switch (backend.Type)
        {
            case "socket":
            {
                ChardevSocket s = Branch(backend.Data, c.ChardevSocket, Prefix);
                AddAddress(p, s.Addr, Prefix + "addr.");
                bool server = s.Server ?? true; // QMP defaults differ from -chardev: server on, wait off
                Flag(p, "server", server);
                if (server)
                {
                    Flag(p, "wait", s.Wait ?? false);
                }
                else
                {
                    Flag(p, "wait", s.Wait);
                }
                Flag(p, "nodelay", s.Nodelay);
                Flag(p, "telnet", s.Telnet);
                Flag(p, "tn3270", s.Tn3270);
                Flag(p, "websocket", s.Websocket);
                Text(p, "tls-creds", s.TlsCreds);
                Text(p, "tls-authz", s.TlsAuthz);
                if (s.Reconnect is { } reconnect)
                {
                    p.Add(new("reconnect", reconnect.ToString(CultureInfo.InvariantCulture)));
                }
                Common(p, s.Logfile, s.Logappend);
                break;
            }
            case "file":
            {
                ChardevFile f = Branch(backend.Data, c.ChardevFile, Prefix);
                p.Add(new("path", f.Out));
                Text(p, "in", f.In);
                Flag(p, "append", f.Append);
                Common(p, f.Logfile, f.Logappend);
                break;
            }
            case "stdio":
            {
                ChardevStdio s = Branch(backend.Data, c.ChardevStdio, Prefix);
                Flag(p, "signal", s.Signal);
                Common(p, s.Logfile, s.Logappend);
                break;
            }
            case "ringbuf":
            case "memory":
            {
                ChardevRingbuf rb = Branch(backend.Data, c.ChardevRingbuf, Prefix);
                if (rb.Size is { } size)
                {
                    p.Add(new("size", size.ToString(CultureInfo.InvariantCulture)));
                }
                Common(p, rb.Logfile, rb.Logappend);
                break;
            }
            case "pipe":
            case "serial":
            case "parallel":
            {
                ChardevHostdev h = Branch(backend.Data, c.ChardevHostdev, Prefix);
                p.Add(new("path", h.Device));
                Common(p, h.Logfile, h.Logappend);
                break;
            }
            case "null":
            case "pty":
            case "msmouse":
            case "wctablet":
            case "testdev":
            {
                ChardevCommon common = Branch(backend.Data, c.ChardevCommon, Prefix);
                Common(p, common.Logfile, common.Logappend);
                break;
            }
            default:
                // Types Colo registers without a factory (udp, vc, mux, qemu-vdagent): creation refuses them by name.
                break;
        }
        return p;
    }

    private static void AddAddress(List<KeyValuePair<string, string>> p, SocketAddressLegacy addr, string prefix)
    {
        ChardevQmpJsonContext c = ChardevQmpJsonContext.Default;
        switch (addr.Type)
        {
            case "inet":
            {
                InetSocketAddress inet = Branch(addr.Data, c.InetSocketAddress, prefix + "data.");
                p.Add(new("host", inet.Host));
                p.Add(new("port", inet.Port));
                if (inet.To is { } to)
                {
                    p.Add(new("to", to.ToString(CultureInfo.InvariantCulture)));
                }
                Flag(p, "ipv4", inet.Ipv4);
                Flag(p, "ipv6", inet.Ipv6);
                Unsupported("numeric", inet.Numeric);
                Unsupported("keep-alive", inet.KeepAlive);
                Unsupported("mptcp", inet.Mptcp);
                break;
            }
            case "unix":
            {
                UnixSocketAddress unix = Branch(addr.Data, c.UnixSocketAddress, prefix + "data.");
                p.Add(new("path", unix.Path));
                Flag(p, "abstract", unix.Abstract);
                Flag(p, "tight", unix.Tight);
                break;
            }
            case "fd":
            {
                StringValue fd = Branch(addr.Data, c.StringValue, prefix + "data.");
                p.Add(new("fd", fd.Str));
                break;
            }
            case "vsock":
                throw new QmpException(ChardevTypes.NotImplementedText("socket", "addr.type=vsock"));
            default:
                throw new QmpException($"Parameter 'type' does not accept value '{addr.Type}'");
        }
    }

    /// <summary>Validates a union branch with QEMU's member-path errors, then deserializes it.</summary>
    private static T Branch<T>(JsonElement data, JsonTypeInfo<T> info, string prefix)
    {
        QmpArguments.Validate(data, info, prefix);
        return data.Deserialize(info) ?? throw new QmpException($"Invalid parameter type for '{prefix.TrimEnd('.')}', expected: object");
    }

    private static void Flag(List<KeyValuePair<string, string>> p, string name, bool? value)
    {
        if (value is { } v)
        {
            p.Add(new(name, v ? "on" : "off"));
        }
    }

    private static void Text(List<KeyValuePair<string, string>> p, string name, string? value)
    {
        if (value is not null)
        {
            p.Add(new(name, value));
        }
    }

    private static void Common(List<KeyValuePair<string, string>> p, string? logfile, bool? logappend)
    {
        Text(p, "logfile", logfile);
        Flag(p, "logappend", logappend);
    }

    private static void Unsupported(string name, bool? value)
    {
        if (value == true)
        {
            throw new QmpException(ChardevTypes.NotImplementedText("socket", name));
        }
    }
}

/// <summary>Arguments of <c>chardev-add</c>.</summary>
public sealed record ChardevAddArguments
{
    /// <summary>The new chardev's id.</summary>
    [JsonPropertyName("id")]
    public required string Id { get; init; }

    /// <summary>Backend type and its configuration.</summary>
    [JsonPropertyName("backend")]
    public required ChardevBackend Backend { get; init; }
}

/// <summary>QAPI <c>ChardevBackend</c>: a <c>type</c> tag and a <c>data</c> object whose shape depends on it.</summary>
public sealed record ChardevBackend
{
    /// <summary>Backend type (<c>socket</c>, <c>file</c>, ...).</summary>
    [JsonPropertyName("type")]
    public required string Type { get; init; }

    /// <summary>The branch's members, validated per type.</summary>
    [JsonPropertyName("data")]
    public required JsonElement Data { get; init; }
}

/// <summary>QAPI <c>SocketAddressLegacy</c>: <c>inet</c>, <c>unix</c>, <c>vsock</c> or <c>fd</c> with a <c>data</c> wrapper.</summary>
public sealed record SocketAddressLegacy
{
    /// <summary>Address kind.</summary>
    [JsonPropertyName("type")]
    public required string Type { get; init; }

    /// <summary>The kind's members.</summary>
    [JsonPropertyName("data")]
    public required JsonElement Data { get; init; }
}

/// <summary>QAPI <c>InetSocketAddress</c>; the port is a string, as QEMU's schema has it.</summary>
public sealed record InetSocketAddress
{
    /// <summary>Host name or address.</summary>
    [JsonPropertyName("host")]
    public required string Host { get; init; }

    /// <summary>Port number or service name.</summary>
    [JsonPropertyName("port")]
    public required string Port { get; init; }

    /// <summary>True: host and port are numeric (no name lookup).</summary>
    [JsonPropertyName("numeric")]
    public bool? Numeric { get; init; }

    /// <summary>Last port of a range to try when listening.</summary>
    [JsonPropertyName("to")]
    public ushort? To { get; init; }

    /// <summary>Restrict to IPv4.</summary>
    [JsonPropertyName("ipv4")]
    public bool? Ipv4 { get; init; }

    /// <summary>Restrict to IPv6.</summary>
    [JsonPropertyName("ipv6")]
    public bool? Ipv6 { get; init; }

    /// <summary>Enable SO_KEEPALIVE.</summary>
    [JsonPropertyName("keep-alive")]
    public bool? KeepAlive { get; init; }

    /// <summary>Use multipath TCP.</summary>
    [JsonPropertyName("mptcp")]
    public bool? Mptcp { get; init; }
}

/// <summary>QAPI <c>UnixSocketAddress</c>.</summary>
public sealed record UnixSocketAddress
{
    /// <summary>Socket file path (or abstract name).</summary>
    [JsonPropertyName("path")]
    public required string Path { get; init; }

    /// <summary>Linux abstract namespace.</summary>
    [JsonPropertyName("abstract")]
    public bool? Abstract { get; init; }

    /// <summary>Abstract address length is exactly the name.</summary>
    [JsonPropertyName("tight")]
    public bool? Tight { get; init; }
}

/// <summary>QAPI <c>String</c> (the <c>fd</c> address branch).</summary>
public sealed record StringValue
{
    /// <summary>The string.</summary>
    [JsonPropertyName("str")]
    public required string Str { get; init; }
}

/// <summary>QAPI <c>ChardevCommon</c>: what every backend takes.</summary>
public record ChardevCommon
{
    /// <summary>File to copy output to.</summary>
    [JsonPropertyName("logfile")]
    public string? Logfile { get; init; }

    /// <summary>Append to the log file.</summary>
    [JsonPropertyName("logappend")]
    public bool? Logappend { get; init; }
}

/// <summary>QAPI <c>ChardevSocket</c>.</summary>
public sealed record ChardevSocket : ChardevCommon
{
    /// <summary>Where to listen or connect.</summary>
    [JsonPropertyName("addr")]
    public required SocketAddressLegacy Addr { get; init; }

    /// <summary>Id of TLS credentials.</summary>
    [JsonPropertyName("tls-creds")]
    public string? TlsCreds { get; init; }

    /// <summary>Id of TLS authorization.</summary>
    [JsonPropertyName("tls-authz")]
    public string? TlsAuthz { get; init; }

    /// <summary>Listen (default true in QMP).</summary>
    [JsonPropertyName("server")]
    public bool? Server { get; init; }

    /// <summary>Block until a client connects (default false in QMP).</summary>
    [JsonPropertyName("wait")]
    public bool? Wait { get; init; }

    /// <summary>TCP_NODELAY.</summary>
    [JsonPropertyName("nodelay")]
    public bool? Nodelay { get; init; }

    /// <summary>Telnet protocol.</summary>
    [JsonPropertyName("telnet")]
    public bool? Telnet { get; init; }

    /// <summary>TN3270 protocol.</summary>
    [JsonPropertyName("tn3270")]
    public bool? Tn3270 { get; init; }

    /// <summary>Websocket protocol.</summary>
    [JsonPropertyName("websocket")]
    public bool? Websocket { get; init; }

    /// <summary>Seconds between client reconnection attempts.</summary>
    [JsonPropertyName("reconnect")]
    public long? Reconnect { get; init; }
}

/// <summary>QAPI <c>ChardevFile</c>.</summary>
public sealed record ChardevFile : ChardevCommon
{
    /// <summary>Input file.</summary>
    [JsonPropertyName("in")]
    public string? In { get; init; }

    /// <summary>Output file.</summary>
    [JsonPropertyName("out")]
    public required string Out { get; init; }

    /// <summary>Append instead of truncating.</summary>
    [JsonPropertyName("append")]
    public bool? Append { get; init; }
}

/// <summary>QAPI <c>ChardevHostdev</c> (pipe, serial, parallel).</summary>
public sealed record ChardevHostdev : ChardevCommon
{
    /// <summary>Host device path.</summary>
    [JsonPropertyName("device")]
    public required string Device { get; init; }
}

/// <summary>QAPI <c>ChardevStdio</c>.</summary>
public sealed record ChardevStdio : ChardevCommon
{
    /// <summary>Ctrl-C raises SIGINT.</summary>
    [JsonPropertyName("signal")]
    public bool? Signal { get; init; }
}

/// <summary>QAPI <c>ChardevRingbuf</c>.</summary>
public sealed record ChardevRingbuf : ChardevCommon
{
    /// <summary>Ring size in bytes (power of two).</summary>
    [JsonPropertyName("size")]
    public long? Size { get; init; }
}

/// <summary>Return of <c>chardev-add</c>: <c>{}</c>, or the pty path for a pty backend.</summary>
public sealed record ChardevReturn
{
    /// <summary>Path of a new pty.</summary>
    [JsonPropertyName("pty")]
    public string? Pty { get; init; }
}

/// <summary>Arguments of <c>chardev-remove</c>.</summary>
public sealed record ChardevRemoveArguments
{
    /// <summary>The chardev to remove.</summary>
    [JsonPropertyName("id")]
    public required string Id { get; init; }
}

/// <summary>One entry of <c>query-chardev</c>.</summary>
public sealed record ChardevInfo
{
    /// <summary>The chardev's id.</summary>
    [JsonPropertyName("label")]
    public required string Label { get; init; }

    /// <summary>QEMU's description, e.g. <c>disconnected:tcp:127.0.0.1:9003,server=on</c>.</summary>
    [JsonPropertyName("filename")]
    public required string Filename { get; init; }

    /// <summary>A frontend is attached.</summary>
    [JsonPropertyName("frontend-open")]
    public required bool FrontendOpen { get; init; }
}

/// <summary>One entry of <c>query-chardev-backends</c>.</summary>
public sealed record ChardevBackendInfo
{
    /// <summary>Backend type name.</summary>
    [JsonPropertyName("name")]
    public required string Name { get; init; }
}

/// <summary>Arguments of <c>ringbuf-write</c>.</summary>
public sealed record RingbufWriteArguments
{
    /// <summary>The ringbuf chardev.</summary>
    [JsonPropertyName("device")]
    public required string Device { get; init; }

    /// <summary>Data to write.</summary>
    [JsonPropertyName("data")]
    public required string Data { get; init; }

    /// <summary><c>utf8</c> (default) or <c>base64</c>.</summary>
    [JsonPropertyName("format")]
    public string? Format { get; init; }
}

/// <summary>Arguments of <c>ringbuf-read</c>.</summary>
public sealed record RingbufReadArguments
{
    /// <summary>The ringbuf chardev.</summary>
    [JsonPropertyName("device")]
    public required string Device { get; init; }

    /// <summary>Most bytes to read.</summary>
    [JsonPropertyName("size")]
    public required long Size { get; init; }

    /// <summary><c>utf8</c> (default) or <c>base64</c>.</summary>
    [JsonPropertyName("format")]
    public string? Format { get; init; }
}

/// <summary>Source-generated metadata for the chardev QMP records.</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ChardevAddArguments))]
[JsonSerializable(typeof(ChardevBackend))]
[JsonSerializable(typeof(SocketAddressLegacy))]
[JsonSerializable(typeof(InetSocketAddress))]
[JsonSerializable(typeof(UnixSocketAddress))]
[JsonSerializable(typeof(StringValue))]
[JsonSerializable(typeof(ChardevCommon))]
[JsonSerializable(typeof(ChardevSocket))]
[JsonSerializable(typeof(ChardevFile))]
[JsonSerializable(typeof(ChardevHostdev))]
[JsonSerializable(typeof(ChardevStdio))]
[JsonSerializable(typeof(ChardevRingbuf))]
[JsonSerializable(typeof(ChardevReturn))]
[JsonSerializable(typeof(ChardevRemoveArguments))]
[JsonSerializable(typeof(IReadOnlyList<ChardevInfo>))]
[JsonSerializable(typeof(IReadOnlyList<ChardevBackendInfo>))]
[JsonSerializable(typeof(RingbufWriteArguments))]
[JsonSerializable(typeof(RingbufReadArguments))]
[JsonSerializable(typeof(QmpNoArgs))]
[JsonSerializable(typeof(QmpEmpty))]
[JsonSerializable(typeof(string))]
public sealed partial class ChardevQmpJsonContext : JsonSerializerContext;
