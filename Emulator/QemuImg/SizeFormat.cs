using System.Globalization;

namespace Colo.QemuImg;

/// <summary>QEMU's size syntax (qemu_strtosz) and human size printing (size_to_str).</summary>
internal static class SizeFormat
{
    private static readonly string[] s_units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

    /// <summary>Parses "10G", "1.5k", "512" (bytes by default); null when invalid.</summary>
    public static long? Parse(string s)
    {
        s = s.Trim();
        if (s.Length == 0)
        {
            return null;
        }

        int shift = 0;
        char last = char.ToUpperInvariant(s[^1]);
        int idx = "BKMGTPE".IndexOf(last, StringComparison.Ordinal);
        if (idx >= 0)
        {
            shift = idx * 10;
            s = s[..^1];
        }

        if (s.Length == 0 || s[0] is '-' or '+' || !decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal v))
        {
            return null;
        }

        decimal bytes = v * (decimal)Math.Pow(2, shift);
        if (bytes > long.MaxValue)
        {
            return null;
        }

        if (s.Contains('.', StringComparison.Ordinal) && shift == 0)
        {
            return null; // fractions need a unit, as in QEMU
        }

        return (long)decimal.Floor(bytes);
    }

    /// <summary>"%0.3g UNIT" with the unit chosen so the number stays below 1000.</summary>
    public static string Human(long bytes)
    {
        if (bytes <= 0)
        {
            return "0 B";
        }

        // frexp(val / (1000/1024)) gives the binary exponent; each unit is 10 of them.
        int exp = (int)Math.Floor(Math.Log2(bytes / (1000.0 / 1024))) + 1;
        int i = Math.Clamp((exp - 1) / 10, 0, s_units.Length - 1);
        double value = bytes / Math.Pow(2, i * 10);
        return $"{FormatG3(value)} {s_units[i]}";
    }

    private static string FormatG3(double v)
    {
        string s = v.ToString("G3", CultureInfo.InvariantCulture);
        return s;
    }
}
