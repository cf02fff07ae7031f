using BenchmarkDotNet.Attributes;
using Colo.Core.Irq;
using Colo.Devices.Interrupt;

namespace Colo.Benchmarks.Devices;

/// <summary>
/// The interrupt hot path as a guest timer tick exercises it: an edge on IRQ0, the INTA cycle, and the
/// non-specific EOI written to the master's command port. Must allocate nothing.
/// </summary>
[MemoryDiagnoser]
public class I8259PicBenchmarks
{
    private readonly I8259Pic _pic = new(new IrqLine(static _ => { }));

    [GlobalSetup]
    public void Setup()
    {
        _pic.Write(I8259Pic.MasterCommand, 1, 0x11);
        _pic.Write(I8259Pic.MasterData, 1, 0x08);
        _pic.Write(I8259Pic.MasterData, 1, 0x04);
        _pic.Write(I8259Pic.MasterData, 1, 0x01);
        _pic.Write(I8259Pic.SlaveCommand, 1, 0x11);
        _pic.Write(I8259Pic.SlaveData, 1, 0x70);
        _pic.Write(I8259Pic.SlaveData, 1, 0x02);
        _pic.Write(I8259Pic.SlaveData, 1, 0x01);
        _pic.Write(I8259Pic.MasterData, 1, 0x00);
        _pic.Write(I8259Pic.SlaveData, 1, 0x00);
    }

    [Benchmark]
    public byte RaiseAckEoi()
    {
        IrqLine line = _pic.Inputs[0];
        line.Raise();
        byte vector = _pic.Acknowledge();
        _pic.Write(I8259Pic.MasterCommand, 1, 0x20);
        line.Lower();
        return vector;
    }
}
