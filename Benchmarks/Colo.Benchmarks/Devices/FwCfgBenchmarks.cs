using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Colo.Core.Memory;
using Colo.Devices.Firmware;

namespace Colo.Benchmarks.Devices;

/// <summary>
/// fw_cfg as firmware uses it to fetch a kernel: SeaBIOS without DMA streams every byte through the data port
/// (one port access per byte), with DMA it issues one descriptor per chunk. Both must allocate nothing.
/// </summary>
[MemoryDiagnoser]
public class FwCfgBenchmarks
{
    private const int ItemSize = 64 * 1024;
    private const ulong Descriptor = 0x1000;
    private const ulong Buffer = 0x10000;

    private readonly ArrayMemory _memory = new(0x40000);
    private FwCfg _fw = null!;
    private ushort _key;

    [GlobalSetup]
    public void Setup()
    {
        _fw = new FwCfg(_memory);
        _key = _fw.AddFile("etc/blob", new byte[ItemSize]);
    }

    [Benchmark]
    public uint DataPort4KiB()
    {
        _fw.Write(FwCfg.SelectorOffset, 2, _key);
        uint sum = 0;
        for (int i = 0; i < 4096; i++)
        {
            sum += _fw.Read(FwCfg.DataOffset, 1);
        }
        return sum;
    }

    [Benchmark]
    public void Dma64KiB()
    {
        Span<byte> d = stackalloc byte[FwCfg.DmaAccessSize];
        BinaryPrimitives.WriteUInt32BigEndian(d, ((uint)_key << 16) | FwCfg.DmaCtlSelect | FwCfg.DmaCtlRead);
        BinaryPrimitives.WriteUInt32BigEndian(d[4..], ItemSize);
        BinaryPrimitives.WriteUInt64BigEndian(d[8..], Buffer);
        _memory.Write(Descriptor, d);
        _fw.Write(FwCfg.DmaOffset, 4, 0);
        _fw.Write(FwCfg.DmaLowOffset, 4, BinaryPrimitives.ReverseEndianness((uint)Descriptor));
    }

    private sealed class ArrayMemory(int size) : IPhysicalMemory
    {
        private readonly byte[] _bytes = new byte[size];

        public void Read(ulong address, Span<byte> destination) => _bytes.AsSpan((int)address, destination.Length).CopyTo(destination);

        public void Write(ulong address, ReadOnlySpan<byte> source) => source.CopyTo(_bytes.AsSpan((int)address));
    }
}
