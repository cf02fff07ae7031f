using System.Runtime.CompilerServices;
using Colo.Core.Cpu;

namespace Colo.Core.Memory;

/// <summary>How one 4 KiB page of the legacy window (0xA0000–0xFFFFF) answers reads and writes.</summary>
public enum LegacyPageRead
{
    /// <summary>Reads come from the RAM underneath (PAM read-enable).</summary>
    Ram,
    /// <summary>Reads come from a ROM image (the BIOS alias or an option ROM).</summary>
    Rom,
    /// <summary>Reads go to the MMIO bus (nothing there: VGA window without a VGA card, unassigned ROM space).</summary>
    Mmio,
}

/// <summary>
/// The guest-physical address space of a PC-shaped machine: RAM below the PCI hole at 0 (<see cref="LowRamEnd"/>),
/// the rest of RAM at 4 GiB, read-only ROM images (the BIOS at the top of 4 GiB), the legacy window
/// 0xA0000–0xFFFFF whose pages the chipset's PAM registers switch between RAM, ROM and the bus, and MMIO for
/// everything else. Sealed and concrete so the interpreter's hot path makes no interface calls: it touches plain
/// RAM directly when <see cref="IsDirect"/> holds and comes here for everything else.
/// </summary>
public sealed unsafe class GuestMemory : IPhysicalMemory
{
    /// <summary>Where RAM above the PCI hole starts.</summary>
    public const ulong HighRamBase = 1UL << 32;

    /// <summary>First byte of the legacy window.</summary>
    public const ulong LegacyStart = 0xA0000;

    /// <summary>Bytes in the legacy window.</summary>
    public const ulong LegacySize = 0x60000;

    private const int LegacyPages = (int)(LegacySize / RamBlock.PageSize);

    private readonly IIoBus _io;
    private readonly ulong _holeStart;
    private readonly ulong _holeSize;
    private readonly byte*[] _legacyRead = new byte*[LegacyPages];
    private readonly LegacyPageRead[] _legacyReadKind = new LegacyPageRead[LegacyPages];
    private readonly bool[] _legacyWriteRam = new bool[LegacyPages];
    private readonly List<RomBlock> _roms = [];
    private int _codeGeneration;
    private int _dirtyLogEpoch;

    // Per RAM page, bumped on a write to a page code was decoded from; the last slot stands for every non-RAM page.
    private readonly uint[] _codeVersions;

    /// <summary>
    /// Creates an address space with all of <paramref name="ram"/> at guest-physical 0 and no legacy window
    /// (unit tests, <c>-M none</c>).
    /// </summary>
    public GuestMemory(RamBlock ram, IIoBus io)
        : this(ram, io, ram.Size, legacyWindow: false)
    {
    }

    /// <summary>
    /// Creates an address space with the first <paramref name="lowRamSize"/> bytes of <paramref name="ram"/> at 0 and
    /// the rest at <see cref="HighRamBase"/>. With <paramref name="legacyWindow"/> the pages 0xA0000–0xFFFFF start as
    /// MMIO for reads and discard writes, until the board maps them (PAM).
    /// </summary>
    public GuestMemory(RamBlock ram, IIoBus io, ulong lowRamSize, bool legacyWindow)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(lowRamSize, ram.Size);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(lowRamSize, HighRamBase);
        Ram = ram;
        _io = io;
        LowRamEnd = lowRamSize;
        HighRamSize = ram.Size - lowRamSize;
        _codeVersions = new uint[ram.Size / RamBlock.PageSize + 1];
        for (int i = 0; i < LegacyPages; i++)
        {
            _legacyReadKind[i] = legacyWindow ? LegacyPageRead.Mmio : LegacyPageRead.Ram;
            _legacyWriteRam[i] = !legacyWindow;
        }
        if (legacyWindow && lowRamSize > LegacyStart)
        {
            _holeStart = LegacyStart;
            _holeSize = Math.Min(LegacySize, lowRamSize - LegacyStart);
        }
    }

    /// <summary>The RAM block (low RAM at offset 0, high RAM after it).</summary>
    public RamBlock Ram { get; }

    /// <summary>The MMIO bus for addresses that are neither RAM nor ROM.</summary>
    public IIoBus Io => _io;

    /// <summary>RAM occupies guest-physical [0, LowRamEnd), except the legacy window's pages.</summary>
    public ulong LowRamEnd { get; }

    /// <summary>Start of the legacy window inside low RAM that is not direct (0 with no window).</summary>
    public ulong HoleStart => _holeStart;

    /// <summary>Bytes of that window (0 with no window).</summary>
    public ulong HoleSize => _holeSize;

    /// <summary>RAM bytes mapped at <see cref="HighRamBase"/>.</summary>
    public ulong HighRamSize { get; }

    /// <summary>
    /// Bumped whenever a page holding decoded code is written or remapped; CPUs compare it at block boundaries and
    /// drop their decoded blocks when it moved.
    /// </summary>
    public int CodeGeneration => Volatile.Read(ref _codeGeneration);

    /// <summary>
    /// Bumped by <see cref="RearmDirtyLog"/>. Interpreter vCPUs compare it at block boundaries (and on entering Run) and
    /// then drop the write permissions of their software TLBs, whose host-pointer stores mark a page dirty only when the
    /// entry is filled.
    /// </summary>
    public int DirtyLogEpoch => Volatile.Read(ref _dirtyLogEpoch);

    /// <summary>
    /// Re-arms dirty logging after pages were harvested from <see cref="RamBlock.DirtyPages"/> (TestAndClear /
    /// ClearAll): every vCPU's next store to a page marks it again. The KVM order applies: clear the bits, re-arm,
    /// and copy a harvested page only after every running vCPU has passed a block boundary (or is paused), so a store
    /// through a permission granted before the re-arm lands before the copy.
    /// </summary>
    public void RearmDirtyLog() => Interlocked.Increment(ref _dirtyLogEpoch);

    /// <summary>
    /// True when the page of <paramref name="phys"/> is plain low RAM at the same offset in <see cref="Ram"/>, which a
    /// vCPU may read and write directly (after its own code-page check).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsDirect(ulong phys) => phys < LowRamEnd && phys - _holeStart >= _holeSize;

    /// <summary>Whether [address, address + length) lies wholly in low RAM or wholly in RAM above 4 GiB.</summary>
    public bool IsRam(ulong address, ulong length)
    {
        ulong end = address + length;
        if (end < address)
        {
            return false;
        }
        return end <= LowRamEnd || (address >= HighRamBase && end - HighRamBase <= HighRamSize);
    }

    /// <summary>Maps a read-only image at <paramref name="address"/>; writes to it are discarded as on a real ROM.</summary>
    public void AddRom(ulong address, RomBlock rom)
    {
        ArgumentNullException.ThrowIfNull(rom);
        rom.GuestAddress = address;
        _roms.Add(rom);
        Interlocked.Increment(ref _codeGeneration);
    }

    /// <summary>
    /// Sets how a legacy-window page answers. <paramref name="rom"/> and <paramref name="romOffset"/> give the bytes
    /// for <see cref="LegacyPageRead.Rom"/>. Drops every decoded block, as the bytes behind the address changed.
    /// </summary>
    public void SetLegacyPage(ulong address, LegacyPageRead read, bool writeRam, RomBlock? rom = null, ulong romOffset = 0)
    {
        if (address < LegacyStart || address >= LegacyStart + LegacySize)
        {
            throw new ArgumentOutOfRangeException(nameof(address));
        }
        int i = (int)((address - LegacyStart) / RamBlock.PageSize);
        if (read == LegacyPageRead.Rom)
        {
            ArgumentNullException.ThrowIfNull(rom);
            if (romOffset + RamBlock.PageSize > rom.Size)
            {
                throw new ArgumentOutOfRangeException(nameof(romOffset));
            }
            // SAFETY: the page lies inside the ROM (checked above), which lives as long as the machine.
            _legacyRead[i] = rom.HostPointer + romOffset;
        }
        else
        {
            _legacyRead[i] = null;
        }
        _legacyReadKind[i] = read;
        _legacyWriteRam[i] = writeRam;
        Interlocked.Increment(ref _codeGeneration);
    }

    /// <summary>Records that decoded code now depends on the page of guest-physical page number <paramref name="page"/>.</summary>
    public void MarkCode(ulong page)
    {
        if (TryRamPage(page, out ulong ramPage))
        {
            Ram.CodePages.Set(ramPage);
        }
    }

    /// <summary>Called on a write to guest-physical page <paramref name="page"/>: invalidates decoded code that used it.</summary>
    public void NotifyCodeWrite(ulong page)
    {
        if (TryRamPage(page, out ulong ramPage) && Ram.CodePages.TestAndClear(ramPage))
        {
            Interlocked.Increment(ref _codeVersions[ramPage]);
        }
    }

    /// <summary>
    /// Versions of the pages code is decoded from, indexed by <see cref="CodeVersionIndex"/>: a decoded block stays
    /// valid while its page's version is the one it was decoded at, so a write to one code page drops only that
    /// page's blocks. Changes that move whole ranges (ROMs, the legacy window) bump <see cref="CodeGeneration"/>.
    /// </summary>
    public uint[] CodeVersions => _codeVersions;

    /// <summary>The <see cref="CodeVersions"/> slot of guest-physical page number <paramref name="page"/>.</summary>
    public int CodeVersionIndex(ulong page) => TryRamPage(page, out ulong ramPage) ? (int)ramPage : _codeVersions.Length - 1;

    /// <summary>
    /// A host pointer to the bytes an instruction fetch at <paramref name="phys"/> sees, valid to the end of its page,
    /// or null when the address is MMIO (the guest cannot execute from there).
    /// </summary>
    public byte* GetFetchPointer(ulong phys)
    {
        if (IsDirect(phys))
        {
            // SAFETY: IsDirect means phys lies in low RAM, whose pages are all mapped.
            return Ram.HostPointer + phys;
        }
        return ReadPointer(phys);
    }

    /// <summary>
    /// For a locked read-modify-write outside direct RAM: a host pointer to <paramref name="phys"/> when both reads and
    /// writes of its page go to RAM (shadowed BIOS pages with PAM read+write, RAM above 4 GiB), valid to the end of
    /// the page, with decoded code on the page invalidated and the page marked dirty; null otherwise (ROM, MMIO).
    /// </summary>
    public byte* GetReadWritePointer(ulong phys)
    {
        if (WriteTarget(phys, out ulong ramOffset) != Target.Ram)
        {
            return null;
        }
        byte* p = ReadPointer(phys);
        if (p != Ram.HostPointer + ramOffset)
        {
            return null; // reads come from elsewhere (a ROM alias) than writes go
        }
        TouchRamPage(ramOffset / RamBlock.PageSize);
        return p;
    }

    /// <summary>Reads 1, 2, 4 or 8 bytes from an address the caller found not direct (slow path of a vCPU).</summary>
    public ulong ReadSlow(ulong phys, int size)
    {
        if (Chunk(phys, size) == size && ReadPointer(phys) is var p && p != null)
        {
            // SAFETY: ReadPointer gives a pointer valid to the end of phys's page, and the access stays in it.
            return HostAccess.Load(p, size);
        }
        ulong v = 0;
        // SAFETY: size ≤ 8 and v is an 8-byte local; the host is little-endian like the guest.
        Read(phys, new Span<byte>(&v, size));
        return v;
    }

    /// <summary>Writes 1, 2, 4 or 8 bytes to an address the caller found not direct (slow path of a vCPU).</summary>
    public void WriteSlow(ulong phys, int size, ulong value)
    {
        if (Chunk(phys, size) == size && WriteTarget(phys, out ulong ramOffset) == Target.Ram)
        {
            // One host store (see HostAccess): SeaBIOS keeps its SMP spin lock in shadowed BIOS RAM.
            TouchRamPage(ramOffset / RamBlock.PageSize);
            // SAFETY: WriteTarget returned a RAM offset whose page is mapped, and the access stays in the page.
            HostAccess.Store(Ram.HostPointer + ramOffset, size, value);
            return;
        }
        // SAFETY: size ≤ 8 and value is an 8-byte local; the host is little-endian like the guest.
        Write(phys, new ReadOnlySpan<byte>(&value, size));
    }

    /// <inheritdoc/>
    public void Read(ulong address, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            int chunk = Chunk(address, destination.Length);
            byte* p = ReadPointer(address);
            if (p != null)
            {
                // SAFETY: ReadPointer gives a pointer valid to the end of address's page; Chunk stays in it.
                new ReadOnlySpan<byte>(p, chunk).CopyTo(destination);
            }
            else
            {
                _io.MmioRead(address, destination[..chunk]);
            }
            destination = destination[chunk..];
            address += (ulong)chunk;
        }
    }

    /// <inheritdoc/>
    public void Write(ulong address, ReadOnlySpan<byte> source)
    {
        while (!source.IsEmpty)
        {
            int chunk = Chunk(address, source.Length);
            switch (WriteTarget(address, out ulong ramOffset))
            {
                case Target.Ram:
                    TouchRamPage(ramOffset / RamBlock.PageSize);
                    // SAFETY: WriteTarget returned a RAM offset whose page is mapped; Chunk stays in the page.
                    source[..chunk].CopyTo(new Span<byte>(Ram.HostPointer + ramOffset, chunk));
                    break;
                case Target.Mmio:
                    _io.MmioWrite(address, source[..chunk]);
                    break;
                default:
                    break; // ROM: discarded, as the hardware does.
            }
            source = source[chunk..];
            address += (ulong)chunk;
        }
    }

    /// <summary>A write is about to change RAM page <paramref name="page"/>: drop code decoded from it, mark it dirty.</summary>
    private void TouchRamPage(ulong page)
    {
        if (Ram.CodePages.TestAndClear(page))
        {
            Interlocked.Increment(ref _codeVersions[page]);
        }
        Ram.DirtyPages.Set(page);
    }

    private enum Target
    {
        Ram,
        Rom,
        Mmio,
    }

    private byte* ReadPointer(ulong phys)
    {
        if (phys < LowRamEnd)
        {
            if (phys - _holeStart < _holeSize)
            {
                int i = (int)((phys - LegacyStart) / RamBlock.PageSize);
                return _legacyReadKind[i] switch
                {
                    // SAFETY: the legacy window lies inside low RAM (the hole exists only then).
                    LegacyPageRead.Ram => Ram.HostPointer + phys,
                    LegacyPageRead.Rom => _legacyRead[i] + (phys & (RamBlock.PageSize - 1)),
                    _ => null,
                };
            }
            // SAFETY: phys < LowRamEnd.
            return Ram.HostPointer + phys;
        }
        if (phys >= HighRamBase && phys - HighRamBase < HighRamSize)
        {
            // SAFETY: high RAM follows low RAM in the block; the offset is inside it.
            return Ram.HostPointer + LowRamEnd + (phys - HighRamBase);
        }
        foreach (RomBlock rom in _roms)
        {
            if (phys - rom.GuestAddress < rom.Size)
            {
                // SAFETY: phys lies inside the ROM's range.
                return rom.HostPointer + (phys - rom.GuestAddress);
            }
        }
        return null;
    }

    private Target WriteTarget(ulong phys, out ulong ramOffset)
    {
        ramOffset = 0;
        if (phys < LowRamEnd)
        {
            if (phys - _holeStart < _holeSize)
            {
                int i = (int)((phys - LegacyStart) / RamBlock.PageSize);
                if (!_legacyWriteRam[i])
                {
                    // Writes the chipset sends to the bus land on an option ROM (discarded) or nowhere.
                    return _legacyReadKind[i] == LegacyPageRead.Rom ? Target.Rom : Target.Mmio;
                }
            }
            ramOffset = phys;
            return Target.Ram;
        }
        if (phys >= HighRamBase && phys - HighRamBase < HighRamSize)
        {
            ramOffset = LowRamEnd + (phys - HighRamBase);
            return Target.Ram;
        }
        foreach (RomBlock rom in _roms)
        {
            if (phys - rom.GuestAddress < rom.Size)
            {
                return Target.Rom;
            }
        }
        return Target.Mmio;
    }

    private bool TryRamPage(ulong page, out ulong ramPage)
    {
        ulong phys = page * RamBlock.PageSize;
        if (phys < LowRamEnd)
        {
            ramPage = page;
            return true;
        }
        if (phys >= HighRamBase && phys - HighRamBase < HighRamSize)
        {
            ramPage = (LowRamEnd + (phys - HighRamBase)) / RamBlock.PageSize;
            return true;
        }
        ramPage = 0;
        return false;
    }

    /// <summary>Bytes from <paramref name="address"/> up to the page end, capped at <paramref name="length"/>.</summary>
    private static int Chunk(ulong address, int length)
    {
        int toPageEnd = RamBlock.PageSize - (int)(address & (RamBlock.PageSize - 1));
        return Math.Min(toPageEnd, length);
    }
}
