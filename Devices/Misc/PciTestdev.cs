using System.Buffers.Binary;
using System.Text;
using Colo.Core.Io;
using Colo.Devices.Pci;

namespace Colo.Devices.Misc;

/// <summary>Saved pci-testdev state: the configuration space, the selected test (-1: none) and its hit counter.</summary>
public sealed record PciTestdevState(PciDeviceState Pci, int Current, uint Count)
{
    public const string Section = "pci-testdev";
    public const int Version = 1;
}

/// <summary>
/// QEMU's <c>pci-testdev</c> (Red Hat 1b36:0005, class 00ff), the device kvm-unit-tests' <c>pci-testdev</c> test
/// uses to measure I/O exits. BAR0 is 4 KiB of memory, BAR1 256 I/O ports, an optional BAR2 (<c>membar</c>) a
/// 64-bit prefetchable window with nothing behind it. Six tests exist, three per BAR: no-eventfd, wildcard-eventfd
/// and datamatch-eventfd. Writing N (0–2) to byte 0 of a BAR selects that BAR's test N and zeroes its counter;
/// reads of either BAR then return the selected test's header byte by byte:
/// <code>
/// 0 test  1 width  4 offset (le32)  8 data  12 count (le32)  16 name, NUL-terminated ("mmio-no-eventfd", ...)
/// </code>
/// A byte write at the header's <c>offset</c> (BAR size/2 + test number) counts a hit: the wildcard test counts
/// any value, the others only the header's <c>data</c> byte (0xFA; the wildcard header shows 0xCE). The registers
/// are byte-wide, so wider accesses split into bytes, as QEMU's implementation sizes make them.
/// </summary>
public sealed class PciTestdev : PciDevice
{
    public const ushort VendorRedHat = 0x1B36;
    public const ushort DeviceTest = 0x0005;
    public const uint ClassOthers = 0x00FF00;
    public const int MmioSize = 2 * MemTestArea;
    public const int IoSize = 2 * IoTestArea;

    private const int MemTestArea = 2048;
    private const int IoTestArea = 128;
    private const int TestsPerBar = 3;
    private const byte DataMatch = 0xFA;
    private const byte NoMatch = 0xCE;
    private static readonly string[] TestNames = ["no-eventfd", "wildcard-eventfd", "datamatch-eventfd"];

    private readonly byte[][] _headers = new byte[2 * TestsPerBar][];
    private int _current = -1;
    private uint _count;

    /// <param name="membarSize">The <c>membar</c> property: 0 for none, else a power of two of at least 16 bytes.</param>
    public PciTestdev(ulong membarSize = 0)
        : base("pci-testdev", VendorRedHat, DeviceTest, 0x00, ClassOthers)
    {
        for (int i = 0; i < _headers.Length; i++)
        {
            _headers[i] = BuildHeader(i);
        }
        Mmio = new IoRegion("pci-testdev-mmio", MmioSize, (o, _) => ReadByte(o), (o, _, v) => WriteByte(o, (byte)v, bar: 0), 1, 1);
        Portio = new IoRegion("pci-testdev-portio", IoSize, (o, _) => ReadByte(o), (o, _, v) => WriteByte(o, (byte)v, bar: 1), 1, 1);
        DeclareBar(0, PciBarKind.Memory32, Mmio);
        DeclareBar(1, PciBarKind.Io, Portio);
        if (membarSize != 0)
        {
            Membar = new IoRegion("pci-testdev-membar", membarSize, (_, s) => s >= 8 ? ulong.MaxValue : (1UL << (8 * s)) - 1, (_, _, _) => { }, 1, 8);
            DeclareBar(2, PciBarKind.Memory64, Membar, prefetchable: true);
        }
        FinishInit();
    }

    /// <summary>BAR0.</summary>
    public IoRegion Mmio { get; }

    /// <summary>BAR1.</summary>
    public IoRegion Portio { get; }

    /// <summary>BAR2 when <c>membar</c> was given (an empty container in QEMU: reads all-ones, writes vanish).</summary>
    public IoRegion? Membar { get; }

    /// <summary>The selected test (0–2 memory, 3–5 I/O) or -1.</summary>
    public int CurrentTest => _current;

    public override void Reset()
    {
        base.Reset();
        _current = -1;
        _count = 0;
    }

    public PciTestdevState Save() => new(SavePci(), _current, _count);

    public void Restore(PciTestdevState state)
    {
        if (state.Current is < -1 or >= 2 * TestsPerBar)
        {
            throw new ArgumentException($"pci-testdev test {state.Current} does not exist", nameof(state));
        }
        RestorePci(state.Pci);
        _current = state.Current;
        _count = state.Count;
    }

    /// <summary>A header: test number, width 1, offset, data, count (patched on read), name.</summary>
    private static byte[] BuildHeader(int test)
    {
        bool memory = test < TestsPerBar;
        string name = $"{(memory ? "mmio" : "portio")}-{TestNames[test % TestsPerBar]}";
        byte[] header = new byte[16 + Encoding.ASCII.GetByteCount(name) + 1];
        header[0] = (byte)test;
        header[1] = 1;
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), (uint)((memory ? MemTestArea : IoTestArea) + test));
        header[8] = IsWildcard(test) ? NoMatch : DataMatch;
        Encoding.ASCII.GetBytes(name, header.AsSpan(16));
        return header;
    }

    private static bool IsWildcard(int test) => test % TestsPerBar == 1;

    private ulong ReadByte(ulong offset)
    {
        if (_current < 0)
        {
            return 0;
        }
        byte[] header = _headers[_current];
        // The last byte (the name's NUL) is never read back, as in QEMU (offset + size must stay below the length).
        if (offset + 1 >= (ulong)header.Length)
        {
            return 0;
        }
        if (offset is >= 12 and < 16)
        {
            return (byte)(_count >> (8 * (int)(offset - 12)));
        }
        return header[offset];
    }

    private void WriteByte(ulong offset, byte value, int bar)
    {
        if (offset == 0)
        {
            _current = -1;
            if (value < TestsPerBar)
            {
                _current = (bar * TestsPerBar) + value;
                _count = 0;
            }
            return;
        }
        if (_current < 0 || offset != BinaryPrimitives.ReadUInt32LittleEndian(_headers[_current].AsSpan(4)))
        {
            return;
        }
        if (!IsWildcard(_current) && value != _headers[_current][8])
        {
            return;
        }
        _count++;
    }
}
