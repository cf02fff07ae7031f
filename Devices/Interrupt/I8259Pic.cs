using Colo.Core.Cpu;
using Colo.Core.Irq;

namespace Colo.Devices.Interrupt;

/// <summary>One 8259A's registers, as saved. Field meanings follow the Intel 8259A datasheet.</summary>
/// <param name="LastIrr">Input levels last seen (edge detection).</param>
/// <param name="Irr">Interrupt request register.</param>
/// <param name="Imr">Interrupt mask register (OCW1).</param>
/// <param name="Isr">In-service register.</param>
/// <param name="PriorityAdd">IR level with the highest priority (changed by rotation).</param>
/// <param name="IrqBase">Vector base, ICW2 bits 7-3.</param>
/// <param name="ReadIsr">OCW3 RR/RIS: a read of offset 0 returns ISR instead of IRR.</param>
/// <param name="Poll">OCW3 P: the next read is a poll word.</param>
/// <param name="SpecialMask">OCW3 SMM: special mask mode.</param>
/// <param name="InitState">0 ready, 1/2/3 waiting for ICW2/ICW3/ICW4.</param>
/// <param name="AutoEoi">ICW4 AEOI.</param>
/// <param name="RotateOnAutoEoi">OCW2 rotate-in-automatic-EOI mode.</param>
/// <param name="SpecialFullyNested">ICW4 SFNM.</param>
/// <param name="Icw4Needed">ICW1 IC4.</param>
/// <param name="SingleMode">ICW1 SNGL.</param>
/// <param name="LevelTriggeredAll">ICW1 LTIM: every input level-triggered.</param>
/// <param name="Elcr">PIIX edge/level control register (1 = level).</param>
/// <param name="Icw3">Cascade byte from ICW3.</param>
public sealed record I8259ChipState(
    byte LastIrr, byte Irr, byte Imr, byte Isr, byte PriorityAdd, byte IrqBase,
    bool ReadIsr, bool Poll, bool SpecialMask, byte InitState, bool AutoEoi, bool RotateOnAutoEoi,
    bool SpecialFullyNested, bool Icw4Needed, bool SingleMode, bool LevelTriggeredAll, byte Elcr, byte Icw3)
{
    /// <summary>The state at power-on: everything clear, waiting for ICW1.</summary>
    public static I8259ChipState PowerOn { get; } =
        new(0, 0, 0, 0, 0, 0, false, false, false, 0, false, false, false, false, false, false, 0, 0);
}

/// <summary>Saved state of the master/slave pair (vmstate section "i8259", version 1).</summary>
public sealed record I8259PicState(I8259ChipState Master, I8259ChipState Slave)
{
    public const string Section = "i8259";
    public const int Version = 1;

    public static I8259PicState PowerOn { get; } = new(I8259ChipState.PowerOn, I8259ChipState.PowerOn);
}

/// <summary>
/// The PC's cascaded pair of Intel 8259A programmable interrupt controllers, with the PIIX edge/level
/// control registers (ELCR). The slave's INT output drives the master's IR2. Offsets (the board maps them,
/// in the PC at 0x20, 0xA0 and 0x4D0): <see cref="MasterCommand"/>/<see cref="MasterData"/>,
/// <see cref="SlaveCommand"/>/<see cref="SlaveData"/>, <see cref="ElcrMaster"/>/<see cref="ElcrSlave"/>.
/// Inputs 0-7 are the master's IR0-7, 8-15 the slave's.
/// </summary>
public sealed class I8259Pic : IInterruptSource
{
    public const int MasterCommand = 0;
    public const int MasterData = 1;
    public const int SlaveCommand = 2;
    public const int SlaveData = 3;
    public const int ElcrMaster = 4;
    public const int ElcrSlave = 5;
    public const int RegionSize = 6;

    /// <summary>Master input the slave's INT output is wired to.</summary>
    public const int CascadeIrq = 2;

    // ICW1 (A0=0, D4=1).
    private const byte Icw1Select = 0x10;
    private const byte Icw1Ic4 = 0x01;
    private const byte Icw1Sngl = 0x02;
    private const byte Icw1Ltim = 0x08;

    // OCW3 (A0=0, D4=0, D3=1).
    private const byte Ocw3Select = 0x08;
    private const byte Ocw3Ris = 0x01;
    private const byte Ocw3Rr = 0x02;
    private const byte Ocw3Poll = 0x04;
    private const byte Ocw3Smm = 0x20;
    private const byte Ocw3Esmm = 0x40;

    // OCW2 R/SL/EOI commands (bits 7-5).
    private const int Ocw2RotateAeoiClear = 0;
    private const int Ocw2NonSpecificEoi = 1;
    private const int Ocw2SpecificEoi = 3;
    private const int Ocw2RotateAeoiSet = 4;
    private const int Ocw2RotateNonSpecificEoi = 5;
    private const int Ocw2SetPriority = 6;
    private const int Ocw2RotateSpecificEoi = 7;

    // ICW4.
    private const byte Icw4Aeoi = 0x02;
    private const byte Icw4Sfnm = 0x10;

    /// <summary>Poll word bit 7: an interrupt was pending.</summary>
    private const byte PollInterrupt = 0x80;

    /// <summary>IR0-2 (timer, keyboard, cascade) are always edge-triggered on the master.</summary>
    public const byte ElcrMaskMaster = 0xF8;

    /// <summary>IR8 (RTC) and IR13 (FPU) are always edge-triggered on the slave.</summary>
    public const byte ElcrMaskSlave = 0xDE;

    private readonly IrqLine _intr;
    private readonly Chip _master = new(isMaster: true, ElcrMaskMaster);
    private readonly Chip _slave = new(isMaster: false, ElcrMaskSlave);
    private readonly IrqLine[] _inputs = new IrqLine[16];
    private bool _slaveOutput;

    /// <param name="intr">The INTR line to the CPU (or LAPIC LINT0).</param>
    public I8259Pic(IrqLine intr)
    {
        _intr = intr;
        for (int i = 0; i < _inputs.Length; i++)
        {
            int irq = i;
            _inputs[i] = new IrqLine(level => SetIrq(irq, level));
        }
    }

    /// <summary>Lines for devices to drive: index 0-7 master IR0-7, 8-15 slave IR0-7.</summary>
    public IReadOnlyList<IrqLine> Inputs => _inputs;

    public uint Read(int offset, int size)
    {
        _ = size;
        return offset switch
        {
            MasterCommand or MasterData => ReadChip(_master, offset & 1),
            SlaveCommand or SlaveData => ReadChip(_slave, offset & 1),
            ElcrMaster => _master.Elcr,
            ElcrSlave => _slave.Elcr,
            _ => 0xFF,
        };
    }

    public void Write(int offset, int size, uint value)
    {
        _ = size;
        byte b = (byte)value;
        switch (offset)
        {
            case MasterCommand or MasterData:
                WriteChip(_master, offset & 1, b);
                break;
            case SlaveCommand or SlaveData:
                WriteChip(_slave, offset & 1, b);
                break;
            case ElcrMaster:
                _master.Elcr = (byte)(b & _master.ElcrMask);
                break;
            case ElcrSlave:
                _slave.Elcr = (byte)(b & _slave.ElcrMask);
                break;
            default:
                break;
        }
    }

    /// <summary>Drives input <paramref name="irq"/> (0-15) to <paramref name="level"/>.</summary>
    public void SetIrq(int irq, bool level)
    {
        if ((uint)irq >= 16)
        {
            return;
        }
        (irq < 8 ? _master : _slave).SetInput(irq & 7, level);
        Update();
    }

    /// <summary>
    /// The interrupt-acknowledge cycle: returns the vector of the highest-priority request and moves it to
    /// in-service. With nothing deliverable, returns the spurious vector (IR7 of the chip asked: base + 7)
    /// without touching ISR, as the datasheet describes.
    /// </summary>
    public byte Acknowledge()
    {
        int irq = _master.GetIrq();
        byte vector;
        if (irq >= 0)
        {
            if (irq == CascadeIrq)
            {
                int irq2 = _slave.GetIrq();
                if (irq2 >= 0)
                {
                    _slave.Acknowledge(irq2);
                }
                else
                {
                    irq2 = 7;
                }
                vector = (byte)(_slave.IrqBase + irq2);
            }
            else
            {
                vector = (byte)(_master.IrqBase + irq);
            }
            _master.Acknowledge(irq);
        }
        else
        {
            vector = (byte)(_master.IrqBase + 7);
        }
        Update();
        return vector;
    }

    /// <inheritdoc/>
    public bool TryAcknowledge(out byte vector)
    {
        if (!_intr.Level)
        {
            vector = 0;
            return false;
        }
        vector = Acknowledge();
        return true;
    }

    private byte ReadChip(Chip chip, int a0)
    {
        if (chip.Poll)
        {
            chip.Poll = false;
            int irq = chip.GetIrq();
            if (irq < 0)
            {
                return 0;
            }
            chip.Acknowledge(irq);
            Update();
            return (byte)(irq | PollInterrupt);
        }
        if (a0 == 0)
        {
            return chip.ReadIsr ? chip.Isr : chip.Irr;
        }
        return chip.Imr;
    }

    private void WriteChip(Chip chip, int a0, byte value)
    {
        if (a0 == 0)
        {
            if ((value & Icw1Select) != 0)
            {
                // ICW1: clears IMR and ISR, IR7 lowest priority, special mask off, IRR read selected;
                // the edge-sense latches are cleared, so an input already high needs a new edge.
                chip.InitReset();
                chip.Icw4Needed = (value & Icw1Ic4) != 0;
                chip.SingleMode = (value & Icw1Sngl) != 0;
                chip.LevelTriggeredAll = (value & Icw1Ltim) != 0;
                chip.InitState = 1;
            }
            else if ((value & Ocw3Select) != 0)
            {
                if ((value & Ocw3Poll) != 0)
                {
                    chip.Poll = true;
                }
                if ((value & Ocw3Rr) != 0)
                {
                    chip.ReadIsr = (value & Ocw3Ris) != 0;
                }
                if ((value & Ocw3Esmm) != 0)
                {
                    chip.SpecialMask = (value & Ocw3Smm) != 0;
                }
            }
            else
            {
                WriteOcw2(chip, value);
            }
        }
        else
        {
            switch (chip.InitState)
            {
                case 0:
                    chip.Imr = value;
                    break;
                case 1:
                    chip.IrqBase = (byte)(value & 0xF8);
                    chip.InitState = chip.SingleMode ? (byte)(chip.Icw4Needed ? 3 : 0) : (byte)2;
                    break;
                case 2:
                    chip.Icw3 = value;
                    chip.InitState = chip.Icw4Needed ? (byte)3 : (byte)0;
                    break;
                default:
                    chip.SpecialFullyNested = (value & Icw4Sfnm) != 0;
                    chip.AutoEoi = (value & Icw4Aeoi) != 0;
                    chip.InitState = 0;
                    break;
            }
        }
        Update();
    }

    private static void WriteOcw2(Chip chip, byte value)
    {
        int command = value >> 5;
        int level = value & 7;
        switch (command)
        {
            case Ocw2RotateAeoiClear:
                chip.RotateOnAutoEoi = false;
                break;
            case Ocw2RotateAeoiSet:
                chip.RotateOnAutoEoi = true;
                break;
            case Ocw2NonSpecificEoi:
            case Ocw2RotateNonSpecificEoi:
                int priority = Chip.GetPriority(chip.Isr, chip.PriorityAdd);
                if (priority != 8)
                {
                    int irq = (priority + chip.PriorityAdd) & 7;
                    chip.Isr &= (byte)~(1 << irq);
                    if (command == Ocw2RotateNonSpecificEoi)
                    {
                        chip.PriorityAdd = (byte)((irq + 1) & 7);
                    }
                }
                break;
            case Ocw2SpecificEoi:
                chip.Isr &= (byte)~(1 << level);
                break;
            case Ocw2SetPriority:
                chip.PriorityAdd = (byte)((level + 1) & 7);
                break;
            case Ocw2RotateSpecificEoi:
                chip.Isr &= (byte)~(1 << level);
                chip.PriorityAdd = (byte)((level + 1) & 7);
                break;
            default:
                // 2: no operation.
                break;
        }
    }

    /// <summary>Propagates the slave's INT to master IR2, and the master's INT to the CPU.</summary>
    private void Update()
    {
        bool slaveOut = _slave.GetIrq() >= 0;
        if (slaveOut != _slaveOutput)
        {
            _slaveOutput = slaveOut;
            _master.SetInput(CascadeIrq, slaveOut);
        }
        _intr.Set(_master.GetIrq() >= 0);
    }

    public I8259PicState Save() => new(_master.Save(), _slave.Save());

    /// <summary>Loads <paramref name="state"/> and re-derives the cascade and INTR levels from it.</summary>
    public void Restore(I8259PicState state)
    {
        _master.Restore(state.Master);
        _slave.Restore(state.Slave);
        // The master's IR2 latch is part of its saved state; only the wire level is re-derived.
        _slaveOutput = _slave.GetIrq() >= 0;
        _intr.Set(_master.GetIrq() >= 0);
    }

    public void Reset() => Restore(I8259PicState.PowerOn);

    private sealed class Chip(bool isMaster, byte elcrMask)
    {
        public readonly bool IsMaster = isMaster;
        public readonly byte ElcrMask = elcrMask;
        public byte LastIrr;
        public byte Irr;
        public byte Imr;
        public byte Isr;
        public byte PriorityAdd;
        public byte IrqBase;
        public bool ReadIsr;
        public bool Poll;
        public bool SpecialMask;
        public byte InitState;
        public bool AutoEoi;
        public bool RotateOnAutoEoi;
        public bool SpecialFullyNested;
        public bool Icw4Needed;
        public bool SingleMode;
        public bool LevelTriggeredAll;
        public byte Elcr;
        public byte Icw3;

        private bool IsLevel(int mask) => LevelTriggeredAll || (Elcr & mask) != 0;

        public void SetInput(int irq, bool level)
        {
            int mask = 1 << irq;
            if (IsLevel(mask))
            {
                if (level)
                {
                    Irr |= (byte)mask;
                    LastIrr |= (byte)mask;
                }
                else
                {
                    Irr &= (byte)~mask;
                    LastIrr &= (byte)~mask;
                }
            }
            else if (level)
            {
                if ((LastIrr & mask) == 0)
                {
                    Irr |= (byte)mask;
                }
                LastIrr |= (byte)mask;
            }
            else
            {
                LastIrr &= (byte)~mask;
            }
        }

        /// <summary>Priority (0 highest) of the highest-priority bit of <paramref name="mask"/>; 8 if none.</summary>
        public static int GetPriority(int mask, int priorityAdd)
        {
            if (mask == 0)
            {
                return 8;
            }
            int priority = 0;
            while ((mask & (1 << ((priority + priorityAdd) & 7))) == 0)
            {
                priority++;
            }
            return priority;
        }

        /// <summary>The IR level that would interrupt now, or -1.</summary>
        public int GetIrq()
        {
            int priority = GetPriority(Irr & ~Imr, PriorityAdd);
            if (priority == 8)
            {
                return -1;
            }
            int inService = Isr;
            if (SpecialMask)
            {
                // Special mask mode: masked in-service levels do not inhibit lower priorities.
                inService &= ~Imr;
            }
            if (SpecialFullyNested && IsMaster)
            {
                // SFNM: a further request from the slave is let through while IR2 is in service.
                inService &= ~(1 << CascadeIrq);
            }
            int current = GetPriority(inService, PriorityAdd);
            return priority < current ? (priority + PriorityAdd) & 7 : -1;
        }

        public void Acknowledge(int irq)
        {
            if (AutoEoi)
            {
                if (RotateOnAutoEoi)
                {
                    PriorityAdd = (byte)((irq + 1) & 7);
                }
            }
            else
            {
                Isr |= (byte)(1 << irq);
            }
            // A level-triggered request stays in IRR while its input is high.
            if (!IsLevel(1 << irq))
            {
                Irr &= (byte)~(1 << irq);
            }
        }

        public void InitReset()
        {
            LastIrr = 0;
            Irr &= Elcr;
            Imr = 0;
            Isr = 0;
            PriorityAdd = 0;
            IrqBase = 0;
            ReadIsr = false;
            Poll = false;
            SpecialMask = false;
            InitState = 0;
            AutoEoi = false;
            RotateOnAutoEoi = false;
            SpecialFullyNested = false;
            Icw4Needed = false;
            SingleMode = false;
            LevelTriggeredAll = false;
        }

        public I8259ChipState Save() => new(LastIrr, Irr, Imr, Isr, PriorityAdd, IrqBase, ReadIsr, Poll, SpecialMask,
            InitState, AutoEoi, RotateOnAutoEoi, SpecialFullyNested, Icw4Needed, SingleMode, LevelTriggeredAll, Elcr, Icw3);

        public void Restore(I8259ChipState s)
        {
            LastIrr = s.LastIrr;
            Irr = s.Irr;
            Imr = s.Imr;
            Isr = s.Isr;
            PriorityAdd = (byte)(s.PriorityAdd & 7);
            IrqBase = (byte)(s.IrqBase & 0xF8);
            ReadIsr = s.ReadIsr;
            Poll = s.Poll;
            SpecialMask = s.SpecialMask;
            InitState = (byte)(s.InitState & 3);
            AutoEoi = s.AutoEoi;
            RotateOnAutoEoi = s.RotateOnAutoEoi;
            SpecialFullyNested = s.SpecialFullyNested;
            Icw4Needed = s.Icw4Needed;
            SingleMode = s.SingleMode;
            LevelTriggeredAll = s.LevelTriggeredAll;
            Elcr = (byte)(s.Elcr & ElcrMask);
            Icw3 = s.Icw3;
        }
    }
}
