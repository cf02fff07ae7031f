using Colo.Core.Io;

namespace Colo.Devices.Misc;

/// <summary>
/// QEMU's <c>isa-debug-exit</c>: any write to its ports ends the emulator with status <c>(value &lt;&lt; 1) | 1</c>,
/// so a test guest's result can never be mistaken for a clean exit (0). Reads return all-ones. Stateless.
/// </summary>
public sealed class IsaDebugExit
{
    public const ushort DefaultIoBase = 0x501;
    public const int DefaultIoSize = 2;

    private readonly Action<int> _exit;

    /// <param name="size">Ports covered (<c>iosize</c>).</param>
    /// <param name="exit">Called with the process exit status.</param>
    public IsaDebugExit(int size, Action<int> exit)
    {
        _exit = exit;
        Region = new IoRegion("isa-debug-exit", (ulong)Math.Max(1, size), (_, s) => s >= 8 ? ulong.MaxValue : (1UL << (8 * s)) - 1,
            (_, _, v) => _exit((int)(((uint)v << 1) | 1)), 1, 4);
    }

    /// <summary>The ports (board maps them at <c>iobase</c>).</summary>
    public IoRegion Region { get; }
}
