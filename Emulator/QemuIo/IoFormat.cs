using System.Globalization;
using System.Text;

namespace Colo.QemuIo;

/// <summary>
/// qemu-io's number syntax and its report formats: sizes with binary suffixes in, "64 KiB"-style
/// sizes, elapsed times and hex dumps out. Scripts (QEMU's iotests among them) compare these
/// lines byte for byte, so each shape follows what QEMU 7.2 prints.
/// </summary>
internal static class IoFormat
{
    /// <summary>QEMU's largest single request: INT_MAX rounded down to a 512-byte sector.</summary>
    public const long MaxRequestBytes = 2147483136;

    private static readonly string[] s_units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

    /// <summary>
    /// Parses an offset or length: decimal or 0x-hex, optionally followed by one of
    /// b/k/m/g/t/p/e (either case, powers of 1024). A fraction needs a unit other than bytes.
    /// Returns the error text QEMU prints, or null on success.
    /// </summary>
    public static string? TryParseSize(string text, out long value)
    {
        value = 0;
        string s = text;
        ulong mul = 1;
        if (s.Length > 0)
        {
            int idx = "BKMGTPE".IndexOf(char.ToUpperInvariant(s[^1]), StringComparison.Ordinal);
            bool isHex = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
            // 'b' and 'e' are hex digits: after 0x they belong to the number.
            if (idx >= 0 && !(isHex && idx is 0 or 6))
            {
                mul = 1UL << (10 * idx);
                s = s[..^1];
            }
        }

        string bad = $"Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- {text}";
        string large = $"Parsing error: argument too large -- {text}";
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            string digits = s[2..];
            if (digits.Length == 0 || !digits.All(Uri.IsHexDigit))
            {
                return bad;
            }

            if (digits.TrimStart('0').Length > 16 || !ulong.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong h))
            {
                return large;
            }

            return Scale(h, 0, mul, out value) ? null : large;
        }

        int dot = s.IndexOf('.', StringComparison.Ordinal);
        string whole = dot < 0 ? s : s[..dot];
        string frac = dot < 0 ? "" : s[(dot + 1)..];
        if (whole.Length == 0 || !whole.All(char.IsAsciiDigit) || !frac.All(char.IsAsciiDigit) || (dot >= 0 && mul == 1))
        {
            return bad;
        }

        if (!ulong.TryParse(whole, NumberStyles.None, CultureInfo.InvariantCulture, out ulong w))
        {
            return large;
        }

        double f = frac.Length == 0 ? 0 : double.Parse("0." + frac, CultureInfo.InvariantCulture);
        return Scale(w, f, mul, out value) ? null : large;
    }

    private static bool Scale(ulong whole, double fraction, ulong mul, out long value)
    {
        value = 0;
        UInt128 v = (UInt128)whole * mul + (UInt128)(ulong)(fraction * mul);
        if (v > long.MaxValue)
        {
            return false;
        }

        value = (long)v;
        return true;
    }

    /// <summary>"64 KiB", "1.500 KiB", "20 bytes": three decimals, dropped when they are all zero.</summary>
    public static string Size(double value)
    {
        string unit = "bytes";
        for (int i = s_units.Length - 1; i >= 0; i--)
        {
            double scale = Math.Pow(1024, i + 1);
            if (value >= scale)
            {
                value /= scale;
                unit = s_units[i];
                break;
            }
        }

        string s = value.ToString("F3", CultureInfo.InvariantCulture);
        if (s.EndsWith(".000", StringComparison.Ordinal))
        {
            s = s[..^4];
        }

        return $"{s} {unit}";
    }

    /// <summary>
    /// Elapsed time: "00.48 sec" under a second, "0:00:08.49" from one second up; the
    /// machine-readable (-C) form always uses the second shape.
    /// </summary>
    public static string Time(TimeSpan t, bool fixedForm)
    {
        long centis = (long)(t.Ticks / (TimeSpan.TicksPerMillisecond * 10)) % 100;
        long secs = (long)t.TotalSeconds;
        if (fixedForm || secs > 0)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{secs / 3600}:{secs / 60 % 60:D2}:{secs % 60:D2}.{centis:D2}");
        }

        return string.Create(CultureInfo.InvariantCulture, $"{secs:D2}.{centis:D2} sec");
    }

    /// <summary>The two report lines after a transfer: amount, operation count, time and rates.</summary>
    public static string Report(string verb, TimeSpan t, long offset, long count, long total, int ops, bool machine)
    {
        double seconds = Math.Max(t.TotalSeconds, 1e-9);
        if (machine)
        {
            // -C: one comma-separated line for scripts, no verb line.
            return string.Create(CultureInfo.InvariantCulture, $"{total},{ops},{Time(t, true)},{total / seconds:F3},{ops / seconds:F3}\n");
        }

        return string.Create(
            CultureInfo.InvariantCulture,
            $"{verb} {count}/{total} bytes at offset {offset}\n{Size(total)}, {ops} ops; {Time(t, false)} ({Size(total / seconds)}/sec and {ops / seconds:F4} ops/sec)\n");
    }

    /// <summary>16 bytes a line: address, hex bytes, then the printable characters ('.' for others).</summary>
    public static string HexDump(ReadOnlySpan<byte> data, long address)
    {
        var sb = new StringBuilder();
        for (int line = 0; line < data.Length; line += 16)
        {
            int n = Math.Min(16, data.Length - line);
            sb.Append(CultureInfo.InvariantCulture, $"{address + line:x8}:  ");
            for (int i = 0; i < n; i++)
            {
                sb.Append(CultureInfo.InvariantCulture, $"{data[line + i]:x2} ");
            }

            sb.Append(' ');
            for (int i = 0; i < n; i++)
            {
                byte b = data[line + i];
                sb.Append(b is >= 0x20 and < 0x7f ? (char)b : '.');
            }

            sb.Append('\n');
        }

        return sb.ToString();
    }
}
