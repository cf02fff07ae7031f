using System.Globalization;

namespace Colo.Core.Options;

/// <summary>QEMU's scalar syntaxes for option values, with its error texts.</summary>
public static class OptionValues
{
    public const string SizeHelp =
        "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.";

    /// <summary><c>on/off/yes/no/true/false</c>.</summary>
    public static bool ParseBool(string name, string value) => value switch
    {
        "on" or "yes" or "true" or "y" => true,
        "off" or "no" or "false" or "n" => false,
        _ => throw new OptionsException($"Parameter '{name}' expects 'on' or 'off'"),
    };

    public static long ParseInt64(string name, string value) =>
        TryParseInteger(value, out ulong magnitude, out bool negative)
        && (negative ? magnitude <= 1UL << 63 : magnitude <= long.MaxValue)
            ? negative ? (long)(0 - magnitude) : (long)magnitude
            : throw new OptionsException($"Parameter '{name}' expects an int64 value");

    public static ulong ParseUInt64(string name, string value) =>
        TryParseInteger(value, out ulong magnitude, out bool negative) && !negative
            ? magnitude
            : throw new OptionsException($"Parameter '{name}' expects an uint64 value");

    /// <summary>A byte count with an optional k/K/M/G/T/P/E suffix (powers of 1024) and an optional fraction.</summary>
    public static ulong ParseSize(string name, string value) =>
        TryParseSize(value, 'B', out ulong size)
            ? size
            : throw new OptionsException($"Parameter '{name}' expects a non-negative number below 2^64\n{SizeHelp}");

    /// <summary>
    /// Parses a size; <paramref name="defaultSuffix"/> applies when none is given ('B' for bytes, 'M' for
    /// <c>-m</c>, which reads a bare number as MiB).
    /// </summary>
    public static bool TryParseSize(string text, char defaultSuffix, out ulong size)
    {
        size = 0;
        int end = 0;
        while (end < text.Length && (char.IsAsciiDigit(text[end]) || text[end] == '.'))
        {
            end++;
        }
        if (end == 0 || !double.TryParse(text.AsSpan(0, end), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double number))
        {
            return false;
        }
        bool integral = text.AsSpan(0, end).IndexOf('.') < 0;
        char suffix = end < text.Length ? text[end] : defaultSuffix;
        if (end < text.Length && end + 1 != text.Length)
        {
            return false;
        }
        int shift = char.ToUpperInvariant(suffix) switch
        {
            'B' => 0,
            'K' => 10,
            'M' => 20,
            'G' => 30,
            'T' => 40,
            'P' => 50,
            'E' => 60,
            _ => -1,
        };
        if (shift < 0)
        {
            return false;
        }
        if (integral && ulong.TryParse(text.AsSpan(0, end), NumberStyles.None, CultureInfo.InvariantCulture, out ulong whole))
        {
            if (shift > 0 && whole > ulong.MaxValue >> shift)
            {
                return false;
            }
            size = whole << shift;
            return true;
        }
        double scaled = number * Math.Pow(2, shift);
        if (scaled >= 18446744073709551616.0 || (!integral && shift == 0))
        {
            return false; // a fraction of a byte is meaningless, as in QEMU
        }
        size = (ulong)scaled;
        return true;
    }

    /// <summary>Decimal, <c>0x</c> hex or leading-0 octal, with an optional sign, like strtoull with base 0.</summary>
    private static bool TryParseInteger(string text, out ulong magnitude, out bool negative)
    {
        magnitude = 0;
        ReadOnlySpan<char> s = text.AsSpan().Trim();
        negative = s.StartsWith("-");
        if (negative || s.StartsWith("+"))
        {
            s = s[1..];
        }
        if (s.Length == 0)
        {
            return false;
        }
        if (s.StartsWith("0x") || s.StartsWith("0X"))
        {
            return s.Length > 2 && ulong.TryParse(s[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out magnitude);
        }
        if (s.Length > 1 && s[0] == '0')
        {
            foreach (char c in s)
            {
                if (c is < '0' or > '7')
                {
                    return false;
                }
                if (magnitude > ulong.MaxValue >> 3)
                {
                    return false;
                }
                magnitude = (magnitude << 3) + (uint)(c - '0');
            }
            return true;
        }
        return ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out magnitude);
    }
}
