using System.Numerics;

namespace Colo.Block.Jobs;

/// <summary>
/// One bit per <see cref="Granularity"/> bytes of a node (QEMU's BdrvDirtyBitmap, without names or
/// persistence): the write path sets bits, a job walks and clears them. Not thread-safe: the mirror
/// filter's lock guards it.
/// </summary>
public sealed class DirtyBitmap
{
    private readonly ulong[] _words;
    private readonly int _shift;

    public DirtyBitmap(long size, int granularity)
    {
        if (granularity <= 0 || !BitOperations.IsPow2(granularity))
        {
            throw new ArgumentOutOfRangeException(nameof(granularity), "granularity must be a power of two");
        }
        Size = size;
        Granularity = granularity;
        _shift = BitOperations.Log2((uint)granularity);
        Chunks = (size + granularity - 1) >> _shift;
        _words = new ulong[(Chunks + 63) / 64];
    }

    public long Size { get; }

    public int Granularity { get; }

    /// <summary>Number of bits (chunks).</summary>
    public long Chunks { get; }

    /// <summary>Set bits.</summary>
    public long Count { get; private set; }

    /// <summary>Bytes the set bits cover (the last chunk counted only up to <see cref="Size"/>).</summary>
    public long DirtyBytes => Count == 0 ? 0 : (Count << _shift) - (IsSet(Chunks - 1) ? (Chunks << _shift) - Size : 0);

    /// <summary>Marks every chunk touching [offset, offset+length). Returns how many bytes of chunks became dirty.</summary>
    public long Set(long offset, long length)
    {
        if (length <= 0 || offset >= Size)
        {
            return 0;
        }
        long first = offset >> _shift;
        long last = Math.Min((offset + length - 1) >> _shift, Chunks - 1);
        long added = 0;
        for (long c = first; c <= last; c++)
        {
            ref ulong w = ref _words[c >> 6];
            ulong bit = 1UL << (int)(c & 63);
            if ((w & bit) == 0)
            {
                w |= bit;
                Count++;
                added += ChunkBytes(c);
            }
        }
        return added;
    }

    public void SetAll() => Set(0, Size);

    /// <summary>True when a chunk touching [offset, offset+length) is set.</summary>
    public bool AnySet(long offset, long length)
    {
        if (length <= 0 || offset >= Size)
        {
            return false;
        }
        long first = offset >> _shift;
        long last = Math.Min((offset + length - 1) >> _shift, Chunks - 1);
        long hit = Scan(first, last + 1);
        return hit >= 0;
    }

    public bool IsSet(long chunk) => (_words[chunk >> 6] & (1UL << (int)(chunk & 63))) != 0;

    /// <summary>Clears chunks [first, first+count).</summary>
    public void Clear(long firstChunk, long count)
    {
        for (long c = firstChunk; c < firstChunk + count; c++)
        {
            ref ulong w = ref _words[c >> 6];
            ulong bit = 1UL << (int)(c & 63);
            if ((w & bit) != 0)
            {
                w &= ~bit;
                Count--;
            }
        }
    }

    /// <summary>The first dirty chunk at or after <paramref name="from"/>, wrapping to the start; -1 when clean.</summary>
    public long NextDirty(long from)
    {
        if (Count == 0)
        {
            return -1;
        }
        long found = Scan(from, Chunks);
        return found >= 0 ? found : Scan(0, from);
    }

    /// <summary>Number of consecutive dirty chunks starting at <paramref name="chunk"/>, at most <paramref name="max"/>.</summary>
    public long RunLength(long chunk, long max)
    {
        long n = 0;
        while (n < max && chunk + n < Chunks && IsSet(chunk + n))
        {
            n++;
        }
        return n;
    }

    /// <summary>Byte offset and length of chunks [chunk, chunk+count), clipped to the node's size.</summary>
    public (long Offset, long Length) Range(long chunk, long count)
    {
        long offset = chunk << _shift;
        return (offset, Math.Min((chunk + count) << _shift, Size) - offset);
    }

    private long ChunkBytes(long chunk) => Math.Min((chunk + 1) << _shift, Size) - (chunk << _shift);

    private long Scan(long from, long to)
    {
        long c = from;
        while (c < to)
        {
            ulong w = _words[c >> 6] >> (int)(c & 63);
            if (w != 0)
            {
                long hit = c + BitOperations.TrailingZeroCount(w);
                return hit < to ? hit : -1;
            }
            c = (c | 63) + 1;
        }
        return -1;
    }
}
