using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Colo.Monitor.Json;

/// <summary>
/// Turns one message's tokens into a <see cref="JsonElement"/> with QEMU's json-parser checks and texts.
/// The first error wins, as in QEMU, so later checks never overwrite an earlier, more precise one.
/// </summary>
internal ref struct QmpJsonParser
{
    private static readonly JsonWriterOptions WriterOptions = new() { MaxDepth = 4 * QmpJsonStreamer.MaxNesting, SkipValidation = true };
    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 4 * QmpJsonStreamer.MaxNesting };

    private readonly ReadOnlySpan<byte> _buffer;
    private readonly List<QmpJsonToken> _tokens;
    private int _next;
    private string? _error;

    private QmpJsonParser(ReadOnlySpan<byte> buffer, List<QmpJsonToken> tokens)
    {
        _buffer = buffer;
        _tokens = tokens;
    }

    public static QmpJsonMessage Parse(ReadOnlySpan<byte> buffer, List<QmpJsonToken> tokens)
    {
        var output = new ArrayBufferWriter<byte>(Math.Max(buffer.Length + 16, 64));
        var parser = new QmpJsonParser(buffer, tokens);
        using (var writer = new Utf8JsonWriter(output, WriterOptions))
        {
            if (!parser.ParseValue(writer))
            {
                return new QmpJsonMessage(null, "JSON parse error, " + parser._error);
            }
        }
        var reader = new Utf8JsonReader(output.WrittenSpan, ReaderOptions);
        return new QmpJsonMessage(JsonElement.ParseValue(ref reader), null);
    }

    private bool Fail(string message)
    {
        _error ??= message;
        return false;
    }

    private QmpJsonToken? Peek() => _next < _tokens.Count ? _tokens[_next] : null;

    private QmpJsonToken? Pop() => _next < _tokens.Count ? _tokens[_next++] : null;

    private ReadOnlySpan<byte> Text(QmpJsonToken token) => _buffer.Slice(token.Start, token.Length);

    /// <summary>Parses one value; writes it unless <paramref name="writer"/> is null (a discarded non-string key).</summary>
    private bool ParseValue(Utf8JsonWriter? writer)
    {
        if (Peek() is not { } token)
        {
            return Fail("premature EOI");
        }
        switch (token.Type)
        {
            case QmpJsonTokenType.LCurly:
                return ParseObject(writer);
            case QmpJsonTokenType.LSquare:
                return ParseArray(writer);
            case QmpJsonTokenType.String:
                _next++;
                if (!ParseString(Text(token), out string? value))
                {
                    return false;
                }
                writer?.WriteStringValue(value);
                return true;
            case QmpJsonTokenType.Integer:
            case QmpJsonTokenType.Float:
                _next++;
                writer?.WriteRawValue(Text(token), skipInputValidation: true);
                return true;
            case QmpJsonTokenType.Keyword:
                _next++;
                ReadOnlySpan<byte> keyword = Text(token);
                if (keyword.SequenceEqual("true"u8))
                {
                    writer?.WriteBooleanValue(true);
                }
                else if (keyword.SequenceEqual("false"u8))
                {
                    writer?.WriteBooleanValue(false);
                }
                else if (keyword.SequenceEqual("null"u8))
                {
                    writer?.WriteNullValue();
                }
                else
                {
                    return Fail($"invalid keyword '{Encoding.ASCII.GetString(keyword)}'");
                }
                return true;
            default:
                return Fail("expecting value");
        }
    }

    private bool ParseObject(Utf8JsonWriter? writer)
    {
        _next++; // '{'
        writer?.WriteStartObject();
        if (Peek() is not { } peek)
        {
            return Fail("premature EOI");
        }
        if (peek.Type == QmpJsonTokenType.RCurly)
        {
            _next++;
            writer?.WriteEndObject();
            return true;
        }
        var keys = new HashSet<string>(StringComparer.Ordinal);
        if (!ParsePair(writer, keys))
        {
            return false;
        }
        while (true)
        {
            if (Pop() is not { } token)
            {
                return Fail("premature EOI");
            }
            if (token.Type == QmpJsonTokenType.RCurly)
            {
                writer?.WriteEndObject();
                return true;
            }
            if (token.Type != QmpJsonTokenType.Comma)
            {
                return Fail("expected separator in dict");
            }
            if (!ParsePair(writer, keys))
            {
                return false;
            }
        }
    }

    private bool ParsePair(Utf8JsonWriter? writer, HashSet<string> keys)
    {
        if (Peek() is not { } peek)
        {
            return Fail("premature EOI");
        }
        string? key = null;
        if (peek.Type == QmpJsonTokenType.String)
        {
            _next++;
            if (!ParseString(Text(peek), out key))
            {
                return false;
            }
        }
        else if (!ParseValue(null))
        {
            return false;
        }
        if (key is null)
        {
            return Fail("key is not a string in object");
        }
        if (Pop() is not { } colon)
        {
            return Fail("premature EOI");
        }
        if (colon.Type != QmpJsonTokenType.Colon)
        {
            return Fail("missing : in object pair");
        }
        writer?.WritePropertyName(key);
        if (!ParseValue(writer))
        {
            return Fail("Missing value in dict");
        }
        // QEMU keys are C strings: a NUL (from \u0000) ends them.
        int nul = key.IndexOf('\0', StringComparison.Ordinal);
        if (!keys.Add(nul < 0 ? key : key[..nul]))
        {
            return Fail("duplicate key");
        }
        return true;
    }

    private bool ParseArray(Utf8JsonWriter? writer)
    {
        _next++; // '['
        writer?.WriteStartArray();
        if (Peek() is not { } peek)
        {
            return Fail("premature EOI");
        }
        if (peek.Type == QmpJsonTokenType.RSquare)
        {
            _next++;
            writer?.WriteEndArray();
            return true;
        }
        if (!ParseValue(writer))
        {
            return false;
        }
        while (true)
        {
            if (Pop() is not { } token)
            {
                return Fail("premature EOI");
            }
            if (token.Type == QmpJsonTokenType.RSquare)
            {
                writer?.WriteEndArray();
                return true;
            }
            if (token.Type != QmpJsonTokenType.Comma)
            {
                return Fail("expected separator in list");
            }
            if (!ParseValue(writer))
            {
                return false;
            }
        }
    }

    /// <summary>Decodes a quoted token (either quote) with QEMU's escapes and UTF-8 checks.</summary>
    private bool ParseString(ReadOnlySpan<byte> token, out string? value)
    {
        value = null;
        byte quote = token[0];
        var sb = new StringBuilder(token.Length);
        int i = 1;
        while (token[i] != quote)
        {
            byte b = token[i];
            if (b == (byte)'\\')
            {
                int escapeStart = i;
                byte e = token[i + 1];
                i += 2;
                switch (e)
                {
                    case (byte)'"':
                    case (byte)'\'':
                    case (byte)'\\':
                    case (byte)'/':
                        sb.Append((char)e);
                        break;
                    case (byte)'b':
                        sb.Append('\b');
                        break;
                    case (byte)'f':
                        sb.Append('\f');
                        break;
                    case (byte)'n':
                        sb.Append('\n');
                        break;
                    case (byte)'r':
                        sb.Append('\r');
                        break;
                    case (byte)'t':
                        sb.Append('\t');
                        break;
                    case (byte)'u':
                        int cp = Hex4(token, i);
                        i += 4;
                        if (cp is >= 0xD800 and <= 0xDBFF && At(token, i) == '\\' && At(token, i + 1) == 'u')
                        {
                            int trailing = Hex4(token, i + 2);
                            if (trailing is >= 0xDC00 and <= 0xDFFF)
                            {
                                cp = 0x10000 + ((cp & 0x3FF) << 10) | (trailing & 0x3FF);
                                i += 6;
                            }
                            else
                            {
                                cp = -1;
                            }
                        }
                        if (!QmpJsonText.IsValidCodepoint(cp))
                        {
                            // QEMU quotes the escape as written, cut at the end of the token.
                            int end = Math.Min(i, token.Length);
                            string text = QmpJsonText.DecodeCString(token[escapeStart..end]);
                            return Fail($"{text} is not a valid Unicode character");
                        }
                        QmpJsonText.AppendCodepoint(sb, cp);
                        break;
                    default:
                        return Fail("invalid escape sequence in string");
                }
                if (i >= token.Length)
                {
                    break; // an escape ran over the closing quote: the token has ended
                }
                continue;
            }
            int codepoint = QmpJsonText.Codepoint(token[i..], out int consumed);
            if (codepoint < 0)
            {
                return Fail("invalid UTF-8 sequence in string");
            }
            QmpJsonText.AppendCodepoint(sb, codepoint);
            i += consumed;
        }
        value = sb.ToString();
        return true;
    }

    private static int At(ReadOnlySpan<byte> s, int i) => i < s.Length ? s[i] : 0;

    /// <summary>Four hex digits at <paramref name="i"/>, or -1.</summary>
    private static int Hex4(ReadOnlySpan<byte> s, int i)
    {
        int cp = 0;
        for (int k = 0; k < 4; k++)
        {
            int c = At(s, i + k);
            int digit = c switch
            {
                >= '0' and <= '9' => c - '0',
                >= 'a' and <= 'f' => c - 'a' + 10,
                >= 'A' and <= 'F' => c - 'A' + 10,
                _ => -1,
            };
            if (digit < 0)
            {
                return -1;
            }
            cp = (cp << 4) | digit;
        }
        return cp;
    }
}
