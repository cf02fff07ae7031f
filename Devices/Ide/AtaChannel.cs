using System.Buffers;
using System.Buffers.Binary;
using Colo.Block;
using Colo.Core.Irq;
using Colo.Devices.Pci;

namespace Colo.Devices.Ide;

/// <summary>What happens when the guest has moved the last byte of a PIO data block.</summary>
public enum AtaTransferEnd : byte
{
    /// <summary>Nothing more: clear DRQ (IDENTIFY DEVICE, or no transfer at all).</summary>
    Stop,
    /// <summary>Fetch the next DRQ block of a PIO read, or finish it.</summary>
    SectorRead,
    /// <summary>Write the block the guest supplied, then ask for the next one or finish.</summary>
    SectorWrite,
}

/// <summary>The DMA command a channel has waiting for (or running on) its bus-master engine.</summary>
public enum AtaDmaCommand : byte
{
    None,
    Read,
    Write,
    Trim,
}

/// <summary>
/// Saved task file and settings of one device position (master or slave). An absent device keeps registers too:
/// the task file is written to both devices of a channel, and an absent slave answers with what it latched.
/// </summary>
/// <param name="SectorCount">The sector count as commands use it (up to 65536 once a command has widened it).</param>
/// <param name="Lba48">The running command uses 48-bit addressing.</param>
/// <param name="MultipleSectors">DRQ block size of READ/WRITE MULTIPLE (0: multiple mode off).</param>
/// <param name="Heads">Heads of the CHS translation (INITIALIZE DEVICE PARAMETERS changes it).</param>
/// <param name="SectorsPerTrack">Sectors per track of the CHS translation.</param>
/// <param name="Identify">The IDENTIFY block as built and edited by SET FEATURES (512 bytes).</param>
public sealed record AtaDriveState(
    byte Feature, byte HobFeature, int SectorCount, byte HobSectorCount, byte LbaLow, byte HobLbaLow,
    byte LbaMid, byte HobLbaMid, byte LbaHigh, byte HobLbaHigh, byte Device, byte Status, byte Error,
    bool Lba48, int MultipleSectors, int Heads, int SectorsPerTrack, bool WriteCache, bool IdentifySet, byte[] Identify)
{
    public bool Equals(AtaDriveState? other) =>
        other is not null && Feature == other.Feature && HobFeature == other.HobFeature
        && SectorCount == other.SectorCount && HobSectorCount == other.HobSectorCount && LbaLow == other.LbaLow
        && HobLbaLow == other.HobLbaLow && LbaMid == other.LbaMid && HobLbaMid == other.HobLbaMid
        && LbaHigh == other.LbaHigh && HobLbaHigh == other.HobLbaHigh && Device == other.Device
        && Status == other.Status && Error == other.Error && Lba48 == other.Lba48
        && MultipleSectors == other.MultipleSectors && Heads == other.Heads && SectorsPerTrack == other.SectorsPerTrack
        && WriteCache == other.WriteCache && IdentifySet == other.IdentifySet && Identify.AsSpan().SequenceEqual(other.Identify);

    public override int GetHashCode() => HashCode.Combine(SectorCount, LbaLow, Status, Error, Device);
}

/// <summary>Saved state of one IDE channel: both device positions, the shared control state and the PIO/DMA progress.</summary>
/// <param name="Unit">Selected device (DEV bit of the device register).</param>
/// <param name="DeviceControl">Last device control write (nIEN, SRST, HOB).</param>
/// <param name="IrqLevel">Level of the channel's interrupt (INTRQ) output.</param>
/// <param name="PioData">The current PIO data block (its length is the block's end).</param>
/// <param name="PioPosition">Bytes of <paramref name="PioData"/> already moved.</param>
/// <param name="PioToHost">Direction of the block: device to host (reads) or host to device (writes).</param>
/// <param name="RequestSectors">Sectors per DRQ block of the running PIO command.</param>
/// <param name="DmaPending">A DMA command waits for the bus-master engine.</param>
public sealed record AtaChannelState(
    int Unit, byte DeviceControl, bool IrqLevel, AtaDriveState Master, AtaDriveState Slave,
    byte[] PioData, int PioPosition, bool PioToHost, AtaTransferEnd PioEnd, int RequestSectors,
    AtaDmaCommand DmaCommand, bool DmaPending, BusMasterDmaState BusMaster)
{
    public bool Equals(AtaChannelState? other) =>
        other is not null && Unit == other.Unit && DeviceControl == other.DeviceControl && IrqLevel == other.IrqLevel
        && Master.Equals(other.Master) && Slave.Equals(other.Slave) && PioData.AsSpan().SequenceEqual(other.PioData)
        && PioPosition == other.PioPosition && PioToHost == other.PioToHost && PioEnd == other.PioEnd
        && RequestSectors == other.RequestSectors && DmaCommand == other.DmaCommand && DmaPending == other.DmaPending
        && BusMaster.Equals(other.BusMaster);

    public override int GetHashCode() => HashCode.Combine(Unit, DeviceControl, IrqLevel, PioPosition, DmaCommand);
}

/// <summary>
/// One ATA channel (ATA/ATAPI-6 section 7, "I/O register descriptions") with up to two hard disks: the command block
/// registers (data, error/features, sector count, LBA low/mid/high, device, status/command), the control block
/// (alternate status/device control), the PIO data protocol, the command set, and the channel's bus-master engine.
/// Register behaviour follows QEMU 7.2 where it departs from the standard (what an absent device answers, which
/// commands set DSC). Block I/O is synchronous today; every command still ends in its own completion method
/// (<c>…Done</c>) so the request can later be issued asynchronously and completed from the main loop.
/// </summary>
public sealed partial class AtaChannel
{
    // Command block register offsets (ATA-6 7.1, table 14).
    public const int DataRegister = 0;
    public const int ErrorFeaturesRegister = 1;
    public const int SectorCountRegister = 2;
    public const int LbaLowRegister = 3;
    public const int LbaMidRegister = 4;
    public const int LbaHighRegister = 5;
    public const int DeviceRegister = 6;
    public const int StatusCommandRegister = 7;
    public const int CommandBlockSize = 8;

    // Status register (ATA-6 7.15).
    public const byte StatusBsy = 0x80;
    public const byte StatusDrdy = 0x40;
    public const byte StatusDf = 0x20;
    public const byte StatusDsc = 0x10;
    public const byte StatusDrq = 0x08;
    public const byte StatusErr = 0x01;

    // Error register (ATA-6 7.11).
    public const byte ErrorAbrt = 0x04;
    public const byte ErrorIdnf = 0x10;
    public const byte ErrorUnc = 0x40;

    // Device control register (ATA-6 7.9).
    public const byte ControlNien = 0x02;
    public const byte ControlSrst = 0x04;
    public const byte ControlHob = 0x80;

    // Device register (ATA-6 7.10): LBA mode, device select, head/LBA 27:24; bits 7 and 5 read as one.
    public const byte DeviceLba = 0x40;
    public const byte DeviceDev = 0x10;
    public const byte DeviceHead = 0x0F;
    public const byte DeviceObsolete = 0xA0;

    private const int SectorSize = AtaDrive.SectorSize;
    private const int DmaChunk = 64 * 1024;

    private readonly IrqLine _irq;
    private readonly Unit[] _units = [new(), new()];
    private readonly AtaDrive?[] _drives = new AtaDrive?[2];
    private readonly byte[] _pio = new byte[AtaDrive.MaxMultipleSectors * SectorSize];
    private readonly byte[] _dmaBuffer;
    private int _unit;
    private byte _control;
    private int _pioPosition;
    private int _pioEnd;
    private bool _pioToHost;
    private AtaTransferEnd _pioEndAction;
    private int _requestSectors;
    private AtaDmaCommand _dmaCommand;
    private bool _dmaPending;

    internal AtaChannel(string name, IrqLine irq, PciDevice function)
    {
        Name = name;
        _irq = irq;
        // One pooled staging buffer per channel, kept for the channel's life: the DMA path allocates nothing.
        _dmaBuffer = ArrayPool<byte>.Shared.Rent(DmaChunk);
        Dma = new BusMasterDma(function) { Started = OnDmaStarted };
        Reset();
    }

    /// <summary>"ide.0" or "ide.1", as QEMU names the buses.</summary>
    public string Name { get; }

    /// <summary>This channel's half of the bus-master function.</summary>
    public BusMasterDma Dma { get; }

    /// <summary>The drive at <paramref name="unit"/> (0 master, 1 slave), if one is attached.</summary>
    public AtaDrive? Drive(int unit) => _drives[unit];

    internal void Attach(int unit, AtaDrive drive)
    {
        _drives[unit] = drive;
        PowerOnUnit(unit);
    }

    /// <summary>A read of the command block (offsets 0-7); 16/32-bit accesses at offset 0 move data.</summary>
    public ulong ReadCommandBlock(ulong offset, int size)
    {
        if (offset == DataRegister && size >= 2)
        {
            return ReadData(size >= 4 ? 4 : 2);
        }
        ulong value = 0;
        for (int i = 0; i < size; i++)
        {
            ulong at = offset + (ulong)i;
            ulong b = at < CommandBlockSize ? ReadRegister((int)at) : 0xFFUL;
            value |= b << (8 * i);
        }
        return value;
    }

    /// <summary>A write to the command block.</summary>
    public void WriteCommandBlock(ulong offset, int size, ulong value)
    {
        if (offset == DataRegister && size >= 2)
        {
            WriteData(size >= 4 ? 4 : 2, (uint)value);
            return;
        }
        for (int i = 0; i < size; i++)
        {
            ulong at = offset + (ulong)i;
            if (at < CommandBlockSize)
            {
                WriteRegister((int)at, (byte)(value >> (8 * i)));
            }
        }
    }

    /// <summary>Alternate status: the status register without the interrupt acknowledge (ATA-6 7.3).</summary>
    public ulong ReadControlBlock(ulong offset, int size)
    {
        _ = offset;
        _ = size;
        return ReadStatusValue();
    }

    /// <summary>Device control (ATA-6 7.9): nIEN masks INTRQ, a rising SRST resets both devices.</summary>
    public void WriteControlBlock(ulong offset, int size, ulong value)
    {
        _ = offset;
        _ = size;
        byte b = (byte)value;
        bool srstRising = (_control & ControlSrst) == 0 && (b & ControlSrst) != 0;
        _control = b;
        if (srstRising)
        {
            // Both devices run their reset protocol and come back with the diagnostic result and signature
            // (ATA-6 9.2). Nothing is in flight with synchronous I/O, so the reset completes here.
            for (int u = 0; u < 2; u++)
            {
                ResetUnit(u);
                Diagnose(_units[u], u);
            }
            TransferStop(_units[0]);
            _dmaPending = false;
            _dmaCommand = AtaDmaCommand.None;
        }
    }

    private bool NoDrives => _drives[0] is null && _drives[1] is null;

    private byte ReadStatusValue()
    {
        // With no drive at the selected position (or none at all) nothing drives the bus: QEMU reads zero.
        if (_drives[_unit] is null)
        {
            return 0;
        }
        return _units[_unit].Status;
    }

    private byte ReadRegister(int register)
    {
        Unit s = _units[_unit];
        bool hob = (_control & ControlHob) != 0;
        switch (register)
        {
            case DataRegister:
                // Byte access to the data port: not a data transfer.
                return 0xFF;
            case ErrorFeaturesRegister:
                return NoDrives ? (byte)0 : hob ? s.HobFeature : s.Error;
            case SectorCountRegister:
                return NoDrives ? (byte)0 : hob ? s.HobSectorCount : (byte)s.SectorCount;
            case LbaLowRegister:
                return NoDrives ? (byte)0 : hob ? s.HobLbaLow : s.LbaLow;
            case LbaMidRegister:
                return NoDrives ? (byte)0 : hob ? s.HobLbaMid : s.LbaMid;
            case LbaHighRegister:
                return NoDrives ? (byte)0 : hob ? s.HobLbaHigh : s.LbaHigh;
            case DeviceRegister:
                return NoDrives ? (byte)0 : s.Device;
            default:
                // Reading status acknowledges the interrupt (ATA-6 7.15: INTRQ is cleared by a status read).
                byte status = ReadStatusValue();
                LowerIrq();
                return status;
        }
    }

    private void WriteRegister(int register, byte value)
    {
        if (register == StatusCommandRegister)
        {
            // Writing the command register clears a pending interrupt (ATA-6 5.2.9), even when the command is refused.
            LowerIrq();
            ExecuteCommand(value);
            return;
        }
        if (register == DataRegister || (_units[_unit].Status & (StatusBsy | StatusDrq)) != 0)
        {
            // Byte writes to the data port move nothing; the task file is frozen while BSY or DRQ (ATA-6 7.1).
            return;
        }
        // A write to any command block register clears HOB (ATA-6 7.9).
        _control &= unchecked((byte)~ControlHob);
        foreach (Unit u in _units)
        {
            // Both devices latch the task file; the previous value moves to the high-order byte (48-bit FIFO, 6.20).
            switch (register)
            {
                case ErrorFeaturesRegister:
                    u.HobFeature = u.Feature;
                    u.Feature = value;
                    break;
                case SectorCountRegister:
                    u.HobSectorCount = (byte)u.SectorCount;
                    u.SectorCount = value;
                    break;
                case LbaLowRegister:
                    u.HobLbaLow = u.LbaLow;
                    u.LbaLow = value;
                    break;
                case LbaMidRegister:
                    u.HobLbaMid = u.LbaMid;
                    u.LbaMid = value;
                    break;
                case LbaHighRegister:
                    u.HobLbaHigh = u.LbaHigh;
                    u.LbaHigh = value;
                    break;
                default:
                    u.Device = (byte)(value | DeviceObsolete);
                    break;
            }
        }
        if (register == DeviceRegister)
        {
            _unit = (value & DeviceDev) != 0 ? 1 : 0;
        }
    }

    /// <summary>PIO data in: allowed only while DRQ is set for a device-to-host block; otherwise zero, no progress.</summary>
    private uint ReadData(int size)
    {
        Unit s = _units[_unit];
        if ((s.Status & StatusDrq) == 0 || !_pioToHost || _pioPosition + size > _pioEnd)
        {
            return 0;
        }
        uint value = size == 4
            ? BinaryPrimitives.ReadUInt32LittleEndian(_pio.AsSpan(_pioPosition))
            : BinaryPrimitives.ReadUInt16LittleEndian(_pio.AsSpan(_pioPosition));
        _pioPosition += size;
        if (_pioPosition >= _pioEnd)
        {
            s.Status &= unchecked((byte)~StatusDrq);
            EndTransfer(s);
        }
        return value;
    }

    /// <summary>PIO data out: ignored unless DRQ is set for a host-to-device block.</summary>
    private void WriteData(int size, uint value)
    {
        Unit s = _units[_unit];
        if ((s.Status & StatusDrq) == 0 || _pioToHost || _pioPosition + size > _pioEnd)
        {
            return;
        }
        if (size == 4)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_pio.AsSpan(_pioPosition), value);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(_pio.AsSpan(_pioPosition), (ushort)value);
        }
        _pioPosition += size;
        if (_pioPosition >= _pioEnd)
        {
            s.Status &= unchecked((byte)~StatusDrq);
            EndTransfer(s);
        }
    }

    private void EndTransfer(Unit s)
    {
        AtaDrive? drive = _drives[_unit];
        switch (_pioEndAction)
        {
            case AtaTransferEnd.SectorRead when drive is not null:
                SectorRead(s, drive);
                break;
            case AtaTransferEnd.SectorWrite when drive is not null:
                SectorWrite(s, drive);
                break;
            default:
                TransferStop(s);
                break;
        }
    }

    /// <summary>Opens a PIO data block of <paramref name="size"/> bytes of <see cref="_pio"/> and sets DRQ.</summary>
    private void StartTransfer(Unit s, int size, AtaTransferEnd end, bool toHost)
    {
        _pioPosition = 0;
        _pioEnd = size;
        _pioEndAction = end;
        _pioToHost = toHost;
        if ((s.Status & StatusErr) == 0)
        {
            s.Status |= StatusDrq;
        }
    }

    private void TransferStop(Unit s)
    {
        _pioPosition = 0;
        _pioEnd = 0;
        _pioEndAction = AtaTransferEnd.Stop;
        _pioToHost = true;
        s.Status &= unchecked((byte)~StatusDrq);
    }

    /// <summary>INTRQ, unless the host masked it with nIEN; the bus-master status records it either way it fires.</summary>
    private void RaiseIrq()
    {
        if ((_control & ControlNien) != 0)
        {
            return;
        }
        Dma.NoteInterrupt();
        _irq.Raise();
    }

    private void LowerIrq() => _irq.Lower();

    /// <summary>Registers after a device reset (power-on values; the signature comes from <see cref="Diagnose"/>).</summary>
    private void ResetUnit(int unit)
    {
        Unit s = _units[unit];
        s.Feature = s.HobFeature = 0;
        s.Error = 0;
        s.SectorCount = 0;
        s.HobSectorCount = s.LbaLow = s.HobLbaLow = s.LbaMid = s.HobLbaMid = s.LbaHigh = s.HobLbaHigh = 0;
        s.Device = (byte)(DeviceObsolete | (s.Device & DeviceDev));
        s.Status = StatusDrdy | StatusDsc;
        s.Lba48 = false;
        s.MultipleSectors = AtaDrive.MaxMultipleSectors;
    }

    /// <summary>
    /// The reset/diagnostic signature (ATA-6 9.12): sector count and LBA low 1, LBA mid/high 0 for an ATA device
    /// (an absent position reads all-ones there), device register cleared.
    /// </summary>
    private void SetSignature(Unit s, int unit)
    {
        s.Device = (byte)(DeviceObsolete | (s.Device & DeviceDev));
        s.SectorCount = 1;
        s.LbaLow = 1;
        byte cylinder = _drives[unit] is null ? (byte)0xFF : (byte)0;
        s.LbaMid = cylinder;
        s.LbaHigh = cylinder;
    }

    /// <summary>EXECUTE DEVICE DIAGNOSTIC's outcome: signature, "device 0 passed" (error 01h), ready.</summary>
    private void Diagnose(Unit s, int unit)
    {
        SetSignature(s, unit);
        s.Status = StatusDrdy | StatusDsc;
        s.Error = 0x01;
    }

    private void PowerOnUnit(int unit)
    {
        Unit s = _units[unit];
        AtaDrive? drive = _drives[unit];
        s.Device = DeviceObsolete;
        ResetUnit(unit);
        SetSignature(s, unit);
        s.Heads = drive?.Heads ?? 0;
        s.SectorsPerTrack = drive?.SectorsPerTrack ?? 0;
        s.WriteCache = drive?.WriteCacheAtPowerOn ?? false;
        s.IdentifySet = false;
        Array.Clear(s.Identify);
    }

    /// <summary>Power-on reset of the channel: both positions, transfers, bus-master registers, interrupt low.</summary>
    public void Reset()
    {
        _unit = 0;
        _control = 0;
        PowerOnUnit(0);
        PowerOnUnit(1);
        TransferStop(_units[0]);
        _requestSectors = 0;
        _dmaCommand = AtaDmaCommand.None;
        _dmaPending = false;
        Dma.Restore(BusMasterDmaState.PowerOn);
        LowerIrq();
    }

    public AtaChannelState Save() => new(
        _unit, _control, _irq.Level, SaveUnit(_units[0]), SaveUnit(_units[1]),
        _pio.AsSpan(0, _pioEnd).ToArray(), _pioPosition, _pioToHost, _pioEndAction, _requestSectors,
        _dmaCommand, _dmaPending, Dma.Save());

    /// <summary>Loads <paramref name="state"/>, bounding whatever could index buffers, and re-drives INTRQ.</summary>
    public void Restore(AtaChannelState state)
    {
        _unit = state.Unit & 1;
        _control = state.DeviceControl;
        RestoreUnit(_units[0], state.Master);
        RestoreUnit(_units[1], state.Slave);
        _pioEnd = Math.Min(state.PioData.Length, _pio.Length);
        state.PioData.AsSpan(0, _pioEnd).CopyTo(_pio);
        _pioPosition = Math.Clamp(state.PioPosition, 0, _pioEnd);
        _pioToHost = state.PioToHost;
        _pioEndAction = state.PioEnd;
        _requestSectors = Math.Clamp(state.RequestSectors, 0, AtaDrive.MaxMultipleSectors);
        _dmaCommand = state.DmaCommand;
        _dmaPending = state.DmaPending;
        Dma.Restore(state.BusMaster);
        _irq.Set(state.IrqLevel);
    }

    private static AtaDriveState SaveUnit(Unit s) => new(
        s.Feature, s.HobFeature, s.SectorCount, s.HobSectorCount, s.LbaLow, s.HobLbaLow, s.LbaMid, s.HobLbaMid,
        s.LbaHigh, s.HobLbaHigh, s.Device, s.Status, s.Error, s.Lba48, s.MultipleSectors, s.Heads, s.SectorsPerTrack,
        s.WriteCache, s.IdentifySet, (byte[])s.Identify.Clone());

    private static void RestoreUnit(Unit s, AtaDriveState state)
    {
        s.Feature = state.Feature;
        s.HobFeature = state.HobFeature;
        s.SectorCount = Math.Clamp(state.SectorCount, 0, 65536);
        s.HobSectorCount = state.HobSectorCount;
        s.LbaLow = state.LbaLow;
        s.HobLbaLow = state.HobLbaLow;
        s.LbaMid = state.LbaMid;
        s.HobLbaMid = state.HobLbaMid;
        s.LbaHigh = state.LbaHigh;
        s.HobLbaHigh = state.HobLbaHigh;
        s.Device = state.Device;
        s.Status = state.Status;
        s.Error = state.Error;
        s.Lba48 = state.Lba48;
        s.MultipleSectors = Math.Clamp(state.MultipleSectors, 0, AtaDrive.MaxMultipleSectors);
        s.Heads = state.Heads;
        s.SectorsPerTrack = state.SectorsPerTrack;
        s.WriteCache = state.WriteCache;
        s.IdentifySet = state.IdentifySet;
        Array.Clear(s.Identify);
        state.Identify.AsSpan(0, Math.Min(state.Identify.Length, s.Identify.Length)).CopyTo(s.Identify);
    }

    /// <summary>The live registers of one device position.</summary>
    private sealed class Unit
    {
        public byte Feature;
        public byte HobFeature;
        public int SectorCount;
        public byte HobSectorCount;
        public byte LbaLow;
        public byte HobLbaLow;
        public byte LbaMid;
        public byte HobLbaMid;
        public byte LbaHigh;
        public byte HobLbaHigh;
        public byte Device;
        public byte Status;
        public byte Error;
        public bool Lba48;
        public int MultipleSectors;
        public int Heads;
        public int SectorsPerTrack;
        public bool WriteCache;
        public bool IdentifySet;
        public readonly byte[] Identify = new byte[SectorSize];
    }
}
