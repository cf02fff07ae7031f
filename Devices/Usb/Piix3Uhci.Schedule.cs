using System.Buffers.Binary;

namespace Colo.Devices.Usb;

/// <summary>Schedule processing of <see cref="Piix3Uhci"/>: one frame's walk of the frame list, QHs and TDs.</summary>
public sealed partial class Piix3Uhci
{
    // ---- Frame processing (§4) -------------------------------------------------------------------------------

    private void OnFrameTimer()
    {
        if ((_cmd & CmdRs) == 0)
        {
            return;
        }
        long now = _clock.NowNs;
        long due = now >= _nextFrameNs ? 1 + ((now - _nextFrameNs) / FrameNs) : 1;
        long processed = Math.Min(due, MaxCatchUpFrames);
        for (long i = 0; i < processed && (_cmd & CmdRs) != 0; i++)
        {
            RunFrame();
        }
        if ((_cmd & CmdRs) == 0)
        {
            return;
        }
        // Frames the host was too late to run still pass on the bus: FRNUM keeps real time.
        _frnum = (ushort)((_frnum + (int)((due - processed) & 0x7FF)) & 0x7FF);
        _nextFrameNs += due * FrameNs;
        _frameTimer.Modify(_nextFrameNs);
    }

    /// <summary>Runs one frame now, if the controller is running (the timer's work; also usable by tests).</summary>
    public void RunFrame()
    {
        if ((_cmd & CmdRs) == 0)
        {
            return;
        }
        ProcessSchedule();
        if ((_cmd & CmdRs) == 0)
        {
            return;
        }
        _frnum = (ushort)((_frnum + 1) & 0x7FF);
        UpdateIrq();
    }

    private void ProcessSchedule()
    {
        _frameAborted = false;
        Span<byte> word = stackalloc byte[4];
        if (!DmaRead(_flbase + ((uint)(_frnum & 0x3FF) * 4), word))
        {
            HostSystemError();
            return;
        }
        uint link = BinaryPrimitives.ReadUInt32LittleEndian(word);
        int visits = 0;
        int qhCount = 0;
        int progress = 0;
        int bytes = 0;
        uint qh = 0;
        uint qhHead = LinkTerminate;
        bool inQueue = false;
        Span<byte> td = stackalloc byte[16];
        Span<byte> qhBytes = stackalloc byte[8];
        while ((link & LinkTerminate) == 0 && !_frameAborted)
        {
            if (++visits > MaxLinksPerFrame || bytes >= MaxBytesPerFrame)
            {
                // A looping or oversized schedule ends the frame; the next frame starts afresh (§4: one frame's
                // worth of bus time).
                return;
            }
            uint address = link & ~0xFu;
            if ((link & LinkQh) != 0)
            {
                // Loop detection: meeting a QH again without any TD completing since means the rest of the
                // frame would only repeat itself (a bandwidth-reclamation loop, or a guest's corrupt list).
                int seen = Array.IndexOf(_qhSeen, address, 0, qhCount);
                if (seen >= 0)
                {
                    if (_qhSeenProgress[seen] == progress)
                    {
                        return;
                    }
                    _qhSeenProgress[seen] = progress;
                }
                else if (qhCount < MaxTrackedQhs)
                {
                    _qhSeen[qhCount] = address;
                    _qhSeenProgress[qhCount++] = progress;
                }
                if (!DmaRead(address, qhBytes))
                {
                    HostSystemError();
                    return;
                }
                qh = address;
                qhHead = BinaryPrimitives.ReadUInt32LittleEndian(qhBytes);
                uint element = BinaryPrimitives.ReadUInt32LittleEndian(qhBytes[4..]);
                // An empty queue passes on to the next QH; an element that is itself a QH is followed down (§3.3).
                inQueue = (element & (LinkTerminate | LinkQh)) == 0;
                link = (element & LinkTerminate) != 0 ? qhHead : element;
                continue;
            }

            if (!DmaRead(address, td))
            {
                HostSystemError();
                return;
            }
            uint tdLink = BinaryPrimitives.ReadUInt32LittleEndian(td);
            uint status = BinaryPrimitives.ReadUInt32LittleEndian(td[4..]);
            if ((status & TdActive) == 0)
            {
                // An inactive queue element halts its queue (the driver must fix it up); a free TD is skipped.
                link = inQueue ? qhHead : tdLink;
                inQueue = false;
                continue;
            }
            TdOutcome outcome = ExecuteTd(address, td, ref bytes);
            if ((_cmd & CmdSwDbg) != 0 && outcome != TdOutcome.Abort)
            {
                // Software debug mode: the controller stops after every transaction (§2.1.1 SWDBG). The queue
                // element still advances, so setting RS again continues with the next TD.
                AdvanceQueueIfDone(outcome, inQueue, qh, tdLink);
                Halt();
                return;
            }
            switch (outcome)
            {
                case TdOutcome.Abort:
                    return;
                case TdOutcome.Retry:
                    // Still active (NAK, or an error with retries left): try again next frame; move sideways.
                    link = inQueue ? qhHead : tdLink;
                    inQueue = false;
                    break;
                case TdOutcome.Done:
                    progress++;
                    if (inQueue)
                    {
                        // Advance the queue element to the next TD (§4.x queue advance), then either stay in the
                        // queue (depth first, Vf set) or go on to the next QH (breadth first).
                        Span<byte> el = word;
                        BinaryPrimitives.WriteUInt32LittleEndian(el, tdLink);
                        if (!DmaWrite(qh + 4, el))
                        {
                            HostSystemError();
                            return;
                        }
                        bool depth = (tdLink & (LinkDepth | LinkTerminate | LinkQh)) == LinkDepth;
                        link = depth ? tdLink : qhHead;
                        inQueue = depth;
                    }
                    else
                    {
                        link = tdLink;
                    }
                    break;
                default:
                    // Completed with an error, or a short packet with SPD: the queue stays on this TD so software
                    // can see where it stopped (§3.2.2 SPD); go on to the next QH.
                    progress++;
                    link = inQueue ? qhHead : tdLink;
                    inQueue = false;
                    break;
            }
        }
    }

    private void AdvanceQueueIfDone(TdOutcome outcome, bool inQueue, uint qh, uint tdLink)
    {
        if (outcome == TdOutcome.Done && inQueue)
        {
            Span<byte> el = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(el, tdLink);
            if (!DmaWrite(qh + 4, el))
            {
                HostSystemError();
            }
        }
    }

    private enum TdOutcome
    {
        /// <summary>Completed without error: advance.</summary>
        Done,
        /// <summary>Still active: NAK or retryable error.</summary>
        Retry,
        /// <summary>Completed but the queue must not advance (error, or short packet with SPD).</summary>
        Halted,
        /// <summary>The frame ends here (babble, process error, host system error).</summary>
        Abort,
    }

    private TdOutcome ExecuteTd(uint address, Span<byte> td, ref int bytes)
    {
        uint status = BinaryPrimitives.ReadUInt32LittleEndian(td[4..]);
        uint token = BinaryPrimitives.ReadUInt32LittleEndian(td[8..]);
        uint buffer = BinaryPrimitives.ReadUInt32LittleEndian(td[12..]);
        byte pidByte = (byte)token;
        int deviceAddress = (int)(token >> 8) & 0x7F;
        int endpoint = (int)(token >> 15) & 0xF;
        int maxLen = (int)((token >> 21) + 1) & 0x7FF;
        if (maxLen > MaxTdLength || (pidByte != (byte)UsbPid.In && pidByte != (byte)UsbPid.Out && pidByte != (byte)UsbPid.Setup))
        {
            // Corrupt TD: the controller halts with a process error, which cannot be masked (§2.1.2, §3.2.3).
            _sts |= StsProcessError;
            Halt();
            return TdOutcome.Abort;
        }
        var pid = (UsbPid)pidByte;
        Span<byte> data = _buffer.AsSpan(0, maxLen);
        if (pid != UsbPid.In && maxLen > 0 && !DmaRead(buffer, data))
        {
            HostSystemError();
            return TdOutcome.Abort;
        }
        UsbDevice? device = FindDevice(deviceAddress);
        int length = 0;
        UsbResult result = device is null ? UsbResult.NoResponse : device.HandlePacket(pid, endpoint, data, out length);
        // Bus time: the data sent either way (a handshake-only transaction still costs some).
        bytes += Math.Max(pid == UsbPid.In ? length : maxLen, 1);

        status &= ~(TdStatusBits & ~TdActive);
        bool iso = (status & TdIso) != 0;
        bool error = false;
        bool shortPacket = false;
        TdOutcome outcome;
        switch (result)
        {
            case UsbResult.Ack:
                if (length > maxLen)
                {
                    goto case UsbResult.Babble;
                }
                if (pid != UsbPid.In)
                {
                    // An acknowledged OUT or SETUP moved the whole packet.
                    length = maxLen;
                }
                if (pid == UsbPid.In && length > 0 && !DmaWrite(buffer, data[..length]))
                {
                    HostSystemError();
                    return TdOutcome.Abort;
                }
                status = (status & ~(TdActive | TdActLenMask)) | ((uint)(length - 1) & TdActLenMask);
                shortPacket = pid == UsbPid.In && length < maxLen;
                outcome = shortPacket && (status & TdShortPacketDetect) != 0 ? TdOutcome.Halted : TdOutcome.Done;
                break;
            case UsbResult.Nak:
                status |= TdNak;
                outcome = TdOutcome.Retry;
                break;
            case UsbResult.Stall:
                // STALL handshake: fatal for the TD, error counter untouched (§3.2.2 bit 22).
                status = (status & ~TdActive) | TdStalled;
                error = true;
                outcome = TdOutcome.Halted;
                break;
            case UsbResult.Babble:
                // Babble stalls the TD and ends the frame (§3.2.2 bit 20).
                status = (status & ~TdActive) | TdStalled | TdBabble;
                _sts |= StsError;
                if ((status & TdIoc) != 0)
                {
                    _sts |= StsUsbInt;
                    _causes |= CauseIoc;
                }
                WriteStatus(address, status);
                return TdOutcome.Abort;
            default:
                // No handshake: CRC/timeout, counted down by C_ERR; at zero the TD stalls (§3.2.2 bits 28:27).
                status |= TdCrcTimeout;
                uint errors = (status >> TdErrorShift) & 3;
                if (errors != 0)
                {
                    errors--;
                    status = (status & ~(3u << TdErrorShift)) | (errors << TdErrorShift);
                    if (errors == 0)
                    {
                        status = (status & ~TdActive) | TdStalled;
                        error = true;
                    }
                }
                outcome = error ? TdOutcome.Halted : TdOutcome.Retry;
                break;
        }
        if (iso && (status & TdActive) != 0)
        {
            // Isochronous TDs run once, whatever happened (§3.2.2 IOS).
            status &= ~TdActive;
            outcome = TdOutcome.Done;
        }
        if ((status & TdActive) == 0)
        {
            if ((status & TdIoc) != 0)
            {
                _sts |= StsUsbInt;
                _causes |= CauseIoc;
            }
            if (error)
            {
                _sts |= StsError;
            }
            if (shortPacket && (status & TdShortPacketDetect) != 0)
            {
                _sts |= StsUsbInt;
                _causes |= CauseShort;
            }
        }
        WriteStatus(address, status);
        return _frameAborted ? TdOutcome.Abort : outcome;
    }

    private void WriteStatus(uint address, uint status)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, status);
        if (!DmaWrite(address + 4, b))
        {
            HostSystemError();
        }
    }

    /// <summary>The device answering <paramref name="address"/>: only enabled, unsuspended ports carry traffic.</summary>
    private UsbDevice? FindDevice(int address)
    {
        for (int i = 0; i < PortCount; i++)
        {
            UsbDevice? d = _devices[i];
            if (d is not null && (_ports[i] & (PortEnable | PortSuspend | PortReset)) == PortEnable && d.Address == address)
            {
                return d;
            }
        }
        return null;
    }

    private void HostSystemError()
    {
        // A failed bus-master cycle (mastering disabled here) stops the schedule (§2.1.2 HSE).
        _sts |= StsHostSystemError;
        _frameAborted = true;
        Halt();
    }
}
