using System.Buffers.Binary;
using Colo.Block;

namespace Colo.Devices.Ide;

/// <summary>The ATA command set of a hard disk (ATA/ATAPI-6 section 8) and its PIO and DMA data protocols (section 9).</summary>
public sealed partial class AtaChannel
{
    // Command codes (ATA-6 table 25 and ATA8-ACS for DATA SET MANAGEMENT).
    public const byte CmdDataSetManagement = 0x06;
    public const byte CmdDeviceReset = 0x08;
    public const byte CmdRecalibrate = 0x10;
    public const byte CmdReadSectors = 0x20;
    public const byte CmdReadSectorsNoRetry = 0x21;
    public const byte CmdReadSectorsExt = 0x24;
    public const byte CmdReadDmaExt = 0x25;
    public const byte CmdReadNativeMaxExt = 0x27;
    public const byte CmdReadMultipleExt = 0x29;
    public const byte CmdWriteSectors = 0x30;
    public const byte CmdWriteSectorsNoRetry = 0x31;
    public const byte CmdWriteSectorsExt = 0x34;
    public const byte CmdWriteDmaExt = 0x35;
    public const byte CmdWriteMultipleExt = 0x39;
    public const byte CmdWriteVerify = 0x3C;
    public const byte CmdReadVerify = 0x40;
    public const byte CmdReadVerifyNoRetry = 0x41;
    public const byte CmdReadVerifyExt = 0x42;
    public const byte CmdSeek = 0x70;
    public const byte CmdExecuteDiagnostic = 0x90;
    public const byte CmdInitializeParameters = 0x91;
    public const byte CmdReadMultiple = 0xC4;
    public const byte CmdWriteMultiple = 0xC5;
    public const byte CmdSetMultipleMode = 0xC6;
    public const byte CmdReadDma = 0xC8;
    public const byte CmdReadDmaNoRetry = 0xC9;
    public const byte CmdWriteDma = 0xCA;
    public const byte CmdWriteDmaNoRetry = 0xCB;
    public const byte CmdStandbyImmediate = 0xE0;
    public const byte CmdIdleImmediate = 0xE1;
    public const byte CmdStandby = 0xE2;
    public const byte CmdIdle = 0xE3;
    public const byte CmdCheckPowerMode = 0xE5;
    public const byte CmdFlushCache = 0xE7;
    public const byte CmdFlushCacheExt = 0xEA;
    public const byte CmdIdentifyDevice = 0xEC;
    public const byte CmdSetFeatures = 0xEF;
    public const byte CmdReadNativeMax = 0xF8;

    // SET FEATURES subcommands (ATA-6 8.37, table 46).
    public const byte FeatureEnableWriteCache = 0x02;
    public const byte FeatureSetTransferMode = 0x03;
    public const byte FeatureDisableWriteCache = 0x82;

    /// <summary>DATA SET MANAGEMENT feature bit 0: TRIM (ACS-2 7.10).</summary>
    public const byte DsmTrim = 0x01;

    /// <summary>
    /// Runs a command written to the command register (ATA-6 5.2.9). A command for an absent slave is ignored; one
    /// arriving while BSY or DRQ is set is ignored too (only DEVICE RESET may interrupt, and it is packet-only).
    /// Unknown commands, and those a hard disk does not take, abort (error ABRT, status ERR).
    /// </summary>
    private void ExecuteCommand(byte command)
    {
        Unit s = _units[_unit];
        AtaDrive? drive = _drives[_unit];
        if (_unit == 1 && drive is null)
        {
            return;
        }
        if ((s.Status & (StatusBsy | StatusDrq)) != 0)
        {
            return;
        }
        if (!IsHardDiskCommand(command))
        {
            Abort(s);
            RaiseIrq();
            return;
        }
        s.Status = StatusDrdy | StatusBsy;
        s.Error = 0;
        if (Dispatch(command, s, drive))
        {
            s.Status &= unchecked((byte)~StatusBsy);
            if (SetsSeekComplete(command) && s.Error == 0)
            {
                s.Status |= StatusDsc;
            }
            RaiseIrq();
        }
    }

    private static bool IsHardDiskCommand(byte command) => command switch
    {
        CmdDataSetManagement or CmdRecalibrate
            or CmdReadSectors or CmdReadSectorsNoRetry or CmdReadSectorsExt or CmdReadDmaExt or CmdReadNativeMaxExt
            or CmdReadMultipleExt or CmdWriteSectors or CmdWriteSectorsNoRetry or CmdWriteSectorsExt
            or CmdWriteDmaExt or CmdWriteMultipleExt or CmdWriteVerify or CmdReadVerify or CmdReadVerifyNoRetry
            or CmdReadVerifyExt or CmdSeek or CmdExecuteDiagnostic or CmdInitializeParameters or CmdReadMultiple
            or CmdWriteMultiple or CmdSetMultipleMode or CmdReadDma or CmdReadDmaNoRetry or CmdWriteDma
            or CmdWriteDmaNoRetry or CmdStandbyImmediate or CmdIdleImmediate or CmdStandby or CmdIdle
            or CmdCheckPowerMode or CmdFlushCache or CmdFlushCacheExt or CmdIdentifyDevice or CmdSetFeatures
            or CmdReadNativeMax => true,
        _ => false,
    };

    /// <summary>
    /// Commands that report DSC with their completion, as QEMU 7.2 does (the power-management commands leave it
    /// clear: status 40h after STANDBY/IDLE).
    /// </summary>
    private static bool SetsSeekComplete(byte command) => command is CmdRecalibrate or CmdReadNativeMaxExt
        or CmdReadVerify or CmdReadVerifyNoRetry or CmdReadVerifyExt or CmdSeek or CmdInitializeParameters
        or CmdSetMultipleMode or CmdCheckPowerMode or CmdSetFeatures or CmdReadNativeMax;

    /// <summary>Starts a command; true when it completed at once (the caller clears BSY and interrupts).</summary>
    private bool Dispatch(byte command, Unit s, AtaDrive? drive)
    {
        switch (command)
        {
            case CmdReadSectors or CmdReadSectorsNoRetry or CmdReadSectorsExt:
                if (drive is null)
                {
                    Abort(s);
                    return true;
                }
                WidenSectorCount(s, command == CmdReadSectorsExt);
                _requestSectors = 1;
                SectorRead(s, drive);
                return false;

            case CmdReadMultiple or CmdReadMultipleExt:
                if (drive is null || s.MultipleSectors == 0)
                {
                    Abort(s);
                    return true;
                }
                WidenSectorCount(s, command == CmdReadMultipleExt);
                _requestSectors = s.MultipleSectors;
                SectorRead(s, drive);
                return false;

            case CmdWriteSectors or CmdWriteSectorsNoRetry or CmdWriteSectorsExt or CmdWriteVerify:
                if (drive is null)
                {
                    Abort(s);
                    return true;
                }
                WidenSectorCount(s, command == CmdWriteSectorsExt);
                _requestSectors = 1;
                // The first DRQ block is requested without an interrupt (ATA-6 9.8, PIO data-out).
                s.Status = StatusDrdy | StatusDsc;
                StartTransfer(s, SectorSize, AtaTransferEnd.SectorWrite, toHost: false);
                return false;

            case CmdWriteMultiple or CmdWriteMultipleExt:
                if (drive is null || s.MultipleSectors == 0)
                {
                    Abort(s);
                    return true;
                }
                WidenSectorCount(s, command == CmdWriteMultipleExt);
                _requestSectors = s.MultipleSectors;
                s.Status = StatusDrdy | StatusDsc;
                StartTransfer(s, Math.Min(s.SectorCount, _requestSectors) * SectorSize, AtaTransferEnd.SectorWrite, toHost: false);
                return false;

            case CmdReadDma or CmdReadDmaNoRetry or CmdReadDmaExt:
                return StartDmaCommand(s, drive, command == CmdReadDmaExt, AtaDmaCommand.Read);

            case CmdWriteDma or CmdWriteDmaNoRetry or CmdWriteDmaExt:
                return StartDmaCommand(s, drive, command == CmdWriteDmaExt, AtaDmaCommand.Write);

            case CmdDataSetManagement:
                // TRIM is the only DATA SET MANAGEMENT function; its range list arrives by DMA (ACS-2 7.10.3).
                if (drive is null || s.Feature != DsmTrim)
                {
                    Abort(s);
                    return true;
                }
                StartDma(s, AtaDmaCommand.Trim);
                return false;

            case CmdReadVerify or CmdReadVerifyNoRetry or CmdReadVerifyExt:
                // Verification reads nothing back; QEMU does not even range-check it.
                WidenSectorCount(s, command == CmdReadVerifyExt);
                return true;

            case CmdSeek or CmdRecalibrate or CmdStandbyImmediate or CmdIdleImmediate or CmdStandby or CmdIdle:
                // No heads to move and no spindle to stop: these complete at once.
                return true;

            case CmdCheckPowerMode:
                // Sector count FFh: active or idle (ATA-6 8.6).
                s.SectorCount = 0xFF;
                return true;

            case CmdExecuteDiagnostic:
                Diagnose(s, _unit);
                return true;

            case CmdInitializeParameters:
                if (drive is null)
                {
                    Abort(s);
                    return true;
                }
                // The CHS translation takes the heads from the device register and sectors per track from the
                // sector count (ATA-6 8.16); later CHS-addressed commands use it.
                s.Heads = (s.Device & DeviceHead) + 1;
                s.SectorsPerTrack = s.SectorCount;
                return true;

            case CmdSetMultipleMode:
                return SetMultipleMode(s);

            case CmdFlushCache or CmdFlushCacheExt:
                Flush(s, drive);
                return false;

            case CmdIdentifyDevice:
                if (drive is null)
                {
                    Abort(s);
                    return true;
                }
                Identify(s, drive);
                s.Status = StatusDrdy | StatusDsc;
                StartTransfer(s, SectorSize, AtaTransferEnd.Stop, toHost: true);
                RaiseIrq();
                return false;

            case CmdSetFeatures:
                return SetFeatures(s, drive);

            case CmdReadNativeMax or CmdReadNativeMaxExt:
                if (drive is null || drive.SectorCount == 0)
                {
                    Abort(s);
                    return true;
                }
                WidenSectorCount(s, command == CmdReadNativeMaxExt);
                SetSector(s, drive.SectorCount - 1);
                return true;

            default:
                Abort(s);
                return true;
        }
    }

    /// <summary>
    /// Fixes the sector count of a data command: 0 means 256 sectors (28-bit) or 65536 (48-bit, whose count is the
    /// high and low bytes of the register FIFO) (ATA-6 8.x "Inputs").
    /// </summary>
    private static void WidenSectorCount(Unit s, bool lba48)
    {
        s.Lba48 = lba48;
        int low = s.SectorCount & 0xFF;
        if (!lba48)
        {
            s.SectorCount = low == 0 ? 256 : low;
        }
        else
        {
            int count = (s.HobSectorCount << 8) | low;
            s.SectorCount = count == 0 ? 65536 : count;
        }
    }

    /// <summary>The address the task file names: LBA48, LBA28 or CHS through the current translation (ATA-6 6.2).</summary>
    private static long GetSector(Unit s)
    {
        if ((s.Device & DeviceLba) != 0)
        {
            if (s.Lba48)
            {
                return ((long)s.HobLbaHigh << 40) | ((long)s.HobLbaMid << 32) | ((long)s.HobLbaLow << 24)
                    | ((long)s.LbaHigh << 16) | ((long)s.LbaMid << 8) | s.LbaLow;
            }
            return ((long)(s.Device & DeviceHead) << 24) | ((long)s.LbaHigh << 16) | ((long)s.LbaMid << 8) | s.LbaLow;
        }
        long cylinder = (s.LbaHigh << 8) | s.LbaMid;
        // Sector numbers start at 1; sector 0 gives -1, which the range check refuses.
        return (((cylinder * s.Heads) + (s.Device & DeviceHead)) * s.SectorsPerTrack) + (s.LbaLow - 1);
    }

    /// <summary>Writes <paramref name="sector"/> back to the task file in the addressing mode in use.</summary>
    private static void SetSector(Unit s, long sector)
    {
        if ((s.Device & DeviceLba) != 0)
        {
            if (s.Lba48)
            {
                s.LbaLow = (byte)sector;
                s.LbaMid = (byte)(sector >> 8);
                s.LbaHigh = (byte)(sector >> 16);
                s.HobLbaLow = (byte)(sector >> 24);
                s.HobLbaMid = (byte)(sector >> 32);
                s.HobLbaHigh = (byte)(sector >> 40);
            }
            else
            {
                s.Device = (byte)((s.Device & ~DeviceHead) | (int)((sector >> 24) & DeviceHead));
                s.LbaHigh = (byte)(sector >> 16);
                s.LbaMid = (byte)(sector >> 8);
                s.LbaLow = (byte)sector;
            }
            return;
        }
        long perCylinder = (long)s.Heads * s.SectorsPerTrack;
        if (perCylinder <= 0 || sector < 0)
        {
            // A guest-chosen zero geometry has no CHS form for the address: leave the registers alone.
            return;
        }
        long cylinder = sector / perCylinder;
        long within = sector % perCylinder;
        s.LbaHigh = (byte)(cylinder >> 8);
        s.LbaMid = (byte)cylinder;
        s.Device = (byte)((s.Device & ~DeviceHead) | (int)((within / s.SectorsPerTrack) & DeviceHead));
        s.LbaLow = (byte)((within % s.SectorsPerTrack) + 1);
    }

    private static bool InRange(AtaDrive drive, long sector, long count)
    {
        long total = drive.SectorCount;
        return sector >= 0 && count >= 0 && sector <= total && count <= total - sector;
    }

    /// <summary>Command aborted: ABRT in the error register, ERR in status, any transfer dropped (ATA-6 7.11).</summary>
    private void Abort(Unit s)
    {
        TransferStop(s);
        s.Status = StatusDrdy | StatusErr;
        s.Error = ErrorAbrt;
    }

    /// <summary>
    /// A failed or out-of-range read or write: QEMU (default error policy "report") aborts the command with ABRT
    /// rather than reporting IDNF or UNC, and interrupts.
    /// </summary>
    private void IoError(Unit s)
    {
        Abort(s);
        RaiseIrq();
    }

    // ---- PIO read: one DRQ block per interrupt (ATA-6 9.7, PIO data-in) ----

    private void SectorRead(Unit s, AtaDrive drive)
    {
        s.Status = StatusDrdy | StatusDsc;
        s.Error = 0;
        int count = s.SectorCount;
        if (count == 0)
        {
            TransferStop(s);
            return;
        }
        s.Status |= StatusBsy;
        int n = Math.Min(count, _requestSectors);
        long sector = GetSector(s);
        if (!InRange(drive, sector, n))
        {
            IoError(s);
            return;
        }
        bool ok = TryRead(drive, sector * SectorSize, _pio.AsSpan(0, n * SectorSize));
        SectorReadDone(s, ok);
    }

    /// <summary>Completion of a PIO read block: advance the task file, offer the block (DRQ) and interrupt.</summary>
    private void SectorReadDone(Unit s, bool ok)
    {
        s.Status &= unchecked((byte)~StatusBsy);
        if (!ok)
        {
            IoError(s);
            return;
        }
        int n = Math.Min(s.SectorCount, _requestSectors);
        SetSector(s, GetSector(s) + n);
        s.SectorCount -= n;
        StartTransfer(s, n * SectorSize, AtaTransferEnd.SectorRead, toHost: true);
        RaiseIrq();
    }

    // ---- PIO write: the host fills a DRQ block, the device writes it and interrupts (ATA-6 9.8) ----

    private void SectorWrite(Unit s, AtaDrive drive)
    {
        s.Status = StatusDrdy | StatusDsc | StatusBsy;
        int n = Math.Min(s.SectorCount, _requestSectors);
        long sector = GetSector(s);
        if (!InRange(drive, sector, n))
        {
            IoError(s);
            return;
        }
        bool ok = TryWrite(s, drive, sector * SectorSize, _pio.AsSpan(0, n * SectorSize));
        SectorWriteDone(s, ok);
    }

    private void SectorWriteDone(Unit s, bool ok)
    {
        s.Status &= unchecked((byte)~StatusBsy);
        if (!ok)
        {
            IoError(s);
            return;
        }
        int n = Math.Min(s.SectorCount, _requestSectors);
        s.SectorCount -= n;
        SetSector(s, GetSector(s) + n);
        if (s.SectorCount == 0)
        {
            TransferStop(s);
        }
        else
        {
            int next = Math.Min(s.SectorCount, _requestSectors);
            StartTransfer(s, next * SectorSize, AtaTransferEnd.SectorWrite, toHost: false);
        }
        RaiseIrq();
    }

    // ---- Other commands ----

    private bool SetMultipleMode(Unit s)
    {
        // A count of 0 turns multiple mode off; otherwise it must be a power of two no larger than IDENTIFY word 47.
        int count = s.SectorCount & 0xFF;
        if (count != 0 && (count > AtaDrive.MaxMultipleSectors || (count & (count - 1)) != 0))
        {
            Abort(s);
        }
        else
        {
            s.MultipleSectors = count;
        }
        return true;
    }

    private void Identify(Unit s, AtaDrive drive)
    {
        // The block is built once and then kept, so SET FEATURES edits (transfer mode, write cache) stay visible.
        if (!s.IdentifySet)
        {
            drive.BuildIdentify(s.Identify, s.MultipleSectors, s.WriteCache);
            s.IdentifySet = true;
        }
        else
        {
            drive.UpdateIdentifySize(s.Identify);
        }
        s.Identify.CopyTo(_pio, 0);
    }

    private bool SetFeatures(Unit s, AtaDrive? drive)
    {
        if (drive is null)
        {
            Abort(s);
            return true;
        }
        switch (s.Feature)
        {
            case FeatureEnableWriteCache:
                s.WriteCache = true;
                SetIdentifyBit(s, 85, 1 << 5, true);
                return true;
            case FeatureDisableWriteCache:
                // Turning the cache off writes back what it holds first.
                s.WriteCache = false;
                SetIdentifyBit(s, 85, 1 << 5, false);
                Flush(s, drive);
                return false;
            case 0xCC or 0x66 or 0xAA or 0x55 or 0x05 or 0x85 or 0x69 or 0x67 or 0x96 or 0x9A or 0x42 or 0xC2:
                // Power-on defaults, read look-ahead, APM, acoustic management: accepted, nothing to change.
                return true;
            case FeatureSetTransferMode:
                return SetTransferMode(s);
            default:
                Abort(s);
                return true;
        }
    }

    /// <summary>
    /// SET FEATURES 03h (ATA-6 8.37.10): sector count bits 7:3 pick the mode family, 2:0 the mode. The selected-mode
    /// bits of IDENTIFY words 62 (single-word DMA), 63 (multiword DMA) and 88 (Ultra DMA) follow; PIO clears them all.
    /// </summary>
    private bool SetTransferMode(Unit s)
    {
        int mode = s.SectorCount & 0x07;
        ushort sw = 0x07, mw = 0x07, udma = 0x3F;
        switch ((s.SectorCount & 0xFF) >> 3)
        {
            case 0x00 or 0x01:
                break;
            case 0x02:
                sw |= (ushort)(1 << (mode + 8));
                break;
            case 0x04:
                mw |= (ushort)(1 << (mode + 8));
                break;
            case 0x08:
                udma |= (ushort)(1 << (mode + 8));
                break;
            default:
                Abort(s);
                return true;
        }
        AtaDrive.Put(s.Identify, 62, sw);
        AtaDrive.Put(s.Identify, 63, mw);
        AtaDrive.Put(s.Identify, 88, udma);
        return true;
    }

    private static void SetIdentifyBit(Unit s, int word, int bit, bool on)
    {
        ushort value = AtaDrive.Get(s.Identify, word);
        AtaDrive.Put(s.Identify, word, (ushort)(on ? value | bit : value & ~bit));
    }

    private void Flush(Unit s, AtaDrive? drive)
    {
        if (drive is null)
        {
            FlushDone(s, ok: true);
            return;
        }
        s.Status |= StatusBsy;
        FlushDone(s, TryFlush(drive));
    }

    private void FlushDone(Unit s, bool ok)
    {
        if (!ok)
        {
            IoError(s);
            return;
        }
        s.Status = StatusDrdy | StatusDsc;
        RaiseIrq();
    }

    // ---- DMA (ATA-6 9.10) through the bus-master engine ----

    private bool StartDmaCommand(Unit s, AtaDrive? drive, bool lba48, AtaDmaCommand command)
    {
        if (drive is null)
        {
            Abort(s);
            return true;
        }
        WidenSectorCount(s, lba48);
        StartDma(s, command);
        return false;
    }

    /// <summary>The device is ready to transfer (DRQ); data moves once the bus-master engine is started too.</summary>
    private void StartDma(Unit s, AtaDmaCommand command)
    {
        s.Status = StatusDrdy | StatusDsc | StatusDrq;
        _dmaCommand = command;
        _dmaPending = true;
        if (Dma.Active)
        {
            RunDma();
        }
    }

    private void OnDmaStarted()
    {
        if (_dmaPending)
        {
            RunDma();
        }
    }

    /// <summary>
    /// Moves the whole request between the block node and the regions of the descriptor table. As in QEMU: a table
    /// describing less than the request moves nothing and ends the command without an interrupt (the guest sees
    /// the engine go inactive); a longer table leaves the engine active after the interrupt (PIIX3 3.6.2).
    /// </summary>
    private void RunDma()
    {
        Unit s = _units[_unit];
        AtaDrive? drive = _drives[_unit];
        AtaDmaCommand command = _dmaCommand;
        long needed = (long)s.SectorCount * SectorSize;
        if (drive is null || needed == 0)
        {
            DmaDone(s, command, 0, ok: true, stayActive: false);
            return;
        }
        long described = Dma.TakeTable(out PrdCursor cursor);
        if (described < needed)
        {
            s.Status = StatusDrdy | StatusDsc;
            EndDma(stayActive: false);
            return;
        }
        bool stayActive = described > needed;
        long sector = GetSector(s);
        if (command != AtaDmaCommand.Trim && !InRange(drive, sector, s.SectorCount))
        {
            DmaError(s);
            return;
        }
        bool ok = command switch
        {
            AtaDmaCommand.Read => DmaToMemory(drive, sector * SectorSize, needed, ref cursor),
            AtaDmaCommand.Write => DmaFromMemory(s, drive, sector * SectorSize, needed, ref cursor),
            AtaDmaCommand.Trim => Trim(drive, needed, ref cursor),
            _ => false,
        };
        DmaDone(s, command, sector + s.SectorCount, ok, stayActive);
    }

    /// <summary>Completion of a DMA command: task file to the next sector, ready, interrupt, engine state.</summary>
    private void DmaDone(Unit s, AtaDmaCommand command, long nextSector, bool ok, bool stayActive)
    {
        if (!ok)
        {
            DmaError(s);
            return;
        }
        if (command is AtaDmaCommand.Read or AtaDmaCommand.Write)
        {
            SetSector(s, nextSector);
        }
        s.SectorCount = 0;
        s.Status = StatusDrdy | StatusDsc;
        RaiseIrq();
        EndDma(stayActive);
    }

    private void DmaError(Unit s)
    {
        Abort(s);
        EndDma(stayActive: false);
        RaiseIrq();
    }

    private void EndDma(bool stayActive)
    {
        _dmaPending = false;
        _dmaCommand = AtaDmaCommand.None;
        Dma.SetInactive(stayActive);
    }

    private bool DmaToMemory(AtaDrive drive, long offset, long length, ref PrdCursor cursor)
    {
        Span<byte> buffer = _dmaBuffer.AsSpan(0, DmaChunk);
        while (length > 0)
        {
            int n = (int)Math.Min(length, buffer.Length);
            if (!TryRead(drive, offset, buffer[..n]))
            {
                return false;
            }
            Dma.Scatter(ref cursor, buffer[..n]);
            offset += n;
            length -= n;
        }
        return true;
    }

    private bool DmaFromMemory(Unit s, AtaDrive drive, long offset, long length, ref PrdCursor cursor)
    {
        Span<byte> buffer = _dmaBuffer.AsSpan(0, DmaChunk);
        while (length > 0)
        {
            int n = (int)Math.Min(length, buffer.Length);
            Dma.Gather(ref cursor, buffer[..n]);
            if (!TryWrite(s, drive, offset, buffer[..n]))
            {
                return false;
            }
            offset += n;
            length -= n;
        }
        return true;
    }

    /// <summary>
    /// TRIM: the payload is a list of 8-byte range entries, LBA in bits 47:0 and a sector count in 63:48 (ACS-2
    /// 7.10.3.2); zero-count entries are padding. A range past the end aborts the command.
    /// </summary>
    private bool Trim(AtaDrive drive, long length, ref PrdCursor cursor)
    {
        Span<byte> buffer = _dmaBuffer.AsSpan(0, DmaChunk);
        while (length > 0)
        {
            int n = (int)Math.Min(length, buffer.Length);
            Dma.Gather(ref cursor, buffer[..n]);
            for (int at = 0; at + 8 <= n; at += 8)
            {
                ulong entry = BinaryPrimitives.ReadUInt64LittleEndian(buffer[at..]);
                long count = (long)(entry >> 48);
                long sector = (long)(entry & 0x0000_FFFF_FFFF_FFFF);
                if (count == 0)
                {
                    continue;
                }
                if (!InRange(drive, sector, count))
                {
                    return false;
                }
                if (drive.HonourDiscard && !TryDiscard(drive, sector * SectorSize, count * SectorSize))
                {
                    return false;
                }
            }
            length -= n;
        }
        return true;
    }

    // ---- Block layer calls: failures become guest-visible errors, never exceptions ----

    private static bool TryRead(AtaDrive drive, long offset, Span<byte> buffer)
    {
        try
        {
            drive.Node.Read(offset, buffer);
            return true;
        }
        catch (Exception e) when (e is BlockException or IOException)
        {
            return false;
        }
    }

    /// <summary>Writes; with the write cache off every write is made durable before it completes.</summary>
    private static bool TryWrite(Unit s, AtaDrive drive, long offset, ReadOnlySpan<byte> buffer)
    {
        try
        {
            drive.Node.Write(offset, buffer);
            if (!s.WriteCache && drive.HonourFlush)
            {
                drive.Node.Flush();
            }
            return true;
        }
        catch (Exception e) when (e is BlockException or IOException)
        {
            return false;
        }
    }

    private static bool TryFlush(AtaDrive drive)
    {
        if (!drive.HonourFlush)
        {
            return true;
        }
        try
        {
            drive.Node.Flush();
            return true;
        }
        catch (Exception e) when (e is BlockException or IOException)
        {
            return false;
        }
    }

    private static bool TryDiscard(AtaDrive drive, long offset, long length)
    {
        try
        {
            drive.Node.Discard(offset, length);
            return true;
        }
        catch (Exception e) when (e is BlockException or IOException)
        {
            return false;
        }
    }
}
