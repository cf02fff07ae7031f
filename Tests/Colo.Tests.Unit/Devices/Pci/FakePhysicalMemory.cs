using Colo.Core.Memory;

namespace Colo.Tests.Unit.Devices.Pci;

/// <summary>Guest memory as a plain array, for device DMA tests; accesses past the end read zero and are dropped.</summary>
internal sealed class FakePhysicalMemory(int size) : IPhysicalMemory
{
    public byte[] Bytes { get; } = new byte[size];

    public void Read(ulong address, Span<byte> destination)
    {
        for (int i = 0; i < destination.Length; i++)
        {
            ulong at = address + (ulong)i;
            destination[i] = at < (ulong)Bytes.Length ? Bytes[at] : (byte)0;
        }
    }

    public void Write(ulong address, ReadOnlySpan<byte> source)
    {
        for (int i = 0; i < source.Length; i++)
        {
            ulong at = address + (ulong)i;
            if (at < (ulong)Bytes.Length)
            {
                Bytes[at] = source[i];
            }
        }
    }
}
