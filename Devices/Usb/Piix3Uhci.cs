using Colo.Core.Io;
using Colo.Core.Time;
using Colo.Devices.Pci;

namespace Colo.Devices.Usb;

/// <summary>Saved UHCI state (vmstate section "uhci", version 1).</summary>
/// <param name="Ports">PORTSC of each root port (attached devices are saved and restored by their owners).</param>
/// <param name="InterruptCauses">Why USBINT is set: bit 0 an IOC TD, bit 1 a short packet (gates USBINTR bits 2/3).</param>
/// <param name="NextFrameNs">Virtual time of the next frame while running.</param>
public sealed record Piix3UhciState(
    PciDeviceState Pci, ushort Command, ushort Status, ushort InterruptEnable, ushort FrameNumber,
    uint FrameListBase, byte SofModify, ushort[] Ports, byte InterruptCauses, long NextFrameNs)
{
    public const string Section = "uhci";
    public const int Version = 1;

    public bool Equals(Piix3UhciState? other) =>
        other is not null && Pci.Equals(other.Pci) && Command == other.Command && Status == other.Status
        && InterruptEnable == other.InterruptEnable && FrameNumber == other.FrameNumber
        && FrameListBase == other.FrameListBase && SofModify == other.SofModify && Ports.AsSpan().SequenceEqual(other.Ports)
        && InterruptCauses == other.InterruptCauses && NextFrameNs == other.NextFrameNs;

    public override int GetHashCode() => HashCode.Combine(Command, Status, FrameNumber, FrameListBase);
}

/// <summary>
/// The PIIX3 USB function (QEMU's <c>piix3-usb-uhci</c>, PCI 8086:7020): a UHCI host controller as the Intel UHCI
/// Design Guide rev 1.1 describes it, with a two-port root hub. Registers sit in a 32-byte I/O window behind BAR4
/// (§2.1). While USBCMD.RS is set a timer on the virtual clock runs one frame per millisecond: it reads the frame
/// list entry for FRNUM, walks TDs and QHs (§3, §4) executing each active TD against the device on an enabled port
/// with a matching address, writes status back, and raises INTD through <see cref="PciDevice.SetIntx"/>. With RS
/// clear no timer is armed, so an idle guest costs nothing. All schedule memory goes through bus-master DMA.
/// </summary>
public sealed partial class Piix3Uhci : PciDevice, IUsbHost
{
    // I/O registers (§2.1), offsets in the BAR4 window.
    public const int UsbCmd = 0x00;
    public const int UsbSts = 0x02;
    public const int UsbIntr = 0x04;
    public const int FrNum = 0x06;
    public const int FlBaseAdd = 0x08;
    public const int SofMod = 0x0C;
    public const int PortSc1 = 0x10;
    public const int PortSc2 = 0x12;
    public const int RegionSize = 32;
    public const int PortCount = 2;

    // USBCMD (§2.1.1).
    public const ushort CmdRs = 0x0001;
    public const ushort CmdHcReset = 0x0002;
    public const ushort CmdGReset = 0x0004;
    public const ushort CmdEgsm = 0x0008;
    public const ushort CmdFgr = 0x0010;
    public const ushort CmdSwDbg = 0x0020;
    public const ushort CmdCf = 0x0040;
    public const ushort CmdMaxP = 0x0080;

    // USBSTS (§2.1.2), write-one-to-clear except HCHalted.
    public const ushort StsUsbInt = 0x0001;
    public const ushort StsError = 0x0002;
    public const ushort StsResumeDetect = 0x0004;
    public const ushort StsHostSystemError = 0x0008;
    public const ushort StsProcessError = 0x0010;
    public const ushort StsHalted = 0x0020;

    // USBINTR (§2.1.3).
    public const ushort IntrTimeoutCrc = 0x0001;
    public const ushort IntrResume = 0x0002;
    public const ushort IntrIoc = 0x0004;
    public const ushort IntrShortPacket = 0x0008;

    // PORTSC (§2.1.7).
    public const ushort PortConnect = 0x0001;
    public const ushort PortConnectChange = 0x0002;
    public const ushort PortEnable = 0x0004;
    public const ushort PortEnableChange = 0x0008;
    public const ushort PortResumeDetect = 0x0040;
    public const ushort PortAlwaysOne = 0x0080;
    public const ushort PortLowSpeed = 0x0100;
    public const ushort PortReset = 0x0200;
    public const ushort PortSuspend = 0x1000;
    private const ushort PortWriteClear = PortConnectChange | PortEnableChange;
    private const ushort PortWritable = PortEnable | PortResumeDetect | PortReset | PortSuspend;

    // Link pointers (§3.1, §3.2.1, §3.3).
    public const uint LinkTerminate = 0x1;
    public const uint LinkQh = 0x2;
    public const uint LinkDepth = 0x4;

    // TD control and status (§3.2.2).
    public const uint TdActLenMask = 0x7FF;
    public const uint TdBitstuff = 1u << 17;
    public const uint TdCrcTimeout = 1u << 18;
    public const uint TdNak = 1u << 19;
    public const uint TdBabble = 1u << 20;
    public const uint TdDataBuffer = 1u << 21;
    public const uint TdStalled = 1u << 22;
    public const uint TdActive = 1u << 23;
    public const uint TdIoc = 1u << 24;
    public const uint TdIso = 1u << 25;
    public const uint TdLowSpeed = 1u << 26;
    public const int TdErrorShift = 27;
    public const uint TdShortPacketDetect = 1u << 29;
    private const uint TdStatusBits = 0x00FF0000;

    /// <summary>Largest data a TD may move: MaxLen values 0x500–0x7FE are a consistency failure (§3.2.3).</summary>
    public const int MaxTdLength = 1280;

    /// <summary>Schedule entries (TDs and QHs) visited per frame before the frame is cut short.</summary>
    public const int MaxLinksPerFrame = 1024;

    /// <summary>Bytes moved per frame: a full-speed frame carries about 1500 bytes of bus time, 1280 of data.</summary>
    public const int MaxBytesPerFrame = 1280;

    /// <summary>Frames processed back to back when the timer fires late; further missed frames only count.</summary>
    public const int MaxCatchUpFrames = 8;

    public const long FrameNs = 1_000_000;

    private const int MaxTrackedQhs = 64;

    private const byte CauseIoc = 0x01;
    private const byte CauseShort = 0x02;

    private readonly IClock _clock;
    private readonly ClockTimer _frameTimer;
    private readonly UsbDevice?[] _devices = new UsbDevice?[PortCount];
    private readonly ushort[] _ports = new ushort[PortCount];
    private readonly byte[] _buffer = new byte[MaxTdLength];
    private readonly uint[] _qhSeen = new uint[MaxTrackedQhs];
    private readonly int[] _qhSeenProgress = new int[MaxTrackedQhs];
    private ushort _cmd;
    private ushort _sts;
    private ushort _intr;
    private ushort _frnum;
    private uint _flbase;
    private byte _sofmod;
    private byte _causes;
    private long _nextFrameNs;
    private bool _frameAborted;

    /// <param name="clock">The virtual clock the 1 ms frame timer runs on.</param>
    public Piix3Uhci(IClock clock)
        : base("piix3-usb-uhci", 0x8086, 0x7020, 0x01, 0x0C0300, interruptPin: 4)
    {
        _clock = clock;
        _frameTimer = new ClockTimer(clock, OnFrameTimer);
        Region = new IoRegion("uhci", RegionSize, ReadRegion, WriteRegion, 1, 4);
        DeclareBar(4, PciBarKind.Io, Region);
        // Serial bus release number: USB 1.0 (PIIX3 datasheet SBRN). QEMU leaves the byte writable.
        SetByte(Sbrn, 0x10);
        SetByteMask(Sbrn, 0xFF);
        // LEGSUP (legacy keyboard/mouse emulation control): 0 after reset and freely writable, as QEMU.
        SetWordMask(LegSup, 0xFFFF);
        FinishInit();
        ResetController();
    }

    /// <summary>Serial bus release number register in configuration space.</summary>
    public const int Sbrn = 0x60;

    /// <summary>Legacy support register in configuration space.</summary>
    public const int LegSup = 0xC0;

    /// <summary>The 32-byte register window BAR4 decodes.</summary>
    public IoRegion Region { get; }

    /// <summary>Whether the frame timer is armed (only while running).</summary>
    public bool FrameTimerPending => _frameTimer.IsPending;

    long IUsbHost.NowNs => _clock.NowNs;

    /// <summary>The device on root port <paramref name="port"/> (0 or 1), if any.</summary>
    public UsbDevice? DeviceAt(int port) => _devices[port];

    /// <summary>The lowest empty root port, or -1 when both are taken (QEMU would chain a hub there; Colo has none).</summary>
    public int FreePort() => Array.IndexOf(_devices, null);

    /// <summary>PORTSC of root port <paramref name="port"/> (0 or 1).</summary>
    public ushort PortStatus(int port) => (ushort)(_ports[port] | PortAlwaysOne);

    /// <summary>
    /// Plugs <paramref name="device"/> into root port <paramref name="port"/> (0 or 1): connect status and its
    /// change bit go up (§2.1.7), low speed is reported, the device starts in the Default state, and a controller in
    /// global suspend sees resume detect. Throws if the port is occupied.
    /// </summary>
    public void Attach(int port, UsbDevice device)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(port, PortCount);
        if (_devices[port] is not null)
        {
            throw new InvalidOperationException($"USB port {port + 1} of {Name} is in use");
        }
        if (device.Host is not null)
        {
            throw new InvalidOperationException("USB device is already attached");
        }
        _devices[port] = device;
        device.Host = this;
        device.PortPath = (port + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
        device.HostPath = DevFn < 0 ? "" : $"0000:00:{DevFn >> 3:x2}.{DevFn & 7}";
        device.Reset();
        Connect(port);
        GlobalResume();
    }

    /// <summary>
    /// Unplugs the device on <paramref name="port"/>: connect status drops with its change bit, an enabled port is
    /// disabled with the enable-change bit (a disconnect is a fault, §2.1.7), and a suspended bus sees resume detect.
    /// Returns the device, or null if the port was empty.
    /// </summary>
    public UsbDevice? Detach(int port)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(port, PortCount);
        UsbDevice? device = _devices[port];
        if (device is null)
        {
            return null;
        }
        _devices[port] = null;
        device.Host = null;
        ushort p = _ports[port];
        p = (ushort)((p & ~(PortConnect | PortLowSpeed)) | PortConnectChange);
        if ((p & PortEnable) != 0)
        {
            p = (ushort)((p & ~PortEnable) | PortEnableChange);
        }
        _ports[port] = p;
        GlobalResume();
        return device;
    }

    /// <summary>
    /// Re-attaches <paramref name="device"/> to <paramref name="port"/> after a state restore: no reset, no change
    /// bits (the saved PORTSC already says what the guest saw).
    /// </summary>
    public void Reattach(int port, UsbDevice device)
    {
        _devices[port] = device;
        device.Host = this;
        device.PortPath = (port + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
        device.HostPath = DevFn < 0 ? "" : $"0000:00:{DevFn >> 3:x2}.{DevFn & 7}";
    }

    void IUsbHost.Wakeup(UsbDevice device)
    {
        int port = Array.IndexOf(_devices, device);
        if (port < 0)
        {
            return;
        }
        // Remote wakeup on a suspended port: the port reports resume, and a suspended bus wakes (§2.1.7, §2.1.2).
        if ((_ports[port] & PortSuspend) != 0 && (_ports[port] & PortResumeDetect) == 0)
        {
            _ports[port] |= PortResumeDetect;
            GlobalResume();
        }
    }

    private void Connect(int port)
    {
        UsbDevice? d = _devices[port];
        ushort p = (ushort)(_ports[port] & ~(PortConnect | PortLowSpeed));
        if (d is not null)
        {
            p |= PortConnect | PortConnectChange;
            if (d.LowSpeed)
            {
                p |= PortLowSpeed;
            }
        }
        _ports[port] = p;
    }

    /// <summary>
    /// A resume event (connect, disconnect, remote wakeup) while the bus is globally suspended: the controller
    /// starts driving resume itself (USBCMD.FGR, §2.1.1) and reports it in USBSTS.RD (§2.1.2).
    /// </summary>
    private void GlobalResume()
    {
        if ((_cmd & CmdEgsm) != 0)
        {
            _cmd |= CmdFgr;
            _sts |= StsResumeDetect;
            UpdateIrq();
        }
    }

    // ---- Register window -------------------------------------------------------------------------------------

    private ulong ReadRegion(ulong offset, int size)
    {
        ulong value = 0;
        for (int i = 0; i < size; i++)
        {
            int at = (int)offset + i;
            ushort word = ReadWord(at & ~1);
            value |= (ulong)(byte)((at & 1) != 0 ? word >> 8 : word) << (8 * i);
        }
        return value;
    }

    /// <summary>The register word at an even offset, without side effects.</summary>
    private ushort ReadWord(int offset) => offset switch
    {
        UsbCmd => _cmd,
        UsbSts => _sts,
        UsbIntr => _intr,
        FrNum => _frnum,
        FlBaseAdd => (ushort)_flbase,
        FlBaseAdd + 2 => (ushort)(_flbase >> 16),
        SofMod => _sofmod,
        PortSc1 => PortStatus(0),
        PortSc2 => PortStatus(1),
        // Past the two ports QEMU reads 0xFF7F: bit 7 clear tells drivers probing for more ports to stop.
        _ => 0xFF7F,
    };

    private void WriteRegion(ulong offset, int size, ulong value)
    {
        // Split into register words with a byte-enable mask, so a byte write to a word with
        // write-one-to-clear bits leaves the other byte's bits alone.
        int at = (int)offset;
        int end = at + size;
        while (at < end)
        {
            int word = at & ~1;
            ushort data = 0;
            ushort mask = 0;
            for (int b = word; b < word + 2; b++)
            {
                if (b >= at && b < end)
                {
                    data |= (ushort)(((value >> (8 * (b - (int)offset))) & 0xFF) << (8 * (b - word)));
                    mask |= (ushort)(0xFF << (8 * (b - word)));
                }
            }
            WriteWord(word, data, mask);
            at = word + 2;
        }
    }

    private void WriteWord(int offset, ushort value, ushort mask)
    {
        switch (offset)
        {
            case UsbCmd:
                WriteCommand((ushort)((_cmd & ~mask) | (value & mask)));
                break;
            case UsbSts:
                // HCHalted is status, not a flag software clears (§2.1.2).
                _sts &= (ushort)~(value & mask & ~StsHalted & 0x3F);
                if ((_sts & StsUsbInt) == 0)
                {
                    _causes = 0;
                }
                UpdateIrq();
                break;
            case UsbIntr:
                // QEMU keeps all 16 bits; only 3:0 have meaning (§2.1.3).
                _intr = (ushort)((_intr & ~mask) | (value & mask));
                UpdateIrq();
                break;
            case FrNum:
                // Writable only while halted (§2.1.4).
                if ((_sts & StsHalted) != 0)
                {
                    _frnum = (ushort)(((_frnum & ~mask) | (value & mask)) & 0x7FF);
                }
                break;
            case FlBaseAdd:
                _flbase = (_flbase & ~(uint)mask) | ((uint)(value & mask) & 0xF000u);
                break;
            case FlBaseAdd + 2:
                _flbase = (_flbase & ~((uint)mask << 16)) | ((uint)(value & mask) << 16);
                break;
            case SofMod:
                _sofmod = (byte)((_sofmod & ~mask) | (value & mask));
                break;
            case PortSc1:
            case PortSc2:
                WritePort((offset - PortSc1) / 2, value, mask);
                break;
            default:
                break;
        }
    }

    private void WriteCommand(ushort value)
    {
        if ((value & CmdGReset) != 0)
        {
            // Global reset drives USB reset to every device and returns the controller to its reset state (§2.1.1).
            foreach (UsbDevice? d in _devices)
            {
                d?.Reset();
            }
            ResetController();
            return;
        }
        if ((value & CmdHcReset) != 0)
        {
            // Host controller reset: registers to defaults, ports re-detect their devices; the bit self-clears.
            ResetController();
            return;
        }
        bool wasRunning = (_cmd & CmdRs) != 0;
        _cmd = value;
        bool running = (value & CmdRs) != 0;
        if (running && !wasRunning)
        {
            _sts &= unchecked((ushort)~StsHalted);
            _nextFrameNs = _clock.NowNs + FrameNs;
            _frameTimer.Modify(_nextFrameNs);
        }
        else if (!running && wasRunning)
        {
            Halt();
        }
        // EGSM, FGR, CF and MAXP are kept for software: no timing depends on them here. SWDBG acts per TD.
    }

    private void WritePort(int port, ushort value, ushort mask)
    {
        ushort old = _ports[port];
        ushort p = (ushort)(old & ~(value & mask & PortWriteClear));
        p = (ushort)((p & ~(PortWritable & mask)) | (value & mask & PortWritable));
        if ((p & PortConnect) == 0)
        {
            // A port without a device cannot be enabled (§2.1.7: only a connected port is enabled by software).
            p &= unchecked((ushort)~PortEnable);
        }
        if ((p & PortReset) != 0 && (old & PortReset) == 0)
        {
            // Port reset drives USB reset: the device returns to the Default state at address 0.
            _devices[port]?.Reset();
        }
        _ports[port] = p;
    }

    private void ResetController()
    {
        _frameTimer.Cancel();
        _cmd = 0;
        _sts = StsHalted;
        _intr = 0;
        _frnum = 0;
        _flbase = 0;
        _sofmod = 0x40;
        _causes = 0;
        _nextFrameNs = 0;
        for (int i = 0; i < PortCount; i++)
        {
            _ports[i] = 0;
            if (_devices[i] is UsbDevice d)
            {
                d.Reset();
                Connect(i);
            }
        }
        UpdateIrq();
    }

    private void Halt()
    {
        _cmd &= unchecked((ushort)~CmdRs);
        _sts |= StsHalted;
        _frameTimer.Cancel();
        UpdateIrq();
    }

    private void UpdateIrq()
    {
        bool level = ((_causes & CauseIoc) != 0 && (_intr & IntrIoc) != 0)
            || ((_causes & CauseShort) != 0 && (_intr & IntrShortPacket) != 0)
            || ((_sts & StsError) != 0 && (_intr & IntrTimeoutCrc) != 0)
            || ((_sts & StsResumeDetect) != 0 && (_intr & IntrResume) != 0)
            || (_sts & (StsHostSystemError | StsProcessError)) != 0;
        SetIntx(level);
    }

    // ---- State ---------------------------------------------------------------------------------------------------

    public Piix3UhciState Save() => new(
        SavePci(), _cmd, _sts, _intr, _frnum, _flbase, _sofmod, (ushort[])_ports.Clone(), _causes, _nextFrameNs);

    /// <summary>
    /// Loads <paramref name="state"/>; the frame timer and INTx level are re-derived. Devices are not part of the
    /// controller's state: re-attach them with <see cref="Reattach"/> and restore them separately.
    /// </summary>
    public void Restore(Piix3UhciState state)
    {
        RestorePci(state.Pci);
        _cmd = (ushort)(state.Command & ~(CmdHcReset | CmdGReset));
        _sts = (ushort)(state.Status & 0x3F);
        _intr = state.InterruptEnable;
        _frnum = (ushort)(state.FrameNumber & 0x7FF);
        _flbase = state.FrameListBase & 0xFFFFF000;
        _sofmod = state.SofModify;
        for (int i = 0; i < PortCount; i++)
        {
            _ports[i] = i < state.Ports.Length ? (ushort)(state.Ports[i] & ~PortAlwaysOne) : (ushort)0;
        }
        _causes = (byte)(state.InterruptCauses & (CauseIoc | CauseShort));
        // Kept as saved: the virtual clock migrates with the VM, so the deadline stays meaningful.
        _nextFrameNs = state.NextFrameNs;
        _frameTimer.Cancel();
        if ((_cmd & CmdRs) != 0)
        {
            _sts &= unchecked((ushort)~StsHalted);
            _frameTimer.Modify(_nextFrameNs);
        }
        else
        {
            _sts |= StsHalted;
        }
        UpdateIrq();
    }

    /// <summary>System reset: configuration space and controller to power-on; attached devices stay plugged.</summary>
    public override void Reset()
    {
        base.Reset();
        ResetController();
    }
}
