using Colo.Core.Io;
using Colo.Core.Memory;
using Colo.Devices.Pci;

namespace Colo.Devices.Pc;

/// <summary>Saved i440FX state: its configuration space (PAM and SMRAM live there) and the config-address latch.</summary>
public sealed record I440fxState(PciDeviceState Pci, uint ConfigAddress)
{
    public const string Section = "I440FX";
    public const int Version = 1;
}

/// <summary>
/// Intel 82441FX PMC (the i440FX host bridge, PCI 00:00.0, 8086:1237): configuration mechanism #1 at 0xCF8/0xCFC
/// for PCI bus 0, and the PAM registers (datasheet 3.2.18) that steer each segment of 0xC0000–0xFFFFF between DRAM
/// and the PCI bus — how SeaBIOS shadows itself into RAM. Reads of a segment with RE clear go to the bus, where the
/// BIOS ROM's last 128 KiB answer for 0xE0000–0xFFFFF (the isa-bios alias); writes with WE clear are dropped.
/// The VGA window 0xA0000–0xBFFFF always goes to the bus (SMRAM closed; no SMM).
/// </summary>
public sealed class I440fx : PciDevice
{
    /// <summary>First PAM register (PAM0; its high nibble covers 0xF0000–0xFFFFF).</summary>
    public const int Pam0 = 0x59;

    /// <summary>SMRAM control register.</summary>
    public const int Smram = 0x72;

    /// <summary>Size of the BIOS alias below 1 MiB.</summary>
    public const ulong IsaBiosSize = 0x20000;

    private const byte PamReadEnable = 0x1;
    private const byte PamWriteEnable = 0x2;

    private readonly PciBus _bus;
    private readonly GuestMemory _memory;
    private readonly RomBlock? _bios;
    private uint _configAddress;

    /// <summary>Creates the host bridge of <paramref name="bus"/>, steering the legacy window of <paramref name="memory"/>.</summary>
    /// <param name="bios">The system BIOS ROM (its last 128 KiB answer below 1 MiB), or null for none.</param>
    public I440fx(PciBus bus, GuestMemory memory, RomBlock? bios)
        : base("i440FX", 0x8086, 0x1237, 0x02, 0x060000)
    {
        _bus = bus;
        _memory = memory;
        _bios = bios;
        for (int i = Pam0; i < Pam0 + 7; i++)
        {
            SetByteMask(i, 0x33);
        }
        SetByte(Smram, 0x02);
        SetByteMask(Smram, 0x78);
        // Mechanism #1's address register answers only to 32-bit accesses; narrower ones fall through to
        // whatever else is there (0xCF9 is PIIX3's reset control).
        ConfigAddressRegion = new IoRegion("pci-conf-idx", 4, (_, _) => _configAddress, (_, _, v) => _configAddress = (uint)v, 4, 4);
        ConfigDataRegion = new IoRegion("pci-conf-data", 4, ReadData, WriteData, 1, 4);
        FinishInit();
        ApplyPam();
    }

    /// <summary>The CONFIG_ADDRESS register (board maps it at 0xCF8).</summary>
    public IoRegion ConfigAddressRegion { get; }

    /// <summary>The CONFIG_DATA window (board maps it at 0xCFC).</summary>
    public IoRegion ConfigDataRegion { get; }

    /// <inheritdoc/>
    public override void ConfigWrite(int offset, int size, uint value)
    {
        base.ConfigWrite(offset, size, value);
        if (offset < Pam0 + 7 && offset + size > Pam0)
        {
            ApplyPam();
        }
    }

    /// <inheritdoc/>
    public override void Reset()
    {
        base.Reset();
        _configAddress = 0;
        ApplyPam();
    }

    public I440fxState Save() => new(SavePci(), _configAddress);

    public void Restore(I440fxState state)
    {
        RestorePci(state.Pci);
        _configAddress = state.ConfigAddress;
        ApplyPam();
    }

    private ulong ReadData(ulong offset, int size)
    {
        if ((_configAddress & 0x80000000) == 0 || ((_configAddress >> 16) & 0xFF) != 0)
        {
            // Disabled mechanism or a bus other than 0 (no bridges here): master abort.
            return size >= 4 ? uint.MaxValue : (1u << (8 * size)) - 1;
        }
        int devFn = (int)((_configAddress >> 8) & 0xFF);
        int register = (int)(_configAddress & 0xFC) + (int)offset;
        return _bus.ConfigRead(devFn, register, size);
    }

    private void WriteData(ulong offset, int size, ulong value)
    {
        if ((_configAddress & 0x80000000) == 0 || ((_configAddress >> 16) & 0xFF) != 0)
        {
            return;
        }
        int devFn = (int)((_configAddress >> 8) & 0xFF);
        int register = (int)(_configAddress & 0xFC) + (int)offset;
        _bus.ConfigWrite(devFn, register, size, (uint)value);
    }

    /// <summary>Re-derives every legacy page's routing from PAM0–PAM6.</summary>
    private void ApplyPam()
    {
        for (ulong a = GuestMemory.LegacyStart; a < 0xC0000; a += RamBlock.PageSize)
        {
            _memory.SetLegacyPage(a, LegacyPageRead.Mmio, writeRam: false);
        }
        // PAM0 high nibble: 0xF0000–0xFFFFF as one 64 KiB segment.
        ApplySegment(0xF0000, 0x10000, (byte)(Config[Pam0] >> 4));
        for (int i = 1; i <= 6; i++)
        {
            ulong baseAddress = 0xC0000 + ((ulong)(i - 1) * 0x8000);
            ApplySegment(baseAddress, 0x4000, (byte)(Config[Pam0 + i] & 0xF));
            ApplySegment(baseAddress + 0x4000, 0x4000, (byte)(Config[Pam0 + i] >> 4));
        }
    }

    private void ApplySegment(ulong start, ulong size, byte pam)
    {
        bool readRam = (pam & PamReadEnable) != 0;
        bool writeRam = (pam & PamWriteEnable) != 0;
        for (ulong a = start; a < start + size; a += RamBlock.PageSize)
        {
            if (readRam)
            {
                _memory.SetLegacyPage(a, LegacyPageRead.Ram, writeRam);
            }
            else if (_bios is not null && a >= 0x100000 - Math.Min(IsaBiosSize, _bios.Size))
            {
                ulong romOffset = _bios.Size - (0x100000 - a);
                _memory.SetLegacyPage(a, LegacyPageRead.Rom, writeRam, _bios, romOffset);
            }
            else
            {
                _memory.SetLegacyPage(a, LegacyPageRead.Mmio, writeRam);
            }
        }
    }
}
