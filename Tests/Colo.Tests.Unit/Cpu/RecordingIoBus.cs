using Colo.Core.Cpu;

namespace Colo.Tests.Unit.Cpu;

/// <summary>An <see cref="IIoBus"/> that records every port write; reads return all-ones like an empty bus.</summary>
public sealed class RecordingIoBus : IIoBus
{
    public List<(ushort Port, ulong Value, int Size)> PortWrites { get; } = [];

    public List<(ushort Port, int Size)> PortReads { get; } = [];

    public List<(ulong Address, ulong Value, int Size)> MmioWrites { get; } = [];

    /// <summary>Value returned by port reads (little-endian, truncated to the access size).</summary>
    public ulong PortReadValue { get; set; } = ulong.MaxValue;

    public void PioRead(ushort port, Span<byte> data)
    {
        PortReads.Add((port, data.Length));
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(PortReadValue >> (8 * i));
        }
    }

    public void PioWrite(ushort port, ReadOnlySpan<byte> data) => PortWrites.Add((port, ToValue(data), data.Length));

    public void MmioRead(ulong address, Span<byte> data) => data.Fill(0xFF);

    public void MmioWrite(ulong address, ReadOnlySpan<byte> data) => MmioWrites.Add((address, ToValue(data), data.Length));

    private static ulong ToValue(ReadOnlySpan<byte> data)
    {
        ulong v = 0;
        for (int i = 0; i < data.Length; i++)
        {
            v |= (ulong)data[i] << (8 * i);
        }
        return v;
    }
}
