using Colo.Core.Irq;
using Colo.Core.Time;

namespace Colo.Devices.Timer;

/// <summary>One 8254 counter as saved (Intel 8254 datasheet names).</summary>
/// <param name="Count">Initial count in clock ticks (0 written means 0x10000, or 10000 in BCD).</param>
/// <param name="LatchedCount">Value held by a counter-latch command.</param>
/// <param name="CountLatched">Access state of the latched count still to be read (0: none).</param>
/// <param name="StatusLatched">A read-back status byte is waiting to be read.</param>
/// <param name="Status">The latched status byte.</param>
/// <param name="ReadState">Byte sequencing of counter reads.</param>
/// <param name="WriteState">Byte sequencing of counter writes.</param>
/// <param name="WriteLatch">Low byte held during a two-byte write.</param>
/// <param name="RwMode">RW1/RW0 of the control word: 1 LSB, 2 MSB, 3 LSB then MSB.</param>
/// <param name="Mode">Counter mode 0-5.</param>
/// <param name="Bcd">Counting in BCD.</param>
/// <param name="Gate">GATE input level.</param>
/// <param name="CountLoadTimeNs">Virtual time the count was loaded (or the gate last triggered).</param>
public sealed record I8254ChannelState(
    int Count, ushort LatchedCount, byte CountLatched, bool StatusLatched, byte Status, byte ReadState,
    byte WriteState, byte WriteLatch, byte RwMode, byte Mode, bool Bcd, bool Gate, long CountLoadTimeNs);

/// <summary>Saved PIT state (vmstate section "i8254", version 1): three counters and the port 0x61 bits it owns.</summary>
public sealed record I8254PitState(
    I8254ChannelState Channel0, I8254ChannelState Channel1, I8254ChannelState Channel2, bool SpeakerDataOn)
{
    public const string Section = "i8254";
    public const int Version = 1;

    /// <summary>Power-on: every counter in mode 3 with count 0x10000 and LSB/MSB access, as QEMU resets it.</summary>
    public static I8254PitState PowerOn { get; } = new(Channel(true), Channel(true), Channel(false), false);

    private static I8254ChannelState Channel(bool gate) =>
        new(0x10000, 0, 0, false, 0, I8254Pit.RwStateWord0, I8254Pit.RwStateWord0, 0, 3, 3, false, gate, 0);
}

/// <summary>
/// Intel 8254 programmable interval timer: three 16-bit counters clocked at 1.193182 MHz. Counts and outputs
/// are computed from the virtual clock on demand; channel 0's OUT drives <see cref="IrqLine"/> through a
/// <see cref="ClockTimer"/> armed for the next output transition, so nothing polls. Offsets 0-2 are the
/// counters, 3 the control word (the board maps them at 0x40). Channel 2's gate and speaker bits are the
/// board's port 0x61 (<see cref="ReadPort61"/>/<see cref="WritePort61"/>).
/// </summary>
public sealed class I8254Pit
{
    public const long Frequency = 1_193_182;
    public const int ControlWord = 3;
    public const int RegionSize = 4;

    // Access (RW) states: the control word's RW field, plus the second byte of a word access.
    public const byte RwStateLsb = 1;
    public const byte RwStateMsb = 2;
    public const byte RwStateWord0 = 3;
    public const byte RwStateWord1 = 4;

    // Control word fields (datasheet "Control Word Format").
    private const int ScReadBack = 3;
    private const int RwLatch = 0;
    private const byte ReadBackNoCount = 0x20;
    private const byte ReadBackNoStatus = 0x10;

    // Port 0x61 (PC system control port B).
    public const byte Port61Gate2 = 0x01;
    public const byte Port61SpeakerData = 0x02;
    public const byte Port61RefreshToggle = 0x10;
    public const byte Port61Out2 = 0x20;

    /// <summary>DRAM refresh request toggles every 15.085 us on a PC.</summary>
    private const long RefreshPeriodNs = 15_085;

    private const long NsPerSecond = 1_000_000_000;

    private readonly IClock _clock;
    private readonly IrqLine _irq;
    private readonly ClockTimer _timer;
    private readonly Channel[] _channels = [new(), new(), new()];
    private bool _speakerDataOn;

    /// <param name="clock">The virtual clock.</param>
    /// <param name="irq">Channel 0's OUT (ISA IRQ 0).</param>
    public I8254Pit(IClock clock, IrqLine irq)
    {
        _clock = clock;
        _irq = irq;
        _timer = new ClockTimer(clock, OnTimer);
        Reset();
    }

    public uint Read(int offset, int size)
    {
        _ = size;
        if ((uint)offset > 2)
        {
            // The control word register is write-only.
            return 0xFF;
        }
        Channel s = _channels[offset];
        if (s.StatusLatched)
        {
            s.StatusLatched = false;
            return s.Status;
        }
        int value;
        switch (s.CountLatched)
        {
            case RwStateLsb:
                s.CountLatched = 0;
                return (uint)(s.LatchedCount & 0xFF);
            case RwStateMsb:
                s.CountLatched = 0;
                return (uint)(s.LatchedCount >> 8);
            case RwStateWord0:
                s.CountLatched = RwStateMsb;
                return (uint)(s.LatchedCount & 0xFF);
            default:
                break;
        }
        value = GetCount(s);
        switch (s.ReadState)
        {
            case RwStateLsb:
                return (uint)(value & 0xFF);
            case RwStateMsb:
                return (uint)((value >> 8) & 0xFF);
            case RwStateWord0:
                s.ReadState = RwStateWord1;
                return (uint)(value & 0xFF);
            default:
                s.ReadState = RwStateWord0;
                return (uint)((value >> 8) & 0xFF);
        }
    }

    public void Write(int offset, int size, uint value)
    {
        _ = size;
        byte b = (byte)value;
        if ((uint)offset > 3)
        {
            return;
        }
        if (offset == ControlWord)
        {
            WriteControl(b);
            return;
        }
        Channel s = _channels[offset];
        switch (s.WriteState)
        {
            case RwStateLsb:
                LoadCount(offset, b);
                break;
            case RwStateMsb:
                LoadCount(offset, b << 8);
                break;
            case RwStateWord0:
                s.WriteLatch = b;
                s.WriteState = RwStateWord1;
                break;
            default:
                LoadCount(offset, s.WriteLatch | (b << 8));
                s.WriteState = RwStateWord0;
                break;
        }
    }

    /// <summary>Port 0x61 bits the PIT owns: gate 2, speaker data, refresh toggle and OUT2.</summary>
    public byte ReadPort61()
    {
        long now = _clock.NowNs;
        int refresh = (int)((now / RefreshPeriodNs) & 1);
        Channel c2 = _channels[2];
        return (byte)((c2.Gate ? Port61Gate2 : 0)
            | (_speakerDataOn ? Port61SpeakerData : 0)
            | (refresh != 0 ? Port61RefreshToggle : 0)
            | (GetOut(c2, now) ? Port61Out2 : 0));
    }

    /// <summary>Port 0x61 write: bit 0 is GATE2, bit 1 enables the speaker data.</summary>
    public void WritePort61(byte value)
    {
        _speakerDataOn = (value & Port61SpeakerData) != 0;
        SetGate(2, (value & Port61Gate2) != 0);
    }

    /// <summary>Drives GATE of <paramref name="channel"/> (only channel 2's is wired on a PC).</summary>
    public void SetGate(int channel, bool level)
    {
        Channel s = _channels[channel];
        // Modes 1, 5 (triggered) and 2, 3 (reload) restart on a rising gate edge; modes 0 and 4 are
        // only paused by a low gate, which this model does not track (as QEMU).
        if (!s.Gate && level && s.Mode is 1 or 2 or 3 or 5)
        {
            s.CountLoadTimeNs = _clock.NowNs;
        }
        s.Gate = level;
        if (channel == 0)
        {
            UpdateIrq();
        }
    }

    /// <summary>Current OUT level of <paramref name="channel"/>.</summary>
    public bool GetOut(int channel) => GetOut(_channels[channel], _clock.NowNs);

    private void WriteControl(byte value)
    {
        int select = value >> 6;
        if (select == ScReadBack)
        {
            long now = _clock.NowNs;
            for (int i = 0; i < 3; i++)
            {
                if ((value & (2 << i)) == 0)
                {
                    continue;
                }
                Channel s = _channels[i];
                if ((value & ReadBackNoCount) == 0)
                {
                    Latch(s);
                }
                if ((value & ReadBackNoStatus) == 0 && !s.StatusLatched)
                {
                    // Status byte: OUTPUT, NULL COUNT (never set here), RW1 RW0, M2 M1 M0, BCD.
                    s.Status = (byte)((GetOut(s, now) ? 0x80 : 0) | (s.RwMode << 4) | (s.Mode << 1) | (s.Bcd ? 1 : 0));
                    s.StatusLatched = true;
                }
            }
            return;
        }
        Channel c = _channels[select];
        int access = (value >> 4) & 3;
        if (access == RwLatch)
        {
            Latch(c);
            return;
        }
        c.RwMode = (byte)access;
        c.ReadState = (byte)access;
        c.WriteState = (byte)access;
        int mode = (value >> 1) & 7;
        // Modes 6 and 7 are modes 2 and 3 (M2 is don't-care for them).
        c.Mode = (byte)(mode > 5 ? mode - 4 : mode);
        c.Bcd = (value & 1) != 0;
        if (select == 0)
        {
            UpdateIrq();
        }
    }

    private void Latch(Channel s)
    {
        // A second latch before the first is read is ignored.
        if (s.CountLatched == 0)
        {
            s.LatchedCount = (ushort)GetCount(s);
            s.CountLatched = s.RwMode;
        }
    }

    private void LoadCount(int channel, int raw)
    {
        Channel s = _channels[channel];
        int count = s.Bcd ? FromBcd(raw) : raw;
        if (count == 0)
        {
            count = s.Bcd ? 10000 : 0x10000;
        }
        s.Count = count;
        s.CountLoadTimeNs = _clock.NowNs;
        if (channel == 0)
        {
            UpdateIrq();
        }
    }

    private static int FromBcd(int v) =>
        (v & 0xF) + (((v >> 4) & 0xF) * 10) + (((v >> 8) & 0xF) * 100) + (((v >> 12) & 0xF) * 1000);

    private static int ToBcd(int v) =>
        (v % 10) | ((v / 10 % 10) << 4) | ((v / 100 % 10) << 8) | ((v / 1000 % 10) << 12);

    /// <summary>Clock ticks since the count was loaded.</summary>
    private static long Ticks(Channel s, long now)
    {
        long elapsed = Math.Max(0, now - s.CountLoadTimeNs);
        return (long)((Int128)elapsed * Frequency / NsPerSecond);
    }

    /// <summary>The counting element's value now, as a guest reads it (BCD-encoded in BCD mode).</summary>
    private int GetCount(Channel s)
    {
        long d = Ticks(s, _clock.NowNs);
        int count = s.Count;
        int modulus = s.Bcd ? 10000 : 0x10000;
        long value = s.Mode switch
        {
            // Mode 3 decrements by two each clock.
            3 => count - (2 * d % count),
            2 => count - (d % count),
            _ => ((count - d) % modulus + modulus) % modulus,
        };
        int v = (int)value % modulus;
        return s.Bcd ? ToBcd(v) : v;
    }

    private static bool GetOut(Channel s, long now)
    {
        long d = Ticks(s, now);
        long count = s.Count;
        switch (s.Mode)
        {
            case 0:
                // Interrupt on terminal count: low until the count reaches zero.
                return d >= count;
            case 1:
                // Hardware one-shot: low for count clocks after the trigger.
                return d >= count;
            case 2:
                // Rate generator: high, low for the one clock while the counter holds 1.
                return !s.Gate || count < 2 || d % count != count - 1;
            case 3:
                // Square wave: high for ceil(N/2), low for floor(N/2).
                return !s.Gate || d % count < (count + 1) >> 1;
            default:
                // Modes 4 and 5 strobe: low for one clock when the count reaches zero.
                return d != count;
        }
    }

    /// <summary>Tick at which OUT next changes after tick <paramref name="d"/>, or -1 for never.</summary>
    private static long NextTransitionTick(Channel s, long d)
    {
        long count = s.Count;
        switch (s.Mode)
        {
            case 0:
            case 1:
                return d < count ? count : -1;
            case 2:
            {
                if (count < 2)
                {
                    return -1;
                }
                long r = d % count;
                long baseTick = d - r;
                return r < count - 1 ? baseTick + count - 1 : baseTick + count;
            }
            case 3:
            {
                long r = d % count;
                long baseTick = d - r;
                long half = (count + 1) >> 1;
                return r < half ? baseTick + half : baseTick + count;
            }
            default:
                return d < count ? count : d == count ? count + 1 : -1;
        }
    }

    private void UpdateIrq()
    {
        Channel s = _channels[0];
        long now = _clock.NowNs;
        bool output = GetOut(s, now);
        if (s.Mode is 2 or 3 && s.Count > 0)
        {
            // In the periodic modes OUT drops once per period, for one tick in mode 2. A timer that fires late (host
            // scheduling) may sample OUT after it rose again: count periods so every completed one still reaches
            // the edge-triggered PIC as a rising edge.
            long period = Ticks(s, now) / s.Count;
            if (period > _lastPeriod && output)
            {
                _irq.Set(false);
            }
            _lastPeriod = period;
        }
        _irq.Set(output);
        long next = s.Mode is 2 or 3 && !s.Gate ? -1 : NextTransitionTick(s, Ticks(s, now));
        if (next < 0)
        {
            _timer.Cancel();
            return;
        }
        // First nanosecond at which Ticks() reaches next: ceil(next * 1e9 / f).
        long deadline = s.CountLoadTimeNs + (long)(((Int128)next * NsPerSecond + Frequency - 1) / Frequency);
        _timer.Modify(deadline);
    }

    private void OnTimer() => UpdateIrq();

    /// <summary>Channel 0's completed periods at the last IRQ update (derived, so not part of the saved state).</summary>
    private long _lastPeriod;

    public I8254PitState Save() => new(_channels[0].Save(), _channels[1].Save(), _channels[2].Save(), _speakerDataOn);

    /// <summary>Loads <paramref name="state"/>, then re-derives IRQ 0's level and re-arms its timer.</summary>
    public void Restore(I8254PitState state)
    {
        _channels[0].Restore(state.Channel0);
        _channels[1].Restore(state.Channel1);
        _channels[2].Restore(state.Channel2);
        _speakerDataOn = state.SpeakerDataOn;
        UpdateIrq();
    }

    /// <summary>Power-on state with count load times at the current virtual time.</summary>
    public void Reset()
    {
        long now = _clock.NowNs;
        I8254PitState p = I8254PitState.PowerOn;
        Restore(p with
        {
            Channel0 = p.Channel0 with { CountLoadTimeNs = now },
            Channel1 = p.Channel1 with { CountLoadTimeNs = now },
            Channel2 = p.Channel2 with { CountLoadTimeNs = now },
        });
    }

    private sealed class Channel
    {
        public int Count = 0x10000;
        public ushort LatchedCount;
        public byte CountLatched;
        public bool StatusLatched;
        public byte Status;
        public byte ReadState;
        public byte WriteState;
        public byte WriteLatch;
        public byte RwMode;
        public byte Mode;
        public bool Bcd;
        public bool Gate;
        public long CountLoadTimeNs;

        public I8254ChannelState Save() => new(Count, LatchedCount, CountLatched, StatusLatched, Status, ReadState,
            WriteState, WriteLatch, RwMode, Mode, Bcd, Gate, CountLoadTimeNs);

        public void Restore(I8254ChannelState s)
        {
            // Clamp what a stream could hold out of range so later divisions and switches stay defined.
            Count = Math.Clamp(s.Count, 1, 0x10000);
            LatchedCount = s.LatchedCount;
            CountLatched = (byte)(s.CountLatched & 3);
            StatusLatched = s.StatusLatched;
            Status = s.Status;
            ReadState = (byte)Math.Clamp((int)s.ReadState, RwStateLsb, RwStateWord1);
            WriteState = (byte)Math.Clamp((int)s.WriteState, RwStateLsb, RwStateWord1);
            WriteLatch = s.WriteLatch;
            RwMode = (byte)Math.Clamp((int)s.RwMode, RwStateLsb, RwStateWord0);
            Mode = (byte)(s.Mode > 5 ? s.Mode & 3 : s.Mode);
            Bcd = s.Bcd;
            Gate = s.Gate;
            CountLoadTimeNs = s.CountLoadTimeNs;
        }
    }
}
