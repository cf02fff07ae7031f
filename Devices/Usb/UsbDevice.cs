using System.Buffers.Binary;

namespace Colo.Devices.Usb;

/// <summary>Packet identifiers of the three token packets a host controller issues (USB 2.0 Table 8-1).</summary>
public enum UsbPid : byte
{
    Out = 0xE1,
    In = 0x69,
    Setup = 0x2D,
}

/// <summary>How a device answered one transaction (the handshake, or its absence).</summary>
public enum UsbResult
{
    /// <summary>ACK (or data for an IN); the length is reported separately.</summary>
    Ack,
    /// <summary>NAK: nothing to send / cannot accept now; the host retries later.</summary>
    Nak,
    /// <summary>STALL: the request or endpoint is not supported or halted.</summary>
    Stall,
    /// <summary>The device sent more than the host asked for.</summary>
    Babble,
    /// <summary>No handshake at all (no such endpoint / device gone): the host sees a timeout.</summary>
    NoResponse,
}

/// <summary>Where the default control pipe is in a control transfer (USB 2.0 8.5.3).</summary>
public enum UsbControlStage : byte
{
    Idle,
    /// <summary>Device-to-host request answered; IN tokens drain the response, an OUT is the status stage.</summary>
    DataIn,
    /// <summary>Host-to-device request with data; OUT tokens collect it.</summary>
    DataOut,
    /// <summary>Host-to-device request fully received; the zero-length IN status stage runs it.</summary>
    StatusIn,
}

/// <summary>The parsed 8-byte SETUP packet (USB 2.0 9.3).</summary>
public readonly record struct UsbSetup(byte RequestType, byte Request, ushort Value, ushort Index, ushort Length)
{
    /// <summary>Parses the little-endian SETUP packet.</summary>
    public static UsbSetup Parse(ReadOnlySpan<byte> b) => new(
        b[0], b[1], BinaryPrimitives.ReadUInt16LittleEndian(b[2..]), BinaryPrimitives.ReadUInt16LittleEndian(b[4..]),
        BinaryPrimitives.ReadUInt16LittleEndian(b[6..]));

    /// <summary>Direction bit of bmRequestType: device-to-host.</summary>
    public bool IsIn => (RequestType & 0x80) != 0;
}

/// <summary>Saved state of the generic part of a USB device (address, configuration, control pipe).</summary>
/// <param name="Setup">The 8 bytes of the SETUP packet of the transfer in flight.</param>
/// <param name="Data">Response being sent (DataIn) or request data being collected (DataOut/StatusIn).</param>
public sealed record UsbDeviceState(
    byte Address, byte Configuration, bool RemoteWakeup, UsbControlStage Stage, byte[] Setup, byte[] Data, int DataOffset)
{
    public static UsbDeviceState PowerOn { get; } = new(0, 0, false, UsbControlStage.Idle, new byte[8], [], 0);

    public bool Equals(UsbDeviceState? other) =>
        other is not null && Address == other.Address && Configuration == other.Configuration
        && RemoteWakeup == other.RemoteWakeup && Stage == other.Stage && Setup.AsSpan().SequenceEqual(other.Setup)
        && Data.AsSpan().SequenceEqual(other.Data) && DataOffset == other.DataOffset;

    public override int GetHashCode() => HashCode.Combine(Address, Configuration, Stage, Data.Length, DataOffset);
}

/// <summary>What a device may ask of the host controller it is attached to.</summary>
public interface IUsbHost
{
    /// <summary>Virtual time in nanoseconds (HID idle rates and the like).</summary>
    long NowNs { get; }

    /// <summary>Remote wakeup (USB 2.0 9.4.5): the device signals resume on its suspended port.</summary>
    void Wakeup(UsbDevice device);
}

/// <summary>
/// A USB function seen from the bus: an address, the default control pipe (endpoint 0) with its SETUP / data /
/// status stages, and the chapter 9 standard requests answered from the descriptors a subclass supplies. Other
/// endpoints and class requests are the subclass's. Packets are exchanged one transaction at a time through
/// <see cref="HandlePacket"/>, which the host controller calls while walking its schedule.
/// </summary>
public abstract class UsbDevice
{
    // Standard request codes (USB 2.0 Table 9-4).
    public const byte GetStatus = 0;
    public const byte ClearFeature = 1;
    public const byte SetFeature = 3;
    public const byte SetAddress = 5;
    public const byte GetDescriptor = 6;
    public const byte SetDescriptor = 7;
    public const byte GetConfiguration = 8;
    public const byte SetConfiguration = 9;
    public const byte GetInterface = 10;
    public const byte SetInterface = 11;

    // Descriptor types (USB 2.0 Table 9-5).
    public const byte DescriptorDevice = 1;
    public const byte DescriptorConfiguration = 2;
    public const byte DescriptorString = 3;
    public const byte DescriptorDeviceQualifier = 6;
    public const byte DescriptorOtherSpeedConfiguration = 7;

    // Feature selectors (USB 2.0 Table 9-6).
    public const ushort FeatureDeviceRemoteWakeup = 1;

    /// <summary>Largest control response kept (descriptors of the devices modelled are far smaller).</summary>
    private const int ControlBufferSize = 1024;

    private readonly byte[] _setup = new byte[8];
    private readonly byte[] _data = new byte[ControlBufferSize];
    private int _dataLength;
    private int _dataOffset;
    private UsbControlStage _stage;

    /// <summary>Bus address (0 until SET_ADDRESS).</summary>
    public byte Address { get; private set; }

    /// <summary>Current configuration value (0 = unconfigured, the Address state).</summary>
    public byte Configuration { get; private set; }

    /// <summary>Whether the host enabled remote wakeup (SET_FEATURE DEVICE_REMOTE_WAKEUP).</summary>
    public bool RemoteWakeupEnabled { get; private set; }

    /// <summary>Product description for <c>info usb</c> ("QEMU USB Tablet").</summary>
    public abstract string ProductName { get; }

    /// <summary>Low-speed devices make the port report LSDA.</summary>
    public virtual bool LowSpeed => false;

    /// <summary>The controller this device is attached to, set on attach and cleared on detach.</summary>
    public IUsbHost? Host { get; internal set; }

    /// <summary>Path of the port in the controller ("1", "2"), set on attach; QEMU's serial numbers include it.</summary>
    public string PortPath { get; internal set; } = "";

    /// <summary>Path of the controller (PCI address "0000:00:01.2"), set on attach.</summary>
    public string HostPath { get; internal set; } = "";

    /// <summary>Device descriptor (18 bytes).</summary>
    protected abstract ReadOnlySpan<byte> DeviceDescriptor { get; }

    /// <summary>Configuration descriptor with its interface, class and endpoint descriptors, at the current speed.</summary>
    protected abstract ReadOnlySpan<byte> ConfigurationDescriptor { get; }

    /// <summary>Device qualifier (USB 2.0 9.6.2), or empty when the device runs at one speed only.</summary>
    protected virtual ReadOnlySpan<byte> DeviceQualifier => [];

    /// <summary>Other-speed configuration (USB 2.0 9.6.4), or empty.</summary>
    protected virtual ReadOnlySpan<byte> OtherSpeedConfiguration => [];

    /// <summary>bmAttributes of the configuration: bit 6 self-powered feeds GET_STATUS.</summary>
    private bool SelfPowered => ConfigurationDescriptor.Length > 7 && (ConfigurationDescriptor[7] & 0x40) != 0;

    /// <summary>
    /// One transaction. For OUT and SETUP, <paramref name="data"/> holds what the host sends; for IN the device
    /// writes at most <paramref name="data"/>.Length bytes into it. <paramref name="length"/> is the byte count
    /// moved.
    /// </summary>
    public UsbResult HandlePacket(UsbPid pid, int endpoint, Span<byte> data, out int length)
    {
        length = 0;
        if (endpoint != 0)
        {
            return HandleData(pid, endpoint, data, out length);
        }
        return pid switch
        {
            UsbPid.Setup => ControlSetup(data),
            UsbPid.In => ControlIn(data, out length),
            _ => ControlOut(data, out length),
        };
    }

    /// <summary>Bus reset (port reset): back to the Default state, address 0, unconfigured.</summary>
    public void Reset()
    {
        RestoreDevice(UsbDeviceState.PowerOn);
        OnReset();
    }

    /// <summary>The generic part of the device state.</summary>
    public UsbDeviceState SaveDevice() => new(
        Address, Configuration, RemoteWakeupEnabled, _stage, (byte[])_setup.Clone(), _data.AsSpan(0, _dataLength).ToArray(),
        _dataOffset);

    /// <summary>Restores the generic part.</summary>
    public void RestoreDevice(UsbDeviceState state)
    {
        Address = (byte)(state.Address & 0x7F);
        Configuration = state.Configuration;
        RemoteWakeupEnabled = state.RemoteWakeup;
        _stage = Enum.IsDefined(state.Stage) ? state.Stage : UsbControlStage.Idle;
        state.Setup.AsSpan(0, Math.Min(8, state.Setup.Length)).CopyTo(_setup);
        _dataLength = Math.Min(state.Data.Length, _data.Length);
        state.Data.AsSpan(0, _dataLength).CopyTo(_data);
        _dataOffset = Math.Clamp(state.DataOffset, 0, _dataLength);
    }

    /// <summary>Subclass part of a bus reset.</summary>
    protected virtual void OnReset()
    {
    }

    /// <summary>Transactions on endpoints other than 0. Default: no such endpoint.</summary>
    protected virtual UsbResult HandleData(UsbPid pid, int endpoint, Span<byte> data, out int length)
    {
        length = 0;
        return UsbResult.Stall;
    }

    /// <summary>
    /// Requests the standard set does not cover (class/vendor, and interface/endpoint GET_DESCRIPTOR such as the
    /// HID report descriptor). For IN requests write the response into <paramref name="response"/> and set
    /// <paramref name="length"/>; return false to STALL.
    /// </summary>
    protected virtual bool HandleOtherRequest(in UsbSetup setup, ReadOnlySpan<byte> outData, Span<byte> response, out int length)
    {
        length = 0;
        return false;
    }

    /// <summary>String descriptor <paramref name="index"/> as UTF-16LE text without the header, or null if absent.</summary>
    protected virtual ReadOnlySpan<byte> GetStringUtf16(int index) => [];

    /// <summary>Whether string <paramref name="index"/> exists.</summary>
    protected virtual bool HasString(int index) => false;

    /// <summary>Called once a SET_CONFIGURATION took effect.</summary>
    protected virtual void OnConfigurationChanged()
    {
    }

    private UsbResult ControlSetup(Span<byte> data)
    {
        // A SETUP always starts a new transfer, abandoning any in flight (USB 2.0 8.5.3).
        _stage = UsbControlStage.Idle;
        _dataLength = 0;
        _dataOffset = 0;
        if (data.Length != 8)
        {
            return UsbResult.Stall;
        }
        data.CopyTo(_setup);
        UsbSetup setup = UsbSetup.Parse(_setup);
        if (setup.IsIn)
        {
            // Device-to-host requests are answered now, so an unsupported one stalls the SETUP (as QEMU does).
            if (!Dispatch(setup, [], _data, out int length))
            {
                return UsbResult.Stall;
            }
            _dataLength = Math.Min(Math.Min(length, setup.Length), _data.Length);
            _stage = UsbControlStage.DataIn;
            return UsbResult.Ack;
        }
        _stage = setup.Length == 0 ? UsbControlStage.StatusIn : UsbControlStage.DataOut;
        return UsbResult.Ack;
    }

    private UsbResult ControlIn(Span<byte> data, out int length)
    {
        length = 0;
        switch (_stage)
        {
            case UsbControlStage.DataIn:
                length = Math.Min(data.Length, _dataLength - _dataOffset);
                _data.AsSpan(_dataOffset, length).CopyTo(data);
                _dataOffset += length;
                return UsbResult.Ack;
            case UsbControlStage.DataOut:
            case UsbControlStage.StatusIn:
                // Status stage of a host-to-device request: run it now; a refusal stalls the status stage.
                UsbSetup setup = UsbSetup.Parse(_setup);
                _stage = UsbControlStage.Idle;
                bool ok = Dispatch(setup, _data.AsSpan(0, _dataLength), [], out _);
                _dataLength = 0;
                _dataOffset = 0;
                return ok ? UsbResult.Ack : UsbResult.Stall;
            default:
                return UsbResult.Stall;
        }
    }

    private UsbResult ControlOut(Span<byte> data, out int length)
    {
        length = 0;
        switch (_stage)
        {
            case UsbControlStage.DataIn:
                // The zero-length OUT after an IN data stage is its status stage (also ends it early).
                _stage = UsbControlStage.Idle;
                _dataLength = 0;
                _dataOffset = 0;
                return UsbResult.Ack;
            case UsbControlStage.DataOut:
                int room = Math.Min(_data.Length, UsbSetup.Parse(_setup).Length) - _dataLength;
                length = Math.Min(room, data.Length);
                data[..length].CopyTo(_data.AsSpan(_dataLength));
                _dataLength += length;
                if (_dataLength >= Math.Min(_data.Length, (int)UsbSetup.Parse(_setup).Length))
                {
                    _stage = UsbControlStage.StatusIn;
                }
                return length < data.Length ? UsbResult.Stall : UsbResult.Ack;
            default:
                return UsbResult.Stall;
        }
    }

    /// <summary>Standard requests (USB 2.0 9.4) first, then the subclass.</summary>
    private bool Dispatch(in UsbSetup s, ReadOnlySpan<byte> outData, Span<byte> response, out int length)
    {
        length = 0;
        switch ((s.RequestType, s.Request))
        {
            case (0x80, GetStatus):
                // Device status: bit 0 self-powered, bit 1 remote wakeup enabled (9.4.5).
                response[0] = (byte)((SelfPowered ? 1 : 0) | (RemoteWakeupEnabled ? 2 : 0));
                response[1] = 0;
                length = 2;
                return true;
            case (0x00, ClearFeature):
            case (0x00, SetFeature):
                if (s.Value != FeatureDeviceRemoteWakeup)
                {
                    return false;
                }
                RemoteWakeupEnabled = s.Request == SetFeature;
                return true;
            case (0x00, SetAddress):
                if (s.Value > 127)
                {
                    return false;
                }
                // Runs in the status stage, so the new address applies from the next transaction on (9.4.6).
                Address = (byte)s.Value;
                return true;
            case (0x80, GetDescriptor):
                return GetStandardDescriptor(s, response, out length);
            case (0x80, GetConfiguration):
                response[0] = Configuration;
                length = 1;
                return true;
            case (0x00, SetConfiguration):
                byte wanted = (byte)s.Value;
                if (wanted != 0 && (ConfigurationDescriptor.Length < 6 || wanted != ConfigurationDescriptor[5]))
                {
                    return false;
                }
                Configuration = wanted;
                OnConfigurationChanged();
                return true;
            case (0x81, GetInterface):
                // One interface with only alternate setting 0.
                response[0] = 0;
                length = 1;
                return true;
            case (0x01, SetInterface):
                return s.Value == 0;
            default:
                return HandleOtherRequest(s, outData, response, out length);
        }
    }

    private bool GetStandardDescriptor(in UsbSetup s, Span<byte> response, out int length)
    {
        length = 0;
        int type = s.Value >> 8;
        int index = s.Value & 0xFF;
        ReadOnlySpan<byte> d;
        switch (type)
        {
            case DescriptorDevice:
                d = DeviceDescriptor;
                break;
            case DescriptorConfiguration:
                if (index != 0)
                {
                    return false;
                }
                d = ConfigurationDescriptor;
                break;
            case DescriptorDeviceQualifier:
                d = DeviceQualifier;
                if (d.IsEmpty)
                {
                    return false;
                }
                break;
            case DescriptorOtherSpeedConfiguration:
                d = OtherSpeedConfiguration;
                if (d.IsEmpty || index != 0)
                {
                    return false;
                }
                break;
            case DescriptorString:
                if (index == 0)
                {
                    // Supported languages: US English only (9.6.7).
                    response[0] = 4;
                    response[1] = DescriptorString;
                    response[2] = 0x09;
                    response[3] = 0x04;
                    length = 4;
                    return true;
                }
                if (!HasString(index))
                {
                    // An unknown index answers with no data rather than a STALL, as QEMU does.
                    return true;
                }
                ReadOnlySpan<byte> text = GetStringUtf16(index);
                int n = Math.Min(text.Length, 252);
                response[0] = (byte)(n + 2);
                response[1] = DescriptorString;
                text[..n].CopyTo(response[2..]);
                length = n + 2;
                return true;
            default:
                return false;
        }
        d.CopyTo(response);
        length = d.Length;
        return true;
    }
}
