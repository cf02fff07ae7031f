using System.Text;

namespace Colo.Devices.Usb;

/// <summary>One queued tablet report (HID input report of <see cref="UsbTablet"/>).</summary>
public readonly record struct UsbTabletReport(byte Buttons, ushort X, ushort Y, sbyte Wheel);

/// <summary>Saved state of a <see cref="UsbTablet"/> (vmstate section "usb-tablet", version 1).</summary>
/// <param name="Pending">Reports not yet fetched by an interrupt IN, oldest first.</param>
/// <param name="IdleRate">SET_IDLE duration in 4 ms units (0 = report only on change).</param>
/// <param name="IdleDeadlineNs">When the idle rate next forces a report (meaningful with a non-zero rate).</param>
public sealed record UsbTabletState(
    UsbDeviceState Device, byte Buttons, ushort X, ushort Y, int WheelPending, UsbTabletReport[] Pending,
    byte IdleRate, long IdleDeadlineNs)
{
    public const string Section = "usb-tablet";
    public const int Version = 1;

    public static UsbTabletState PowerOn { get; } = new(UsbDeviceState.PowerOn, 0, 0, 0, 0, [], 0, 0);

    public bool Equals(UsbTabletState? other) =>
        other is not null && Device.Equals(other.Device) && Buttons == other.Buttons && X == other.X && Y == other.Y
        && WheelPending == other.WheelPending && Pending.AsSpan().SequenceEqual(other.Pending)
        && IdleRate == other.IdleRate && IdleDeadlineNs == other.IdleDeadlineNs;

    public override int GetHashCode() => HashCode.Combine(Device, X, Y, Buttons, Pending.Length);
}

/// <summary>
/// QEMU's <c>usb-tablet</c>: a full-speed HID pointer with absolute coordinates. Descriptors are those QEMU 7.2
/// presents on a UHCI port (captured from the real device: vendor 0x0627 product 0x0001, bcdUSB 2.00 with a device
/// qualifier for its high-speed twin, one interface of class HID without boot protocol, interrupt IN endpoint 1 of 8
/// bytes polled every 10 ms). The input report (HID 1.11 §8.1, layout in the report descriptor) is 6 bytes:
/// buttons (bit 0 left, 1 right, 2 middle), X and Y little-endian in 0..0x7FFF, wheel as a signed byte.
/// Endpoint 1 NAKs while nothing changed (HID 1.11 §7.2.4 with idle rate 0).
/// </summary>
public sealed class UsbTablet : UsbDevice
{
    /// <summary>Largest coordinate (logical maximum of X and Y in the report descriptor).</summary>
    public const int MaxCoordinate = 0x7FFF;

    public const byte ButtonLeft = 0x01;
    public const byte ButtonRight = 0x02;
    public const byte ButtonMiddle = 0x04;

    /// <summary>Bytes of one input report.</summary>
    public const int ReportLength = 6;

    // HID class requests (HID 1.11 §7.2) and descriptor types (§7.1).
    public const byte HidGetReport = 0x01;
    public const byte HidGetIdle = 0x02;
    public const byte HidGetProtocol = 0x03;
    public const byte HidSetReport = 0x09;
    public const byte HidSetIdle = 0x0A;
    public const byte HidSetProtocol = 0x0B;
    public const byte DescriptorHid = 0x21;
    public const byte DescriptorReport = 0x22;

    /// <summary>Reports queued between polls, so a click shorter than the 10 ms poll interval is not lost.</summary>
    public const int QueueLength = 16;

    private const long IdleUnitNs = 4_000_000;

    /// <summary>Serial-number prefix; QEMU appends the controller and port paths.</summary>
    private const string SerialPrefix = "28754";

    private static readonly byte[] DeviceBytes =
    [
        0x12, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x08, // USB 2.00, class per interface, EP0 8 bytes
        0x27, 0x06, 0x01, 0x00, 0x00, 0x00, // vendor 0x0627, product 0x0001, release 0.00
        0x01, 0x03, 0x0A, 0x01, // strings: manufacturer 1, product 3, serial 10; one configuration
    ];

    private static readonly byte[] Qualifier = [0x0A, 0x06, 0x00, 0x02, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00];

    // Configuration 1 ("HID Tablet", string 7), bus powered with remote wakeup, 100 mA; interface 0 of class HID
    // (no subclass/protocol: no boot protocol); a HID descriptor (bcdHID reads 0x0001 on QEMU) naming a 74-byte report descriptor; endpoint
    // 0x81 interrupt, 8 bytes, interval 10 frames at full speed (4 at high speed in the other-speed copy).
    private static readonly byte[] ConfigBytes =
    [
        0x09, 0x02, 0x22, 0x00, 0x01, 0x01, 0x07, 0xA0, 0x32,
        0x09, 0x04, 0x00, 0x00, 0x01, 0x03, 0x00, 0x00, 0x00,
        0x09, 0x21, 0x01, 0x00, 0x00, 0x01, 0x22, 0x4A, 0x00,
        0x07, 0x05, 0x81, 0x03, 0x08, 0x00, 0x0A,
    ];

    private static readonly byte[] OtherSpeed =
    [
        0x09, 0x07, 0x22, 0x00, 0x01, 0x01, 0x07, 0xA0, 0x32,
        0x09, 0x04, 0x00, 0x00, 0x01, 0x03, 0x00, 0x00, 0x00,
        0x09, 0x21, 0x01, 0x00, 0x00, 0x01, 0x22, 0x4A, 0x00,
        0x07, 0x05, 0x81, 0x03, 0x08, 0x00, 0x04,
    ];

    /// <summary>The report descriptor (HID 1.11 §6.2.2 short items), as the device returns it.</summary>
    public static ReadOnlySpan<byte> ReportDescriptor =>
    [
        0x05, 0x01, 0x09, 0x02, 0xA1, 0x01, // Generic Desktop / Mouse / Collection (Application)
        0x09, 0x01, 0xA1, 0x00, //   Pointer / Collection (Physical)
        0x05, 0x09, 0x19, 0x01, 0x29, 0x03, //     Buttons 1..3
        0x15, 0x00, 0x25, 0x01, 0x95, 0x03, 0x75, 0x01, 0x81, 0x02, //     3 × 1 bit, 0..1, Input (Data,Var,Abs)
        0x95, 0x01, 0x75, 0x05, 0x81, 0x01, //     5 bits padding, Input (Const)
        0x05, 0x01, 0x09, 0x30, 0x09, 0x31, //     Generic Desktop X, Y
        0x15, 0x00, 0x26, 0xFF, 0x7F, 0x35, 0x00, 0x46, 0xFF, 0x7F, //     logical and physical 0..0x7FFF
        0x75, 0x10, 0x95, 0x02, 0x81, 0x02, //     2 × 16 bits, Input (Data,Var,Abs)
        0x05, 0x01, 0x09, 0x38, 0x15, 0x81, 0x25, 0x7F, //     Wheel, logical -127..127
        0x35, 0x00, 0x45, 0x00, 0x75, 0x08, 0x95, 0x01, 0x81, 0x06, //     1 × 8 bits, Input (Data,Var,Rel)
        0xC0, 0xC0, //   End Collection, End Collection
    ];

    // The string table QEMU's HID devices share (indices fixed by their descriptors); 10 is built per instance.
    private static readonly string?[] Strings =
    [
        null, "QEMU", "QEMU USB Mouse", "QEMU USB Tablet", "QEMU USB Keyboard", "42", "HID Mouse", "HID Tablet",
        "HID Keyboard", "89126", null, "68284",
    ];

    private static readonly byte[][] StringBytes = EncodeStrings();

    private const int SerialIndex = 10;

    private readonly UsbTabletReport[] _queue = new UsbTabletReport[QueueLength];
    private int _queueHead;
    private int _queueCount;
    private byte _buttons;
    private ushort _x;
    private ushort _y;
    private int _wheel;
    private byte _idleRate;
    private long _idleDeadlineNs;
    private byte[] _serial = [];
    private string _serialFor = "\0";

    public UsbTablet()
    {
        Restore(UsbTabletState.PowerOn);
    }

    /// <summary>Product string, as <c>info usb</c> shows it.</summary>
    public override string ProductName => "QEMU USB Tablet";

    /// <summary>Reports waiting for the guest to poll.</summary>
    public int PendingReports => _queueCount;

    /// <summary>
    /// Moves the pointer to absolute (<paramref name="x"/>, <paramref name="y"/>) in 0..<see cref="MaxCoordinate"/>
    /// (clamped) with <paramref name="buttons"/> held (<see cref="ButtonLeft"/> | …), and adds
    /// <paramref name="wheel"/> detents (positive = away from the user, QEMU's wheel-up). Queues a report; a
    /// change that keeps the buttons merges into the last unread report, as the guest would only see the latest
    /// position anyway.
    /// </summary>
    public void SetPointer(int x, int y, int buttons, int wheel = 0)
    {
        _x = (ushort)Math.Clamp(x, 0, MaxCoordinate);
        _y = (ushort)Math.Clamp(y, 0, MaxCoordinate);
        _buttons = (byte)(buttons & 0x07);
        _wheel = Math.Clamp(_wheel + wheel, -1 << 20, 1 << 20);
        QueueCurrent();
    }

    /// <summary>Adds wheel detents at the current position (positive = up).</summary>
    public void Wheel(int delta) => SetPointer(_x, _y, _buttons, delta);

    private void QueueCurrent()
    {
        sbyte dz = (sbyte)Math.Clamp(_wheel, -127, 127);
        if (_queueCount > 0)
        {
            ref UsbTabletReport last = ref _queue[(_queueHead + _queueCount - 1) % QueueLength];
            if (last.Buttons == _buttons || _queueCount == QueueLength)
            {
                // Same buttons (or no room): the guest only needs the newest position, wheel motion adds up.
                int sum = Math.Clamp(last.Wheel + dz, -127, 127);
                _wheel -= sum - last.Wheel;
                last = new UsbTabletReport(_buttons, _x, _y, (sbyte)sum);
                WakeHost();
                return;
            }
        }
        _wheel -= dz;
        _queue[(_queueHead + _queueCount) % QueueLength] = new UsbTabletReport(_buttons, _x, _y, dz);
        _queueCount++;
        WakeHost();
    }

    private void WakeHost()
    {
        if (RemoteWakeupEnabled)
        {
            Host?.Wakeup(this);
        }
    }

    protected override ReadOnlySpan<byte> DeviceDescriptor => DeviceBytes;

    protected override ReadOnlySpan<byte> ConfigurationDescriptor => ConfigBytes;

    protected override ReadOnlySpan<byte> DeviceQualifier => Qualifier;

    protected override ReadOnlySpan<byte> OtherSpeedConfiguration => OtherSpeed;

    protected override bool HasString(int index) => index == SerialIndex || (index < Strings.Length && Strings[index] is not null);

    protected override ReadOnlySpan<byte> GetStringUtf16(int index)
    {
        if (index != SerialIndex)
        {
            return StringBytes[index];
        }
        // "28754-<controller>-<port>", e.g. 28754-0000:00:01.2-1; rebuilt only when the device moves.
        string key = HostPath + "/" + PortPath;
        if (_serialFor != key)
        {
            _serialFor = key;
            _serial = Encoding.Unicode.GetBytes($"{SerialPrefix}-{HostPath}-{PortPath}");
        }
        return _serial;
    }

    protected override bool HandleOtherRequest(in UsbSetup setup, ReadOnlySpan<byte> outData, Span<byte> response, out int length)
    {
        length = 0;
        UsbSetup s = setup;
        switch ((s.RequestType, s.Request))
        {
            case (0x81, GetDescriptor):
                // Only the report descriptor; QEMU stalls a GET_DESCRIPTOR for the HID descriptor itself.
                if (s.Value >> 8 != DescriptorReport)
                {
                    return false;
                }
                ReportDescriptor.CopyTo(response);
                length = ReportDescriptor.Length;
                return true;
            case (0xA1, HidGetReport):
                // The current state, whether or not it changed (HID 1.11 §7.2.1); wheel motion is not consumed.
                WriteReport(new UsbTabletReport(_buttons, _x, _y, 0), response, out length);
                return true;
            case (0xA1, HidGetIdle):
                response[0] = _idleRate;
                length = 1;
                return true;
            case (0x21, HidSetIdle):
                _idleRate = (byte)(s.Value >> 8);
                _idleDeadlineNs = (Host?.NowNs ?? 0) + (_idleRate * IdleUnitNs);
                return true;
            default:
                // GET/SET_PROTOCOL only apply to boot devices (HID 1.11 §7.2.5): this one has no boot subclass.
                return false;
        }
    }

    protected override UsbResult HandleData(UsbPid pid, int endpoint, Span<byte> data, out int length)
    {
        length = 0;
        // QEMU answers endpoint 1 even before SET_CONFIGURATION; anything else on it, or another endpoint, stalls.
        if (endpoint != 1 || pid != UsbPid.In)
        {
            return UsbResult.Stall;
        }
        UsbTabletReport report;
        if (_queueCount > 0)
        {
            report = _queue[_queueHead];
            _queueHead = (_queueHead + 1) % QueueLength;
            _queueCount--;
        }
        else if (_idleRate != 0 && Host is IUsbHost host && host.NowNs >= _idleDeadlineNs)
        {
            // A non-zero idle rate repeats the current state even without change (HID 1.11 §7.2.4).
            report = new UsbTabletReport(_buttons, _x, _y, 0);
        }
        else
        {
            return UsbResult.Nak;
        }
        if (_idleRate != 0)
        {
            _idleDeadlineNs = (Host?.NowNs ?? 0) + (_idleRate * IdleUnitNs);
        }
        WriteReport(report, data, out length);
        return UsbResult.Ack;
    }

    private static void WriteReport(in UsbTabletReport r, Span<byte> destination, out int length)
    {
        Span<byte> b = [r.Buttons, (byte)r.X, (byte)(r.X >> 8), (byte)r.Y, (byte)(r.Y >> 8), (byte)r.Wheel];
        // A shorter buffer gets the report's first bytes, as QEMU truncates rather than babbles.
        length = Math.Min(ReportLength, destination.Length);
        b[..length].CopyTo(destination);
    }

    protected override void OnReset()
    {
        _queueHead = 0;
        _queueCount = 0;
        _idleRate = 0;
        _idleDeadlineNs = 0;
        _wheel = 0;
    }

    public UsbTabletState Save()
    {
        var pending = new UsbTabletReport[_queueCount];
        for (int i = 0; i < _queueCount; i++)
        {
            pending[i] = _queue[(_queueHead + i) % QueueLength];
        }
        return new(SaveDevice(), _buttons, _x, _y, _wheel, pending, _idleRate, _idleDeadlineNs);
    }

    public void Restore(UsbTabletState state)
    {
        RestoreDevice(state.Device);
        _buttons = (byte)(state.Buttons & 0x07);
        _x = (ushort)Math.Min((int)state.X, MaxCoordinate);
        _y = (ushort)Math.Min((int)state.Y, MaxCoordinate);
        _wheel = state.WheelPending;
        _queueHead = 0;
        _queueCount = Math.Min(state.Pending.Length, QueueLength);
        state.Pending.AsSpan(0, _queueCount).CopyTo(_queue);
        _idleRate = state.IdleRate;
        _idleDeadlineNs = state.IdleDeadlineNs;
    }

    /// <summary>Power-on state: unaddressed, pointer at the origin, nothing queued.</summary>
    public void PowerOnReset() => Restore(UsbTabletState.PowerOn);

    private static byte[][] EncodeStrings()
    {
        var result = new byte[Strings.Length][];
        for (int i = 0; i < Strings.Length; i++)
        {
            result[i] = Strings[i] is string s ? Encoding.Unicode.GetBytes(s) : [];
        }
        return result;
    }
}
