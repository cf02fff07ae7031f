using System.Text;

namespace Colo.Monitor.Json;

/// <summary>
/// QEMU's "modified UTF-8" rules: how it decodes bytes in strings and error texts (overlong NUL
/// <c>C0 80</c> allowed, surrogates and noncharacters rejected) and what it treats as a valid code point.
/// </summary>
internal static class QmpJsonText
{
    private static readonly int[] MinCodepoint = [0x80, 0x800, 0x10000, 0x200000, 0x4000000];

    public static bool IsValidCodepoint(int cp) =>
        cp is >= 0 and <= 0x10FFFF
        && !(cp is >= 0xFDD0 and <= 0xFDEF)
        && (cp & 0xFFFE) != 0xFFFE
        && !(cp is >= 0xD800 and <= 0xDFFF);

    /// <summary>Decodes one code point at the start of <paramref name="s"/>; -1 when invalid. The span's end reads as NUL.</summary>
    public static int Codepoint(ReadOnlySpan<byte> s, out int consumed)
    {
        if (s.IsEmpty || s[0] == 0)
        {
            consumed = 0;
            return -1;
        }
        int first = s[0];
        consumed = 1;
        if (first < 0x80)
        {
            return first;
        }
        if (first >= 0xFE || (first & 0x40) == 0)
        {
            return -1; // impossible byte or stray continuation byte
        }
        int len = 0;
        int mask = 0x80;
        for (; (first & mask) != 0; mask >>= 1)
        {
            len++;
        }
        int cp = first & (mask - 1);
        for (int i = 1; i < len; i++)
        {
            int next = i < s.Length ? s[i] : 0;
            if ((next & 0xC0) != 0x80)
            {
                return -1; // continuation byte missing; it is not consumed
            }
            consumed++;
            cp = (cp << 6) | (next & 0x3F);
        }
        if (!IsValidCodepoint(cp))
        {
            return -1;
        }
        if (cp < MinCodepoint[len - 2] && !(cp == 0 && len == 2))
        {
            return -1; // overlong, except the C0 80 spelling of NUL
        }
        return cp;
    }

    /// <summary>Appends <paramref name="cp"/> as UTF-16.</summary>
    public static void AppendCodepoint(StringBuilder sb, int cp)
    {
        if (cp > 0xFFFF)
        {
            sb.Append((char)(0xD800 + ((cp - 0x10000) >> 10)));
            sb.Append((char)(0xDC00 + ((cp - 0x10000) & 0x3FF)));
        }
        else
        {
            sb.Append((char)cp);
        }
    }

    /// <summary>
    /// Bytes as QEMU would print them from a C string: up to the first NUL, invalid sequences as U+FFFD.
    /// </summary>
    public static string DecodeCString(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length);
        while (!bytes.IsEmpty && bytes[0] != 0)
        {
            int cp = Codepoint(bytes, out int consumed);
            AppendCodepoint(sb, cp < 0 ? 0xFFFD : cp);
            bytes = bytes[Math.Max(consumed, 1)..];
        }
        return sb.ToString();
    }
}
