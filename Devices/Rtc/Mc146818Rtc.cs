using Colo.Core.Irq;
using Colo.Core.Time;

namespace Colo.Devices.Rtc;

/// <summary>Saved RTC/CMOS state (vmstate section "mc146818rtc", version 1).</summary>
/// <param name="Cmos">All 128 bytes: clock registers 0x00-0x0D and the NVRAM 0x0E-0x7F.</param>
/// <param name="Index">The address register (offset 0) without the NMI bit.</param>
/// <param name="NmiDisabled">Bit 7 of the last index write (the PC's NMI mask).</param>
/// <param name="BaseUnixSeconds">Calendar time, in seconds since 1970, at <paramref name="BaseNs"/>.</param>
/// <param name="BaseNs">Virtual time at which a second of <paramref name="BaseUnixSeconds"/> began.</param>
/// <param name="LastPeriodicCheckNs">Virtual time PF was last brought up to date.</param>
public sealed record Mc146818RtcState(
    byte[] Cmos, byte Index, bool NmiDisabled, long BaseUnixSeconds, long BaseNs, long LastPeriodicCheckNs)
{
    public const string Section = "mc146818rtc";
    public const int Version = 1;

    public bool Equals(Mc146818RtcState? other) =>
        other is not null && Cmos.AsSpan().SequenceEqual(other.Cmos) && Index == other.Index
        && NmiDisabled == other.NmiDisabled && BaseUnixSeconds == other.BaseUnixSeconds && BaseNs == other.BaseNs
        && LastPeriodicCheckNs == other.LastPeriodicCheckNs;

    public override int GetHashCode() => HashCode.Combine(Index, NmiDisabled, BaseUnixSeconds, BaseNs, Cmos.Length);
}

/// <summary>
/// Motorola MC146818 real-time clock with CMOS RAM, as on the PC (offset 0 index, offset 1 data; the board
/// maps them at 0x70). The calendar runs from a base time taken from the injectable host clock at power-on and
/// advances with the virtual clock, so a stopped VM's clock stops too. Register C's flags raise IRQ8 (ISA IRQ 8)
/// through <see cref="IrqLine"/>. The board fills NVRAM bytes 0x0E-0x7F (memory size, boot order, century).
/// </summary>
public sealed class Mc146818Rtc
{
    public const int IndexPort = 0;
    public const int DataPort = 1;
    public const int RegionSize = 2;
    public const int CmosSize = 128;

    // Clock registers (datasheet "Address Map").
    public const int RegSeconds = 0x00;
    public const int RegSecondsAlarm = 0x01;
    public const int RegMinutes = 0x02;
    public const int RegMinutesAlarm = 0x03;
    public const int RegHours = 0x04;
    public const int RegHoursAlarm = 0x05;
    public const int RegDayOfWeek = 0x06;
    public const int RegDayOfMonth = 0x07;
    public const int RegMonth = 0x08;
    public const int RegYear = 0x09;
    public const int RegA = 0x0A;
    public const int RegB = 0x0B;
    public const int RegC = 0x0C;
    public const int RegD = 0x0D;

    /// <summary>The PC's century byte (IBM convention; SeaBIOS and Linux read it).</summary>
    public const int RegCentury = 0x32;

    // Register A.
    public const byte RegAUip = 0x80;
    private const byte RegADividerMask = 0x70;
    private const byte RegARateMask = 0x0F;

    // Register B.
    public const byte RegBSet = 0x80;
    public const byte RegBPie = 0x40;
    public const byte RegBAie = 0x20;
    public const byte RegBUie = 0x10;
    public const byte RegBSqwe = 0x08;
    public const byte RegBDm = 0x04;
    public const byte RegB24h = 0x02;
    public const byte RegBDse = 0x01;

    // Register C.
    public const byte RegCIrqf = 0x80;
    public const byte RegCPf = 0x40;
    public const byte RegCAf = 0x20;
    public const byte RegCUf = 0x10;

    // Register D.
    public const byte RegDVrt = 0x80;

    /// <summary>12-hour mode PM flag in the hours byte.</summary>
    private const byte HoursPm = 0x80;

    /// <summary>An alarm byte with both top bits set matches any value ("don't care").</summary>
    private const byte AlarmDontCare = 0xC0;

    /// <summary>UIP is set this long before the update cycle (datasheet: 244 us at 32.768 kHz).</summary>
    private const long UipLeadNs = 244_000;

    private const long NsPerSecond = 1_000_000_000;
    private const long TimeBaseHz = 32_768;

    private readonly IClock _clock;
    private readonly IrqLine _irq;
    private readonly Func<DateTimeOffset> _hostNow;
    private readonly ClockTimer _updateTimer;
    private readonly ClockTimer _periodicTimer;
    private readonly byte[] _cmos = new byte[CmosSize];
    private byte _index;
    private bool _nmiDisabled;
    private long _baseUnixSeconds;
    private long _baseNs;
    private long _lastPeriodicCheckNs;

    /// <param name="clock">The virtual clock.</param>
    /// <param name="irq">IRQ8.</param>
    /// <param name="hostNow">Host calendar time read at power-on (QEMU's <c>-rtc base=utc</c>); injectable for tests.</param>
    public Mc146818Rtc(IClock clock, IrqLine irq, Func<DateTimeOffset>? hostNow = null)
    {
        _clock = clock;
        _irq = irq;
        _hostNow = hostNow ?? (() => DateTimeOffset.UtcNow);
        _updateTimer = new ClockTimer(clock, OnUpdate);
        _periodicTimer = new ClockTimer(clock, OnPeriodic);
        PowerOn();
    }

    /// <summary>NMI disabled by bit 7 of the last index write (the board gates NMIs with it).</summary>
    public bool NmiDisabled => _nmiDisabled;

    /// <summary>Board access to NVRAM (memory size bytes 0x15-0x18, 0x30/0x31, 0x34/0x35, 0x5B-0x5D, boot 0x3D/0x38...).</summary>
    public void SetCmos(int index, byte value)
    {
        if ((uint)index >= CmosSize || index <= RegD)
        {
            return;
        }
        _cmos[index] = value;
    }

    public byte GetCmos(int index) => (uint)index < CmosSize ? _cmos[index] : (byte)0xFF;

    public uint Read(int offset, int size)
    {
        _ = size;
        if (offset != DataPort)
        {
            // The index register is write-only on the PC.
            return 0xFF;
        }
        switch (_index)
        {
            case <= RegYear or RegCentury:
                if (_index is RegSecondsAlarm or RegMinutesAlarm or RegHoursAlarm)
                {
                    return _cmos[_index];
                }
                if ((_cmos[RegB] & RegBSet) == 0)
                {
                    SyncRegistersFromTime();
                }
                return _cmos[_index];
            case RegA:
                long sub = SubSecondNs();
                bool uip = (_cmos[RegB] & RegBSet) == 0 && sub >= NsPerSecond - UipLeadNs;
                return (uint)((_cmos[RegA] & ~RegAUip) | (uip ? RegAUip : 0));
            case RegC:
                UpdatePeriodicFlag();
                byte c = _cmos[RegC];
                _cmos[RegC] = 0;
                _irq.Lower();
                return c;
            default:
                return _cmos[_index];
        }
    }

    public void Write(int offset, int size, uint value)
    {
        _ = size;
        byte b = (byte)value;
        if (offset == IndexPort)
        {
            _index = (byte)(b & 0x7F);
            _nmiDisabled = (b & 0x80) != 0;
            return;
        }
        if (offset != DataPort)
        {
            return;
        }
        switch (_index)
        {
            case RegSeconds or RegMinutes or RegHours or RegDayOfWeek or RegDayOfMonth or RegMonth or RegYear or RegCentury:
                bool running = (_cmos[RegB] & RegBSet) == 0;
                if (running)
                {
                    SyncRegistersFromTime();
                }
                _cmos[_index] = b;
                if (running)
                {
                    RebaseFromRegisters();
                }
                break;
            case RegA:
                UpdatePeriodicFlag();
                _cmos[RegA] = (byte)(b & ~RegAUip); // UIP is read-only
                ArmPeriodic();
                ArmUpdate();
                break;
            case RegB:
                WriteRegB(b);
                break;
            case RegC or RegD:
                // Read-only.
                break;
            default:
                _cmos[_index] = b;
                break;
        }
    }

    private void WriteRegB(byte b)
    {
        byte old = _cmos[RegB];
        if ((old & RegBSet) == 0 && (b & RegBSet) != 0)
        {
            // Entering SET: freeze the registers at the current time.
            SyncRegistersFromTime();
            b &= unchecked((byte)~RegBUie); // datasheet: setting SET clears UIE
        }
        UpdatePeriodicFlag();
        _cmos[RegB] = b;
        if ((old & RegBSet) != 0 && (b & RegBSet) == 0)
        {
            RebaseFromRegisters();
        }
        UpdateIrq();
        ArmPeriodic();
        ArmUpdate();
    }

    private long SubSecondNs()
    {
        long elapsed = _clock.NowNs - _baseNs;
        return ((elapsed % NsPerSecond) + NsPerSecond) % NsPerSecond;
    }

    private long CurrentUnixSeconds() => _baseUnixSeconds + Math.DivRem(_clock.NowNs - _baseNs, NsPerSecond, out long r) - (r < 0 ? 1 : 0);

    private bool Binary => (_cmos[RegB] & RegBDm) != 0;

    private byte ToReg(int v) => Binary ? (byte)v : (byte)(((v / 10) << 4) | (v % 10));

    private int FromReg(byte v) => Binary ? v : ((v >> 4) * 10) + (v & 0x0F);

    private void SyncRegistersFromTime()
    {
        DateTime t = DateTimeOffset.FromUnixTimeSeconds(Math.Clamp(CurrentUnixSeconds(), 0, 253402300799)).UtcDateTime;
        _cmos[RegSeconds] = ToReg(t.Second);
        _cmos[RegMinutes] = ToReg(t.Minute);
        _cmos[RegHours] = EncodeHours(t.Hour);
        _cmos[RegDayOfWeek] = ToReg((int)t.DayOfWeek + 1);
        _cmos[RegDayOfMonth] = ToReg(t.Day);
        _cmos[RegMonth] = ToReg(t.Month);
        _cmos[RegYear] = ToReg(t.Year % 100);
        _cmos[RegCentury] = ToReg(t.Year / 100);
    }

    private byte EncodeHours(int hour)
    {
        if ((_cmos[RegB] & RegB24h) != 0)
        {
            return ToReg(hour);
        }
        int h12 = hour % 12 == 0 ? 12 : hour % 12;
        return (byte)(ToReg(h12) | (hour >= 12 ? HoursPm : 0));
    }

    private int DecodeHours(byte v)
    {
        if ((_cmos[RegB] & RegB24h) != 0)
        {
            return FromReg(v);
        }
        int h = FromReg((byte)(v & 0x7F)) % 12;
        return (v & HoursPm) != 0 ? h + 12 : h;
    }

    /// <summary>Takes the (possibly guest-written) clock registers as the time now, starting a fresh second.</summary>
    private void RebaseFromRegisters()
    {
        int year = (FromReg(_cmos[RegCentury]) * 100) + FromReg(_cmos[RegYear]);
        int month = FromReg(_cmos[RegMonth]);
        int day = FromReg(_cmos[RegDayOfMonth]);
        int hour = DecodeHours(_cmos[RegHours]);
        int minute = FromReg(_cmos[RegMinutes]);
        int second = FromReg(_cmos[RegSeconds]);
        long seconds;
        try
        {
            var t = new DateTimeOffset(Math.Clamp(year, 1970, 9999), Math.Clamp(month, 1, 12), 1, 0, 0, 0, TimeSpan.Zero);
            seconds = t.ToUnixTimeSeconds() + ((long)(Math.Clamp(day, 1, 31) - 1) * 86400)
                + (Math.Clamp(hour, 0, 23) * 3600L) + (Math.Clamp(minute, 0, 59) * 60L) + Math.Clamp(second, 0, 59);
        }
        catch (ArgumentOutOfRangeException)
        {
            seconds = 0;
        }
        _baseUnixSeconds = seconds;
        _baseNs = _clock.NowNs;
        ArmUpdate();
    }

    /// <summary>Arms the 1 Hz update-cycle timer while the clock runs (SET clear, divider in normal operation).</summary>
    private void ArmUpdate()
    {
        if ((_cmos[RegB] & RegBSet) != 0 || (_cmos[RegA] & RegADividerMask) is 0x60 or 0x70)
        {
            _updateTimer.Cancel();
            return;
        }
        long now = _clock.NowNs;
        long next = now + (NsPerSecond - SubSecondNs());
        _updateTimer.Modify(next);
    }

    private void OnUpdate()
    {
        // The update cycle: the calendar has advanced to a new second (it is computed, nothing to copy); raise UF
        // and check the alarm bytes against the new time.
        SyncRegistersFromTime();
        byte flags = RegCUf;
        if (AlarmMatches(RegSecondsAlarm, _cmos[RegSeconds]) && AlarmMatches(RegMinutesAlarm, _cmos[RegMinutes])
            && AlarmMatches(RegHoursAlarm, _cmos[RegHours]))
        {
            flags |= RegCAf;
        }
        _cmos[RegC] |= flags;
        UpdateIrq();
        ArmUpdate();
    }

    private bool AlarmMatches(int alarmReg, byte value)
    {
        byte alarm = _cmos[alarmReg];
        return (alarm & AlarmDontCare) == AlarmDontCare || alarm == value;
    }

    /// <summary>Periodic interrupt period from register A's rate select; 0 when off.</summary>
    public long PeriodicPeriodNs()
    {
        int rs = _cmos[RegA] & RegARateMask;
        if (rs == 0 || (_cmos[RegA] & RegADividerMask) is 0x60 or 0x70)
        {
            return 0;
        }
        if (rs <= 2)
        {
            // Rates 1 and 2 repeat rates 8 and 9 at the 32.768 kHz time base.
            rs += 7;
        }
        long cycles = 1L << (rs - 1);
        return cycles * NsPerSecond / TimeBaseHz;
    }

    /// <summary>Sets PF if a periodic boundary passed since the last check (PF sets whether or not PIE is on).</summary>
    private void UpdatePeriodicFlag()
    {
        long period = PeriodicPeriodNs();
        long now = _clock.NowNs;
        if (period > 0 && now / period > _lastPeriodicCheckNs / period)
        {
            _cmos[RegC] |= RegCPf;
        }
        _lastPeriodicCheckNs = now;
    }

    private void ArmPeriodic()
    {
        long period = PeriodicPeriodNs();
        if (period == 0 || (_cmos[RegB] & RegBPie) == 0)
        {
            _periodicTimer.Cancel();
            return;
        }
        long now = _clock.NowNs;
        _periodicTimer.Modify(((now / period) + 1) * period);
    }

    private void OnPeriodic()
    {
        UpdatePeriodicFlag();
        UpdateIrq();
        ArmPeriodic();
    }

    private void UpdateIrq()
    {
        byte c = _cmos[RegC];
        byte b = _cmos[RegB];
        bool pending = ((c & RegCPf) != 0 && (b & RegBPie) != 0) || ((c & RegCAf) != 0 && (b & RegBAie) != 0)
            || ((c & RegCUf) != 0 && (b & RegBUie) != 0);
        if (pending)
        {
            _cmos[RegC] |= RegCIrqf;
        }
        else
        {
            _cmos[RegC] &= unchecked((byte)~RegCIrqf);
        }
        _irq.Set(pending);
    }

    public Mc146818RtcState Save() =>
        new((byte[])_cmos.Clone(), _index, _nmiDisabled, _baseUnixSeconds, _baseNs, _lastPeriodicCheckNs);

    /// <summary>Loads <paramref name="state"/>, re-deriving IRQ8 from register C and re-arming the timers.</summary>
    public void Restore(Mc146818RtcState state)
    {
        Array.Clear(_cmos);
        state.Cmos.AsSpan(0, Math.Min(CmosSize, state.Cmos.Length)).CopyTo(_cmos);
        _index = (byte)(state.Index & 0x7F);
        _nmiDisabled = state.NmiDisabled;
        _baseUnixSeconds = state.BaseUnixSeconds;
        _baseNs = state.BaseNs;
        _lastPeriodicCheckNs = state.LastPeriodicCheckNs;
        _irq.Set((_cmos[RegC] & RegCIrqf) != 0);
        ArmUpdate();
        ArmPeriodic();
    }

    /// <summary>
    /// Reset (the RESET pin): clears PIE, AIE, UIE, SQWE and register C's flags, lowering IRQ8; the calendar and
    /// NVRAM survive, as on the chip.
    /// </summary>
    public void Reset()
    {
        _cmos[RegB] &= unchecked((byte)~(RegBPie | RegBAie | RegBUie | RegBSqwe));
        _cmos[RegC] = 0;
        UpdateIrq();
        ArmPeriodic();
    }

    /// <summary>Power-on: 24-hour BCD, 32.768 kHz divider, 1024 Hz rate, calendar from the host clock.</summary>
    private void PowerOn()
    {
        Array.Clear(_cmos);
        _cmos[RegA] = 0x26;
        _cmos[RegB] = RegB24h;
        _cmos[RegD] = RegDVrt;
        _baseUnixSeconds = _hostNow().ToUnixTimeSeconds();
        _baseNs = _clock.NowNs;
        _lastPeriodicCheckNs = _baseNs;
        SyncRegistersFromTime();
        UpdateIrq();
        ArmUpdate();
        ArmPeriodic();
    }
}
