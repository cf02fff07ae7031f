using System.Buffers.Binary;
using System.Text;

namespace Colo.Devices.Acpi;

/// <summary>
/// QEMU's BIOS linker/loader script (<c>etc/table-loader</c>, described in QEMU's hw/acpi/bios-linker-loader.c
/// interface notes and implemented by SeaBIOS's romfile_loader): 128-byte commands telling the firmware to allocate
/// fw_cfg files in its memory (ALLOCATE), add one file's final address to a pointer field inside another
/// (ADD_POINTER), and fill in byte checksums (ADD_CHECKSUM). Tables are generated with pointer fields holding the
/// offset inside the pointed-to file and checksum bytes zero; the script makes them right wherever they land.
/// </summary>
public sealed class BiosLinker
{
    public const uint CommandAllocate = 1;
    public const uint CommandAddPointer = 2;
    public const uint CommandAddChecksum = 3;
    public const int CommandSize = 128;
    public const int FileNameSize = 56;

    /// <summary>Where ALLOCATE puts a file: anywhere in RAM (high) or the F-segment below 1 MiB.</summary>
    public enum Zone : byte
    {
        High = 1,
        FSeg = 2,
    }

    private readonly List<byte[]> _commands = [];

    /// <summary>The commands so far.</summary>
    public int Count => _commands.Count;

    /// <summary>ALLOCATE: load <paramref name="file"/> at an address aligned to <paramref name="alignment"/>.</summary>
    public void Allocate(string file, uint alignment, Zone zone)
    {
        byte[] c = NewCommand(CommandAllocate);
        WriteName(c.AsSpan(4), file);
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(4 + FileNameSize), alignment);
        c[4 + FileNameSize + 4] = (byte)zone;
        _commands.Add(c);
    }

    /// <summary>ADD_POINTER: add the address of <paramref name="source"/> to the <paramref name="size"/>-byte field at <paramref name="offset"/> in <paramref name="destination"/>.</summary>
    public void AddPointer(string destination, string source, uint offset, byte size)
    {
        byte[] c = NewCommand(CommandAddPointer);
        WriteName(c.AsSpan(4), destination);
        WriteName(c.AsSpan(4 + FileNameSize), source);
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(4 + 2 * FileNameSize), offset);
        c[4 + 2 * FileNameSize + 4] = size;
        _commands.Add(c);
    }

    /// <summary>ADD_CHECKSUM: make bytes [start, start+length) of <paramref name="file"/> sum to zero via the byte at <paramref name="offset"/>.</summary>
    public void AddChecksum(string file, uint offset, uint start, uint length)
    {
        byte[] c = NewCommand(CommandAddChecksum);
        WriteName(c.AsSpan(4), file);
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(4 + FileNameSize), offset);
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(4 + FileNameSize + 4), start);
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(4 + FileNameSize + 8), length);
        _commands.Add(c);
    }

    /// <summary>The script, zero-padded to a multiple of 4 KiB as QEMU publishes it (so its size survives migration).</summary>
    public byte[] ToArray()
    {
        int length = _commands.Count * CommandSize;
        byte[] r = new byte[Math.Max(4096, (length + 4095) & ~4095)];
        for (int i = 0; i < _commands.Count; i++)
        {
            _commands[i].CopyTo(r, i * CommandSize);
        }
        return r;
    }

    /// <summary>One decoded command (for tests and for <see cref="Run"/>).</summary>
    public readonly record struct Command(uint Kind, string File, string Source, uint Offset, uint Start, uint Length, byte Size, BiosLinker.Zone Zone, uint Alignment);

    /// <summary>Decodes a script; stops at the first all-zero command.</summary>
    /// <exception cref="FormatException">A command kind the format does not define.</exception>
    public static List<Command> Parse(ReadOnlySpan<byte> script)
    {
        var list = new List<Command>();
        for (int at = 0; at + CommandSize <= script.Length; at += CommandSize)
        {
            ReadOnlySpan<byte> c = script.Slice(at, CommandSize);
            uint kind = BinaryPrimitives.ReadUInt32LittleEndian(c);
            string file = ReadName(c.Slice(4, FileNameSize));
            switch (kind)
            {
                case 0:
                    return list;
                case CommandAllocate:
                    list.Add(new Command(kind, file, "", 0, 0, 0, 0, (Zone)c[64], BinaryPrimitives.ReadUInt32LittleEndian(c[60..])));
                    break;
                case CommandAddPointer:
                    list.Add(new Command(kind, file, ReadName(c.Slice(60, FileNameSize)), BinaryPrimitives.ReadUInt32LittleEndian(c[116..]), 0, 0, c[120], 0, 0));
                    break;
                case CommandAddChecksum:
                    list.Add(new Command(kind, file, "", BinaryPrimitives.ReadUInt32LittleEndian(c[60..]), BinaryPrimitives.ReadUInt32LittleEndian(c[64..]), BinaryPrimitives.ReadUInt32LittleEndian(c[68..]), 0, 0, 0));
                    break;
                default:
                    throw new FormatException($"table-loader command {kind} at offset {at} is unknown");
            }
        }
        return list;
    }

    /// <summary>
    /// Runs a script the way the firmware does, over files already placed at known addresses: patches pointers and
    /// computes checksums in place. Used for <c>-kernel</c> boots, where no firmware runs, and by tests.
    /// </summary>
    /// <exception cref="FormatException">The script names a file it was not given or a field outside it.</exception>
    public static void Run(ReadOnlySpan<byte> script, IReadOnlyDictionary<string, (byte[] Data, ulong Address)> files)
    {
        foreach (Command c in Parse(script))
        {
            switch (c.Kind)
            {
                case CommandAddPointer:
                {
                    byte[] dest = Find(files, c.File).Data;
                    ulong sourceAddress = Find(files, c.Source).Address;
                    if (c.Size is not (1 or 2 or 4 or 8) || c.Offset + c.Size > dest.Length)
                    {
                        throw new FormatException($"ADD_POINTER outside '{c.File}'");
                    }
                    ulong value = 0;
                    for (int i = 0; i < c.Size; i++)
                    {
                        value |= (ulong)dest[c.Offset + i] << (8 * i);
                    }
                    value += sourceAddress;
                    for (int i = 0; i < c.Size; i++)
                    {
                        dest[c.Offset + i] = (byte)(value >> (8 * i));
                    }
                    break;
                }
                case CommandAddChecksum:
                {
                    byte[] data = Find(files, c.File).Data;
                    if ((ulong)c.Start + c.Length > (ulong)data.Length || c.Offset >= data.Length)
                    {
                        throw new FormatException($"ADD_CHECKSUM outside '{c.File}'");
                    }
                    data[c.Offset] = 0;
                    data[c.Offset] = (byte)-Sum(data.AsSpan((int)c.Start, (int)c.Length));
                    break;
                }
            }
        }
    }

    /// <summary>Byte sum modulo 256 (a table is valid when its bytes sum to zero).</summary>
    public static byte Sum(ReadOnlySpan<byte> data)
    {
        byte s = 0;
        foreach (byte b in data)
        {
            s += b;
        }
        return s;
    }

    private static (byte[] Data, ulong Address) Find(IReadOnlyDictionary<string, (byte[] Data, ulong Address)> files, string name) =>
        files.TryGetValue(name, out var f) ? f : throw new FormatException($"table-loader names unknown file '{name}'");

    private static byte[] NewCommand(uint kind)
    {
        byte[] c = new byte[CommandSize];
        BinaryPrimitives.WriteUInt32LittleEndian(c, kind);
        return c;
    }

    private static void WriteName(Span<byte> destination, string name)
    {
        if (Encoding.ASCII.GetByteCount(name) >= FileNameSize)
        {
            throw new ArgumentException($"fw_cfg file name '{name}' is too long for the table loader", nameof(name));
        }
        Encoding.ASCII.GetBytes(name, destination);
    }

    private static string ReadName(ReadOnlySpan<byte> field)
    {
        int end = field.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? field : field[..end]);
    }
}
