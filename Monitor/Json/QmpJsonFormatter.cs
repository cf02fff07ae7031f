using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Colo.Monitor.Json;

/// <summary>
/// Writes JSON exactly as QEMU 7.2's QMP monitor prints a QObject: <c>": "</c> and <c>", "</c>
/// separators, every code point outside printable ASCII as <c>\uXXXX</c> (upper-case hex, surrogate pairs
/// beyond the BMP), numbers as <c>%lld</c>/<c>%llu</c> or <c>%.17g</c>, and object members in the order
/// QEMU's QDict iterates them (hash bucket, newest first), which is what clients see on the wire.
/// </summary>
public static class QmpJsonFormatter
{
    /// <summary>QDICT_BUCKET_MAX: the number of buckets QEMU's QDict hashes keys into.</summary>
    private const uint BucketCount = 512;

    /// <summary>Appends <paramref name="value"/> in QEMU's formatting.</summary>
    public static void Write(StringBuilder sb, JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                WriteObject(sb, value);
                break;
            case JsonValueKind.Array:
                sb.Append('[');
                bool first = true;
                foreach (JsonElement item in value.EnumerateArray())
                {
                    if (!first)
                    {
                        sb.Append(", ");
                    }
                    first = false;
                    Write(sb, item);
                }
                sb.Append(']');
                break;
            case JsonValueKind.String:
                WriteString(sb, value.GetString()!);
                break;
            case JsonValueKind.Number:
                WriteNumber(sb, value.GetRawText());
                break;
            case JsonValueKind.True:
                sb.Append("true");
                break;
            case JsonValueKind.False:
                sb.Append("false");
                break;
            default:
                sb.Append("null");
                break;
        }
    }

    /// <summary>Reformats compact standard JSON (e.g. a command's serialized return value) in QEMU's style.</summary>
    public static void WriteJson(StringBuilder sb, string json)
    {
        using var document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 4096 });
        Write(sb, document.RootElement);
    }

    /// <summary>Formats a string as QEMU's JSON output does.</summary>
    public static void WriteString(StringBuilder sb, string value)
    {
        sb.Append('"');
        for (int i = 0; i < value.Length; i++)
        {
            char c = value[i];
            switch (c)
            {
                case '"':
                    sb.Append("\\\"");
                    break;
                case '\\':
                    sb.Append("\\\\");
                    break;
                case '\b':
                    sb.Append("\\b");
                    break;
                case '\f':
                    sb.Append("\\f");
                    break;
                case '\n':
                    sb.Append("\\n");
                    break;
                case '\r':
                    sb.Append("\\r");
                    break;
                case '\t':
                    sb.Append("\\t");
                    break;
                default:
                    if (c is >= (char)0x20 and < (char)0x7F)
                    {
                        sb.Append(c);
                    }
                    else if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
                    {
                        // Beyond the BMP QEMU prints the UTF-16 surrogate pair, which is what the string holds.
                        sb.Append("\\u").Append(((int)c).ToString("X4", CultureInfo.InvariantCulture));
                        sb.Append("\\u").Append(((int)value[++i]).ToString("X4", CultureInfo.InvariantCulture));
                    }
                    else if (char.IsSurrogate(c))
                    {
                        sb.Append("\\uFFFD"); // QEMU prints undecodable input as the replacement character
                    }
                    else
                    {
                        sb.Append("\\u").Append(((int)c).ToString("X4", CultureInfo.InvariantCulture));
                    }
                    break;
            }
        }
        sb.Append('"');
    }

    /// <summary>Prints a JSON number literal the way QEMU prints the QNum it parses it into.</summary>
    public static void WriteNumber(StringBuilder sb, string literal)
    {
        bool integral = literal.AsSpan().IndexOfAny('.', 'e', 'E') < 0;
        if (integral)
        {
            if (long.TryParse(literal, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l))
            {
                sb.Append(l.ToString(CultureInfo.InvariantCulture));
                return;
            }
            if (literal[0] != '-' && ulong.TryParse(literal, NumberStyles.None, CultureInfo.InvariantCulture, out ulong u))
            {
                sb.Append(u.ToString(CultureInfo.InvariantCulture));
                return;
            }
        }
        double d = double.Parse(literal, NumberStyles.Float, CultureInfo.InvariantCulture);
        sb.Append(FormatG17(d));
    }

    /// <summary>C's <c>printf("%.17g")</c>.</summary>
    public static string FormatG17(double d)
    {
        if (double.IsNaN(d))
        {
            return double.IsNegative(d) ? "-nan" : "nan";
        }
        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }
        if (d == 0)
        {
            return double.IsNegative(d) ? "-0" : "0";
        }
        // "E16" gives the 17 significant digits correctly rounded: d.dddddddddddddddde+XXX
        string e = d.ToString("E16", CultureInfo.InvariantCulture);
        bool negative = e[0] == '-';
        string body = negative ? e[1..] : e;
        int ePos = body.IndexOf('E', StringComparison.Ordinal);
        string digits = string.Concat(body.AsSpan(0, 1), body.AsSpan(2, ePos - 2));
        int exponent = int.Parse(body.AsSpan(ePos + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        var sb = new StringBuilder(32);
        if (negative)
        {
            sb.Append('-');
        }
        if (exponent < -4 || exponent >= 17)
        {
            string mantissa = digits.TrimEnd('0');
            sb.Append(mantissa[0]);
            if (mantissa.Length > 1)
            {
                sb.Append('.').Append(mantissa.AsSpan(1));
            }
            sb.Append('e').Append(exponent < 0 ? '-' : '+');
            sb.Append(Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture));
            return sb.ToString();
        }
        if (exponent >= 0)
        {
            string intPart = digits[..(exponent + 1)];
            string frac = digits[(exponent + 1)..].TrimEnd('0');
            sb.Append(intPart);
            if (frac.Length > 0)
            {
                sb.Append('.').Append(frac);
            }
        }
        else
        {
            sb.Append("0.").Append('0', -exponent - 1).Append(digits.TrimEnd('0'));
        }
        return sb.ToString();
    }

    /// <summary>QEMU's <c>tdb_hash</c>, which picks a key's QDict bucket.</summary>
    public static uint Hash(string key)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(key);
        uint value = unchecked(0x238F13AFu * (uint)bytes.Length);
        for (int i = 0; i < bytes.Length; i++)
        {
            value = unchecked(value + ((uint)bytes[i] << (i * 5 % 24)));
        }
        return unchecked((1103515243u * value) + 12345u);
    }

    /// <summary>The members of <paramref name="value"/> in the order QEMU's QDict iterates them.</summary>
    public static List<JsonProperty> MembersInQemuOrder(JsonElement value)
    {
        var members = new List<(uint Bucket, int Index, JsonProperty Property)>();
        int index = 0;
        foreach (JsonProperty property in value.EnumerateObject())
        {
            members.Add((Hash(property.Name) % BucketCount, index++, property));
        }
        // QDict iterates buckets in order; within a bucket the newest insertion comes first.
        members.Sort(static (a, b) => a.Bucket != b.Bucket ? a.Bucket.CompareTo(b.Bucket) : b.Index.CompareTo(a.Index));
        var ordered = new List<JsonProperty>(members.Count);
        foreach ((uint _, int _, JsonProperty property) in members)
        {
            ordered.Add(property);
        }
        return ordered;
    }

    private static void WriteObject(StringBuilder sb, JsonElement value)
    {
        List<JsonProperty> members = MembersInQemuOrder(value);
        sb.Append('{');
        for (int i = 0; i < members.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(", ");
            }
            WriteString(sb, members[i].Name);
            sb.Append(": ");
            Write(sb, members[i].Value);
        }
        sb.Append('}');
    }
}
