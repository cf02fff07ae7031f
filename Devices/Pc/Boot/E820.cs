using System.Buffers.Binary;

namespace Colo.Devices.Pc.Boot;

/// <summary>E820 address-range types (ACPI "Address Range Types"; the same numbers PVH's memmap uses).</summary>
public enum E820Type : uint
{
    Ram = 1,
    Reserved = 2,
    Acpi = 3,
    Nvs = 4,
    Unusable = 5,
}

/// <summary>One BIOS memory-map entry.</summary>
public readonly record struct E820Entry(ulong Address, ulong Length, E820Type Type)
{
    /// <summary>Size of the packed {u64 address, u64 length, u32 type} form used by etc/e820 and boot_params.</summary>
    public const int EncodedSize = 20;

    /// <summary>One past the last byte.</summary>
    public ulong End => Address + Length;

    /// <summary>The etc/e820 fw_cfg file: packed little-endian entries, no count (the file size gives it).</summary>
    public static byte[] Encode(IReadOnlyList<E820Entry> entries)
    {
        byte[] b = new byte[entries.Count * EncodedSize];
        for (int i = 0; i < entries.Count; i++)
        {
            entries[i].WriteTo(b.AsSpan(i * EncodedSize));
        }
        return b;
    }

    /// <summary>Writes the packed 20-byte form.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, Address);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[16..], (uint)Type);
    }
}

/// <summary>Which north bridge decides the split of RAM around the 32-bit PCI hole.</summary>
public enum PcChipset
{
    /// <summary><c>pc</c> (i440FX): RAM below 4 GiB stops at 3 GiB once the guest has 3.5 GiB or more.</summary>
    I440fx,
    /// <summary><c>q35</c> (ICH9): RAM below 4 GiB stops at 2 GiB once the guest has 2.75 GiB or more.</summary>
    Q35,
}

/// <summary>
/// The PC memory split and e820 map as QEMU 7.2 reports it in fw_cfg <c>etc/e820</c>. Cross-checked against
/// qemu-system-x86_64 7.2 (TCG, default qemu64 CPU): <c>-m 128M</c> gives
/// [fd00000000+300000000 reserved, 0+8000000 RAM]; <c>-m 4G</c> gives [the same reserved range, 0+c0000000 RAM,
/// 100000000+40000000 RAM]; with an Intel CPU model the reserved entry is absent.
/// </summary>
public static class PcMemoryMap
{
    /// <summary>Start of the AMD HyperTransport range below 1 TiB that QEMU advertises as reserved for AMD CPU models.</summary>
    public const ulong AmdHtStart = 0xFD_0000_0000;
    /// <summary>Size of that range (12 GiB, up to 1 TiB).</summary>
    public const ulong AmdHtSize = 0x3_0000_0000;
    /// <summary>Where KVM's identity-map page and TSS pages live; KVM machines reserve them (4 pages).</summary>
    public const ulong KvmIdentityMapBase = 0xFEFF_C000;
    public const ulong KvmIdentityMapSize = 0x4000;
    public const ulong FourGiB = 0x1_0000_0000;

    /// <summary>
    /// RAM below 4 GiB for a machine with <paramref name="ramSize"/> bytes: all of it while it fits under the
    /// chipset's threshold, else the gigabyte-aligned low part (3 GiB on i440FX, 2 GiB on Q35).
    /// </summary>
    /// <param name="maxRamBelow4G">The <c>max-ram-below-4g</c> machine property, or 0 for the default.</param>
    public static ulong BelowFourGiB(ulong ramSize, PcChipset chipset = PcChipset.I440fx, ulong maxRamBelow4G = 0)
    {
        ulong lowmem;
        if (chipset == PcChipset.I440fx)
        {
            // The limit (default 3.5 GiB) is the threshold; a machine reaching it is split on a gigabyte boundary.
            ulong limit = maxRamBelow4G != 0 ? maxRamBelow4G : 0xE000_0000UL;
            lowmem = limit;
            if (ramSize >= limit && lowmem > 0xC000_0000UL)
            {
                lowmem = 0xC000_0000UL;
            }
        }
        else
        {
            // Q35 keeps room for the MMCONFIG window: 2 GiB low once RAM reaches 2.75 GiB, the user limit applies on top.
            lowmem = ramSize >= 0xB000_0000UL ? 0x8000_0000UL : 0xB000_0000UL;
            if (maxRamBelow4G != 0 && lowmem > maxRamBelow4G)
            {
                lowmem = maxRamBelow4G;
            }
        }
        return ramSize >= lowmem ? lowmem : ramSize;
    }

    /// <summary>
    /// The e820 table in QEMU's order: reserved entries that are registered before memory init come first (the
    /// KVM identity map at accelerator setup, then the AMD HT hole), then RAM below and above 4 GiB.
    /// </summary>
    /// <param name="amdHtHole">True for an AMD-vendor CPU model with 40 or more physical address bits (TCG's qemu64
    /// qualifies): QEMU then reserves [1 TiB − 12 GiB, 1 TiB).</param>
    /// <param name="kvmIdentityMap">True under KVM, which reserves <see cref="KvmIdentityMapBase"/>.</param>
    public static List<E820Entry> Build(ulong ramSize, PcChipset chipset = PcChipset.I440fx, bool amdHtHole = false,
        bool kvmIdentityMap = false, ulong maxRamBelow4G = 0)
    {
        ulong below = BelowFourGiB(ramSize, chipset, maxRamBelow4G);
        ulong above = ramSize - below;
        var table = new List<E820Entry>(4);
        if (kvmIdentityMap)
        {
            table.Add(new E820Entry(KvmIdentityMapBase, KvmIdentityMapSize, E820Type.Reserved));
        }
        if (amdHtHole)
        {
            table.Add(new E820Entry(AmdHtStart, AmdHtSize, E820Type.Reserved));
        }
        table.Add(new E820Entry(0, below, E820Type.Ram));
        if (above > 0)
        {
            // Guests large enough to reach the HT hole get their high RAM moved to 1 TiB; Colo does not go there.
            table.Add(new E820Entry(FourGiB, above, E820Type.Ram));
        }
        return table;
    }

    /// <summary>
    /// The map a loader hands the kernel directly (boot_params, PVH, multiboot), where no BIOS carves out its
    /// areas: conventional memory up to the EBDA, the VGA/BIOS hole reserved, RAM from 1 MiB, then what
    /// <paramref name="e820"/> lists above that. Matches what SeaBIOS reports to a kernel booted through it.
    /// </summary>
    /// <summary>
    /// The map with [<paramref name="address"/>, +<paramref name="length"/>) taken out of the RAM entry holding it and
    /// listed as <paramref name="type"/> (e.g. the ACPI tables of a <c>-kernel</c> boot); sorted by address.
    /// </summary>
    /// <exception cref="ArgumentException">No single RAM entry holds the range.</exception>
    public static List<E820Entry> Carve(IReadOnlyList<E820Entry> map, ulong address, ulong length, E820Type type)
    {
        var result = new List<E820Entry>(map.Count + 2);
        bool done = false;
        foreach (E820Entry e in map)
        {
            if (!done && e.Type == E820Type.Ram && address >= e.Address && address + length <= e.End)
            {
                if (address > e.Address)
                {
                    result.Add(new E820Entry(e.Address, address - e.Address, E820Type.Ram));
                }
                result.Add(new E820Entry(address, length, type));
                if (address + length < e.End)
                {
                    result.Add(new E820Entry(address + length, e.End - address - length, E820Type.Ram));
                }
                done = true;
            }
            else
            {
                result.Add(e);
            }
        }
        if (!done)
        {
            throw new ArgumentException($"no RAM entry holds 0x{address:x}+0x{length:x}", nameof(address));
        }
        result.Sort((a, b) => a.Address.CompareTo(b.Address));
        return result;
    }

    public static List<E820Entry> ForDirectBoot(IReadOnlyList<E820Entry> e820)
    {
        var result = new List<E820Entry>(e820.Count + 2);
        foreach (E820Entry e in e820)
        {
            if (e.Type == E820Type.Ram && e.Address == 0 && e.Length > 0x10_0000)
            {
                result.Add(new E820Entry(0, 0x9_FC00, E820Type.Ram));
                result.Add(new E820Entry(0x9_FC00, 0x400, E820Type.Reserved));
                result.Add(new E820Entry(0xF_0000, 0x1_0000, E820Type.Reserved));
                result.Add(new E820Entry(0x10_0000, e.Length - 0x10_0000, E820Type.Ram));
            }
            else
            {
                result.Add(e);
            }
        }
        result.Sort((a, b) => a.Address.CompareTo(b.Address));
        return result;
    }
}
