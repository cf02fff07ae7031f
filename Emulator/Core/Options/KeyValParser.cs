namespace Colo.Core.Options;

/// <summary>
/// Parses QEMU's <c>key=value,key=value</c> option strings (QemuOpts and keyval): <c>,,</c> stands for a
/// literal comma; a first element without <c>=</c> is the value of the implied key (<c>-netdev tap,..</c>
/// means <c>type=tap</c>); a later bare <c>key</c> means <c>key=on</c> and <c>nokey</c> means
/// <c>key=off</c>, the deprecated short forms QEMU 7.2 still accepts with a warning.
/// </summary>
public static class KeyValParser
{
    /// <summary>Receives the deprecation warnings for short-form booleans (stderr in the executables).</summary>
    public static Action<string>? WarningSink { get; set; }

    /// <param name="text">The option argument as typed.</param>
    /// <param name="impliedKey">Key of a leading bare value (<c>type</c>, <c>driver</c>, <c>qom-type</c>, <c>backend</c>), or null.</param>
    /// <param name="knownShortFormFlags">Keys accepted as a bare <c>key</c>/<c>nokey</c>; null accepts any key.</param>
    /// <exception cref="OptionsException">Empty key or a bare word where none is allowed.</exception>
    public static KeyValList Parse(string text, string? impliedKey, IReadOnlySet<string>? knownShortFormFlags = null)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        int pos = 0;
        bool first = true;
        while (pos < text.Length)
        {
            string element = ReadElement(text, ref pos, out int equalsAt);
            if (equalsAt < 0)
            {
                if (first && impliedKey is not null)
                {
                    pairs.Add(new(impliedKey, element));
                }
                else if (element.Length == 0)
                {
                    // QEMU skips empty elements such as a trailing comma.
                }
                else
                {
                    AddShortForm(pairs, element, knownShortFormFlags);
                }
            }
            else
            {
                string key = element[..equalsAt];
                if (key.Length == 0)
                {
                    throw new OptionsException("Invalid parameter ''");
                }
                pairs.Add(new(key, element[(equalsAt + 1)..]));
            }
            first = false;
        }
        return new KeyValList(text, pairs);
    }

    private static void AddShortForm(List<KeyValuePair<string, string>> pairs, string element, IReadOnlySet<string>? known)
    {
        if (element is "help" or "?")
        {
            pairs.Add(new("help", "on"));
            return;
        }
        string key = element;
        string value = "on";
        if (element.StartsWith("no", StringComparison.Ordinal) && (known is null ? element.Length > 2 : known.Contains(element[2..])))
        {
            key = element[2..];
            value = "off";
        }
        if (known is not null && !known.Contains(key))
        {
            throw new OptionsException($"Expected '=' after parameter '{element}'");
        }
        WarningSink?.Invoke($"short-form boolean option '{element}' deprecated\nPlease use {key}={value} instead");
        pairs.Add(new(key, value));
    }

    /// <summary>Reads up to the next single comma, undoubling <c>,,</c>; reports where the first <c>=</c> was.</summary>
    private static string ReadElement(string text, ref int pos, out int equalsAt)
    {
        var sb = new System.Text.StringBuilder();
        equalsAt = -1;
        while (pos < text.Length)
        {
            char c = text[pos];
            if (c == ',')
            {
                if (pos + 1 < text.Length && text[pos + 1] == ',')
                {
                    sb.Append(',');
                    pos += 2;
                    continue;
                }
                pos++;
                break;
            }
            if (c == '=' && equalsAt < 0)
            {
                equalsAt = sb.Length;
            }
            sb.Append(c);
            pos++;
        }
        return sb.ToString();
    }
}
