namespace Colo.Core.Io;

/// <summary>
/// The 64 KiB x86 I/O port space: a direct table from port to mapping, so dispatch is one array load. Unclaimed ports
/// read all-ones and ignore writes, as on the ISA bus. An access that runs past its region's end is split byte-wise
/// so each byte reaches whoever owns that port.
/// </summary>
public sealed class PortIoSpace
{
    private readonly Mapping?[] _ports = new Mapping?[0x10000];
    private readonly List<Mapping> _mappings = [];

    /// <summary>The current mappings, in order of addition (for <c>info mtree</c>).</summary>
    public IReadOnlyList<Mapping> Mappings => _mappings;

    /// <summary>
    /// Maps <paramref name="region"/> at <paramref name="port"/>. A later mapping hides earlier ones on the ports it
    /// covers; unmapping it uncovers them again.
    /// </summary>
    public Mapping Map(ushort port, IoRegion region)
    {
        if (port + region.Size > 0x10000)
        {
            throw new ArgumentOutOfRangeException(nameof(port), $"I/O region '{region.Name}' at 0x{port:x} runs past port 0xffff");
        }
        var mapping = new Mapping(port, region);
        _mappings.Add(mapping);
        for (ulong p = port; p < port + region.Size; p++)
        {
            _ports[p] = mapping;
        }
        return mapping;
    }

    /// <summary>Removes a mapping made by <see cref="Map"/>; harmless if already removed.</summary>
    public void Unmap(Mapping mapping)
    {
        if (!_mappings.Remove(mapping))
        {
            return;
        }
        for (ulong p = mapping.Port; p < mapping.Port + mapping.Region.Size; p++)
        {
            _ports[p] = null;
        }
        // Uncover what the removed mapping hid: replay the remaining ones over its range in order.
        foreach (Mapping m in _mappings)
        {
            ulong start = Math.Max(m.Port, mapping.Port);
            ulong end = Math.Min(m.Port + m.Region.Size, mapping.Port + mapping.Region.Size);
            for (ulong p = start; p < end; p++)
            {
                _ports[p] = m;
            }
        }
    }

    /// <summary>The mapping owning <paramref name="port"/>, if any.</summary>
    public Mapping? Find(ushort port) => _ports[port];

    /// <summary>An IN of <paramref name="size"/> bytes.</summary>
    public ulong Read(ushort port, int size)
    {
        Mapping? m = _ports[port];
        if (m is not null && port + size <= m.Port + (int)m.Region.Size)
        {
            return m.Region.Access((ulong)(port - m.Port), size);
        }
        ulong value = 0;
        for (int i = 0; i < size; i++)
        {
            ushort p = (ushort)(port + i);
            Mapping? owner = _ports[p];
            ulong b = owner is null ? 0xFF : owner.Region.Access((ulong)(p - owner.Port), 1) & 0xFF;
            value |= b << (8 * i);
        }
        return value;
    }

    /// <summary>An OUT of <paramref name="size"/> bytes.</summary>
    public void Write(ushort port, int size, ulong value)
    {
        Mapping? m = _ports[port];
        if (m is not null && port + size <= m.Port + (int)m.Region.Size)
        {
            m.Region.Access((ulong)(port - m.Port), size, value);
            return;
        }
        for (int i = 0; i < size; i++)
        {
            ushort p = (ushort)(port + i);
            Mapping? owner = _ports[p];
            owner?.Region.Access((ulong)(p - owner.Port), 1, (value >> (8 * i)) & 0xFF);
        }
    }

    /// <summary>A region placed at a port.</summary>
    public sealed record Mapping(ushort Port, IoRegion Region);
}
