using Colo.Core.Chardev;
using Colo.Core.Io;

namespace Colo.Devices.Misc;

/// <summary>
/// QEMU's <c>isa-debugcon</c> (Bochs' port-0xE9 hack): each byte written to the port goes to a chardev, and reads
/// return the <c>readback</c> value so firmware can detect the device (SeaBIOS logs to 0x402 this way). Stateless.
/// </summary>
public sealed class IsaDebugcon
{
    public const ushort DefaultIoBase = 0xE9;
    public const byte DefaultReadback = 0xE9;

    private readonly Chardev? _chardev;

    /// <param name="chardev">Where written bytes go (null: discarded).</param>
    /// <param name="readback">The value reads return.</param>
    public IsaDebugcon(Chardev? chardev, byte readback)
    {
        _chardev = chardev;
        Region = new IoRegion("isa-debugcon", 1, (_, _) => readback, (_, _, v) => Write((byte)v), 1, 1);
    }

    /// <summary>The port (board maps it at <c>iobase</c>).</summary>
    public IoRegion Region { get; }

    private void Write(byte value)
    {
        Span<byte> one = [value];
        _chardev?.Write(one);
    }
}
