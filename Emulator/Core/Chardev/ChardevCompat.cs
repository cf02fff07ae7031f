using Colo.Core.Options;
using Colo.Core.Qmp;

namespace Colo.Core.Chardev;

/// <summary>What a legacy <c>-serial</c>/<c>-monitor</c>/<c>-qmp</c> argument names.</summary>
public enum ChardevSpecKind
{
    /// <summary><c>none</c>: no device at all (meaningful for <c>-serial</c> and <c>-monitor</c>).</summary>
    None,
    /// <summary><c>chardev:ID</c>: an existing chardev.</summary>
    Reference,
    /// <summary>A new backend described by <see cref="ChardevSpec.Backend"/> and its properties.</summary>
    Backend,
}

/// <summary>
/// A parsed legacy chardev argument.
/// </summary>
/// <param name="Kind">What the argument names.</param>
/// <param name="Backend">Backend type (<c>socket</c>, <c>file</c>, ...) for <see cref="ChardevSpecKind.Backend"/>.</param>
/// <param name="Properties">The backend's <c>-chardev</c> options, as strings, in order.</param>
/// <param name="ReferenceId">The id of <c>chardev:ID</c>.</param>
/// <param name="MonitorMux">The spec began with <c>mon:</c>: the backend is shared with a monitor.</param>
public sealed record ChardevSpec(
    ChardevSpecKind Kind,
    string? Backend,
    IReadOnlyList<KeyValuePair<string, string>> Properties,
    string? ReferenceId = null,
    bool MonitorMux = false);

/// <summary>
/// QEMU's legacy chardev syntax (<c>qemu_chr_parse_compat</c> rules) used by <c>-serial</c>,
/// <c>-monitor</c>, <c>-qmp</c> and <c>-parallel</c>: <c>stdio</c>, <c>null</c>, <c>file:PATH</c>,
/// <c>tcp:HOST:PORT[,opts]</c>, <c>unix:PATH[,opts]</c>, <c>chardev:ID</c>, ...
/// </summary>
public static class ChardevCompat
{
    private static readonly HashSet<string> SocketFlags =
        ["server", "wait", "nodelay", "delay", "ipv4", "ipv6", "telnet", "tn3270", "websocket", "abstract", "tight", "mux", "logappend"];

    private static readonly HashSet<string> PlainBackends =
        ["null", "pty", "msmouse", "wctablet", "braille", "testdev", "stdio"];

    /// <summary>Parses one legacy spec.</summary>
    /// <param name="spec">The option argument, e.g. <c>tcp:127.0.0.1:4444,server=on,wait=off</c>.</param>
    /// <exception cref="QmpException">QEMU's <c>'SPEC' is not a valid char driver</c>, or an option error.</exception>
    public static ChardevSpec Parse(string spec)
    {
        if (spec == "none")
        {
            return new ChardevSpec(ChardevSpecKind.None, null, []);
        }
        if (spec.StartsWith("chardev:", StringComparison.Ordinal))
        {
            return new ChardevSpec(ChardevSpecKind.Reference, null, [], ReferenceId: spec["chardev:".Length..]);
        }
        bool mux = false;
        string rest = spec;
        if (rest.StartsWith("mon:", StringComparison.Ordinal))
        {
            mux = true;
            rest = rest["mon:".Length..];
        }
        ChardevSpec? parsed = ParseBackend(rest);
        if (parsed is null)
        {
            throw new QmpException($"'{spec}' is not a valid char driver");
        }
        if (mux)
        {
            parsed = parsed with { MonitorMux = true, Properties = [.. parsed.Properties, new("mux", "on")] };
            if (parsed.Backend == "stdio")
            {
                // With the monitor muxed on stdio (mon:stdio, -nographic) QEMU passes Ctrl-C to the guest.
                parsed = parsed with { Properties = [.. parsed.Properties, new("signal", "off")] };
            }
        }
        return parsed;
    }

    private static ChardevSpec? ParseBackend(string s)
    {
        if (PlainBackends.Contains(s))
        {
            return Backend(s);
        }
        if (s == "vc" || s.StartsWith("vc:", StringComparison.Ordinal))
        {
            // vc:WxH / vc:WcxHc sizes only matter to a display, which Colo does not have.
            return Backend("vc");
        }
        if (s.StartsWith("file:", StringComparison.Ordinal))
        {
            return Backend("file", ("path", s["file:".Length..]));
        }
        if (s.StartsWith("pipe:", StringComparison.Ordinal))
        {
            return Backend("pipe", ("path", s["pipe:".Length..]));
        }
        if (s.StartsWith("unix:", StringComparison.Ordinal))
        {
            KeyValList options = KeyValParser.Parse(s["unix:".Length..], impliedKey: "path", SocketFlags);
            return new ChardevSpec(ChardevSpecKind.Backend, "socket", options.Pairs);
        }
        foreach (string prefix in (ReadOnlySpan<string>)["tcp:", "telnet:", "tn3270:", "websocket:"])
        {
            if (s.StartsWith(prefix, StringComparison.Ordinal))
            {
                return ParseInet(s[prefix.Length..], prefix.TrimEnd(':'));
            }
        }
        if (s.StartsWith("udp:", StringComparison.Ordinal))
        {
            return ParseUdp(s["udp:".Length..]);
        }
        if (s.StartsWith("/dev/parport", StringComparison.Ordinal))
        {
            return Backend("parallel", ("path", s));
        }
        if (s.StartsWith("/dev/", StringComparison.Ordinal))
        {
            return Backend("serial", ("path", s));
        }
        return null;
    }

    /// <summary><c>HOST:PORT[,opts]</c> or <c>:PORT[,opts]</c>; an IPv6 host may be bracketed.</summary>
    private static ChardevSpec? ParseInet(string s, string protocol)
    {
        int comma = s.IndexOf(',', StringComparison.Ordinal);
        string address = comma < 0 ? s : s[..comma];
        int colon = address.LastIndexOf(':');
        if (colon < 0 || colon == address.Length - 1)
        {
            return null; // QEMU needs a port
        }
        string host = address[..colon];
        string port = address[(colon + 1)..];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }
        var pairs = new List<KeyValuePair<string, string>> { new("host", host), new("port", port) };
        if (protocol != "tcp")
        {
            pairs.Add(new(protocol, "on"));
        }
        if (comma >= 0)
        {
            pairs.AddRange(KeyValParser.Parse(s[(comma + 1)..], impliedKey: null, SocketFlags).Pairs);
        }
        return new ChardevSpec(ChardevSpecKind.Backend, "socket", pairs);
    }

    /// <summary><c>[HOST]:PORT[@[LOCALADDR]:LOCALPORT]</c>.</summary>
    private static ChardevSpec? ParseUdp(string s)
    {
        string remote = s;
        string? local = null;
        int at = s.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            remote = s[..at];
            local = s[(at + 1)..];
        }
        int colon = remote.LastIndexOf(':');
        if (colon < 0)
        {
            return null;
        }
        var pairs = new List<KeyValuePair<string, string>> { new("host", remote[..colon]), new("port", remote[(colon + 1)..]) };
        if (local is not null)
        {
            int localColon = local.LastIndexOf(':');
            if (localColon < 0)
            {
                return null;
            }
            pairs.Add(new("localaddr", local[..localColon]));
            pairs.Add(new("localport", local[(localColon + 1)..]));
        }
        return new ChardevSpec(ChardevSpecKind.Backend, "udp", pairs);
    }

    private static ChardevSpec Backend(string type, params (string Key, string Value)[] properties)
    {
        var pairs = new List<KeyValuePair<string, string>>(properties.Length);
        foreach ((string key, string value) in properties)
        {
            pairs.Add(new(key, value));
        }
        return new ChardevSpec(ChardevSpecKind.Backend, type, pairs);
    }
}
