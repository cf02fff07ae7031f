using Colo.Core.Memory;

namespace Colo.Tests.Unit.Memory;

/// <summary>
/// RAM from 0 to <see cref="Size"/> in a byte array; reads beyond it return all-ones and writes beyond it are
/// counted and dropped, like unassigned MMIO. Shared by the device and boot-loader tests (DMA, loaders).
/// </summary>
public sealed class FakePhysicalMemory(int size) : IPhysicalMemory
{
    public byte[] Bytes { get; } = new byte[size];

    public ulong Size => (ulong)Bytes.Length;

    /// <summary>Bytes written outside RAM.</summary>
    public long StrayWrites { get; private set; }

    public void Read(ulong address, Span<byte> destination)
    {
        if (IsRam(address, (ulong)destination.Length))
        {
            Bytes.AsSpan((int)address, destination.Length).CopyTo(destination);
            return;
        }
        for (int i = 0; i < destination.Length; i++)
        {
            ulong a = address + (ulong)i;
            destination[i] = a < Size ? Bytes[a] : (byte)0xFF;
        }
    }

    public void Write(ulong address, ReadOnlySpan<byte> source)
    {
        if (IsRam(address, (ulong)source.Length))
        {
            source.CopyTo(Bytes.AsSpan((int)address));
            return;
        }
        for (int i = 0; i < source.Length; i++)
        {
            ulong a = address + (ulong)i;
            if (a < Size)
            {
                Bytes[a] = source[i];
            }
            else
            {
                StrayWrites++;
            }
        }
    }

    /// <summary>True when [address, address + length) lies in RAM: the fw_cfg DMA validity check the board supplies.</summary>
    public bool IsRam(ulong address, ulong length) => address < Size && length <= Size - address;

    public ReadOnlySpan<byte> Span(ulong address, int length) => Bytes.AsSpan((int)address, length);
}
