namespace Colo.Block.Qcow2;

/// <summary>
/// A small raw-deflate (RFC 1951) encoder whose back-references never reach further than 4 KiB.
/// </summary>
/// <remarks>
/// qcow2 readers inflate zlib-type clusters with a 4 KiB window (windowBits 12), and .NET's
/// DeflateStream cannot be told to stay inside one, so its output is not safely readable by QEMU.
/// This encoder emits one fixed-Huffman block with greedy hash-chain matching: a lower ratio than
/// zlib, but always valid for a 4 KiB window.
/// </remarks>
internal sealed class Deflate4K
{
    private const int MaxDistance = 4096 - 262; // stay well inside the reader's window
    private const int MinMatch = 3;
    private const int MaxMatch = 258;
    private const int HashBits = 14;
    private const int ChainLimit = 32;

    private static readonly ushort[] s_lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
    private static readonly byte[] s_lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
    private static readonly ushort[] s_distBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
    private static readonly byte[] s_distExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];

    private readonly int[] _head = new int[1 << HashBits];
    private int[] _prev = [];
    private byte[] _out = [];
    private int _outPos;
    private ulong _bits;
    private int _bitCount;

    /// <summary>Compresses <paramref name="src"/>; returns the length, or -1 if it would not fit in <paramref name="limit"/> bytes.</summary>
    public int Compress(ReadOnlySpan<byte> src, Span<byte> dest, int limit)
    {
        if (_prev.Length < src.Length)
        {
            _prev = new int[src.Length];
        }

        if (_out.Length < limit + 16)
        {
            _out = new byte[limit + 16];
        }

        Array.Fill(_head, -1);
        _outPos = 0;
        _bits = 0;
        _bitCount = 0;
        WriteBits(1, 1); // BFINAL
        WriteBits(1, 2); // BTYPE = 01, fixed Huffman codes
        int i = 0;
        while (i < src.Length)
        {
            if (_outPos > limit)
            {
                return -1;
            }

            int bestLen = 0;
            int bestDist = 0;
            if (i + MinMatch <= src.Length)
            {
                int h = Hash(src, i);
                int cand = _head[h];
                int chain = 0;
                while (cand >= 0 && i - cand <= MaxDistance && chain++ < ChainLimit)
                {
                    int max = Math.Min(MaxMatch, src.Length - i);
                    int len = src.Slice(cand, max).CommonPrefixLength(src.Slice(i, max));
                    if (len > bestLen)
                    {
                        bestLen = len;
                        bestDist = i - cand;
                        if (len == max)
                        {
                            break;
                        }
                    }

                    cand = _prev[cand];
                }
            }

            if (bestLen >= MinMatch)
            {
                EmitMatch(bestLen, bestDist);
                for (int k = 0; k < bestLen; k++, i++)
                {
                    Insert(src, i);
                }
            }
            else
            {
                EmitLiteral(src[i]);
                Insert(src, i);
                i++;
            }
        }

        WriteHuffman(0, 7); // end of block: symbol 256
        if (_bitCount > 0)
        {
            WriteBits(0, 8 - _bitCount);
        }

        if (_outPos > limit)
        {
            return -1;
        }

        _out.AsSpan(0, _outPos).CopyTo(dest);
        return _outPos;
    }

    private void Insert(ReadOnlySpan<byte> src, int i)
    {
        if (i + MinMatch <= src.Length)
        {
            int h = Hash(src, i);
            _prev[i] = _head[h];
            _head[h] = i;
        }
    }

    private static int Hash(ReadOnlySpan<byte> s, int i) =>
        (int)(((uint)((s[i] << 16) | (s[i + 1] << 8) | s[i + 2]) * 2654435761u) >> (32 - HashBits));

    private void EmitLiteral(byte b)
    {
        if (b < 144)
        {
            WriteHuffman(0x30 + b, 8);
        }
        else
        {
            WriteHuffman(0x190 + (b - 144), 9);
        }
    }

    private void EmitMatch(int len, int dist)
    {
        int code = s_lengthBase.Length - 1;
        while (s_lengthBase[code] > len)
        {
            code--;
        }

        int sym = 257 + code;
        if (sym < 280)
        {
            WriteHuffman(sym - 256, 7);
        }
        else
        {
            WriteHuffman(0xC0 + (sym - 280), 8);
        }

        WriteBits((uint)(len - s_lengthBase[code]), s_lengthExtra[code]);
        int dcode = s_distBase.Length - 1;
        while (s_distBase[dcode] > dist)
        {
            dcode--;
        }

        WriteHuffman(dcode, 5);
        WriteBits((uint)(dist - s_distBase[dcode]), s_distExtra[dcode]);
    }

    /// <summary>Huffman codes are defined MSB-first; the stream is LSB-first, so reverse them.</summary>
    private void WriteHuffman(int code, int length)
    {
        uint rev = 0;
        for (int k = 0; k < length; k++)
        {
            rev |= (uint)((code >> k) & 1) << (length - 1 - k);
        }

        WriteBits(rev, length);
    }

    private void WriteBits(uint value, int count)
    {
        _bits |= (ulong)value << _bitCount;
        _bitCount += count;
        while (_bitCount >= 8)
        {
            if (_outPos < _out.Length)
            {
                _out[_outPos] = (byte)_bits;
            }

            _outPos++;
            _bits >>= 8;
            _bitCount -= 8;
        }
    }
}
