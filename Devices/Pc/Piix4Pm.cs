using Colo.Core.Io;
using Colo.Core.Irq;
using Colo.Core.Time;
using Colo.Devices.Pci;

namespace Colo.Devices.Pc;

/// <summary>Saved PIIX4 power-management state: configuration space, the ACPI fixed registers, GPE0 and APM.</summary>
/// <param name="Pci">Configuration space (PMBA, PMREGMISC, SMBus base live there).</param>
/// <param name="Pm1Status">PM1a_STS.</param>
/// <param name="Pm1Enable">PM1a_EN.</param>
/// <param name="Pm1Control">PM1a_CNT (SLP_EN never reads back).</param>
/// <param name="TimerOverflowTicks">PM timer tick count at which TMR_STS next sets (0 after reset: set at once, as QEMU).</param>
/// <param name="Gpe0Status">GPE0_STS.</param>
/// <param name="Gpe0Enable">GPE0_EN.</param>
/// <param name="ApmControl">APM control port (0xB2) last write.</param>
/// <param name="ApmStatus">APM status port (0xB3).</param>
public sealed record Piix4PmState(PciDeviceState Pci, ushort Pm1Status, ushort Pm1Enable, ushort Pm1Control, long TimerOverflowTicks,
    ushort Gpe0Status, ushort Gpe0Enable, byte ApmControl, byte ApmStatus)
{
    public const string Section = "piix4_pm";
    public const int Version = 3;
}

/// <summary>
/// Intel 82371AB PIIX4 function 3, power management (PCI 00:01.3, 8086:7113, class 0x0680, rev 3, INTA), as QEMU's
/// <c>PIIX4_PM</c> presents it: the ACPI fixed hardware (datasheet 7.2 / ACPI 1.0 4.7) in a 64-byte I/O block at
/// PMBA (config 0x40, bits 15:6) when PMREGMISC (0x80) bit 0 enables it — PM1a event (STS/EN) at +0, PM1a control
/// at +4, the 24-bit 3.579545 MHz PM timer at +8 — plus the GPE0 block (QEMU puts it at 0xAFE0, outside the chip's
/// own map) and the APM control/status ports (0xB2/0xB3) whose ACPI_ENABLE/DISABLE values toggle SCI_EN. The SCI is
/// a level on ISA IRQ 9. SLP_EN with SLP_TYP 0 (S5) or 2 (S4, QEMU's default s4_val) asks the board to power off;
/// S3 (type 1) is not emulated and is ignored. Not modelled: the SMBus host controller (its base register 0x90 and
/// enable byte 0xD2 hold QEMU's values, but nothing answers at 0xB100), SMI generation (no SMM: DEVACTB reads as
/// QEMU's <c>smm=off</c>), PCI and CPU hot-plug registers.
/// </summary>
public sealed class Piix4Pm : PciDevice
{
    // Configuration registers (datasheet 11.1).
    public const int Pmba = 0x40;
    public const int PmRegMisc = 0x80;
    public const int SmbBase = 0x90;
    public const int SmbHostConfig = 0xD2;
    public const ushort DefaultSmbIoBase = 0xB100;

    /// <summary>Size of the PMBA block.</summary>
    public const int PmBlockSize = 64;

    // Offsets inside the PM block.
    public const int Pm1Status = 0x00;
    public const int Pm1Enable = 0x02;
    public const int Pm1Control = 0x04;
    public const int PmTimer = 0x08;

    // PM1 status/enable bits (ACPI 4.7.3.1).
    public const ushort TimerBit = 1 << 0;
    public const ushort GlobalBit = 1 << 5;
    public const ushort PowerButtonBit = 1 << 8;
    public const ushort RtcBit = 1 << 10;
    public const ushort WakeStatus = 1 << 15;

    // PM1 control bits (ACPI 4.7.3.2).
    public const ushort SciEnable = 1 << 0;
    public const ushort SleepEnable = 1 << 13;
    public const int SleepTypeShift = 10;

    /// <summary>PM timer frequency in Hz.</summary>
    public const long TimerFrequency = 3_579_545;

    /// <summary>APM commands that switch between legacy and ACPI mode (the FADT's ACPI_ENABLE/ACPI_DISABLE).</summary>
    public const byte ApmAcpiEnable = 0xF1;
    public const byte ApmAcpiDisable = 0xF0;

    private const ushort SciSources = TimerBit | GlobalBit | PowerButtonBit | RtcBit;
    private const long TimerHalfPeriod = 1 << 23;

    private readonly IClock _clock;
    private readonly IrqLine _sci;
    private readonly Action _powerOff;
    private readonly ClockTimer _overflowTimer;
    private ushort _pm1Status;
    private ushort _pm1Enable;
    private ushort _pm1Control;
    private long _overflowTicks;
    private ushort _gpeStatus;
    private ushort _gpeEnable;
    private byte _apmControl;
    private byte _apmStatus;
    private bool _sciLevel;

    /// <param name="clock">The virtual clock the PM timer counts.</param>
    /// <param name="sci">The SCI (the board wires ISA IRQ 9).</param>
    /// <param name="powerOff">Called when the guest enters S5 (or S4).</param>
    public Piix4Pm(IClock clock, IrqLine sci, Action powerOff)
        : base("PIIX4_PM", 0x8086, 0x7113, 0x03, 0x068000, interruptPin: 1)
    {
        _clock = clock;
        _sci = sci;
        _powerOff = powerOff;
        _overflowTimer = new ClockTimer(clock, OnTimerOverflow);
        SetWord(SubsystemVendorId, 0x1AF4);
        SetWord(SubsystemId, 0x1100);
        // Values QEMU 7.2 reports at power-on (read over qtest, smm=off): PMBA's I/O indicator, the device-resource bytes,
        // the SMBus base and host configuration.
        SetByte(Pmba, 0x01);
        SetByte(0x5F, 0x10);
        // DEVACTB's APMC_EN already set: what QEMU does when the machine has no SMM (Colo has none), so SeaBIOS
        // skips its SMM relocation, which would wait forever for an SMI handler to answer on port 0xB3.
        SetByte(0x5B, 0x02);
        SetByte(0x63, 0x60);
        SetWord(SmbBase, DefaultSmbIoBase | 1);
        SetByte(SmbHostConfig, 0x09);
        // Like QEMU, every device-specific byte is writable.
        for (int i = 0x40; i < 0x100; i++)
        {
            SetByteMask(i, 0xFF);
        }
        PmRegion = new IoRegion("piix4-pm", PmBlockSize, (o, s) => ReadPm((int)o, s), (o, s, v) => WritePm((int)o, s, (uint)v), 1, 4);
        GpeRegion = new IoRegion("acpi-gpe0", 4, (o, s) => ReadGpe((int)o, s), (o, s, v) => WriteGpe((int)o, s, (uint)v), 1, 4);
        ApmRegion = new IoRegion("apm-io", 2, (o, _) => o == 0 ? _apmControl : _apmStatus, (o, _, v) => WriteApm((int)o, (byte)v), 1, 1);
        FinishInit();
    }

    /// <summary>The 64-byte ACPI register block, mapped by the board at <see cref="PmIoBase"/> while enabled.</summary>
    public IoRegion PmRegion { get; }

    /// <summary>GPE0 status/enable (two bytes each); the board maps it at 0xAFE0 as QEMU.</summary>
    public IoRegion GpeRegion { get; }

    /// <summary>APM control (0xB2) and status (0xB3).</summary>
    public IoRegion ApmRegion { get; }

    /// <summary>Raised when PMBA or its enable changed, so the board moves <see cref="PmRegion"/>.</summary>
    public event Action? PmIoChanged;

    /// <summary>Where the PM block decodes (PMBA bits 15:6), or null while PMREGMISC disables it.</summary>
    public ushort? PmIoBase => (Config[PmRegMisc] & 1) != 0 ? (ushort)(ReadConfigDword(Pmba) & 0xFFC0) : null;

    /// <summary>The PM block base written in PMBA (whether or not enabled): what the FADT points at.</summary>
    public ushort PmIoBaseRegister => (ushort)(ReadConfigDword(Pmba) & 0xFFC0);

    /// <summary>Whether the SCI is asserted.</summary>
    public bool SciLevel => _sciLevel;

    /// <summary>PM1a status as the guest reads it.</summary>
    public ushort Pm1StatusRegister => ReadStatus();

    /// <summary>
    /// The power button (QMP <c>system_powerdown</c>): if the guest enabled PWRBTN_EN, sets PWRBTN_STS and
    /// re-evaluates the SCI; otherwise the press is lost, as on QEMU.
    /// </summary>
    public void PressPowerButton()
    {
        if ((_pm1Enable & PowerButtonBit) != 0)
        {
            _pm1Status |= PowerButtonBit;
            UpdateSci();
        }
    }

    /// <summary>Sets PMBA and its enable as firmware does (used for <c>-kernel</c> boots, where no BIOS runs).</summary>
    public void ProgramPmBase(ushort ioBase)
    {
        ConfigWrite(Pmba, 4, (uint)ioBase | 1);
        ConfigWrite(PmRegMisc, 1, 1);
    }

    /// <summary>The current PM timer count (24 bits).</summary>
    public uint TimerCount => (uint)(Ticks() & 0xFFFFFF);

    /// <inheritdoc/>
    public override void ConfigWrite(int offset, int size, uint value)
    {
        base.ConfigWrite(offset, size, value);
        if ((offset < Pmba + 4 && offset + size > Pmba) || (offset <= PmRegMisc && offset + size > PmRegMisc))
        {
            PmIoChanged?.Invoke();
        }
    }

    /// <inheritdoc/>
    public override void Reset()
    {
        base.Reset();
        Restore(PowerOnState());
    }

    public Piix4PmState Save() =>
        new(SavePci(), _pm1Status, _pm1Enable, _pm1Control, _overflowTicks, _gpeStatus, _gpeEnable, _apmControl, _apmStatus);

    public void Restore(Piix4PmState state)
    {
        RestorePci(state.Pci);
        _pm1Status = state.Pm1Status;
        _pm1Enable = state.Pm1Enable;
        _pm1Control = state.Pm1Control;
        _overflowTicks = state.TimerOverflowTicks;
        _gpeStatus = state.Gpe0Status;
        _gpeEnable = state.Gpe0Enable;
        _apmControl = state.ApmControl;
        _apmStatus = state.ApmStatus;
        ArmOverflowTimer();
        UpdateSci();
        PmIoChanged?.Invoke();
    }

    private Piix4PmState PowerOnState() => new(SavePci(), 0, 0, 0, 0, 0, 0, 0, 0);

    private long Ticks() => (long)((UInt128)(ulong)Math.Max(0, _clock.NowNs) * TimerFrequency / 1_000_000_000UL);

    private ushort ReadStatus()
    {
        if (Ticks() >= _overflowTicks)
        {
            _pm1Status |= TimerBit;
        }
        return _pm1Status;
    }

    private ulong ReadPm(int offset, int size)
    {
        ulong value = 0;
        for (int i = 0; i < size; i++)
        {
            value |= (ulong)ReadPmByte(offset + i) << (8 * i);
        }
        return value;
    }

    private byte ReadPmByte(int offset) => offset switch
    {
        0 or 1 => (byte)(ReadStatus() >> (8 * offset)),
        2 or 3 => (byte)(_pm1Enable >> (8 * (offset - 2))),
        4 or 5 => (byte)(_pm1Control >> (8 * (offset - 4))),
        >= 8 and < 12 => (byte)(TimerCount >> (8 * (offset - 8))),
        _ => 0xFF, // nothing else decodes in the block
    };

    private void WritePm(int offset, int size, uint value)
    {
        // The registers are 16 bits wide; a narrower write keeps the other byte (W1C status bits see zero there).
        ushort status = 0;
        ushort? enable = null;
        ushort? control = null;
        for (int i = 0; i < size; i++)
        {
            int at = offset + i;
            int b = (byte)(value >> (8 * i)) << (8 * (at & 1));
            int keep = ~(0xFF << (8 * (at & 1)));
            switch (at)
            {
                case 0 or 1:
                    status |= (ushort)b;
                    break;
                case 2 or 3:
                    enable = (ushort)(((enable ?? _pm1Enable) & keep) | b);
                    break;
                case 4 or 5:
                    control = (ushort)(((control ?? _pm1Control) & keep) | b);
                    break;
            }
        }
        if (status != 0)
        {
            WriteStatus(status);
        }
        if (enable is ushort en)
        {
            _pm1Enable = en;
            ArmOverflowTimer();
            UpdateSci();
        }
        if (control is ushort cnt)
        {
            WriteControl(cnt);
        }
    }

    private void WriteStatus(ushort value)
    {
        ushort current = ReadStatus();
        if ((value & current & TimerBit) != 0)
        {
            // Clearing TMR_STS: the next one comes at the next toggle of bit 23.
            _overflowTicks = (Ticks() + TimerHalfPeriod) & ~(TimerHalfPeriod - 1);
            ArmOverflowTimer();
        }
        _pm1Status = (ushort)(current & ~value);
        UpdateSci();
    }

    private void WriteControl(ushort value)
    {
        _pm1Control = (ushort)(value & ~SleepEnable);
        if ((value & SleepEnable) == 0)
        {
            return;
        }
        int type = (value >> SleepTypeShift) & 7;
        if (type is 0 or 2)
        {
            _powerOff();
        }
        // Type 1 (S3) would suspend; Colo does not emulate it (the DSDT offers no _S3), so the write only sticks.
    }

    private ulong ReadGpe(int offset, int size)
    {
        ulong value = 0;
        for (int i = 0; i < size && offset + i < 4; i++)
        {
            int at = offset + i;
            ushort reg = at < 2 ? _gpeStatus : _gpeEnable;
            value |= (ulong)(byte)(reg >> (8 * (at & 1))) << (8 * i);
        }
        return value;
    }

    private void WriteGpe(int offset, int size, uint value)
    {
        for (int i = 0; i < size && offset + i < 4; i++)
        {
            int at = offset + i;
            int b = (byte)(value >> (8 * i)) << (8 * (at & 1));
            if (at < 2)
            {
                _gpeStatus = (ushort)(_gpeStatus & ~b);
            }
            else
            {
                _gpeEnable = (ushort)((_gpeEnable & ~(0xFF << (8 * (at & 1)))) | b);
            }
        }
        UpdateSci();
    }

    private void WriteApm(int offset, byte value)
    {
        if (offset == 1)
        {
            _apmStatus = value;
            return;
        }
        _apmControl = value;
        if (value == ApmAcpiEnable)
        {
            _pm1Control |= SciEnable;
        }
        else if (value == ApmAcpiDisable)
        {
            _pm1Control = (ushort)(_pm1Control & ~SciEnable);
        }
    }

    /// <summary>With TMR_EN set, a timer raises TMR_STS (and the SCI) when bit 23 of the count toggles.</summary>
    private void ArmOverflowTimer()
    {
        if ((_pm1Enable & TimerBit) == 0)
        {
            _overflowTimer.Cancel();
            return;
        }
        long ticks = Math.Max(_overflowTicks, Ticks());
        _overflowTimer.Modify(TicksToNs(ticks));
    }

    private void OnTimerOverflow()
    {
        if (Ticks() < _overflowTicks)
        {
            ArmOverflowTimer();
            return;
        }
        _pm1Status |= TimerBit;
        _overflowTicks = (Ticks() + TimerHalfPeriod) & ~(TimerHalfPeriod - 1);
        UpdateSci();
        ArmOverflowTimer();
    }

    private static long TicksToNs(long ticks) => (long)(((UInt128)(ulong)ticks * 1_000_000_000UL + (ulong)TimerFrequency - 1) / (ulong)TimerFrequency);

    private void UpdateSci()
    {
        bool level = (ReadStatus() & _pm1Enable & SciSources) != 0 || (_gpeStatus & _gpeEnable) != 0;
        if (level != _sciLevel)
        {
            _sciLevel = level;
            if (level)
            {
                _sci.Raise();
            }
            else
            {
                _sci.Lower();
            }
        }
    }
}
