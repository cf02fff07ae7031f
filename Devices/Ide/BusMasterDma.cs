using System.Buffers.Binary;
using Colo.Devices.Pci;

namespace Colo.Devices.Ide;

/// <summary>Saved bus-master registers of one channel.</summary>
/// <param name="Command">Bus master IDE command register (BMICx): start bit 0, read/write control bit 3.</param>
/// <param name="Status">Bus master IDE status register (BMISx).</param>
/// <param name="PrdTable">Descriptor table pointer (BMIDTPx), dword aligned.</param>
/// <param name="NextDescriptor">Where the engine's next descriptor fetch would read (QEMU's <c>cur_addr</c>).</param>
public sealed record BusMasterDmaState(byte Command, byte Status, uint PrdTable, uint NextDescriptor)
{
    public static BusMasterDmaState PowerOn { get; } = new(0, 0, 0, 0);
}

/// <summary>
/// Where a transfer stands in a physical region descriptor table: the next descriptor to fetch, and what is left
/// of the current region. A value type so a transfer walks the table without allocating.
/// </summary>
internal struct PrdCursor
{
    public uint TableStart;
    public uint Next;
    public uint Address;
    public int Remaining;
    public bool Last;
}

/// <summary>
/// The PIIX3 bus-master IDE function of one channel (82371SB datasheet, section 2.7, "Bus Master IDE I/O
/// Registers", and 3.6 "Bus Master IDE Function"): the command, status and descriptor-table registers at offsets
/// 0, 2 and 4 of the channel's eight bytes in BAR4, and the walk over the descriptor table that moves data between
/// guest memory and the drive. Each descriptor is two dwords: a physical base address, then a byte count in bits 15:1
/// (0 meaning 64 KiB) with end-of-table in bit 31.
/// </summary>
public sealed class BusMasterDma
{
    // Register offsets within a channel's eight bytes (datasheet 2.7.1-2.7.3).
    public const int CommandRegister = 0;
    public const int StatusRegister = 2;
    public const int PrdTableRegister = 4;

    // BMICx bits.
    public const byte CommandStart = 0x01;
    public const byte CommandWriteToMemory = 0x08;

    // BMISx bits: active (read only), error and interrupt (write one to clear), drive 0/1 DMA capable (read/write).
    public const byte StatusActive = 0x01;
    public const byte StatusError = 0x02;
    public const byte StatusInterrupt = 0x04;
    public const byte StatusDrive0Capable = 0x20;
    public const byte StatusDrive1Capable = 0x40;

    /// <summary>End-of-table flag in a descriptor's second dword.</summary>
    public const uint PrdEndOfTable = 0x8000_0000;

    /// <summary>
    /// A table runs to its end-of-table descriptor; a table that never sets it is cut after one 4 KiB page of
    /// descriptors (512 entries), so a guest cannot make the walk endless.
    /// </summary>
    public const int MaxTableBytes = 4096;

    private readonly PciDevice _function;
    private byte _command;
    private byte _status;
    private uint _prdTable;
    private uint _next;

    internal BusMasterDma(PciDevice function)
    {
        _function = function;
    }

    /// <summary>Called when the guest sets the start bit while the engine was idle; the channel runs a pending transfer.</summary>
    internal Action? Started { get; set; }

    /// <summary>The engine's active bit: set by the guest's start, cleared when a transfer finishes or is stopped.</summary>
    public bool Active => (_status & StatusActive) != 0;

    /// <summary>Status register as the guest reads it.</summary>
    public byte Status => _status;

    /// <summary>Reads one byte of the channel's registers; unimplemented bytes read all-ones.</summary>
    public byte ReadByte(int offset)
    {
        switch (offset)
        {
            case CommandRegister:
                return _command;
            case StatusRegister:
                return _status;
            case >= PrdTableRegister and < PrdTableRegister + 4:
                return (byte)(_prdTable >> (8 * (offset - PrdTableRegister)));
            default:
                return 0xFF;
        }
    }

    /// <summary>Writes one byte of the channel's registers.</summary>
    public void WriteByte(int offset, byte value)
    {
        switch (offset)
        {
            case CommandRegister:
                WriteCommand(value);
                break;
            case StatusRegister:
                // Capable bits are plain storage, error and interrupt clear when written as one, active is read-only.
                _status = (byte)((value & (StatusDrive0Capable | StatusDrive1Capable))
                    | (_status & StatusActive)
                    | (_status & ~value & (StatusError | StatusInterrupt)));
                break;
            case >= PrdTableRegister and < PrdTableRegister + 4:
                int shift = 8 * (offset - PrdTableRegister);
                uint merged = (_prdTable & ~(0xFFu << shift)) | ((uint)value << shift);
                // BMIDTPx bits 1:0 are reserved: the table is dword aligned.
                _prdTable = merged & ~3u;
                break;
            default:
                break;
        }
    }

    private void WriteCommand(byte value)
    {
        bool wasStarted = (_command & CommandStart) != 0;
        bool start = (value & CommandStart) != 0;
        _command = (byte)(value & (CommandStart | CommandWriteToMemory));
        if (start == wasStarted)
        {
            // Rewriting the same start value changes nothing (datasheet 2.7.1: the engine reacts to the transition).
            return;
        }
        if (start)
        {
            // Every start reloads the engine's descriptor pointer from BMIDTPx (datasheet 3.6.2, step 3).
            _next = _prdTable;
        }
        else
        {
            // Stopping aborts the transfer; with synchronous I/O none is ever in flight, so only the bit changes.
            _status &= unchecked((byte)~StatusActive);
            return;
        }
        if ((_status & StatusActive) == 0)
        {
            _status |= StatusActive;
            Started?.Invoke();
        }
    }

    /// <summary>The channel raised its interrupt: the interrupt status bit follows (datasheet 2.7.2, bit 2).</summary>
    internal void NoteInterrupt() => _status |= StatusInterrupt;

    /// <summary>A transfer ended; the active bit stays set only when the table described more than was moved.</summary>
    internal void SetInactive(bool stayActive)
    {
        if (stayActive)
        {
            _status |= StatusActive;
        }
        else
        {
            _status &= unchecked((byte)~StatusActive);
        }
    }

    /// <summary>
    /// Takes the rest of the table for one command: sums the byte counts from the engine's descriptor pointer to
    /// end-of-table (or the one-page cut-off) and leaves the pointer past it, as QEMU's engine does, so a second
    /// command without a restart finds the table used up. The channel compares the sum with the request (covered?
    /// more than needed?) and moves the data with <paramref name="start"/>.
    /// </summary>
    internal long TakeTable(out PrdCursor start)
    {
        start = new PrdCursor { TableStart = _prdTable, Next = _next };
        PrdCursor cursor = start;
        long total = 0;
        while (Fetch(ref cursor))
        {
            total += cursor.Remaining;
            cursor.Remaining = 0;
        }
        _next = cursor.Next;
        return total;
    }

    /// <summary>Copies <paramref name="data"/> to guest memory through the regions the cursor walks.</summary>
    /// <returns>False when the table ended first.</returns>
    internal bool Scatter(ref PrdCursor cursor, ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            if (cursor.Remaining == 0 && !Fetch(ref cursor))
            {
                return false;
            }
            int n = Math.Min(cursor.Remaining, data.Length);
            // With bus mastering off the write goes nowhere, as on a real bus; the transfer itself carries on.
            _function.DmaWrite(cursor.Address, data[..n]);
            Advance(ref cursor, n);
            data = data[n..];
        }
        return true;
    }

    /// <summary>Fills <paramref name="data"/> from guest memory through the regions the cursor walks.</summary>
    /// <returns>False when the table ended first.</returns>
    internal bool Gather(ref PrdCursor cursor, Span<byte> data)
    {
        while (!data.IsEmpty)
        {
            if (cursor.Remaining == 0 && !Fetch(ref cursor))
            {
                return false;
            }
            int n = Math.Min(cursor.Remaining, data.Length);
            _function.DmaRead(cursor.Address, data[..n]);
            Advance(ref cursor, n);
            data = data[n..];
        }
        return true;
    }

    private static void Advance(ref PrdCursor cursor, int n)
    {
        cursor.Address += (uint)n;
        cursor.Remaining -= n;
    }

    /// <summary>Loads the next descriptor into the cursor; false at end of table.</summary>
    private bool Fetch(ref PrdCursor cursor)
    {
        if (cursor.Last || cursor.Next - cursor.TableStart >= MaxTableBytes)
        {
            return false;
        }
        Span<byte> prd = stackalloc byte[8];
        // A table read with mastering off sees zeros: a 64 KiB region at 0 without end-of-table, as the bus gives.
        _function.DmaRead(cursor.Next, prd);
        cursor.Next += 8;
        cursor.Address = BinaryPrimitives.ReadUInt32LittleEndian(prd);
        uint control = BinaryPrimitives.ReadUInt32LittleEndian(prd[4..]);
        // Byte count bits 15:1 (bit 0 is reserved: regions are word sized); zero encodes 64 KiB.
        int count = (int)(control & 0xFFFE);
        cursor.Remaining = count == 0 ? 0x10000 : count;
        cursor.Last = (control & PrdEndOfTable) != 0;
        return true;
    }

    public BusMasterDmaState Save() => new(_command, _status, _prdTable, _next);

    public void Restore(BusMasterDmaState state)
    {
        _command = (byte)(state.Command & (CommandStart | CommandWriteToMemory));
        _status = (byte)(state.Status & 0x67);
        _prdTable = state.PrdTable & ~3u;
        _next = state.NextDescriptor & ~3u;
    }
}
