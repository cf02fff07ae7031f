using Colo.Core.Io;

namespace Colo.Devices.Pc;

/// <summary>Saved System Control Port A state.</summary>
public sealed record Port92State(byte Value)
{
    public const string Section = "port92";
    public const int Version = 1;
}

/// <summary>
/// System Control Port A at 0x92 (the "fast A20 and reset" port of PS/2 machines): bit 1 is the A20 gate, a 0→1
/// write of bit 0 resets the machine. A20 masking itself is not modelled: the gate always reads as written and
/// addresses are never wrapped (SeaBIOS and Linux enable A20 at once and never depend on the wrap).
/// </summary>
public sealed class Port92
{
    private const byte FastReset = 0x01;
    private const byte A20 = 0x02;

    private readonly Action _reset;
    private byte _value;

    /// <param name="reset">Called on a fast-reset request.</param>
    public Port92(Action reset)
    {
        _reset = reset;
        Region = new IoRegion("port92", 1, (_, _) => _value, (_, _, v) => Write((byte)v), 1, 1);
    }

    /// <summary>The port (board maps it at 0x92).</summary>
    public IoRegion Region { get; }

    /// <summary>Whether the guest has the A20 gate open.</summary>
    public bool A20Enabled => (_value & A20) != 0;

    public Port92State Save() => new(_value);

    public void Restore(Port92State state) => _value = (byte)(state.Value & A20);

    public void Reset() => _value = 0;

    private void Write(byte value)
    {
        bool reset = (value & FastReset) != 0 && (_value & FastReset) == 0;
        _value = (byte)(value & (A20 | FastReset));
        if (reset)
        {
            _value &= A20;
            _reset();
        }
    }
}
