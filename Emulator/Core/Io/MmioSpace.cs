namespace Colo.Core.Io;

/// <summary>
/// Memory-mapped device windows in guest-physical space (the part that is neither RAM nor ROM). Regions may overlap
/// (a PCI BAR programmed over another); a higher priority wins, then the later mapping. The flattened view is
/// rebuilt on every change (rare: boot-time BAR programming) and searched by binary search per access. Unclaimed
/// addresses read as zero and ignore writes, as QEMU's unassigned memory does on x86.
/// </summary>
public sealed class MmioSpace
{
    private readonly List<Mapping> _mappings = [];
    private Range[] _flat = [];
    private int _sequence;

    /// <summary>The current mappings (for <c>info mtree</c>).</summary>
    public IReadOnlyList<Mapping> Mappings => _mappings;

    /// <summary>Maps <paramref name="region"/> at <paramref name="address"/>.</summary>
    public Mapping Map(ulong address, IoRegion region, int priority = 0)
    {
        var mapping = new Mapping(address, region, priority, _sequence++);
        _mappings.Add(mapping);
        Flatten();
        return mapping;
    }

    /// <summary>Removes a mapping; harmless if already removed.</summary>
    public void Unmap(Mapping mapping)
    {
        if (_mappings.Remove(mapping))
        {
            Flatten();
        }
    }

    /// <summary>Reads <paramref name="size"/> bytes at a guest-physical address.</summary>
    public ulong Read(ulong address, int size)
    {
        int i = FindRange(address);
        if (i >= 0)
        {
            Range r = _flat[i];
            if (address + (ulong)size <= r.End)
            {
                return r.Mapping.Region.Access(address - r.Mapping.Address, size);
            }
        }
        ulong value = 0;
        for (int b = 0; b < size; b++)
        {
            ulong at = address + (ulong)b;
            int j = FindRange(at);
            ulong v = j < 0 ? 0 : _flat[j].Mapping.Region.Access(at - _flat[j].Mapping.Address, 1) & 0xFF;
            value |= v << (8 * b);
        }
        return value;
    }

    /// <summary>Writes <paramref name="size"/> bytes at a guest-physical address.</summary>
    public void Write(ulong address, int size, ulong value)
    {
        int i = FindRange(address);
        if (i >= 0)
        {
            Range r = _flat[i];
            if (address + (ulong)size <= r.End)
            {
                r.Mapping.Region.Access(address - r.Mapping.Address, size, value);
                return;
            }
        }
        for (int b = 0; b < size; b++)
        {
            ulong at = address + (ulong)b;
            int j = FindRange(at);
            if (j >= 0)
            {
                _flat[j].Mapping.Region.Access(at - _flat[j].Mapping.Address, 1, (value >> (8 * b)) & 0xFF);
            }
        }
    }

    /// <summary>The region answering at <paramref name="address"/>, if any.</summary>
    public Mapping? Find(ulong address)
    {
        int i = FindRange(address);
        return i < 0 ? null : _flat[i].Mapping;
    }

    private int FindRange(ulong address)
    {
        Range[] flat = _flat;
        int lo = 0;
        int hi = flat.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (address < flat[mid].Start)
            {
                hi = mid - 1;
            }
            else if (address >= flat[mid].End)
            {
                lo = mid + 1;
            }
            else
            {
                return mid;
            }
        }
        return -1;
    }

    private void Flatten()
    {
        // Boundaries of every mapping; between two consecutive boundaries one mapping (or none) wins.
        var points = new SortedSet<ulong>();
        foreach (Mapping m in _mappings)
        {
            points.Add(m.Address);
            points.Add(m.Address + m.Region.Size);
        }
        var flat = new List<Range>();
        ulong? previous = null;
        foreach (ulong p in points)
        {
            if (previous is ulong start)
            {
                Mapping? best = null;
                foreach (Mapping m in _mappings)
                {
                    if (m.Address <= start && start < m.Address + m.Region.Size
                        && (best is null || m.Priority > best.Priority || (m.Priority == best.Priority && m.Sequence > best.Sequence)))
                    {
                        best = m;
                    }
                }
                if (best is not null)
                {
                    if (flat.Count > 0 && flat[^1].Mapping == best && flat[^1].End == start)
                    {
                        flat[^1] = flat[^1] with { End = p };
                    }
                    else
                    {
                        flat.Add(new Range(start, p, best));
                    }
                }
            }
            previous = p;
        }
        _flat = [.. flat];
    }

    /// <summary>A region placed at a guest-physical address.</summary>
    public sealed record Mapping(ulong Address, IoRegion Region, int Priority, int Sequence);

    private readonly record struct Range(ulong Start, ulong End, Mapping Mapping);
}
