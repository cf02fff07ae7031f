using System.Numerics;
using Colo.Core.Cpu;
using Colo.Core.Time;

namespace Colo.Devices.Interrupt;

/// <summary>Saved local APIC state (vmstate section "apic", version 3). Vector sets are 8 × 32 bits, vector 0 first.</summary>
public sealed record LocalApicState(
    byte Id, ulong BaseMsr, byte Tpr, uint Ldr, uint Dfr, uint Svr, uint[] Isr, uint[] Tmr, uint[] Irr, uint Esr,
    uint IcrLow, uint IcrHigh, uint[] Lvt, uint InitialCount, uint DivideConfig, long LoadTimeNs, bool TimerRunning)
{
    public const string Section = "apic";
    public const int Version = 3;

    public bool Equals(LocalApicState? o) =>
        o is not null && Id == o.Id && BaseMsr == o.BaseMsr && Tpr == o.Tpr && Ldr == o.Ldr && Dfr == o.Dfr && Svr == o.Svr
        && Isr.AsSpan().SequenceEqual(o.Isr) && Tmr.AsSpan().SequenceEqual(o.Tmr) && Irr.AsSpan().SequenceEqual(o.Irr)
        && Esr == o.Esr && IcrLow == o.IcrLow && IcrHigh == o.IcrHigh && Lvt.AsSpan().SequenceEqual(o.Lvt)
        && InitialCount == o.InitialCount && DivideConfig == o.DivideConfig && LoadTimeNs == o.LoadTimeNs
        && TimerRunning == o.TimerRunning;

    public override int GetHashCode() => HashCode.Combine(Id, BaseMsr, Svr, IcrLow, InitialCount);
}

/// <summary>
/// The system side of the local APICs: the IOAPIC's messages and the APICs' IPIs are routed here to every APIC
/// the destination names (Intel SDM vol. 3A 10.6.2: physical ID or broadcast 0xFF; logical flat or cluster).
/// </summary>
public sealed class ApicBus
{
    private readonly List<LocalApic> _apics = [];

    /// <summary>The APICs in CPU index order.</summary>
    public IReadOnlyList<LocalApic> Apics => _apics;

    public void Add(LocalApic apic) => _apics.Add(apic);

    /// <summary>Delivers an IOAPIC message (no shorthand, no source).</summary>
    public void Deliver(ApicMessage message) => Deliver(message, null, 0);

    /// <summary>Delivers to the destination, or per <paramref name="shorthand"/> (1 self, 2 all, 3 all but self).</summary>
    public void Deliver(ApicMessage message, LocalApic? source, int shorthand)
    {
        if (message.DeliveryMode == LocalApic.ModeLowestPriority && shorthand == 0)
        {
            // Lowest priority: the matching APIC with the lowest TPR takes it (ties: lowest index).
            LocalApic? best = null;
            foreach (LocalApic apic in _apics)
            {
                if (apic.Matches(message.Destination, message.Logical) && (best is null || apic.Tpr < best.Tpr))
                {
                    best = apic;
                }
            }
            best?.Accept(message.DeliveryMode, message.Vector, message.Level);
            return;
        }
        foreach (LocalApic apic in _apics)
        {
            bool hit = shorthand switch
            {
                1 => apic == source,
                2 => true,
                3 => apic != source,
                _ => apic.Matches(message.Destination, message.Logical),
            };
            if (hit)
            {
                apic.Accept(message.DeliveryMode, message.Vector, message.Level);
            }
        }
    }
}

/// <summary>
/// An xAPIC local APIC (Intel SDM vol. 3A chapter 10) as QEMU's userspace <c>apic</c>: version 0x14 with six LVT
/// entries, TPR/PPR, IRR/ISR/TMR, EOI (broadcast to the IOAPIC for level-triggered vectors), LDR/DFR, SVR, ESR, ICR
/// (fixed, lowest priority, NMI, INIT, SIPI, ExtINT; shorthands), the timer (one-shot and periodic on a 1 GHz bus
/// clock divided by DCR), and IA32_APIC_BASE. The PIC reaches the CPU through LINT0 in ExtINT mode, or directly while
/// the APIC is hardware-disabled, so this is the vCPU's <see cref="IInterruptSource"/>. All calls under the board lock.
/// </summary>
public sealed class LocalApic : ILocalApic
{
    // Register offsets (SDM table 10-1).
    public const int RegId = 0x20;
    public const int RegVersion = 0x30;
    public const int RegTpr = 0x80;
    public const int RegApr = 0x90;
    public const int RegPpr = 0xA0;
    public const int RegEoi = 0xB0;
    public const int RegLdr = 0xD0;
    public const int RegDfr = 0xE0;
    public const int RegSvr = 0xF0;
    public const int RegIsr = 0x100;
    public const int RegTmr = 0x180;
    public const int RegIrr = 0x200;
    public const int RegEsr = 0x280;
    public const int RegIcrLow = 0x300;
    public const int RegIcrHigh = 0x310;
    public const int RegLvtTimer = 0x320;
    public const int RegLvtLint0 = 0x350;
    public const int RegLvtError = 0x370;
    public const int RegInitialCount = 0x380;
    public const int RegCurrentCount = 0x390;
    public const int RegDivide = 0x3E0;

    public const uint VersionValue = 0x0005_0014; // version 0x14, max LVT entry 5
    public const ulong DefaultBase = 0xFEE0_0000;
    public const ulong BaseBsp = 1UL << 8;
    public const ulong BaseEnable = 1UL << 11;
    private const ulong BaseAddressMask = 0x000F_FFFF_FFFF_F000;

    // LVT indices and bits.
    public const int LvtTimer = 0;
    public const int LvtThermal = 1;
    public const int LvtPerf = 2;
    public const int LvtLint0 = 3;
    public const int LvtLint1 = 4;
    public const int LvtError = 5;
    private const int LvtCount = 6;
    public const uint LvtMasked = 1u << 16;
    public const uint LvtPeriodic = 1u << 17;

    public const uint SvrEnable = 1u << 8;

    // Delivery modes (ICR bits 10:8, LVT bits 10:8).
    public const byte ModeFixed = 0;
    public const byte ModeLowestPriority = 1;
    public const byte ModeSmi = 2;
    public const byte ModeNmi = 4;
    public const byte ModeInit = 5;
    public const byte ModeStartup = 6;
    public const byte ModeExtInt = 7;

    private readonly IInterruptSource? _pic;
    private readonly ApicBus _bus;
    private readonly ClockTimer _timer;

    // Debug aid (COLO_TRACE_APIC=1): timer programming, expiries, acknowledges and EOIs on stderr.
    private static readonly bool Trace = Environment.GetEnvironmentVariable("COLO_TRACE_APIC") == "1";
    private readonly bool _bsp;
    private readonly uint[] _isr = new uint[8];
    private readonly uint[] _tmr = new uint[8];
    private readonly uint[] _irr = new uint[8];
    private readonly uint[] _lvt = new uint[LvtCount];
    private byte _id;
    private ulong _baseMsr;
    private byte _tpr;
    private uint _ldr;
    private uint _dfr;
    private uint _svr;
    private uint _esr;
    private uint _icrLow;
    private uint _icrHigh;
    private uint _initialCount;
    private uint _divide;
    private long _loadTimeNs;
    private bool _timerRunning;
    private bool _picLevel;

    /// <param name="id">Initial APIC ID (the CPU index).</param>
    /// <param name="bsp">Whether this is the bootstrap processor (its LINT0 starts in ExtINT mode).</param>
    /// <param name="clock">The virtual clock the timer counts on.</param>
    /// <param name="bus">Where IPIs go; the APIC adds itself.</param>
    /// <param name="pic">The 8259 pair, asked for the vector on ExtINT (null: none).</param>
    public LocalApic(byte id, bool bsp, IClock clock, ApicBus bus, IInterruptSource? pic)
    {
        _bsp = bsp;
        _bus = bus;
        _pic = pic;
        _timer = new ClockTimer(clock, OnTimer);
        bus.Add(this);
        PowerOn(id);
    }

    /// <summary>Called (under the board lock) when an interrupt may have become deliverable: the vCPU's notification.</summary>
    public Action? InterruptRequested { get; set; }

    /// <summary>EOI of a level-triggered vector, to broadcast to the IOAPIC(s).</summary>
    public Action<byte>? EoiBroadcast { get; set; }

    /// <summary>An INIT arrived (the CPU resets and, if an AP, waits for SIPI).</summary>
    public Action? InitReceived { get; set; }

    /// <summary>A startup IPI arrived with its vector (the CPU starts at vector × 0x1000).</summary>
    public Action<byte>? StartupReceived { get; set; }

    /// <summary>An NMI arrived (LINT1 or IPI).</summary>
    public Action? NmiReceived { get; set; }

    public byte Id => _id;

    public byte Tpr => _tpr;

    public ulong BaseMsr => _baseMsr;

    public ulong MmioBase => (_baseMsr & BaseEnable) != 0 ? _baseMsr & BaseAddressMask : ulong.MaxValue;

    private bool SoftwareEnabled => (_svr & SvrEnable) != 0;

    /// <summary>The PIC's INTR reaches the CPU while the APIC is hardware-disabled, or through LINT0 in ExtINT mode.</summary>
    private bool AcceptsPic =>
        (_baseMsr & BaseEnable) == 0
        || ((_lvt[LvtLint0] & LvtMasked) == 0 && ((_lvt[LvtLint0] >> 8) & 7) == ModeExtInt);

    /// <summary>The PIC's INTR output (wired to LINT0).</summary>
    public void SetPicInterrupt(bool level)
    {
        _picLevel = level;
        if (level && AcceptsPic)
        {
            InterruptRequested?.Invoke();
        }
    }

    public void WriteBaseMsr(ulong value)
    {
        bool wasEnabled = (_baseMsr & BaseEnable) != 0;
        _baseMsr = (value & (BaseAddressMask | BaseEnable)) | (_bsp ? BaseBsp : 0);
        if (wasEnabled && (_baseMsr & BaseEnable) == 0)
        {
            // Hardware disable: the APIC returns to its INIT state (SDM 10.4.3) and passes the PIC through.
            InitReset();
            InterruptRequested?.Invoke();
        }
    }

    public ulong Read(uint offset, int size)
    {
        if ((offset & 0xF) >= 4)
        {
            return 0;
        }
        uint value = ReadRegister((int)(offset & 0xFF0));
        return size >= 4 ? value : value >> (int)(8 * (offset & 3));
    }

    public void Write(uint offset, int size, ulong value)
    {
        if ((offset & 0xF) != 0 || size < 4)
        {
            return; // registers take aligned 32-bit writes only (SDM 10.4.1)
        }
        WriteRegister((int)offset, (uint)value);
    }

    private uint ReadRegister(int reg)
    {
        switch (reg)
        {
            case RegId:
                return (uint)_id << 24;
            case RegVersion:
                return VersionValue;
            case RegTpr:
                return _tpr;
            case RegApr:
                return 0;
            case RegPpr:
                return Ppr();
            case RegLdr:
                return _ldr;
            case RegDfr:
                return _dfr;
            case RegSvr:
                return _svr;
            case >= RegIsr and < RegTmr:
                return _isr[(reg - RegIsr) >> 4];
            case >= RegTmr and < RegIrr:
                return _tmr[(reg - RegTmr) >> 4];
            case >= RegIrr and < RegEsr:
                return _irr[(reg - RegIrr) >> 4];
            case RegEsr:
                return _esr;
            case RegIcrLow:
                return _icrLow;
            case RegIcrHigh:
                return _icrHigh;
            case >= RegLvtTimer and <= RegLvtError:
                return _lvt[(reg - RegLvtTimer) >> 4];
            case RegInitialCount:
                return _initialCount;
            case RegCurrentCount:
                return CurrentCount();
            case RegDivide:
                return _divide;
            default:
                return 0;
        }
    }

    private void WriteRegister(int reg, uint value)
    {
        switch (reg)
        {
            case RegId:
                _id = (byte)(value >> 24);
                break;
            case RegTpr:
                _tpr = (byte)value;
                InterruptRequested?.Invoke();
                break;
            case RegEoi:
                Eoi();
                break;
            case RegLdr:
                _ldr = value & 0xFF00_0000;
                break;
            case RegDfr:
                _dfr = value | 0x0FFF_FFFF;
                break;
            case RegSvr:
                _svr = value & 0x1FF;
                if (!SoftwareEnabled)
                {
                    // Software disable masks every LVT entry (SDM 10.4.7.2).
                    for (int i = 0; i < LvtCount; i++)
                    {
                        _lvt[i] |= LvtMasked;
                    }
                }
                InterruptRequested?.Invoke();
                break;
            case RegEsr:
                _esr = 0;
                break;
            case RegIcrLow:
                _icrLow = value & ~(1u << 12); // delivery is instant: never "send pending"
                SendIpi();
                break;
            case RegIcrHigh:
                _icrHigh = value & 0xFF00_0000;
                break;
            case >= RegLvtTimer and <= RegLvtError:
            {
                int index = (reg - RegLvtTimer) >> 4;
                uint mask = index switch
                {
                    LvtTimer => 0x300FF,
                    LvtLint0 or LvtLint1 => 0x1A7FF,
                    LvtError => 0x100FF,
                    _ => 0x107FF,
                };
                uint v = value & mask;
                if (!SoftwareEnabled)
                {
                    v |= LvtMasked;
                }
                if (index == LvtTimer && _timerRunning && (_lvt[LvtTimer] & LvtPeriodic) != 0 && (v & LvtPeriodic) == 0)
                {
                    // Periodic to one-shot: the count goes on from where it is, so the one-shot ends with this period.
                    ulong period = (ulong)_initialCount + 1;
                    _loadTimeNs += (long)((ElapsedTicks(_timer.Clock.NowNs) / period * period) << DivideShift);
                }
                _lvt[index] = v;
                if (index == LvtTimer)
                {
                    if (Trace)
                    {
                        Console.Error.WriteLine($"colo-apic {_id}: t={_timer.Clock.NowNs} lvtt={v:x} running={_timerRunning} pending={_timer.IsPending}");
                    }
                    ArmTimer();
                }
                else if (index == LvtLint0 && _picLevel)
                {
                    InterruptRequested?.Invoke();
                }
                break;
            }
            case RegInitialCount:
                if (Trace)
                {
                    Console.Error.WriteLine($"colo-apic {_id}: t={_timer.Clock.NowNs} tmict={value} lvtt={_lvt[LvtTimer]:x} pending={_timer.IsPending}");
                }
                _initialCount = value;
                _loadTimeNs = _timer.Clock.NowNs;
                _timerRunning = value != 0;
                ArmTimer();
                break;
            case RegDivide:
            {
                // A new divisor changes the rate from now on: the ticks counted so far stay counted.
                long now = _timer.Clock.NowNs;
                ulong counted = ElapsedTicks(now);
                _divide = value & 0xB;
                if (_timerRunning)
                {
                    _loadTimeNs = now - (long)(counted << DivideShift);
                    ArmTimer();
                }
                break;
            }
            default:
                break; // read-only or reserved
        }
    }

    // ---- delivery ------------------------------------------------------------------------------------------------

    /// <summary>Whether a message for <paramref name="destination"/> names this APIC (SDM 10.6.2).</summary>
    public bool Matches(byte destination, bool logical)
    {
        if (destination == 0xFF)
        {
            return true;
        }
        if (!logical)
        {
            return destination == _id;
        }
        byte ldr = (byte)(_ldr >> 24);
        if ((_dfr >> 28) == 0xF)
        {
            return (ldr & destination) != 0;
        }
        // Cluster model: high nibble is the cluster, low nibble a mask within it.
        return (ldr >> 4) == (destination >> 4) && (ldr & destination & 0xF) != 0;
    }

    /// <summary>An interrupt message arrives at this APIC.</summary>
    public void Accept(byte mode, byte vector, bool level)
    {
        switch (mode)
        {
            case ModeFixed or ModeLowestPriority:
                SetIrr(vector, level);
                break;
            case ModeNmi:
                NmiReceived?.Invoke();
                break;
            case ModeInit:
                InitReset();
                InitReceived?.Invoke();
                break;
            case ModeStartup:
                StartupReceived?.Invoke(vector);
                break;
            case ModeExtInt:
                if (_picLevel)
                {
                    InterruptRequested?.Invoke();
                }
                break;
            default:
                break; // SMI: no SMM in the interpreter
        }
    }

    private void SetIrr(byte vector, bool level)
    {
        if (vector < 16)
        {
            _esr |= 1u << 6; // received illegal vector
            return;
        }
        _irr[vector >> 5] |= 1u << (vector & 31);
        if (level)
        {
            _tmr[vector >> 5] |= 1u << (vector & 31);
        }
        else
        {
            _tmr[vector >> 5] &= ~(1u << (vector & 31));
        }
        InterruptRequested?.Invoke();
    }

    public bool TryAcknowledge(out byte vector)
    {
        if (SoftwareEnabled)
        {
            int irr = Highest(_irr);
            if (irr >= 0 && (irr & 0xF0) > (Ppr() & 0xF0))
            {
                _irr[irr >> 5] &= ~(1u << (irr & 31));
                _isr[irr >> 5] |= 1u << (irr & 31);
                vector = (byte)irr;
                if (Trace)
                {
                    Console.Error.WriteLine($"colo-apic {_id}: t={_timer.Clock.NowNs} ack {irr:x}");
                }
                return true;
            }
        }
        if (_picLevel && AcceptsPic && _pic is not null)
        {
            return _pic.TryAcknowledge(out vector);
        }
        vector = 0;
        return false;
    }

    private void Eoi()
    {
        int isr = Highest(_isr);
        if (isr < 0)
        {
            return;
        }
        uint bit = 1u << (isr & 31);
        _isr[isr >> 5] &= ~bit;
        if (Trace)
        {
            Console.Error.WriteLine($"colo-apic {_id}: t={_timer.Clock.NowNs} eoi {isr:x}");
        }
        if ((_tmr[isr >> 5] & bit) != 0)
        {
            EoiBroadcast?.Invoke((byte)isr);
        }
        InterruptRequested?.Invoke();
    }

    private uint Ppr()
    {
        int isr = Highest(_isr);
        uint isrClass = isr < 0 ? 0 : (uint)isr & 0xF0;
        return (uint)(_tpr & 0xF0) >= isrClass ? _tpr : isrClass;
    }

    private static int Highest(uint[] bits)
    {
        for (int i = 7; i >= 0; i--)
        {
            if (bits[i] != 0)
            {
                return (i << 5) | BitOperations.Log2(bits[i]);
            }
        }
        return -1;
    }

    private void SendIpi()
    {
        byte mode = (byte)((_icrLow >> 8) & 7);
        bool level = (_icrLow & (1u << 15)) != 0;
        bool assert = (_icrLow & (1u << 14)) != 0;
        if (mode == ModeInit && level && !assert)
        {
            return; // INIT level de-assert: only resynchronises arbitration IDs on old APICs
        }
        var message = new ApicMessage((byte)(_icrHigh >> 24), (_icrLow & (1u << 11)) != 0, mode, (byte)_icrLow, false);
        _bus.Deliver(message, this, (int)((_icrLow >> 18) & 3));
    }

    // ---- timer ---------------------------------------------------------------------------------------------------

    /// <summary>DCR bits 3,1:0 → log2 of the divisor (0b111 means divide by 1).</summary>
    private int DivideShift => (int)(((_divide & 3) | ((_divide >> 1) & 4)) + 1) & 7;

    /// <summary>Timer ticks (bus clocks after the divider) from the count's load to <paramref name="now"/>.</summary>
    private ulong ElapsedTicks(long now) => (ulong)(now - _loadTimeNs) >> DivideShift;

    /// <summary>The timer's current-count register as the guest would read it now.</summary>
    public uint CurrentCountRegister => CurrentCount();

    private uint CurrentCount()
    {
        if (!_timerRunning)
        {
            return 0;
        }
        ulong ticks = ElapsedTicks(_timer.Clock.NowNs);
        if ((_lvt[LvtTimer] & LvtPeriodic) != 0)
        {
            return (uint)(_initialCount - (ticks % ((ulong)_initialCount + 1)));
        }
        return ticks >= _initialCount ? 0 : (uint)(_initialCount - ticks);
    }

    /// <summary>Arms the timer for the next time the count reaches zero, or stops it.</summary>
    private void ArmTimer()
    {
        if (!_timerRunning)
        {
            CancelTimer();
            return;
        }
        ulong period = (ulong)_initialCount + 1;
        ulong ticks = ElapsedTicks(_timer.Clock.NowNs);
        if ((_lvt[LvtTimer] & LvtPeriodic) == 0 && ticks >= period)
        {
            // A running one-shot has not been delivered (OnTimer stops it), yet its count already ran out: the vCPU was
            // pre-empted between loading TMICT and this look at the clock (a short count and a loaded host), or the
            // timer thread is late. Deliver it now; treating it as over lost an idle guest's only clock event.
            CancelTimer();
            OnTimer();
            return;
        }
        ulong next = ((ticks / period) + 1) * period;
        _timer.Modify(_loadTimeNs + (long)(next << DivideShift));
    }

    private void CancelTimer()
    {
        if (Trace && _timer.IsPending)
        {
            Console.Error.WriteLine($"colo-apic {_id}: t={_timer.Clock.NowNs} cancel deadline={_timer.DeadlineNs}\n{Environment.StackTrace}");
        }
        _timer.Cancel();
    }

    private void OnTimer()
    {
        uint lvt = _lvt[LvtTimer];
        if (Trace)
        {
            Console.Error.WriteLine($"colo-apic {_id}: t={_timer.Clock.NowNs} fire lvtt={lvt:x}");
        }
        if ((lvt & LvtMasked) == 0)
        {
            SetIrr((byte)lvt, level: false);
        }
        if ((lvt & LvtPeriodic) == 0)
        {
            _timerRunning = false;
            return;
        }
        ArmTimer();
    }

    // ---- state ---------------------------------------------------------------------------------------------------

    public LocalApicState Save() => new(
        _id, _baseMsr, _tpr, _ldr, _dfr, _svr, (uint[])_isr.Clone(), (uint[])_tmr.Clone(), (uint[])_irr.Clone(), _esr,
        _icrLow, _icrHigh, (uint[])_lvt.Clone(), _initialCount, _divide, _loadTimeNs, _timerRunning);

    public void Restore(LocalApicState s)
    {
        _id = s.Id;
        _baseMsr = s.BaseMsr;
        _tpr = s.Tpr;
        _ldr = s.Ldr;
        _dfr = s.Dfr;
        _svr = s.Svr;
        s.Isr.CopyTo(_isr, 0);
        s.Tmr.CopyTo(_tmr, 0);
        s.Irr.CopyTo(_irr, 0);
        _esr = s.Esr;
        _icrLow = s.IcrLow;
        _icrHigh = s.IcrHigh;
        s.Lvt.CopyTo(_lvt, 0);
        _initialCount = s.InitialCount;
        _divide = s.DivideConfig;
        _loadTimeNs = s.LoadTimeNs;
        _timerRunning = s.TimerRunning;
        ArmTimer();
    }

    /// <summary>Power-on (system reset): APIC ID = CPU index, enabled at the default base, then the INIT state.</summary>
    public void Reset() => PowerOn(_bsp ? (byte)0 : _id);

    private void PowerOn(byte id)
    {
        _id = id;
        _baseMsr = DefaultBase | BaseEnable | (_bsp ? BaseBsp : 0);
        InitReset();
    }

    /// <summary>INIT: everything but the ID and IA32_APIC_BASE returns to its reset value (SDM 10.4.7.3).</summary>
    private void InitReset()
    {
        _tpr = 0;
        _ldr = 0;
        _dfr = 0xFFFF_FFFF;
        _svr = 0xFF;
        Array.Clear(_isr);
        Array.Clear(_tmr);
        Array.Clear(_irr);
        _esr = 0;
        _icrLow = 0;
        _icrHigh = 0;
        for (int i = 0; i < LvtCount; i++)
        {
            _lvt[i] = LvtMasked;
        }
        // The BSP's LINT0 starts as ExtINT so the PIC keeps working when firmware enables the APIC (QEMU's choice).
        if (_bsp)
        {
            _lvt[LvtLint0] = (uint)ModeExtInt << 8;
        }
        _initialCount = 0;
        _divide = 0;
        _loadTimeNs = 0;
        _timerRunning = false;
        CancelTimer();
    }
}
