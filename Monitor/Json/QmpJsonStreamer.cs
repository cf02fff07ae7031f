using System.Text.Json;

namespace Colo.Monitor.Json;

/// <summary>One top-level value split off the stream: either a parsed value or QEMU's parse error text.</summary>
public readonly record struct QmpJsonMessage(JsonElement? Value, string? Error);

/// <summary>
/// Splits a QMP byte stream into top-level JSON values the way QEMU's json-lexer and json-streamer do:
/// values need no separator, may share a line or span chunks, QEMU's extensions (single-quoted strings)
/// are accepted, and errors resynchronise at the next structural or control character. Each byte is
/// looked at once and a message's tokens are kept in one growing buffer, so input is processed in
/// linear time with memory bounded by QEMU's per-message limits.
/// </summary>
public sealed class QmpJsonStreamer
{
    /// <summary>QEMU's cap on the bytes of one message's tokens (json-streamer MAX_TOKEN_SIZE).</summary>
    public const int MaxTokenSize = 64 << 20;

    /// <summary>QEMU's cap on the number of tokens of one message (json-streamer MAX_TOKEN_COUNT).</summary>
    public const int MaxTokenCount = 2 << 20;

    /// <summary>QEMU's cap on open brackets plus braces (json-streamer MAX_NESTING).</summary>
    public const int MaxNesting = 1 << 10;

    private readonly Action<QmpJsonMessage> _emit;
    private readonly List<QmpJsonToken> _tokens = [];
    private byte[] _buffer = new byte[256];
    private int _length;       // bytes of complete tokens of the pending message
    private int _tokenStart;   // where the token being lexed starts in _buffer
    private LexState _state = LexState.Start;
    private bool _overflow;
    private int _braces;
    private int _brackets;

    /// <summary>Creates a streamer that reports every complete value or error to <paramref name="emit"/>.</summary>
    public QmpJsonStreamer(Action<QmpJsonMessage> emit)
    {
        _emit = emit;
    }

    private enum LexState
    {
        Start,
        Recovery,
        DqString,
        DqEscape,
        SqString,
        SqEscape,
        Zero,
        Digits,
        Sign,
        Mantissa,
        MantissaDigits,
        ExpE,
        ExpSign,
        ExpDigits,
        Keyword,
    }

    /// <summary>Feeds the next chunk; complete messages are emitted before this returns.</summary>
    public void Feed(ReadOnlySpan<byte> data)
    {
        foreach (byte b in data)
        {
            FeedByte(b);
        }
    }

    /// <summary>Drops a partial message and lexer state, as QEMU does when the client goes away.</summary>
    public void Reset()
    {
        _tokens.Clear();
        _length = 0;
        _tokenStart = 0;
        _braces = 0;
        _brackets = 0;
        _state = LexState.Start;
        _overflow = false;
        _buffer = new byte[256];
    }

    private void FeedByte(byte b)
    {
        // A terminal state that sees a byte outside its token ends the token and re-reads the byte (lookahead).
        while (true)
        {
            switch (_state)
            {
                case LexState.Start:
                    StartToken(b);
                    return;
                case LexState.Recovery:
                    if (b < 0x20 && b != (byte)'\t' || b >= 0xFE || b is (byte)'[' or (byte)']' or (byte)'{' or (byte)'}')
                    {
                        _state = LexState.Start;
                        continue;
                    }
                    return;
                case LexState.DqString:
                case LexState.SqString:
                    if (b < 0x20 || b >= 0xFE)
                    {
                        Error(b);
                        return;
                    }
                    Append(b);
                    if (b == (byte)'\\')
                    {
                        _state = _state == LexState.DqString ? LexState.DqEscape : LexState.SqEscape;
                    }
                    else if (b == (_state == LexState.DqString ? (byte)'"' : (byte)'\''))
                    {
                        EndToken(QmpJsonTokenType.String);
                    }
                    return;
                case LexState.DqEscape:
                case LexState.SqEscape:
                    if (b < 0x20 || b >= 0xFE)
                    {
                        Error(b);
                        return;
                    }
                    Append(b);
                    _state = _state == LexState.DqEscape ? LexState.DqString : LexState.SqString;
                    return;
                case LexState.Zero:
                    if (IsDigit(b))
                    {
                        Error(b);
                        return;
                    }
                    if (NumberContinues(b))
                    {
                        return;
                    }
                    EndToken(QmpJsonTokenType.Integer);
                    continue;
                case LexState.Digits:
                    if (IsDigit(b))
                    {
                        Append(b);
                        return;
                    }
                    if (NumberContinues(b))
                    {
                        return;
                    }
                    EndToken(QmpJsonTokenType.Integer);
                    continue;
                case LexState.Sign:
                    if (IsDigit(b))
                    {
                        Append(b);
                        _state = b == (byte)'0' ? LexState.Zero : LexState.Digits;
                        return;
                    }
                    Error(b);
                    return;
                case LexState.Mantissa:
                    if (IsDigit(b))
                    {
                        Append(b);
                        _state = LexState.MantissaDigits;
                        return;
                    }
                    Error(b);
                    return;
                case LexState.MantissaDigits:
                    if (IsDigit(b))
                    {
                        Append(b);
                        return;
                    }
                    if (b is (byte)'e' or (byte)'E')
                    {
                        Append(b);
                        _state = LexState.ExpE;
                        return;
                    }
                    EndToken(QmpJsonTokenType.Float);
                    continue;
                case LexState.ExpE:
                    if (b is (byte)'+' or (byte)'-')
                    {
                        Append(b);
                        _state = LexState.ExpSign;
                        return;
                    }
                    goto case LexState.ExpSign;
                case LexState.ExpSign:
                    if (IsDigit(b))
                    {
                        Append(b);
                        _state = LexState.ExpDigits;
                        return;
                    }
                    Error(b);
                    return;
                case LexState.ExpDigits:
                    if (IsDigit(b))
                    {
                        Append(b);
                        return;
                    }
                    EndToken(QmpJsonTokenType.Float);
                    continue;
                case LexState.Keyword:
                    if (b is >= (byte)'a' and <= (byte)'z')
                    {
                        Append(b);
                        return;
                    }
                    EndToken(QmpJsonTokenType.Keyword);
                    continue;
                default:
                    throw new InvalidOperationException("unreachable lexer state");
            }
        }
    }

    private static bool IsDigit(byte b) => b is >= (byte)'0' and <= (byte)'9';

    /// <summary>After an integer part: a '.' or exponent keeps the number going.</summary>
    private bool NumberContinues(byte b)
    {
        if (b == (byte)'.')
        {
            Append(b);
            _state = LexState.Mantissa;
            return true;
        }
        if (b is (byte)'e' or (byte)'E')
        {
            Append(b);
            _state = LexState.ExpE;
            return true;
        }
        return false;
    }

    private void StartToken(byte b)
    {
        _tokenStart = _length;
        switch (b)
        {
            case (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n':
                return;
            case (byte)'"':
                Append(b);
                _state = LexState.DqString;
                return;
            case (byte)'\'':
                Append(b);
                _state = LexState.SqString;
                return;
            case (byte)'0':
                Append(b);
                _state = LexState.Zero;
                return;
            case >= (byte)'1' and <= (byte)'9':
                Append(b);
                _state = LexState.Digits;
                return;
            case (byte)'-':
                Append(b);
                _state = LexState.Sign;
                return;
            case >= (byte)'a' and <= (byte)'z':
                Append(b);
                _state = LexState.Keyword;
                return;
            case (byte)'{':
                Punct(b, QmpJsonTokenType.LCurly);
                return;
            case (byte)'}':
                Punct(b, QmpJsonTokenType.RCurly);
                return;
            case (byte)'[':
                Punct(b, QmpJsonTokenType.LSquare);
                return;
            case (byte)']':
                Punct(b, QmpJsonTokenType.RSquare);
                return;
            case (byte)',':
                Punct(b, QmpJsonTokenType.Comma);
                return;
            case (byte)':':
                Punct(b, QmpJsonTokenType.Colon);
                return;
            default:
                Error(b);
                return;
        }
    }

    private void Punct(byte b, QmpJsonTokenType type)
    {
        Append(b);
        EndToken(type);
    }

    private void Append(byte b)
    {
        if (_length == _buffer.Length)
        {
            if (_length >= MaxTokenSize)
            {
                // Past QEMU's per-message cap the message can only fail; stop buffering so memory stays bounded.
                _overflow = true;
                return;
            }
            Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, MaxTokenSize));
        }
        _buffer[_length++] = b;
    }

    /// <summary>A lexical error: the token so far plus the offending byte, reported as stray text.</summary>
    private void Error(byte b)
    {
        Append(b);
        string text = QmpJsonText.DecodeCString(_buffer.AsSpan(_tokenStart, _length - _tokenStart));
        _state = LexState.Recovery;
        EmitAndReset(new QmpJsonMessage(null, $"JSON parse error, stray '{text}'"));
    }

    private void EndToken(QmpJsonTokenType type)
    {
        _state = LexState.Start;
        int tokenLength = _length - _tokenStart;
        if (_overflow || (long)_tokenStart + tokenLength + 1 > MaxTokenSize)
        {
            EmitAndReset(new QmpJsonMessage(null, "JSON token size limit exceeded"));
            return;
        }
        if (_tokens.Count + 1 > MaxTokenCount)
        {
            EmitAndReset(new QmpJsonMessage(null, "JSON token count limit exceeded"));
            return;
        }
        switch (type)
        {
            case QmpJsonTokenType.LCurly:
                _braces++;
                break;
            case QmpJsonTokenType.RCurly:
                _braces--;
                break;
            case QmpJsonTokenType.LSquare:
                _brackets++;
                break;
            case QmpJsonTokenType.RSquare:
                _brackets--;
                break;
            default:
                break;
        }
        if (_braces + _brackets > MaxNesting)
        {
            EmitAndReset(new QmpJsonMessage(null, "JSON nesting depth limit exceeded"));
            return;
        }
        _tokens.Add(new QmpJsonToken(type, _tokenStart, tokenLength));
        _tokenStart = _length;
        if ((_braces > 0 || _brackets > 0) && _braces >= 0 && _brackets >= 0)
        {
            return;
        }
        QmpJsonMessage message = QmpJsonParser.Parse(_buffer.AsSpan(0, _length), _tokens);
        EmitAndReset(message);
    }

    private void EmitAndReset(QmpJsonMessage message)
    {
        _tokens.Clear();
        _length = 0;
        _tokenStart = 0;
        _braces = 0;
        _brackets = 0;
        _overflow = false;
        if (_buffer.Length > 1 << 20)
        {
            _buffer = new byte[256]; // don't pin a huge buffer after one big message
        }
        _emit(message);
    }
}

/// <summary>Token kinds of QEMU's JSON lexer.</summary>
internal enum QmpJsonTokenType
{
    LCurly,
    RCurly,
    LSquare,
    RSquare,
    Colon,
    Comma,
    Integer,
    Float,
    Keyword,
    String,
}

/// <summary>A token as a slice of the streamer's message buffer.</summary>
internal readonly record struct QmpJsonToken(QmpJsonTokenType Type, int Start, int Length);
