using System.Buffers.Binary;
using Colo.Core.Io;
using Colo.Core.Memory;

namespace Colo.Devices.Pci;

/// <summary>Saved generic PCI function state: the 256-byte configuration space and the INTx level.</summary>
public sealed record PciDeviceState(byte[] Config, bool IntxLevel)
{
    public bool Equals(PciDeviceState? other) =>
        other is not null && Config.AsSpan().SequenceEqual(other.Config) && IntxLevel == other.IntxLevel;

    public override int GetHashCode() => HashCode.Combine(Config.Length, IntxLevel);
}

/// <summary>What kind of window a base address register decodes.</summary>
public enum PciBarKind
{
    /// <summary>I/O space (bit 0 set; 32-bit, ports below 64 KiB on x86).</summary>
    Io,
    /// <summary>32-bit memory space.</summary>
    Memory32,
    /// <summary>64-bit memory space (takes two BAR slots).</summary>
    Memory64,
}

/// <summary>
/// One PCI function with a type-0 configuration header (PCI Local Bus Specification 3.0, chapter 6): identity
/// registers, command/status, six BARs that map the function's <see cref="IoRegion"/>s when the guest enables
/// decoding, the interrupt line/pin pair, and bus-master DMA gated by the command register. Subclasses declare
/// BARs and override <see cref="ConfigWrite"/> for their own registers. The function never knows its address:
/// the <see cref="PciBus"/> it is plugged into maps BARs and routes INTx.
/// </summary>
public abstract class PciDevice
{
    // Configuration header offsets (PCI 3.0, 6.1).
    public const int VendorId = 0x00;
    public const int DeviceId = 0x02;
    public const int Command = 0x04;
    public const int Status = 0x06;
    public const int RevisionId = 0x08;
    public const int ClassProg = 0x09;
    public const int ClassDevice = 0x0A;
    public const int CacheLineSize = 0x0C;
    public const int LatencyTimer = 0x0D;
    public const int HeaderType = 0x0E;
    public const int Bar0 = 0x10;
    public const int SubsystemVendorId = 0x2C;
    public const int SubsystemId = 0x2E;
    public const int RomAddress = 0x30;
    public const int CapabilityList = 0x34;
    public const int InterruptLine = 0x3C;
    public const int InterruptPin = 0x3D;

    // Command register bits.
    public const ushort CommandIo = 0x0001;
    public const ushort CommandMemory = 0x0002;
    public const ushort CommandMaster = 0x0004;
    public const ushort CommandSerr = 0x0100;
    public const ushort CommandIntxDisable = 0x0400;

    // Status register bits.
    public const ushort StatusInterrupt = 0x0008;
    public const ushort StatusCapList = 0x0010;
    public const ushort StatusFastBackToBack = 0x0080;
    public const ushort StatusDevselMedium = 0x0200;

    public const byte HeaderTypeMultiFunction = 0x80;

    private readonly byte[] _config = new byte[256];
    private readonly byte[] _writeMask = new byte[256];
    private readonly byte[] _clearMask = new byte[256];
    private readonly byte[] _powerOn = new byte[256];
    private readonly Bar?[] _bars = new Bar?[6];
    private bool _intxLevel;

    /// <summary>Creates a function with the identity registers set and everything else zero.</summary>
    protected PciDevice(string name, ushort vendor, ushort device, byte revision, uint classCode, byte interruptPin = 0)
    {
        Name = name;
        SetWord(VendorId, vendor);
        SetWord(DeviceId, device);
        _config[RevisionId] = revision;
        _config[ClassProg] = (byte)classCode;
        _config[ClassDevice] = (byte)(classCode >> 8);
        _config[ClassDevice + 1] = (byte)(classCode >> 16);
        _config[InterruptPin] = interruptPin;
        // QEMU gives every type-0 function Red Hat/Qumranet's subsystem ids unless the model overrides them.
        SetWord(SubsystemVendorId, 0x1AF4);
        SetWord(SubsystemId, 0x1100);
        // Writable by every driver: command (I/O, memory, master, SERR, INTx disable), cache line, latency, line.
        SetWordMask(Command, CommandIo | CommandMemory | CommandMaster | CommandSerr | CommandIntxDisable);
        _writeMask[CacheLineSize] = 0xFF;
        _writeMask[LatencyTimer] = 0xFF;
        _writeMask[InterruptLine] = 0xFF;
        // Status error bits are write-one-to-clear.
        SetWordClearMask(Status, 0xF900);
        SetWord(Status, StatusFastBackToBack | StatusDevselMedium);
    }

    /// <summary>The QEMU type name (e.g. <c>piix3-ide</c>).</summary>
    public string Name { get; }

    /// <summary>Where the function sits, as the bus's device/function number (slot &lt;&lt; 3 | function).</summary>
    public int DevFn { get; internal set; } = -1;

    /// <summary>The bus it is plugged into, once plugged.</summary>
    public PciBus? Bus { get; internal set; }

    /// <summary>The configuration space as the guest would read it (for tests and <c>info pci</c>).</summary>
    public ReadOnlySpan<byte> Config => _config;

    /// <summary>Whether the guest enabled bus mastering; DMA is refused otherwise.</summary>
    public bool BusMasterEnabled => (ReadConfigWord(Command) & CommandMaster) != 0;

    /// <summary>The INTx level the function drives (before the command register's disable bit).</summary>
    public bool IntxLevel => _intxLevel;

    /// <summary>The BARs, by index (null where none is declared or in the upper half of a 64-bit BAR).</summary>
    public IReadOnlyList<Bar?> Bars => _bars;

    /// <summary>Reads <paramref name="size"/> bytes of configuration space at <paramref name="offset"/>.</summary>
    public virtual uint ConfigRead(int offset, int size)
    {
        uint value = 0;
        for (int i = 0; i < size && offset + i < 256; i++)
        {
            value |= (uint)_config[offset + i] << (8 * i);
        }
        return value;
    }

    /// <summary>
    /// Writes configuration space through the write masks (read-only bits keep their value, write-one-to-clear bits
    /// clear), then remaps BARs or updates INTx if the write touched them.
    /// </summary>
    public virtual void ConfigWrite(int offset, int size, uint value)
    {
        bool touchesBars = false;
        bool touchesCommand = false;
        for (int i = 0; i < size && offset + i < 256; i++)
        {
            int at = offset + i;
            byte b = (byte)(value >> (8 * i));
            byte wmask = _writeMask[at];
            byte cmask = _clearMask[at];
            _config[at] = (byte)((_config[at] & ~wmask) | (b & wmask));
            _config[at] &= (byte)~(b & cmask);
            touchesBars |= (at >= Bar0 && at < Bar0 + 24) || (at >= RomAddress && at < RomAddress + 4);
            touchesCommand |= at == Command || at == Command + 1;
        }
        if (touchesBars || touchesCommand)
        {
            Bus?.UpdateMappings(this);
        }
        if (touchesCommand)
        {
            Bus?.UpdateIntx(this);
        }
    }

    /// <summary>Drives the function's INTx pin (level-triggered, shared through the board's PIRQ routing).</summary>
    public void SetIntx(bool level)
    {
        if (_intxLevel == level)
        {
            return;
        }
        _intxLevel = level;
        ushort status = ReadConfigWord(Status);
        SetWord(Status, (ushort)(level ? status | StatusInterrupt : status & ~StatusInterrupt));
        Bus?.UpdateIntx(this);
    }

    /// <summary>The level the bus sees: the pin, unless the command register disables INTx.</summary>
    public bool EffectiveIntx => _intxLevel && (ReadConfigWord(Command) & CommandIntxDisable) == 0;

    /// <summary>
    /// Reads guest memory as a bus master. With mastering disabled nothing reaches memory (reads give zeros) and
    /// false is returned, so the device can flag an error the way its hardware would.
    /// </summary>
    public bool DmaRead(ulong address, Span<byte> destination)
    {
        if (Bus is null || !BusMasterEnabled)
        {
            destination.Clear();
            return false;
        }
        Bus.Memory.Read(address, destination);
        return true;
    }

    /// <summary>Writes guest memory as a bus master; false (nothing written) with mastering disabled.</summary>
    public bool DmaWrite(ulong address, ReadOnlySpan<byte> source)
    {
        if (Bus is null || !BusMasterEnabled)
        {
            return false;
        }
        Bus.Memory.Write(address, source);
        return true;
    }

    /// <summary>Power-on/reset: configuration space back to its defaults, BARs unmapped, INTx low.</summary>
    public virtual void Reset()
    {
        _powerOn.CopyTo(_config, 0);
        _intxLevel = false;
        Bus?.UpdateMappings(this);
        Bus?.UpdateIntx(this);
    }

    /// <summary>The generic part of the function's state.</summary>
    public PciDeviceState SavePci() => new((byte[])_config.Clone(), _intxLevel);

    /// <summary>Restores the generic part and re-derives mappings and the INTx level from it.</summary>
    public void RestorePci(PciDeviceState state)
    {
        if (state.Config.Length != 256)
        {
            throw new ArgumentException($"PCI config space of {Name} must be 256 bytes, got {state.Config.Length}", nameof(state));
        }
        state.Config.CopyTo(_config, 0);
        _intxLevel = state.IntxLevel;
        Bus?.UpdateMappings(this);
        Bus?.UpdateIntx(this);
    }

    /// <summary>Reads a little-endian word of configuration space.</summary>
    public ushort ReadConfigWord(int offset) => BinaryPrimitives.ReadUInt16LittleEndian(_config.AsSpan(offset));

    /// <summary>Reads a little-endian dword of configuration space.</summary>
    public uint ReadConfigDword(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(_config.AsSpan(offset));

    /// <summary>
    /// Declares BAR <paramref name="index"/> decoding <paramref name="region"/> (its size, a power of two, is the
    /// BAR's size). Call from the constructor, before <see cref="FinishInit"/>.
    /// </summary>
    protected void DeclareBar(int index, PciBarKind kind, IoRegion region, bool prefetchable = false)
    {
        ulong size = region.Size;
        if (!ulong.IsPow2(size) || (kind == PciBarKind.Io && size < 4) || (kind != PciBarKind.Io && size < 16))
        {
            throw new ArgumentException($"BAR size 0x{size:x} of {Name} is not a valid power of two", nameof(region));
        }
        _bars[index] = new Bar(index, kind, region, prefetchable);
        int at = Bar0 + (4 * index);
        uint low = kind switch
        {
            PciBarKind.Io => 1u,
            PciBarKind.Memory64 => 0x4u | (prefetchable ? 0x8u : 0),
            _ => prefetchable ? 0x8u : 0,
        };
        SetDword(at, low);
        // Address bits above the size are writable; the type bits are read-only.
        ulong addressMask = ~(size - 1);
        uint lowMask = (uint)addressMask & (kind == PciBarKind.Io ? ~3u : ~0xFu);
        SetDwordMask(at, lowMask);
        if (kind == PciBarKind.Memory64)
        {
            SetDwordMask(at + 4, (uint)(addressMask >> 32));
        }
    }

    /// <summary>Snapshots the configuration space as the power-on state. Call at the end of the constructor.</summary>
    protected void FinishInit() => _config.CopyTo(_powerOn, 0);

    /// <summary>Sets a byte of configuration space (device setup, not guest writes).</summary>
    protected void SetByte(int offset, byte value) => _config[offset] = value;

    /// <summary>Sets a word of configuration space.</summary>
    protected void SetWord(int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(_config.AsSpan(offset), value);

    /// <summary>Sets a dword of configuration space.</summary>
    protected void SetDword(int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(_config.AsSpan(offset), value);

    /// <summary>Makes the bits of <paramref name="mask"/> in a byte guest-writable.</summary>
    protected void SetByteMask(int offset, byte mask) => _writeMask[offset] = mask;

    /// <summary>Makes the bits of <paramref name="mask"/> in a word guest-writable.</summary>
    protected void SetWordMask(int offset, ushort mask) => BinaryPrimitives.WriteUInt16LittleEndian(_writeMask.AsSpan(offset), mask);

    /// <summary>Makes the bits of <paramref name="mask"/> in a dword guest-writable.</summary>
    protected void SetDwordMask(int offset, uint mask) => BinaryPrimitives.WriteUInt32LittleEndian(_writeMask.AsSpan(offset), mask);

    /// <summary>Makes the bits of <paramref name="mask"/> in a word write-one-to-clear.</summary>
    protected void SetWordClearMask(int offset, ushort mask) => BinaryPrimitives.WriteUInt16LittleEndian(_clearMask.AsSpan(offset), mask);

    /// <summary>The address BAR <paramref name="bar"/> decodes now, or null when decoding is off or the address is invalid.</summary>
    public ulong? BarAddress(Bar bar)
    {
        ushort command = ReadConfigWord(Command);
        int at = Bar0 + (4 * bar.Index);
        ulong size = bar.Region.Size;
        if (bar.Kind == PciBarKind.Io)
        {
            if ((command & CommandIo) == 0)
            {
                return null;
            }
            ulong io = ReadConfigDword(at) & ~3u & ~(size - 1);
            // Address 0 means unprogrammed; windows past the 64 KiB port space cannot decode.
            return io == 0 || io + size > 0x10000 ? null : io;
        }
        if ((command & CommandMemory) == 0)
        {
            return null;
        }
        ulong address = ReadConfigDword(at) & ~0xFu;
        if (bar.Kind == PciBarKind.Memory64)
        {
            address |= (ulong)ReadConfigDword(at + 4) << 32;
        }
        address &= ~(size - 1);
        bool wraps = address + size < address || (bar.Kind == PciBarKind.Memory32 && address + size > 1UL << 32);
        return address == 0 || wraps ? null : address;
    }

    /// <summary>One declared base address register.</summary>
    public sealed record Bar(int Index, PciBarKind Kind, IoRegion Region, bool Prefetchable);
}
