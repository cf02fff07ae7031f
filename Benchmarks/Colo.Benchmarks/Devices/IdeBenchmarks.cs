using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Colo.Block;
using Colo.Core.Io;
using Colo.Core.Irq;
using Colo.Core.Memory;
using Colo.Devices.Ide;
using Colo.Devices.Pci;

namespace Colo.Benchmarks.Devices;

/// <summary>
/// Sector throughput of the PIIX3 IDE model over a RAM disk: a PIO READ SECTORS of one sector moved word by word
/// through the port space (what a BIOS or a PIO-only driver does), and a 64 KiB READ DMA / WRITE DMA through a
/// two-entry descriptor table. The DMA paths must allocate nothing.
/// </summary>
[MemoryDiagnoser]
public class IdeBenchmarks
{
    private const ushort Cmd = 0x1F0;
    private const ushort Bm = 0xC000;
    private const uint Table = 0x1000;
    private const int DevFn = (1 << 3) | 1;

    private readonly PortIoSpace _ports = new();
    private readonly FlatMemory _memory = new(1 << 20);
    private Piix3Ide _ide = null!;

    [GlobalSetup]
    public void Setup()
    {
        var bus = new PciBus(_ports, new MmioSpace(), _memory);
        var irq = new IrqLine(static _ => { });
        _ide = new Piix3Ide(irq, new IrqLine(static _ => { }));
        _ports.Map(Cmd, _ide.PrimaryCommand);
        _ports.Map(0x3F6, _ide.PrimaryControl);
        bus.Plug(_ide, DevFn);
        bus.ConfigWrite(DevFn, 0x20, 4, Bm | 1u);
        bus.ConfigWrite(DevFn, PciDevice.Command, 2, PciDevice.CommandIo | PciDevice.CommandMaster);
        _ide.Attach(0, 0, new RamDisk(16 << 20));
        // Two 32 KiB regions, the second marked end-of-table.
        _memory.Prd(0, 0x10000, 0x8000, last: false);
        _memory.Prd(1, 0x18000, 0x8000, last: true);
        _ports.Write(Cmd + 6, 1, 0xE0);
    }

    /// <summary>One 512-byte sector by PIO: task file, command, 256 data-port reads, status read.</summary>
    [Benchmark]
    public uint PioReadSector()
    {
        TaskFile(0x20, 1);
        uint sum = 0;
        for (int i = 0; i < 256; i++)
        {
            sum += (uint)_ports.Read(Cmd, 2);
        }
        _ports.Read(Cmd + 7, 1);
        return sum;
    }

    /// <summary>128 sectors (64 KiB) by READ DMA.</summary>
    [Benchmark]
    public ulong DmaRead64KiB() => Dma(0xC8, toMemory: true);

    /// <summary>128 sectors (64 KiB) by WRITE DMA.</summary>
    [Benchmark]
    public ulong DmaWrite64KiB() => Dma(0xCA, toMemory: false);

    private ulong Dma(byte command, bool toMemory)
    {
        TaskFile(command, 128);
        _ports.Write(Bm + 4, 4, Table);
        _ports.Write(Bm, 1, toMemory ? 0x09u : 0x01u);
        _ports.Write(Bm, 1, 0);
        _ports.Write(Bm + 2, 1, 0x04);
        return _ports.Read(Cmd + 7, 1);
    }

    private void TaskFile(byte command, int count)
    {
        _ports.Write(Cmd + 2, 1, (ulong)count);
        _ports.Write(Cmd + 3, 1, 0);
        _ports.Write(Cmd + 4, 1, 0);
        _ports.Write(Cmd + 5, 1, 0);
        _ports.Write(Cmd + 7, 1, command);
    }

    private sealed class RamDisk(int size) : BlockNode("bench", readOnly: false)
    {
        private readonly byte[] _data = new byte[size];

        public override string DriverName => "ram";

        public override long Size => _data.Length;

        public override string Filename => "ram";

        public override void Read(long offset, Span<byte> buffer) => _data.AsSpan((int)offset, buffer.Length).CopyTo(buffer);

        public override void Write(long offset, ReadOnlySpan<byte> buffer) => buffer.CopyTo(_data.AsSpan((int)offset));

        public override void Flush()
        {
        }
    }

    private sealed class FlatMemory(int size) : IPhysicalMemory
    {
        private readonly byte[] _bytes = new byte[size];

        public void Read(ulong address, Span<byte> destination) => _bytes.AsSpan((int)address, destination.Length).CopyTo(destination);

        public void Write(ulong address, ReadOnlySpan<byte> source) => source.CopyTo(_bytes.AsSpan((int)address));

        public void Prd(int index, uint address, uint count, bool last)
        {
            Span<byte> b = _bytes.AsSpan((int)Table + (8 * index), 8);
            BinaryPrimitives.WriteUInt32LittleEndian(b, address);
            BinaryPrimitives.WriteUInt32LittleEndian(b[4..], count | (last ? 0x8000_0000u : 0));
        }
    }
}
