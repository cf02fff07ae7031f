using Colo.Core.Irq;

namespace Colo.Devices.Input;

/// <summary>One PS/2 device's side of the link, as saved.</summary>
/// <param name="Queue">Bytes the device has sent that the controller has not yet taken, oldest first.</param>
/// <param name="PendingCommand">A command waiting for its argument byte (0 when none).</param>
/// <param name="Enabled">Scanning (keyboard) or data reporting (mouse) enabled.</param>
/// <param name="ScancodeSet">Keyboard scan code set 1-3; for the mouse, the sample rate.</param>
/// <param name="Setting">Keyboard LEDs; for the mouse, resolution (bits 1:0) and 2:1 scaling (bit 4).</param>
public sealed record Ps2DeviceState(byte[] Queue, byte PendingCommand, bool Enabled, byte ScancodeSet, byte Setting)
{
    public bool Equals(Ps2DeviceState? other) =>
        other is not null && Queue.AsSpan().SequenceEqual(other.Queue) && PendingCommand == other.PendingCommand
        && Enabled == other.Enabled && ScancodeSet == other.ScancodeSet && Setting == other.Setting;

    public override int GetHashCode() => HashCode.Combine(Queue.Length, PendingCommand, Enabled, ScancodeSet, Setting);
}

/// <summary>Saved 8042 state (vmstate section "pckbd", version 3), with its keyboard and mouse.</summary>
/// <param name="Status">Status register (port 0x64 read).</param>
/// <param name="CommandByte">The controller's command byte ("mode").</param>
/// <param name="OutputPort">Output port (bit 0 reset line, bit 1 A20).</param>
/// <param name="PendingCommand">Controller command waiting for a data byte (0x60, 0xD1-0xD4), or 0.</param>
/// <param name="Output">The byte in the output buffer (valid while Status.OBF).</param>
/// <param name="ControllerReply">A controller reply not yet in the output buffer, or -1.</param>
public sealed record I8042State(
    byte Status, byte CommandByte, byte OutputPort, byte PendingCommand, byte Output, int ControllerReply,
    Ps2DeviceState Keyboard, Ps2DeviceState Mouse)
{
    public const string Section = "pckbd";
    public const int Version = 3;
}

/// <summary>
/// The PC/AT keyboard controller (Intel 8042 / its PS/2 successors) with a PS/2 keyboard on its first port and
/// a PS/2 mouse on its auxiliary port, as QEMU's <c>i8042</c> on the <c>pc</c> board. Offsets: <see cref="Data"/>
/// (port 0x60) and <see cref="Command"/> (port 0x64; the board maps offset 4 there). The controller raises IRQ 1
/// while keyboard data waits in the output buffer and IRQ 12 for mouse data, when the command byte enables them.
/// It also owns the output port's reset line, so a write of 0xFE (or an output port with bit 0 clear) resets.
/// </summary>
public sealed class I8042
{
    public const int Data = 0;
    public const int Command = 4;

    // Status register bits.
    public const byte StatusOutputFull = 0x01;
    public const byte StatusInputFull = 0x02;
    public const byte StatusSystem = 0x04;
    public const byte StatusCommand = 0x08;
    public const byte StatusUnlocked = 0x10;
    public const byte StatusAuxData = 0x20;

    // Command byte bits.
    public const byte ModeKeyboardInterrupt = 0x01;
    public const byte ModeAuxInterrupt = 0x02;
    public const byte ModeSystem = 0x04;
    public const byte ModeDisableKeyboard = 0x10;
    public const byte ModeDisableAux = 0x20;
    public const byte ModeTranslate = 0x40;

    // Output port bits.
    public const byte OutResetLine = 0x01;
    public const byte OutA20 = 0x02;

    // Controller commands.
    private const byte CmdReadMode = 0x20;
    private const byte CmdWriteMode = 0x60;
    private const byte CmdDisableAux = 0xA7;
    private const byte CmdEnableAux = 0xA8;
    private const byte CmdTestAux = 0xA9;
    private const byte CmdSelfTest = 0xAA;
    private const byte CmdTestKeyboard = 0xAB;
    private const byte CmdDisableKeyboard = 0xAD;
    private const byte CmdEnableKeyboard = 0xAE;
    private const byte CmdReadInputPort = 0xC0;
    private const byte CmdReadOutputPort = 0xD0;
    private const byte CmdWriteOutputPort = 0xD1;
    private const byte CmdWriteKeyboardOutput = 0xD2;
    private const byte CmdWriteAuxOutput = 0xD3;
    private const byte CmdWriteAux = 0xD4;
    private const byte CmdDisableA20 = 0xDD;
    private const byte CmdEnableA20 = 0xDF;
    private const byte CmdReadTestInputs = 0xE0;
    private const byte CmdPulseFirst = 0xF0;

    // PS/2 device replies.
    public const byte Ack = 0xFA;
    public const byte Resend = 0xFE;
    public const byte SelfTestPassed = 0xAA;

    private const byte PowerOnOutputPort = 0xCF; // reset line high, A20 on, unused lines pulled up
    private const int QueueSize = 16;

    private readonly IrqLine _keyboardIrq;
    private readonly IrqLine _auxIrq;
    private readonly Action _reset;
    private readonly Ps2Queue _keyboardQueue = new();
    private readonly Ps2Queue _mouseQueue = new();
    private byte _status;
    private byte _mode;
    private byte _outputPort;
    private byte _pendingCommand;
    private byte _output;
    private int _controllerReply;
    private byte _keyboardPending;
    private bool _keyboardEnabled;
    private byte _scancodeSet;
    private byte _leds;
    private byte _mousePending;
    private bool _mouseEnabled;
    private byte _sampleRate;
    private byte _mouseSetting;

    /// <param name="keyboardIrq">IRQ 1.</param>
    /// <param name="auxIrq">IRQ 12.</param>
    /// <param name="reset">Called when the guest pulls the reset line (under the board lock).</param>
    public I8042(IrqLine keyboardIrq, IrqLine auxIrq, Action reset)
    {
        _keyboardIrq = keyboardIrq;
        _auxIrq = auxIrq;
        _reset = reset;
        Reset();
    }

    /// <summary>Whether the output port's A20 gate is open (A20 masking itself is not modelled, as for port 0x92).</summary>
    public bool A20Enabled => (_outputPort & OutA20) != 0;

    public uint Read(int offset, int size)
    {
        _ = size;
        if (offset == Command)
        {
            return _status;
        }
        if (offset != Data)
        {
            return 0xFF;
        }
        // Reading the data port empties the output buffer (a re-read returns the same stale byte, as hardware does).
        byte value = _output;
        _status &= unchecked((byte)~(StatusOutputFull | StatusAuxData));
        Update();
        return value;
    }

    public void Write(int offset, int size, uint value)
    {
        _ = size;
        byte b = (byte)value;
        if (offset == Command)
        {
            _status |= StatusCommand;
            WriteCommand(b);
        }
        else if (offset == Data)
        {
            // QEMU's i8042 leaves A2 (last write was a command) set after data writes; the yardstick wins.
            WriteData(b);
        }
        Update();
    }

    /// <summary>Queues bytes from the keyboard (scan codes as the guest will read them), e.g. for <c>sendkey</c>.</summary>
    public void QueueKeyboardBytes(ReadOnlySpan<byte> bytes)
    {
        if (!_keyboardEnabled)
        {
            return;
        }
        foreach (byte b in bytes)
        {
            _keyboardQueue.Push(b);
        }
        Update();
    }

    private void WriteCommand(byte command)
    {
        _pendingCommand = 0;
        switch (command)
        {
            case CmdReadMode:
                Reply(_mode);
                break;
            case CmdWriteMode or CmdWriteOutputPort or CmdWriteKeyboardOutput or CmdWriteAuxOutput or CmdWriteAux:
                _pendingCommand = command;
                break;
            case CmdDisableAux:
                _mode |= ModeDisableAux;
                break;
            case CmdEnableAux:
                _mode &= unchecked((byte)~ModeDisableAux);
                break;
            case CmdTestAux or CmdTestKeyboard:
                Reply(0x00); // no clock or data line fault
                break;
            case CmdSelfTest:
                _status |= StatusSystem;
                Reply(0x55);
                break;
            case CmdDisableKeyboard:
                _mode |= ModeDisableKeyboard;
                break;
            case CmdEnableKeyboard:
                _mode &= unchecked((byte)~ModeDisableKeyboard);
                break;
            case CmdReadInputPort:
                Reply(0x80); // keyboard not inhibited by the key lock
                break;
            case CmdReadOutputPort:
                Reply(_outputPort);
                break;
            case CmdDisableA20:
                _outputPort &= unchecked((byte)~OutA20);
                break;
            case CmdEnableA20:
                _outputPort |= OutA20;
                break;
            case CmdReadTestInputs:
                Reply(0x00);
                break;
            case >= CmdPulseFirst:
                // Pulse output lines: a 0 in bit 0 pulses the reset line.
                if ((command & OutResetLine) == 0)
                {
                    _reset();
                }
                break;
            default:
                break;
        }
    }

    private void WriteData(byte value)
    {
        byte pending = _pendingCommand;
        _pendingCommand = 0;
        switch (pending)
        {
            case CmdWriteMode:
                _mode = value;
                _status = (byte)((_status & ~StatusSystem) | (value & ModeSystem));
                break;
            case CmdWriteOutputPort:
                _outputPort = value;
                if ((value & OutResetLine) == 0)
                {
                    _reset();
                }
                break;
            case CmdWriteKeyboardOutput:
                _keyboardQueue.Push(value);
                break;
            case CmdWriteAuxOutput:
                _mouseQueue.Push(value);
                break;
            case CmdWriteAux:
                MouseCommand(value);
                break;
            default:
                // Data for the keyboard; sending it re-enables the keyboard interface.
                _mode &= unchecked((byte)~ModeDisableKeyboard);
                KeyboardCommand(value);
                break;
        }
    }

    private void KeyboardCommand(byte value)
    {
        Ps2Queue q = _keyboardQueue;
        byte pending = _keyboardPending;
        _keyboardPending = 0;
        switch (pending)
        {
            case 0xED:
                _leds = value;
                q.Push(Ack);
                return;
            case 0xF3:
                q.Push(Ack);
                return;
            case 0xF0:
                q.Push(Ack);
                if (value == 0)
                {
                    q.Push(_scancodeSet);
                }
                else if (value <= 3)
                {
                    _scancodeSet = value;
                }
                return;
        }
        switch (value)
        {
            case 0xED or 0xF3 or 0xF0:
                _keyboardPending = value;
                q.Push(Ack);
                break;
            case 0xEE: // echo
                q.Push(0xEE);
                break;
            case 0xF2: // identify: MF2 keyboard, translated ID when the controller translates
                q.Push(Ack);
                q.Push(0xAB);
                q.Push((_mode & ModeTranslate) != 0 ? (byte)0x41 : (byte)0x83);
                break;
            case 0xF4:
                _keyboardEnabled = true;
                q.Push(Ack);
                break;
            case 0xF5: // disable and restore defaults
                _keyboardEnabled = false;
                _scancodeSet = 2;
                q.Push(Ack);
                break;
            case 0xF6: // restore defaults
                _scancodeSet = 2;
                q.Push(Ack);
                break;
            case 0xFF:
                q.Clear();
                _keyboardEnabled = true;
                _scancodeSet = 2;
                _leds = 0;
                q.Push(Ack);
                q.Push(SelfTestPassed);
                break;
            case 0xF7 or 0xF8 or 0xF9 or 0xFA or 0xFB or 0xFC or 0xFD:
                q.Push(Ack); // typematic/make-break modes of set 3: accepted, not modelled
                break;
            default:
                q.Push(Resend);
                break;
        }
    }

    private void MouseCommand(byte value)
    {
        Ps2Queue q = _mouseQueue;
        byte pending = _mousePending;
        _mousePending = 0;
        switch (pending)
        {
            case 0xE8:
                _mouseSetting = (byte)((_mouseSetting & ~3) | (value & 3));
                q.Push(Ack);
                return;
            case 0xF3:
                _sampleRate = value;
                q.Push(Ack);
                return;
        }
        switch (value)
        {
            case 0xE8 or 0xF3:
                _mousePending = value;
                q.Push(Ack);
                break;
            case 0xE6:
                _mouseSetting &= unchecked((byte)~0x10);
                q.Push(Ack);
                break;
            case 0xE7:
                _mouseSetting |= 0x10;
                q.Push(Ack);
                break;
            case 0xE9: // status: mode/enable/scaling, resolution, sample rate
                q.Push(Ack);
                q.Push((byte)((_mouseEnabled ? 0x20 : 0) | (_mouseSetting & 0x10)));
                q.Push((byte)(_mouseSetting & 3));
                q.Push(_sampleRate);
                break;
            case 0xEB: // read data: an empty movement packet
                q.Push(Ack);
                q.Push(0x08);
                q.Push(0x00);
                q.Push(0x00);
                break;
            case 0xEA or 0xEC or 0xEE or 0xF0:
                q.Push(Ack);
                break;
            case 0xF2: // identify: standard PS/2 mouse
                q.Push(Ack);
                q.Push(0x00);
                break;
            case 0xF4:
                _mouseEnabled = true;
                q.Push(Ack);
                break;
            case 0xF5:
                _mouseEnabled = false;
                q.Push(Ack);
                break;
            case 0xF6:
                MouseDefaults();
                q.Push(Ack);
                break;
            case 0xFF:
                q.Clear();
                MouseDefaults();
                q.Push(Ack);
                q.Push(SelfTestPassed);
                q.Push(0x00);
                break;
            default:
                q.Push(Resend);
                break;
        }
    }

    private void MouseDefaults()
    {
        _mouseEnabled = false;
        _sampleRate = 100;
        _mouseSetting = 2;
    }

    private void Reply(byte value) => _controllerReply = value;

    /// <summary>Refills the output buffer (controller replies, then keyboard, then mouse) and drives IRQ 1/12.</summary>
    private void Update()
    {
        if ((_status & StatusOutputFull) == 0)
        {
            if (_controllerReply >= 0)
            {
                _output = (byte)_controllerReply;
                _controllerReply = -1;
                _status |= StatusOutputFull;
            }
            else if ((_mode & ModeDisableKeyboard) == 0 && _keyboardQueue.TryPop(out byte k))
            {
                _output = k;
                _status |= StatusOutputFull;
            }
            else if ((_mode & ModeDisableAux) == 0 && _mouseQueue.TryPop(out byte m))
            {
                _output = m;
                _status |= StatusOutputFull | StatusAuxData;
            }
        }
        bool full = (_status & StatusOutputFull) != 0;
        bool aux = (_status & StatusAuxData) != 0;
        _keyboardIrq.Set(full && !aux && (_mode & ModeKeyboardInterrupt) != 0);
        _auxIrq.Set(full && aux && (_mode & ModeAuxInterrupt) != 0);
    }

    public I8042State Save() => new(
        _status, _mode, _outputPort, _pendingCommand, _output, _controllerReply,
        new Ps2DeviceState(_keyboardQueue.ToArray(), _keyboardPending, _keyboardEnabled, _scancodeSet, _leds),
        new Ps2DeviceState(_mouseQueue.ToArray(), _mousePending, _mouseEnabled, _sampleRate, _mouseSetting));

    public void Restore(I8042State state)
    {
        _status = state.Status;
        _mode = state.CommandByte;
        _outputPort = state.OutputPort;
        _pendingCommand = state.PendingCommand;
        _output = state.Output;
        _controllerReply = state.ControllerReply;
        _keyboardQueue.Load(state.Keyboard.Queue);
        _keyboardPending = state.Keyboard.PendingCommand;
        _keyboardEnabled = state.Keyboard.Enabled;
        _scancodeSet = state.Keyboard.ScancodeSet;
        _leds = state.Keyboard.Setting;
        _mouseQueue.Load(state.Mouse.Queue);
        _mousePending = state.Mouse.PendingCommand;
        _mouseEnabled = state.Mouse.Enabled;
        _sampleRate = state.Mouse.ScancodeSet;
        _mouseSetting = state.Mouse.Setting;
        Update();
    }

    /// <summary>Power-on: both interrupts enabled, system flag clear until POST's self-test, keyboard scanning.</summary>
    public void Reset() => Restore(new I8042State(
        StatusCommand | StatusUnlocked, ModeKeyboardInterrupt | ModeAuxInterrupt, PowerOnOutputPort, 0, 0, -1,
        new Ps2DeviceState([], 0, true, 2, 0),
        new Ps2DeviceState([], 0, false, 100, 2)));

    /// <summary>A PS/2 device's transmit FIFO; bytes beyond its size are dropped, as a full device stops sending.</summary>
    private sealed class Ps2Queue
    {
        private readonly byte[] _data = new byte[QueueSize];
        private int _head;
        private int _count;

        public void Push(byte value)
        {
            if (_count == QueueSize)
            {
                return;
            }
            _data[(_head + _count) % QueueSize] = value;
            _count++;
        }

        public bool TryPop(out byte value)
        {
            if (_count == 0)
            {
                value = 0;
                return false;
            }
            value = _data[_head];
            _head = (_head + 1) % QueueSize;
            _count--;
            return true;
        }

        public void Clear() => _head = _count = 0;

        public byte[] ToArray()
        {
            var copy = new byte[_count];
            for (int i = 0; i < _count; i++)
            {
                copy[i] = _data[(_head + i) % QueueSize];
            }
            return copy;
        }

        public void Load(byte[] bytes)
        {
            Clear();
            foreach (byte b in bytes)
            {
                Push(b);
            }
        }
    }
}
