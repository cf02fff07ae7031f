using Colo.Block;
using Colo.Block.Graph;
using Colo.Core.Io;
using Colo.Core.Irq;
using Colo.Devices.Pci;

namespace Colo.Devices.Ide;

/// <summary>Saved state of the PIIX3 IDE function (vmstate section "ide", version 3).</summary>
public sealed record Piix3IdeState(PciDeviceState Pci, AtaChannelState Primary, AtaChannelState Secondary)
{
    public const string Section = "ide";
    public const int Version = 3;
}

/// <summary>
/// The Intel 82371SB (PIIX3) IDE interface, function 1 of the PIIX3 (QEMU's <c>piix3-ide</c>, 00:01.1 on the pc
/// board): two ATA channels in legacy ("compatibility") mode, programming interface 80h (bus-master capable, both
/// channels fixed at the ISA addresses), and the bus-master registers in the 16-byte I/O window of BAR4
/// (datasheet 2.7; primary at +0, secondary at +8). The legacy command and control blocks are not BARs: the board
/// maps <see cref="PrimaryCommand"/>, <see cref="PrimaryControl"/>, <see cref="SecondaryCommand"/> and
/// <see cref="SecondaryControl"/> itself and wires the channels' interrupts to ISA IRQ 14 and 15.
/// </summary>
public sealed class Piix3Ide : PciDevice
{
    public const ushort Vendor = 0x8086;
    public const ushort Device = 0x7010;

    /// <summary>Class 01h (mass storage), subclass 01h (IDE), programming interface 80h (bus master, legacy mode).</summary>
    public const uint ClassCodeIde = 0x010180;

    /// <summary>BAR4 (PCI offset 20h, BMIBA): the bus-master I/O window.</summary>
    public const int BusMasterBar = 4;

    /// <summary>Size of the bus-master window: eight bytes per channel.</summary>
    public const int BusMasterSize = 16;

    private readonly AtaChannel[] _channels;

    /// <param name="primaryIrq">The primary channel's INTRQ (ISA IRQ 14 on the PC).</param>
    /// <param name="secondaryIrq">The secondary channel's INTRQ (ISA IRQ 15 on the PC).</param>
    public Piix3Ide(IrqLine primaryIrq, IrqLine secondaryIrq)
        : base("piix3-ide", Vendor, Device, 0x00, ClassCodeIde)
    {
        ArgumentNullException.ThrowIfNull(primaryIrq);
        ArgumentNullException.ThrowIfNull(secondaryIrq);
        Primary = new AtaChannel("ide.0", primaryIrq, this);
        Secondary = new AtaChannel("ide.1", secondaryIrq, this);
        _channels = [Primary, Secondary];
        PrimaryCommand = new IoRegion("ide", AtaChannel.CommandBlockSize, Primary.ReadCommandBlock, Primary.WriteCommandBlock);
        PrimaryControl = new IoRegion("ide", 1, Primary.ReadControlBlock, Primary.WriteControlBlock);
        SecondaryCommand = new IoRegion("ide", AtaChannel.CommandBlockSize, Secondary.ReadCommandBlock, Secondary.WriteCommandBlock);
        SecondaryControl = new IoRegion("ide", 1, Secondary.ReadControlBlock, Secondary.WriteControlBlock);
        BusMaster = new IoRegion("bmdma", BusMasterSize, ReadBusMaster, WriteBusMaster);
        DeclareBar(BusMasterBar, PciBarKind.Io, BusMaster);
        FinishInit();
    }

    /// <summary>Primary command block, eight ports (the board maps it at 1F0h).</summary>
    public IoRegion PrimaryCommand { get; }

    /// <summary>Primary control block: alternate status / device control, one port (the board maps it at 3F6h).</summary>
    public IoRegion PrimaryControl { get; }

    /// <summary>Secondary command block (170h on the PC).</summary>
    public IoRegion SecondaryCommand { get; }

    /// <summary>Secondary control block (376h on the PC).</summary>
    public IoRegion SecondaryControl { get; }

    /// <summary>The bus-master window BAR4 decodes; the PCI bus maps it where the guest programs BAR4.</summary>
    public IoRegion BusMaster { get; }

    /// <summary>The primary channel (QEMU's bus <c>ide.0</c>).</summary>
    public AtaChannel Primary { get; }

    /// <summary>The secondary channel (<c>ide.1</c>).</summary>
    public AtaChannel Secondary { get; }

    /// <summary>Channel 0 (primary) or 1 (secondary).</summary>
    public AtaChannel Channel(int channel) => _channels[channel];

    /// <summary>
    /// Attaches a hard disk at (<paramref name="channel"/>, <paramref name="unit"/>): 0/0 primary master, 0/1 primary
    /// slave, 1/0 secondary master, 1/1 secondary slave (QEMU's <c>-drive if=ide,index=channel*2+unit</c>). Call before
    /// the guest runs. The serial defaults to QEMU's "QM000NN" with NN = index + 1 (QEMU numbers drives in creation
    /// order, which is index order for <c>-drive if=ide</c>); the model to "QEMU HARDDISK".
    /// </summary>
    /// <param name="readOnly">Must be false: QEMU refuses a read-only IDE hard disk ("Can't use a read-only drive").</param>
    /// <param name="writeCache">Whether the drive's write cache starts enabled (cache mode writeback).</param>
    /// <exception cref="ArgumentException">Position taken or out of range, read-only medium, or over-long strings.</exception>
    public AtaDrive Attach(int channel, int unit, BlockNode node, bool readOnly = false, string? serial = null,
        string? model = null, bool writeCache = true) =>
        AttachCore(channel, unit, node, readOnly, serial, model, writeCache, honourDiscard: true, honourFlush: true);

    /// <summary>
    /// Attaches the root of a <c>-drive</c> backend, taking the drive-level settings from it: the write cache starts
    /// as the cache mode says, <c>discard=ignore</c> makes TRIM succeed without reaching the node, and
    /// <c>cache.no-flush=on</c> does the same for FLUSH CACHE.
    /// </summary>
    public AtaDrive Attach(int channel, int unit, BlockBackend backend, string? serial = null, string? model = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        BlockNodeSettings settings = backend.Settings;
        return AttachCore(channel, unit, backend.Device, backend.Root.ReadOnly, serial, model, settings.Writeback,
            honourDiscard: settings.Discard != "ignore", honourFlush: !settings.NoFlush);
    }

    private AtaDrive AttachCore(int channel, int unit, BlockNode node, bool readOnly, string? serial, string? model,
        bool writeCache, bool honourDiscard, bool honourFlush)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (channel is < 0 or > 1 || unit is < 0 or > 1)
        {
            throw new ArgumentException($"IDE position {channel}:{unit} does not exist (channel and unit are 0 or 1)");
        }
        AtaChannel bus = _channels[channel];
        if (bus.Drive(unit) is not null)
        {
            throw new ArgumentException($"IDE unit {unit} of {bus.Name} is in use");
        }
        if (readOnly || node.ReadOnly)
        {
            throw new ArgumentException("Can't use a read-only drive");
        }
        serial ??= $"QM{(channel * 2) + unit + 1:D5}";
        model ??= AtaDrive.DefaultModel;
        if (serial.Length > 20)
        {
            throw new ArgumentException("serial must be at most 20 characters");
        }
        if (model.Length > 40)
        {
            throw new ArgumentException("model must be at most 40 characters");
        }
        var drive = new AtaDrive(node, serial, model, writeCache, honourDiscard, honourFlush);
        bus.Attach(unit, drive);
        return drive;
    }

    private ulong ReadBusMaster(ulong offset, int size)
    {
        ulong value = 0;
        for (int i = 0; i < size; i++)
        {
            ulong at = offset + (ulong)i;
            ulong b = at < BusMasterSize ? _channels[(int)(at >> 3)].Dma.ReadByte((int)(at & 7)) : 0xFFUL;
            value |= b << (8 * i);
        }
        return value;
    }

    private void WriteBusMaster(ulong offset, int size, ulong value)
    {
        // The registers are byte lanes (datasheet 2.7); wider accesses reach them in address order.
        for (int i = 0; i < size; i++)
        {
            ulong at = offset + (ulong)i;
            if (at < BusMasterSize)
            {
                _channels[(int)(at >> 3)].Dma.WriteByte((int)(at & 7), (byte)(value >> (8 * i)));
            }
        }
    }

    /// <summary>Power-on/system reset: configuration space, both channels and their drives' registers.</summary>
    public override void Reset()
    {
        base.Reset();
        Primary.Reset();
        Secondary.Reset();
    }

    public Piix3IdeState Save() => new(SavePci(), Primary.Save(), Secondary.Save());

    /// <summary>Loads <paramref name="state"/>; mappings and both interrupt levels are re-derived from it.</summary>
    public void Restore(Piix3IdeState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        RestorePci(state.Pci);
        Primary.Restore(state.Primary);
        Secondary.Restore(state.Secondary);
    }
}
