using System.Buffers.Binary;
using Colo.Core.Io;
using Colo.Core.Irq;

namespace Colo.Devices.Misc;

/// <summary>Saved pc-testdev state: the scratch port register and the 64 KiB scratch memory window.</summary>
public sealed record PcTestdevState(uint IoportData, byte[] Iomem)
{
    public const string Section = "pc-testdev";
    public const int Version = 1;

    public bool Equals(PcTestdevState? other) =>
        other is not null && IoportData == other.IoportData && Iomem.AsSpan().SequenceEqual(other.Iomem);

    public override int GetHashCode() => HashCode.Combine(IoportData, Iomem.Length);
}

/// <summary>
/// QEMU's <c>pc-testdev</c>, the ISA device kvm-unit-tests' x86 tests probe: a 32-bit scratch register at
/// 0xE0 (any width, lane-addressed) and the same register byte-wise at 0xE8, a "flush page" port at 0xE4 (a
/// dword write names a guest page whose host mapping KVM would re-fault; nothing to do for Colo's engines), 24
/// byte ports at 0x2000 that set ISA IRQ line N to the written value's truth, and 64 KiB of scratch memory at
/// 0xFF000000 for MMIO emulation tests. The board maps the windows; the device only knows offsets.
/// </summary>
public sealed class PcTestdev
{
    public const ushort IoportBase = 0xE0;
    public const ushort FlushPort = 0xE4;
    public const ushort IoportByteBase = 0xE8;
    public const ushort IrqLineBase = 0x2000;
    public const ulong IomemBase = 0xFF000000;
    public const int IomemSize = 0x10000;
    public const int IrqLinePorts = 24;

    private readonly Func<int, IrqLine?> _isaIrq;
    private readonly byte[] _iomem = new byte[IomemSize];
    private uint _ioportData;

    /// <param name="isaIrq">The ISA IRQ line for a number, or null where the bus has none (16–23 on a PC).</param>
    public PcTestdev(Func<int, IrqLine?> isaIrq)
    {
        _isaIrq = isaIrq;
        Ioport = new IoRegion("pc-testdev-ioport", 4, ReadIoport, WriteIoport);
        IoportByte = new IoRegion("pc-testdev-ioport-byte", 4, ReadIoport, WriteIoport, 1, 1);
        Flush = new IoRegion("pc-testdev-flush-page", 4, (_, _) => 0, (_, _, _) => { }, 4, 4);
        IrqLines = new IoRegion("pc-testdev-irq-line", IrqLinePorts, (_, _) => 0, (o, _, v) => SetIrq((int)o, v != 0), 1, 1);
        Iomem = new IoRegion("pc-testdev-iomem", IomemSize, ReadIomem, WriteIomem, 1, 8);
    }

    /// <summary>The scratch register window (0xE0).</summary>
    public IoRegion Ioport { get; }

    /// <summary>The scratch register, split into byte accesses (0xE8).</summary>
    public IoRegion IoportByte { get; }

    /// <summary>The flush-page port (0xE4).</summary>
    public IoRegion Flush { get; }

    /// <summary>The IRQ line ports (0x2000).</summary>
    public IoRegion IrqLines { get; }

    /// <summary>The scratch memory (0xFF000000).</summary>
    public IoRegion Iomem { get; }

    public PcTestdevState Save() => new(_ioportData, (byte[])_iomem.Clone());

    public void Restore(PcTestdevState state)
    {
        if (state.Iomem.Length != IomemSize)
        {
            throw new ArgumentException($"pc-testdev iomem must be {IomemSize} bytes, got {state.Iomem.Length}", nameof(state));
        }
        _ioportData = state.IoportData;
        state.Iomem.CopyTo(_iomem, 0);
    }

    /// <summary>QEMU's device has no reset handler: the scratch contents survive a system reset.</summary>
    public void Reset()
    {
    }

    private ulong ReadIoport(ulong offset, int size)
    {
        int shift = (int)(offset & 3) * 8;
        return (_ioportData & LaneMask(size, shift)) >> shift;
    }

    private void WriteIoport(ulong offset, int size, ulong value)
    {
        int shift = (int)(offset & 3) * 8;
        uint mask = LaneMask(size, shift);
        _ioportData = (_ioportData & ~mask) | ((uint)(value << shift) & mask);
    }

    private static uint LaneMask(int size, int shift) => (uint)((size >= 4 ? uint.MaxValue : (1u << (8 * size)) - 1) << shift);

    private void SetIrq(int line, bool level)
    {
        // ISA has 16 lines; QEMU aborts on 16–23, Colo ignores them (a guest must not crash the emulator).
        _isaIrq(line)?.Set(level);
    }

    private ulong ReadIomem(ulong offset, int size)
    {
        Span<byte> bytes = stackalloc byte[8];
        bytes.Clear();
        _iomem.AsSpan((int)offset, size).CopyTo(bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    private void WriteIomem(ulong offset, int size, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        bytes[..size].CopyTo(_iomem.AsSpan((int)offset, size));
    }
}
