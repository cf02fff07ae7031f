using System.Buffers.Binary;
using Colo.Block;
using Colo.Core.Io;
using Colo.Core.Memory;
using Colo.Devices.Ide;
using Colo.Devices.Pci;
using Colo.Tests.Unit.Core.Irq;
using Colo.Tests.Unit.Memory;

namespace Colo.Tests.Unit.Devices.Ide;

/// <summary>A RAM-backed block node recording flushes and discards, with injectable I/O failures.</summary>
internal sealed class IdeTestNode(long size) : BlockNode(null, readOnly: false)
{
    public byte[] Data { get; } = new byte[size];

    public int Flushes { get; private set; }

    public List<(long Offset, long Length)> Discards { get; } = [];

    public bool FailReads { get; set; }

    public bool FailWrites { get; set; }

    public bool FailFlush { get; set; }

    public override string DriverName => "test";

    public override long Size => Data.Length;

    public override string Filename => "test";

    public override void Read(long offset, Span<byte> buffer)
    {
        CheckRequest(offset, buffer.Length);
        if (FailReads)
        {
            throw new IOException("injected read error");
        }
        Data.AsSpan((int)offset, buffer.Length).CopyTo(buffer);
    }

    public override void Write(long offset, ReadOnlySpan<byte> buffer)
    {
        CheckRequest(offset, buffer.Length);
        if (FailWrites)
        {
            throw new BlockException("injected write error");
        }
        buffer.CopyTo(Data.AsSpan((int)offset));
    }

    public override void Flush()
    {
        if (FailFlush)
        {
            throw new IOException("injected flush error");
        }
        Flushes++;
    }

    public override void Discard(long offset, long length)
    {
        CheckRequest(offset, length);
        Discards.Add((offset, length));
        Data.AsSpan((int)offset, (int)length).Clear();
    }

    /// <summary>Fills sector <paramref name="sector"/> with bytes derived from its number.</summary>
    public void Pattern(long sectors)
    {
        for (long s = 0; s < sectors; s++)
        {
            for (int i = 0; i < 512; i++)
            {
                Data[(s * 512) + i] = (byte)(s * 7 + i);
            }
        }
    }
}

/// <summary>PRD tables in the test memory, as a driver writes them.</summary>
internal static class PrdTable
{
    public static void WritePrd(this FakePhysicalMemory memory, uint table, int index, uint address, uint count, bool last)
    {
        Span<byte> b = memory.Bytes.AsSpan((int)table + (8 * index), 8);
        BinaryPrimitives.WriteUInt32LittleEndian(b, address);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], (count & 0xFFFF) | (last ? 0x8000_0000u : 0));
    }
}

/// <summary>
/// The PIIX3 IDE function on a PCI bus with the legacy ports mapped as the PC board maps them, BAR4 at C000h with
/// I/O and bus mastering enabled, and recording IRQ lines for 14 and 15.
/// </summary>
internal sealed class IdeHarness
{
    public const ushort Cmd = 0x1F0;
    public const ushort Ctl = 0x3F6;
    public const ushort Cmd2 = 0x170;
    public const ushort Ctl2 = 0x376;
    public const ushort Bm = 0xC000;
    public const int DevFn = (1 << 3) | 1;

    public IdeHarness(int memorySize = 4 << 20)
    {
        Memory = new FakePhysicalMemory(memorySize);
        Bus = new PciBus(Ports, new MmioSpace(), Memory);
        Ide = new Piix3Ide(Irq14.Line, Irq15.Line);
        MapLegacy(Ports, Ide);
        Bus.Plug(Ide, DevFn);
        Bus.ConfigWrite(DevFn, 0x20, 4, Bm | 1u);
        Bus.ConfigWrite(DevFn, PciDevice.Command, 2, PciDevice.CommandIo | PciDevice.CommandMaster);
    }

    public PortIoSpace Ports { get; } = new();

    public FakePhysicalMemory Memory { get; }

    public PciBus Bus { get; }

    public Piix3Ide Ide { get; }

    public RecordingIrqLine Irq14 { get; } = new();

    public RecordingIrqLine Irq15 { get; } = new();

    public static void MapLegacy(PortIoSpace ports, Piix3Ide ide)
    {
        ports.Map(Cmd, ide.PrimaryCommand);
        ports.Map(Ctl, ide.PrimaryControl);
        ports.Map(Cmd2, ide.SecondaryCommand);
        ports.Map(Ctl2, ide.SecondaryControl);
    }

    public byte In(ushort port) => (byte)Ports.Read(port, 1);

    public ushort InW(ushort port) => (ushort)Ports.Read(port, 2);

    public uint InL(ushort port) => (uint)Ports.Read(port, 4);

    public void Out(ushort port, byte value) => Ports.Write(port, 1, value);

    public void OutW(ushort port, ushort value) => Ports.Write(port, 2, value);

    public void OutL(ushort port, uint value) => Ports.Write(port, 4, value);

    public byte Status => In(Cmd + 7);

    public byte AltStatus => In(Ctl);

    public byte Error => In(Cmd + 1);

    /// <summary>Programs an LBA28 task file on the primary master and issues <paramref name="command"/>.</summary>
    public void Lba28(byte command, uint lba, int count, int unit = 0)
    {
        Out(Cmd + 6, (byte)(0xE0u | ((uint)unit << 4) | ((lba >> 24) & 0x0Fu)));
        Out(Cmd + 2, (byte)count);
        Out(Cmd + 3, (byte)lba);
        Out(Cmd + 4, (byte)(lba >> 8));
        Out(Cmd + 5, (byte)(lba >> 16));
        Out(Cmd + 7, command);
    }

    /// <summary>Programs an LBA48 task file (high bytes first, as the register FIFO wants) and issues the command.</summary>
    public void Lba48(byte command, ulong lba, int count)
    {
        Out(Cmd + 6, 0xE0);
        Out(Cmd + 2, (byte)(count >> 8));
        Out(Cmd + 3, (byte)(lba >> 24));
        Out(Cmd + 4, (byte)(lba >> 32));
        Out(Cmd + 5, (byte)(lba >> 40));
        Out(Cmd + 2, (byte)count);
        Out(Cmd + 3, (byte)lba);
        Out(Cmd + 4, (byte)(lba >> 8));
        Out(Cmd + 5, (byte)(lba >> 16));
        Out(Cmd + 7, command);
    }

    /// <summary>Reads <paramref name="bytes"/> from the data port in 16-bit words.</summary>
    public byte[] ReadData(int bytes)
    {
        byte[] data = new byte[bytes];
        for (int i = 0; i < bytes; i += 2)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(i), InW(Cmd));
        }
        return data;
    }

    public void WriteData(ReadOnlySpan<byte> data)
    {
        for (int i = 0; i < data.Length; i += 2)
        {
            OutW(Cmd, BinaryPrimitives.ReadUInt16LittleEndian(data[i..]));
        }
    }

    public ushort[] Identify()
    {
        Out(Cmd + 7, AtaChannel.CmdIdentifyDevice);
        byte[] b = ReadData(512);
        ushort[] words = new ushort[256];
        for (int i = 0; i < 256; i++)
        {
            words[i] = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(2 * i));
        }
        return words;
    }

    /// <summary>Points the primary engine at a table and starts it in the given direction.</summary>
    public void StartBm(uint table, bool toMemory, int channel = 0)
    {
        ushort bm = (ushort)(Bm + (8 * channel));
        OutL((ushort)(bm + 4), table);
        Out(bm, (byte)(BusMasterDma.CommandStart | (toMemory ? BusMasterDma.CommandWriteToMemory : 0)));
    }

    public void StopBm(int channel = 0) => Out((ushort)(Bm + (8 * channel)), 0);

    public byte BmStatus(int channel = 0) => In((ushort)(Bm + 2 + (8 * channel)));
}
