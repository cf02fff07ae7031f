using Colo.Core.Io;
using Colo.Core.Irq;

namespace Colo.Devices.Interrupt;

/// <summary>Saved IOAPIC state (vmstate section "ioapic", version 2).</summary>
/// <param name="Id">The ID register's value (bits 27:24).</param>
/// <param name="Select">IOREGSEL.</param>
/// <param name="Irr">Pins whose input is asserted (level) or latched (edge) and not yet delivered.</param>
/// <param name="Redirection">The 24 redirection entries, including remote IRR and delivery status bits.</param>
public sealed record IoApicState(byte Id, byte Select, uint Irr, ulong[] Redirection)
{
    public const string Section = "ioapic";
    public const int Version = 2;

    public bool Equals(IoApicState? other) =>
        other is not null && Id == other.Id && Select == other.Select && Irr == other.Irr
        && Redirection.AsSpan().SequenceEqual(other.Redirection);

    public override int GetHashCode() => HashCode.Combine(Id, Select, Irr);
}

/// <summary>An interrupt message from the IOAPIC to the local APICs (82093AA datasheet 3.2.4).</summary>
/// <param name="Destination">APIC ID (physical) or logical destination mask.</param>
/// <param name="Logical">Destination mode: logical when true.</param>
/// <param name="DeliveryMode">0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 7 ExtINT.</param>
/// <param name="Vector">The vector.</param>
/// <param name="Level">Level-triggered: the LAPIC must broadcast the EOI back.</param>
public readonly record struct ApicMessage(byte Destination, bool Logical, byte DeliveryMode, byte Vector, bool Level);

/// <summary>
/// Intel 82093AA I/O APIC as QEMU's <c>ioapic</c> (version 0x20, 24 pins): IOREGSEL/IOWIN indirect registers, the
/// redirection table with masking, edge and level triggering, remote IRR for level pins until the EOI comes back
/// (the EOI register at 0x40 of version 0x20 and the LAPIC's broadcast both count). Inputs are <see cref="IrqLine"/>
/// sinks the board wires to GSIs; delivered interrupts leave as <see cref="ApicMessage"/>s to whatever the board
/// connects (the interpreter's LAPICs; nothing under qtest).
/// </summary>
public sealed class IoApic
{
    public const int Pins = 24;
    public const ulong MmioSize = 0x1000;

    // MMIO offsets.
    public const int RegSelect = 0x00;
    public const int RegWindow = 0x10;
    public const int RegEoi = 0x40;

    // Indirect registers.
    public const int IndexId = 0x00;
    public const int IndexVersion = 0x01;
    public const int IndexArbitration = 0x02;
    public const int IndexRedirection = 0x10;

    public const byte VersionValue = 0x20;

    // Redirection entry bits (datasheet 3.2.4).
    public const ulong RteMasked = 1UL << 16;
    public const ulong RteLevel = 1UL << 15;
    public const ulong RteRemoteIrr = 1UL << 14;
    public const ulong RtePolarityLow = 1UL << 13;
    public const ulong RteDeliveryStatus = 1UL << 12;
    public const ulong RteLogical = 1UL << 11;
    private const ulong RteReadOnly = RteRemoteIrr | RteDeliveryStatus;

    private readonly IrqLine[] _inputs = new IrqLine[Pins];
    private readonly ulong[] _redirection = new ulong[Pins];
    private byte _id;
    private byte _select;
    private uint _irr;
    private uint _levels;

    public IoApic()
    {
        for (int pin = 0; pin < Pins; pin++)
        {
            int p = pin;
            _inputs[pin] = new IrqLine(level => SetIrq(p, level));
        }
        Region = new IoRegion("ioapic", MmioSize, (o, s) => Read((int)o, s), (o, s, v) => Write((int)o, s, (uint)v), 1, 4);
        Reset();
    }

    /// <summary>Where delivered interrupts go; null drops them.</summary>
    public Action<ApicMessage>? Deliver { get; set; }

    /// <summary>The 24 input pins (GSI 0–23).</summary>
    public IReadOnlyList<IrqLine> Inputs => _inputs;

    /// <summary>The MMIO window (board maps it at 0xFEC00000).</summary>
    public IoRegion Region { get; }

    /// <summary>A redirection entry, for tests and <c>info pic</c>.</summary>
    public ulong GetRedirection(int pin) => _redirection[pin];

    public uint Read(int offset, int size)
    {
        switch (offset & ~3)
        {
            case RegSelect:
                return _select;
            case RegWindow:
                uint value = ReadIndirect(_select);
                return value >> (8 * (offset & 3));
            default:
                return 0;
        }
    }

    public void Write(int offset, int size, uint value)
    {
        switch (offset & ~3)
        {
            case RegSelect:
                _select = (byte)value;
                break;
            case RegWindow:
                WriteIndirect(_select, value);
                break;
            case RegEoi:
                Eoi((byte)value);
                break;
        }
    }

    /// <summary>Drives pin <paramref name="pin"/> (also what the input lines call).</summary>
    public void SetIrq(int pin, bool level)
    {
        if ((uint)pin >= Pins)
        {
            return;
        }
        uint bit = 1u << pin;
        bool wasHigh = (_levels & bit) != 0;
        _levels = level ? _levels | bit : _levels & ~bit;
        ulong entry = _redirection[pin];
        if ((entry & RteLevel) != 0)
        {
            _irr = level ? _irr | bit : _irr & ~bit;
        }
        else if (level && !wasHigh)
        {
            _irr |= bit;
        }
        Service();
    }

    /// <summary>An EOI for <paramref name="vector"/> broadcast by a LAPIC: clears remote IRR of level pins using it.</summary>
    public void Eoi(byte vector)
    {
        for (int pin = 0; pin < Pins; pin++)
        {
            ulong entry = _redirection[pin];
            if ((entry & RteLevel) != 0 && (entry & RteRemoteIrr) != 0 && (byte)entry == vector)
            {
                _redirection[pin] = entry & ~RteRemoteIrr;
            }
        }
        Service();
    }

    public IoApicState Save() => new(_id, _select, _irr, (ulong[])_redirection.Clone());

    public void Restore(IoApicState state)
    {
        if (state.Redirection.Length != Pins)
        {
            throw new ArgumentException($"IOAPIC state needs {Pins} redirection entries, got {state.Redirection.Length}", nameof(state));
        }
        _id = state.Id;
        _select = state.Select;
        _irr = state.Irr;
        state.Redirection.CopyTo(_redirection, 0);
        Service();
    }

    public void Reset()
    {
        _id = 0;
        _select = 0;
        _irr = 0;
        for (int pin = 0; pin < Pins; pin++)
        {
            _redirection[pin] = RteMasked;
        }
        // Pins still asserted stay asserted across a reset; they only latch again on the next edge.
        _irr = 0;
    }

    private uint ReadIndirect(byte index)
    {
        switch (index)
        {
            case IndexId:
                return (uint)_id << 24;
            case IndexVersion:
                return ((uint)(Pins - 1) << 16) | VersionValue;
            case IndexArbitration:
                return (uint)_id << 24;
            default:
                int pin = (index - IndexRedirection) >> 1;
                if (index >= IndexRedirection && pin < Pins)
                {
                    ulong entry = _redirection[pin];
                    return (index & 1) == 0 ? (uint)entry : (uint)(entry >> 32);
                }
                return 0;
        }
    }

    private void WriteIndirect(byte index, uint value)
    {
        if (index == IndexId)
        {
            _id = (byte)((value >> 24) & 0x0F);
            return;
        }
        int pin = (index - IndexRedirection) >> 1;
        if (index < IndexRedirection || pin >= Pins)
        {
            return;
        }
        ulong entry = _redirection[pin];
        if ((index & 1) == 0)
        {
            ulong low = (value & ~(uint)RteReadOnly) | ((uint)entry & (uint)RteReadOnly);
            entry = (entry & 0xFFFFFFFF00000000UL) | low;
            if ((entry & RteLevel) == 0)
            {
                entry &= ~RteRemoteIrr; // an edge pin never waits for an EOI
            }
            else if ((_levels & (1u << pin)) != 0)
            {
                _irr |= 1u << pin; // switching to level while asserted: the level is pending
            }
        }
        else
        {
            entry = (entry & 0xFFFFFFFF) | ((ulong)(value & 0xFF000000) << 32);
        }
        _redirection[pin] = entry;
        Service();
    }

    private void Service()
    {
        if (_irr == 0)
        {
            return;
        }
        for (int pin = 0; pin < Pins; pin++)
        {
            uint bit = 1u << pin;
            if ((_irr & bit) == 0)
            {
                continue;
            }
            ulong entry = _redirection[pin];
            if ((entry & RteMasked) != 0)
            {
                continue;
            }
            bool level = (entry & RteLevel) != 0;
            if (level)
            {
                if ((entry & RteRemoteIrr) != 0)
                {
                    continue;
                }
                _redirection[pin] = entry | RteRemoteIrr;
            }
            else
            {
                _irr &= ~bit;
            }
            Deliver?.Invoke(new ApicMessage((byte)(entry >> 56), (entry & RteLogical) != 0, (byte)((entry >> 8) & 7), (byte)entry, level));
        }
    }
}
