using Colo.Core.Chardev;
using Colo.Core.Irq;
using Colo.Core.Time;

namespace Colo.Devices.Char;

/// <summary>Saved 16550A state (vmstate section "serial", version 1).</summary>
/// <param name="Divisor">Divisor latch (DLM:DLL).</param>
/// <param name="RxFifo">Received bytes not yet read, oldest first (at most 16; 1 with FIFOs off).</param>
/// <param name="ThrInterruptPending">THRE interrupt pending (cleared by an IIR read naming it or a THR write).</param>
/// <param name="TimeoutPending">Character-timeout indication pending.</param>
public sealed record Serial16550State(
    ushort Divisor, byte Ier, byte Fcr, byte Lcr, byte Mcr, byte Lsr, byte Msr, byte Scr,
    byte[] RxFifo, bool ThrInterruptPending, bool TimeoutPending)
{
    public const string Section = "serial";
    public const int Version = 1;

    /// <summary>Datasheet reset values: LSR THRE|TEMT, everything else clear, divisor 12 (9600 baud) as QEMU.</summary>
    public static Serial16550State PowerOn { get; } =
        new(12, 0, 0, 0, 0, Serial16550.LsrThre | Serial16550.LsrTemt, 0, 0, [], false, false);

    public bool Equals(Serial16550State? other) =>
        other is not null && Divisor == other.Divisor && Ier == other.Ier && Fcr == other.Fcr && Lcr == other.Lcr
        && Mcr == other.Mcr && Lsr == other.Lsr && Msr == other.Msr && Scr == other.Scr
        && RxFifo.AsSpan().SequenceEqual(other.RxFifo) && ThrInterruptPending == other.ThrInterruptPending
        && TimeoutPending == other.TimeoutPending;

    public override int GetHashCode() => HashCode.Combine(Divisor, Ier, Lcr, Lsr, RxFifo.Length);
}

/// <summary>
/// National Semiconductor PC16550D (16550A) UART as QEMU's <c>serial-isa</c>: eight registers (the board maps
/// them at 0x3F8 for COM1) with the divisor latch behind LCR.DLAB, 16-byte receive FIFO with trigger levels,
/// the datasheet's interrupt priorities, and loopback. Transmission is instantaneous (no baud-rate timing): a
/// THR write goes straight to the chardev and THRE is set again. Received bytes arrive through
/// <see cref="ICharFrontend.Receive"/> on the main loop; with no flow control in the chardev contract,
/// bytes beyond the FIFO set the overrun error and are dropped. IRQ on <see cref="IrqLine"/>.
/// </summary>
public sealed class Serial16550 : ICharFrontend
{
    // Register offsets (datasheet Table II).
    public const int RbrThr = 0;
    public const int Ier = 1;
    public const int IirFcr = 2;
    public const int Lcr = 3;
    public const int Mcr = 4;
    public const int Lsr = 5;
    public const int Msr = 6;
    public const int Scr = 7;
    public const int RegionSize = 8;

    // IER.
    public const byte IerRda = 0x01;
    public const byte IerThre = 0x02;
    public const byte IerRls = 0x04;
    public const byte IerMs = 0x08;

    // IIR.
    public const byte IirNoInt = 0x01;
    public const byte IirRls = 0x06;
    public const byte IirRda = 0x04;
    public const byte IirCharTimeout = 0x0C;
    public const byte IirThre = 0x02;
    public const byte IirMs = 0x00;
    public const byte IirFifoEnabled = 0xC0;

    // FCR.
    public const byte FcrEnable = 0x01;
    public const byte FcrClearRx = 0x02;
    public const byte FcrClearTx = 0x04;
    private const byte FcrTriggerMask = 0xC0;

    // LCR.
    public const byte LcrDlab = 0x80;

    // MCR.
    public const byte McrDtr = 0x01;
    public const byte McrRts = 0x02;
    public const byte McrOut1 = 0x04;
    public const byte McrOut2 = 0x08;
    public const byte McrLoop = 0x10;

    // LSR.
    public const byte LsrDr = 0x01;
    public const byte LsrOe = 0x02;
    public const byte LsrPe = 0x04;
    public const byte LsrFe = 0x08;
    public const byte LsrBi = 0x10;
    public const byte LsrThre = 0x20;
    public const byte LsrTemt = 0x40;
    public const byte LsrFifoError = 0x80;
    private const byte LsrErrors = LsrOe | LsrPe | LsrFe | LsrBi;

    // MSR.
    public const byte MsrDcts = 0x01;
    public const byte MsrDdsr = 0x02;
    public const byte MsrTeri = 0x04;
    public const byte MsrDdcd = 0x08;
    public const byte MsrCts = 0x10;
    public const byte MsrDsr = 0x20;
    public const byte MsrRi = 0x40;
    public const byte MsrDcd = 0x80;
    private const byte MsrDeltas = 0x0F;

    public const int FifoSize = 16;

    private static readonly int[] TriggerLevels = [1, 4, 8, 14];

    private readonly IrqLine _irq;
    private readonly Chardev? _chardev;
    private readonly byte[] _rx = new byte[FifoSize];
    private int _rxHead;
    private int _rxCount;
    private ushort _divisor;
    private byte _ier;
    private byte _fcr;
    private byte _lcr;
    private byte _mcr;
    private byte _lsr;
    private byte _msr;
    private byte _scr;
    private bool _thrIpending;
    private bool _timeoutPending;
    private readonly IClock? _clock;
    private readonly ClockTimer? _timeoutTimer;
    private Action? _receiveSpaceHandler;

    /// <param name="irq">The UART's interrupt output (IRQ4 for COM1 on the PC).</param>
    /// <param name="chardev">Where transmitted bytes go; null discards them. The board attaches this frontend to it.</param>
    /// <param name="clock">Times the character-timeout interrupt (four character times without FIFO activity);
    /// without one the caller signals it through <see cref="SignalCharacterTimeout"/>.</param>
    public Serial16550(IrqLine irq, Chardev? chardev, IClock? clock = null)
    {
        _irq = irq;
        _chardev = chardev;
        _clock = clock;
        if (clock is not null)
        {
            _timeoutTimer = new ClockTimer(clock, SignalCharacterTimeout);
        }
        Reset();
    }

    /// <inheritdoc/>
    public void SetReceiveSpaceHandler(Action? handler) => _receiveSpaceHandler = handler;

    /// <summary>Nanoseconds one character takes on the line at the programmed divisor and frame format.</summary>
    private long CharacterTimeNs()
    {
        int bits = 1 + 5 + (_lcr & 3) + ((_lcr & 0x08) != 0 ? 1 : 0) + ((_lcr & 0x04) != 0 ? 2 : 1);
        long divisor = _divisor == 0 ? 1 : _divisor;
        return bits * divisor * 1_000_000_000L / 115_200;
    }

    /// <summary>Re-arms the character timeout: four character times after the last FIFO activity.</summary>
    private void RestartCharacterTimeout()
    {
        if (_timeoutTimer is null || _clock is null)
        {
            return;
        }
        if (_rxCount > 0 && (_fcr & FcrEnable) != 0)
        {
            _timeoutTimer.Modify(_clock.NowNs + 4 * CharacterTimeNs());
        }
        else
        {
            _timeoutTimer.Cancel();
        }
    }

    public uint Read(int offset, int size)
    {
        _ = size;
        switch (offset)
        {
            case RbrThr:
                if ((_lcr & LcrDlab) != 0)
                {
                    return (byte)_divisor;
                }
                return ReadRbr();
            case Ier:
                return (_lcr & LcrDlab) != 0 ? (uint)(_divisor >> 8) : _ier;
            case IirFcr:
                byte iir = ComputeIir();
                if (iir == IirThre)
                {
                    // Reading IIR when THRE is the source clears that interrupt (datasheet Table IV).
                    _thrIpending = false;
                    UpdateIrq();
                }
                return (uint)(iir | ((_fcr & FcrEnable) != 0 ? IirFifoEnabled : 0));
            case Lcr:
                return _lcr;
            case Mcr:
                return _mcr;
            case Lsr:
                byte lsr = _lsr;
                _lsr &= unchecked((byte)~(LsrErrors | LsrFifoError));
                UpdateIrq();
                return lsr;
            case Msr:
                byte msr = _msr;
                _msr &= unchecked((byte)~MsrDeltas);
                UpdateIrq();
                return msr;
            case Scr:
                return _scr;
            default:
                return 0xFF;
        }
    }

    public void Write(int offset, int size, uint value)
    {
        _ = size;
        byte b = (byte)value;
        switch (offset)
        {
            case RbrThr:
                if ((_lcr & LcrDlab) != 0)
                {
                    _divisor = (ushort)((_divisor & 0xFF00) | b);
                    return;
                }
                Transmit(b);
                break;
            case Ier:
                if ((_lcr & LcrDlab) != 0)
                {
                    _divisor = (ushort)((_divisor & 0x00FF) | (b << 8));
                    return;
                }
                byte oldIer = _ier;
                _ier = (byte)(b & 0x0F);
                if ((_ier & IerThre) != 0 && (oldIer & IerThre) == 0 && (_lsr & LsrThre) != 0)
                {
                    // Enabling ETBEI while THR is empty produces a THRE interrupt at once.
                    _thrIpending = true;
                }
                UpdateIrq();
                break;
            case IirFcr:
                WriteFcr(b);
                break;
            case Lcr:
                _lcr = b;
                break;
            case Mcr:
                _mcr = (byte)(b & 0x1F);
                UpdateModemStatus();
                UpdateIrq();
                _receiveSpaceHandler?.Invoke();
                break;
            case Scr:
                _scr = b;
                break;
            default:
                // LSR and MSR writes (factory test) and offsets outside the UART are ignored.
                break;
        }
    }

    /// <inheritdoc/>
    public void Receive(ReadOnlySpan<byte> data)
    {
        if ((_mcr & McrLoop) != 0)
        {
            // In loopback the serial input is disconnected from the receiver.
            return;
        }
        foreach (byte b in data)
        {
            PushRx(b);
        }
        RestartCharacterTimeout();
        UpdateIrq();
    }

    /// <inheritdoc/>
    public void OnEvent(CharEvent charEvent)
    {
        if (charEvent == CharEvent.Break && (_mcr & McrLoop) == 0)
        {
            // A break is received as a zero character with the break-interrupt status (16550A datasheet, LSR bit 4).
            PushRx(0);
            _lsr |= LsrBi;
            UpdateIrq();
        }
    }

    /// <summary>
    /// The receiver has held data below the trigger level for four character times: the board's (or a timer's)
    /// signal for the character-timeout interrupt. Without baud timing this model leaves the timing to its caller.
    /// </summary>
    public void SignalCharacterTimeout()
    {
        if (_rxCount > 0 && (_fcr & FcrEnable) != 0)
        {
            _timeoutPending = true;
            UpdateIrq();
        }
    }

    /// <summary>Free space in the receive FIFO, for a backend that can hold bytes back.</summary>
    public int ReceiveSpace => (_mcr & McrLoop) != 0 ? 0 : RxCapacity - _rxCount;

    private int RxCapacity => (_fcr & FcrEnable) != 0 ? FifoSize : 1;

    private byte ReadRbr()
    {
        if (_rxCount == 0)
        {
            return 0;
        }
        byte b = _rx[_rxHead];
        _rxHead = (_rxHead + 1) % FifoSize;
        _rxCount--;
        if (_rxCount == 0)
        {
            _lsr &= unchecked((byte)~LsrDr);
        }
        _timeoutPending = false;
        RestartCharacterTimeout();
        UpdateIrq();
        _receiveSpaceHandler?.Invoke();
        return b;
    }

    private void PushRx(byte b)
    {
        if (_rxCount >= RxCapacity)
        {
            // Overrun: the FIFO (or holding register) keeps its contents and the new character is lost.
            _lsr |= LsrOe;
            return;
        }
        _rx[(_rxHead + _rxCount) % FifoSize] = b;
        _rxCount++;
        _lsr |= LsrDr;
    }

    private void Transmit(byte b)
    {
        if ((_mcr & McrLoop) != 0)
        {
            PushRx(b);
        }
        else
        {
            _chardev?.Write([b]);
        }
        // Transmission is instantaneous: THR and the shift register are empty again.
        _lsr |= LsrThre | LsrTemt;
        _thrIpending = true;
        UpdateIrq();
    }

    private void WriteFcr(byte b)
    {
        bool wasEnabled = (_fcr & FcrEnable) != 0;
        bool enable = (b & FcrEnable) != 0;
        if (wasEnabled != enable || (b & FcrClearRx) != 0)
        {
            // Changing FIFO enable clears both FIFOs (datasheet FCR bit 0).
            _rxHead = 0;
            _rxCount = 0;
            _lsr &= unchecked((byte)~(LsrDr | LsrFifoError));
            _timeoutPending = false;
        }
        _fcr = (byte)(enable ? b & (FcrTriggerMask | FcrEnable) : 0);
        RestartCharacterTimeout();
        UpdateIrq();
        _receiveSpaceHandler?.Invoke();
    }

    private void UpdateModemStatus()
    {
        byte lines;
        if ((_mcr & McrLoop) != 0)
        {
            // Loopback: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
            lines = (byte)((((_mcr & McrRts) != 0) ? MsrCts : 0) | (((_mcr & McrDtr) != 0) ? MsrDsr : 0)
                | (((_mcr & McrOut1) != 0) ? MsrRi : 0) | (((_mcr & McrOut2) != 0) ? MsrDcd : 0));
        }
        else
        {
            // A chardev carries no modem lines: report DCD, DSR and CTS asserted, as QEMU does for a plain backend.
            lines = MsrDcd | MsrDsr | MsrCts;
        }
        byte old = _msr;
        byte deltas = (byte)(old & MsrDeltas);
        if (((old ^ lines) & MsrCts) != 0)
        {
            deltas |= MsrDcts;
        }
        if (((old ^ lines) & MsrDsr) != 0)
        {
            deltas |= MsrDdsr;
        }
        if (((old ^ lines) & MsrDcd) != 0)
        {
            deltas |= MsrDdcd;
        }
        if ((old & MsrRi) != 0 && (lines & MsrRi) == 0)
        {
            // TERI: trailing edge of ring indicator.
            deltas |= MsrTeri;
        }
        _msr = (byte)(lines | deltas);
    }

    /// <summary>The highest-priority pending interrupt's IIR code (datasheet Table IV), or <see cref="IirNoInt"/>.</summary>
    private byte ComputeIir()
    {
        if ((_ier & IerRls) != 0 && (_lsr & LsrErrors) != 0)
        {
            return IirRls;
        }
        if ((_ier & IerRda) != 0)
        {
            int trigger = (_fcr & FcrEnable) != 0 ? TriggerLevels[_fcr >> 6] : 1;
            if (_rxCount >= trigger)
            {
                return IirRda;
            }
            if (_timeoutPending)
            {
                return IirCharTimeout;
            }
        }
        if ((_ier & IerThre) != 0 && _thrIpending)
        {
            return IirThre;
        }
        if ((_ier & IerMs) != 0 && (_msr & MsrDeltas) != 0)
        {
            return IirMs;
        }
        return IirNoInt;
    }

    private void UpdateIrq() => _irq.Set(ComputeIir() != IirNoInt);

    public Serial16550State Save()
    {
        byte[] rx = new byte[_rxCount];
        for (int i = 0; i < _rxCount; i++)
        {
            rx[i] = _rx[(_rxHead + i) % FifoSize];
        }
        return new(_divisor, _ier, _fcr, _lcr, _mcr, _lsr, _msr, _scr, rx, _thrIpending, _timeoutPending);
    }

    /// <summary>Loads <paramref name="state"/> and re-derives the IRQ level from it.</summary>
    public void Restore(Serial16550State state)
    {
        _divisor = state.Divisor;
        _ier = (byte)(state.Ier & 0x0F);
        _fcr = state.Fcr;
        _lcr = state.Lcr;
        _mcr = (byte)(state.Mcr & 0x1F);
        _lsr = state.Lsr;
        _msr = state.Msr;
        _scr = state.Scr;
        _rxHead = 0;
        _rxCount = Math.Min(state.RxFifo.Length, FifoSize);
        state.RxFifo.AsSpan(0, _rxCount).CopyTo(_rx);
        _thrIpending = state.ThrInterruptPending;
        _timeoutPending = state.TimeoutPending;
        UpdateIrq();
    }

    /// <summary>Master reset, then the modem inputs as the backend presents them.</summary>
    public void Reset()
    {
        Restore(Serial16550State.PowerOn);
        UpdateModemStatus();
        _msr &= unchecked((byte)~MsrDeltas);
        UpdateIrq();
    }
}
