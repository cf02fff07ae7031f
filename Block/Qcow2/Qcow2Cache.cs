namespace Colo.Block.Qcow2;

/// <summary>
/// A small write-through cache of cluster-sized metadata tables (L2 tables or refcount blocks)
/// kept as raw big-endian bytes. Lookup is a linear scan over a handful of slots, which beats a
/// dictionary at this size and allocates nothing; eviction is least-recently-used.
/// </summary>
internal sealed class Qcow2Cache
{
    private readonly BlockNode _file;
    private readonly long[] _offsets;
    private readonly byte[][] _tables;
    private readonly long[] _stamps;
    private long _clock;

    public Qcow2Cache(BlockNode file, int tableSize, int slots)
    {
        _file = file;
        _offsets = new long[slots];
        _tables = new byte[slots][];
        _stamps = new long[slots];
        for (int i = 0; i < slots; i++)
        {
            _offsets[i] = -1;
            _tables[i] = new byte[tableSize];
        }
    }

    /// <summary>Returns the cached table at <paramref name="offset"/>, reading it on a miss.</summary>
    public byte[] Get(long offset)
    {
        long[] offsets = _offsets;
        for (int i = 0; i < offsets.Length; i++)
        {
            if (offsets[i] == offset)
            {
                _stamps[i] = ++_clock;
                return _tables[i];
            }
        }

        int v = Victim();
        _offsets[v] = -1; // stays invalid if the read throws
        _file.Read(offset, _tables[v]);
        _offsets[v] = offset;
        _stamps[v] = ++_clock;
        return _tables[v];
    }

    /// <summary>Claims a slot for a freshly allocated table and returns it zero-filled.</summary>
    public byte[] GetEmpty(long offset)
    {
        Invalidate(offset);
        int v = Victim();
        Array.Clear(_tables[v]);
        _offsets[v] = offset;
        _stamps[v] = ++_clock;
        return _tables[v];
    }

    public void Invalidate(long offset)
    {
        for (int i = 0; i < _offsets.Length; i++)
        {
            if (_offsets[i] == offset)
            {
                _offsets[i] = -1;
            }
        }
    }

    public void Clear() => Array.Fill(_offsets, -1);

    private int Victim()
    {
        int v = 0;
        for (int i = 1; i < _stamps.Length; i++)
        {
            if (_stamps[i] < _stamps[v])
            {
                v = i;
            }
        }

        return v;
    }
}
