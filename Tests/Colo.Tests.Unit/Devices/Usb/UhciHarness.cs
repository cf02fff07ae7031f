using System.Buffers.Binary;
using Colo.Core.Io;
using Colo.Core.Memory;
using Colo.Core.Time;
using Colo.Devices.Pci;
using Colo.Devices.Usb;

namespace Colo.Tests.Unit.Devices.Usb;

/// <summary>Flat guest memory for DMA tests: addresses wrap into a 1 MiB array, so no access can fault.</summary>
public sealed class ArrayMemory : IPhysicalMemory
{
    public const int Size = 1 << 20;

    public byte[] Bytes { get; } = new byte[Size];

    public void Read(ulong address, Span<byte> destination)
    {
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = Bytes[(int)((address + (ulong)i) & (Size - 1))];
        }
    }

    public void Write(ulong address, ReadOnlySpan<byte> source)
    {
        for (int i = 0; i < source.Length; i++)
        {
            Bytes[(int)((address + (ulong)i) & (Size - 1))] = source[i];
        }
    }

    public uint R32(uint address) => BinaryPrimitives.ReadUInt32LittleEndian(Bytes.AsSpan((int)address));

    public void W32(uint address, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Bytes.AsSpan((int)address), value);
}

/// <summary>
/// A UHCI at 00:01.2 on a PCI bus over <see cref="ArrayMemory"/>, its registers at I/O 0xC000, a manual clock,
/// and helpers that build schedules the way a driver does: a frame list whose entries all point at one QH,
/// and control/interrupt transfers as TD chains hung from that QH.
/// </summary>
public sealed class UhciHarness
{
    public const ushort IoBase = 0xC000;
    public const uint FrameList = 0x10000;
    public const uint Qh = 0x11000;
    public const uint Tds = 0x12000;
    public const uint Buffers = 0x20000;

    public const uint Active = 1u << 23;
    public const uint Cerr3 = 3u << 27;
    public const uint Ioc = 1u << 24;
    public const uint Spd = 1u << 29;

    public UhciHarness()
    {
        Clock = new ManualClock();
        Memory = new ArrayMemory();
        Bus = new PciBus(new PortIoSpace(), new MmioSpace(), Memory);
        Bus.IntxChanged = (_, pin, level) =>
        {
            Pin = pin;
            IrqLevel = level;
        };
        Uhci = new Piix3Uhci(Clock);
        Bus.Plug(Uhci, (1 << 3) | 2);
        Uhci.ConfigWrite(PciDevice.Bar0 + 16, 4, IoBase);
        Uhci.ConfigWrite(PciDevice.Command, 2, PciDevice.CommandIo | PciDevice.CommandMaster);
    }

    public ManualClock Clock { get; }

    public ArrayMemory Memory { get; }

    public PciBus Bus { get; }

    public Piix3Uhci Uhci { get; }

    public bool IrqLevel { get; private set; }

    public int Pin { get; private set; } = -1;

    public ushort R16(int offset) => (ushort)Bus.Ports.Read((ushort)(IoBase + offset), 2);

    public void W16(int offset, int value) => Bus.Ports.Write((ushort)(IoBase + offset), 2, (ulong)value);

    public uint R32(int offset) => (uint)Bus.Ports.Read((ushort)(IoBase + offset), 4);

    public void W32(int offset, uint value) => Bus.Ports.Write((ushort)(IoBase + offset), 4, value);

    public byte R8(int offset) => (byte)Bus.Ports.Read((ushort)(IoBase + offset), 1);

    public void W8(int offset, int value) => Bus.Ports.Write((ushort)(IoBase + offset), 1, (ulong)value);

    /// <summary>Attaches, resets and enables port 0 as a driver would, then points every frame at the QH and runs.</summary>
    public UsbTablet StartWithTablet(int port = 0)
    {
        var tablet = new UsbTablet();
        Uhci.Attach(port, tablet);
        int reg = Piix3Uhci.PortSc1 + (2 * port);
        W16(reg, Piix3Uhci.PortReset);
        W16(reg, 0);
        W16(reg, Piix3Uhci.PortEnable | Piix3Uhci.PortConnectChange | Piix3Uhci.PortEnableChange);
        StartSchedule();
        return tablet;
    }

    /// <summary>Frame list → one empty QH in every slot; RS|CF|MAXP; all interrupts enabled.</summary>
    public void StartSchedule()
    {
        for (uint i = 0; i < 1024; i++)
        {
            Memory.W32(FrameList + (4 * i), Qh | Piix3Uhci.LinkQh);
        }
        Memory.W32(Qh, Piix3Uhci.LinkTerminate);
        Memory.W32(Qh + 4, Piix3Uhci.LinkTerminate);
        W32(Piix3Uhci.FlBaseAdd, FrameList);
        W16(Piix3Uhci.UsbIntr, 0xF);
        W16(Piix3Uhci.UsbCmd, Piix3Uhci.CmdRs | Piix3Uhci.CmdCf | Piix3Uhci.CmdMaxP);
    }

    public static uint Token(UsbPid pid, int address, int endpoint, int toggle, int length)
    {
        uint maxLen = length == 0 ? 0x7FFu : (uint)(length - 1);
        return (maxLen << 21) | ((uint)toggle << 19) | ((uint)endpoint << 15) | ((uint)address << 8) | (uint)pid;
    }

    public void Td(int index, uint link, uint status, uint token, uint buffer)
    {
        uint a = Tds + (32 * (uint)index);
        Memory.W32(a, link);
        Memory.W32(a + 4, status);
        Memory.W32(a + 8, token);
        Memory.W32(a + 12, buffer);
    }

    public uint TdStatus(int index) => Memory.R32(Tds + (32 * (uint)index) + 4);

    public static uint TdAddress(int index) => Tds + (32 * (uint)index);

    /// <summary>Hangs TD 0 on the QH and runs frames until the queue empties (or <paramref name="maxFrames"/>).</summary>
    public void RunQueue(int maxFrames = 20)
    {
        Memory.W32(Qh + 4, Tds);
        for (int i = 0; i < maxFrames && (Memory.R32(Qh + 4) & 1) == 0; i++)
        {
            Clock.Advance(Piix3Uhci.FrameNs);
        }
    }

    /// <summary>
    /// One control transfer as QEMU's schedule captures were made: SETUP, 8-byte data TDs with alternating
    /// toggles (SPD on IN), zero-length status with IOC; depth-first links. Returns data and TD statuses.
    /// </summary>
    public (byte[] Data, uint[] Status) Control(int address, byte[] setup, int length = 0, byte[]? outData = null)
    {
        setup.CopyTo(Memory.Bytes, (int)Buffers);
        var tds = new List<(uint Status, uint Token, uint Buffer)>
        {
            (Active | Cerr3, Token(UsbPid.Setup, address, 0, 0, 8), Buffers),
        };
        int toggle = 1;
        bool isIn = (setup[0] & 0x80) != 0;
        if (outData is not null)
        {
            outData.CopyTo(Memory.Bytes, (int)Buffers + 0x100);
            for (int off = 0; off < outData.Length; off += 8)
            {
                int n = Math.Min(8, outData.Length - off);
                tds.Add((Active | Cerr3, Token(UsbPid.Out, address, 0, toggle, n), Buffers + 0x100 + (uint)off));
                toggle ^= 1;
            }
        }
        else
        {
            for (int off = 0; off < length; off += 8)
            {
                int n = Math.Min(8, length - off);
                tds.Add((Active | Cerr3 | Spd, Token(UsbPid.In, address, 0, toggle, n), Buffers + 0x100 + (uint)off));
                toggle ^= 1;
            }
        }
        UsbPid statusPid = isIn && length > 0 ? UsbPid.Out : UsbPid.In;
        tds.Add((Active | Cerr3 | Ioc, Token(statusPid, address, 0, 1, 0), 0));
        for (int i = 0; i < tds.Count; i++)
        {
            uint link = i + 1 < tds.Count ? TdAddress(i + 1) | Piix3Uhci.LinkDepth : Piix3Uhci.LinkTerminate;
            Td(i, link, tds[i].Status, tds[i].Token, tds[i].Buffer);
        }
        Array.Clear(Memory.Bytes, (int)Buffers + 0x100, 0x400);
        RunQueue();
        Memory.W32(Qh + 4, Piix3Uhci.LinkTerminate);
        var status = new uint[tds.Count];
        var data = new List<byte>();
        for (int i = 0; i < tds.Count; i++)
        {
            status[i] = TdStatus(i);
            if (outData is null && i > 0 && i < tds.Count - 1 && (status[i] & Active) == 0 && (status[i] & 0x7F0000) == 0)
            {
                int n = (int)((status[i] + 1) & 0x7FF);
                data.AddRange(Memory.Bytes.AsSpan((int)tds[i].Buffer, n).ToArray());
            }
        }
        return (data.ToArray(), status);
    }

    /// <summary>One interrupt IN TD on endpoint 1 (IOC, SPD), run for one frame.</summary>
    public (uint Status, byte[] Data) InterruptIn(int address, int toggle, int length = 8)
    {
        Td(0, Piix3Uhci.LinkTerminate, Active | Cerr3 | Spd | Ioc, Token(UsbPid.In, address, 1, toggle, length), Buffers + 0x200);
        Memory.W32(Qh + 4, Tds);
        Clock.Advance(Piix3Uhci.FrameNs);
        Memory.W32(Qh + 4, Piix3Uhci.LinkTerminate);
        uint st = TdStatus(0);
        int n = (st & Active) == 0 ? (int)((st + 1) & 0x7FF) : 0;
        return (st, Memory.Bytes.AsSpan((int)Buffers + 0x200, n).ToArray());
    }

    public static byte[] Hex(string hex) => Convert.FromHexString(hex);
}
