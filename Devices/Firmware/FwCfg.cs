using System.Buffers.Binary;
using System.Text;
using Colo.Core.Memory;

namespace Colo.Devices.Firmware;

/// <summary>Saved fw_cfg state (vmstate section "fw_cfg", version 2; the DMA address is the "dma" subsection).</summary>
/// <param name="CurrentKey">Selected key as the guest wrote it (write-channel and arch bits kept), or
/// <see cref="FwCfg.InvalidKey"/> after selecting a key outside the table.</param>
/// <param name="CurrentOffset">Byte offset into the selected item.</param>
/// <param name="DmaAddress">Last value written to the DMA address register.</param>
public sealed record FwCfgState(ushort CurrentKey, uint CurrentOffset, ulong DmaAddress)
{
    public const string Section = "fw_cfg";
    public const int Version = 2;

    /// <summary>After reset the signature item is selected at offset 0.</summary>
    public static FwCfgState PowerOn { get; } = new(FwCfg.KeySignature, 0, 0);
}

/// <summary>Called after the guest wrote <paramref name="length"/> bytes at <paramref name="offset"/> of a writable item.</summary>
public delegate void FwCfgWriteCallback(uint offset, uint length);

/// <summary>
/// QEMU's firmware configuration interface in its x86 I/O-port form (<c>fw_cfg_io</c>), following the fw_cfg
/// specification (docs/specs/fw_cfg.rst). One region of <see cref="RegionSize"/> bytes, mapped by the board at 0x510:
/// <list type="bullet">
/// <item>offset 0 (port 0x510): a 16-bit write selects an item and rewinds it; a byte read returns the next data byte,
/// as the data port does (QEMU decodes the two bytes as one register pair).</item>
/// <item>offset 1 (port 0x511): byte reads stream the selected item; bytes past its end read as 0 without advancing.
/// Byte writes are ignored (the spec dropped data-port writes in QEMU 2.4).</item>
/// <item>offsets 4–11 (ports 0x514–0x51B): the big-endian DMA address register. Writing the low half (offset 8) or a
/// full 64-bit value at offset 4 runs the <c>FWCfgDmaAccess</c> descriptor at that guest-physical address; reads return
/// the "QEMU CFG" signature bytes in order.</item>
/// </list>
/// The board may map the region as one block or as the two QEMU maps (0x510–0x511, 0x514–0x51B); unassigned bytes
/// read 0xFF either way, and accesses straddling the blocks give QEMU's per-byte results.
/// Items live in two tables (generic and arch-local, key bit 15). Named files take keys from
/// <see cref="KeyFileFirst"/> upward in name order, as QEMU 7.2 assigns them, and are listed in the directory item
/// <see cref="KeyFileDir"/>. Guest misuse never throws: unknown keys read as zeros, bad DMA sets the error bit.
/// Configuration mistakes by the host (duplicate file names, too many files) throw <see cref="FwCfgException"/>.
/// </summary>
public sealed class FwCfg
{
    // Register offsets inside the region (ports 0x510.., spec "Selector (Control) Register", "Data Register", "DMA").
    public const int SelectorOffset = 0;
    public const int DataOffset = 1;
    public const int DmaOffset = 4;
    public const int DmaLowOffset = 8;
    public const int RegionSize = 12;

    // Generic keys (spec "Firmware Configuration Items" plus QEMU's fw_cfg_keys.h numbering).
    public const ushort KeySignature = 0x00;
    public const ushort KeyId = 0x01;
    public const ushort KeyUuid = 0x02;
    public const ushort KeyRamSize = 0x03;
    public const ushort KeyNoGraphic = 0x04;
    public const ushort KeyNbCpus = 0x05;
    public const ushort KeyMachineId = 0x06;
    public const ushort KeyKernelAddr = 0x07;
    public const ushort KeyKernelSize = 0x08;
    public const ushort KeyKernelCmdline = 0x09;
    public const ushort KeyInitrdAddr = 0x0a;
    public const ushort KeyInitrdSize = 0x0b;
    public const ushort KeyBootDevice = 0x0c;
    public const ushort KeyNuma = 0x0d;
    public const ushort KeyBootMenu = 0x0e;
    public const ushort KeyMaxCpus = 0x0f;
    public const ushort KeyKernelEntry = 0x10;
    public const ushort KeyKernelData = 0x11;
    public const ushort KeyInitrdData = 0x12;
    public const ushort KeyCmdlineAddr = 0x13;
    public const ushort KeyCmdlineSize = 0x14;
    public const ushort KeyCmdlineData = 0x15;
    public const ushort KeySetupAddr = 0x16;
    public const ushort KeySetupSize = 0x17;
    public const ushort KeySetupData = 0x18;
    public const ushort KeyFileDir = 0x19;
    public const ushort KeyFileFirst = 0x20;

    // Key modifier bits.
    public const ushort WriteChannel = 0x4000;
    public const ushort ArchLocal = 0x8000;
    public const ushort EntryMask = 0x3FFF;
    public const ushort InvalidKey = 0xFFFF;

    // x86 arch-local keys (hw/i386 numbering: ACPI tables, SMBIOS, IRQ0 override, legacy e820, HPET).
    public const ushort KeyAcpiTables = ArchLocal | 0;
    public const ushort KeySmbiosEntries = ArchLocal | 1;
    public const ushort KeyIrq0Override = ArchLocal | 2;
    public const ushort KeyE820Table = ArchLocal | 3;
    public const ushort KeyHpet = ArchLocal | 4;

    // FW_CFG_ID feature bits.
    public const uint IdTraditional = 1 << 0;
    public const uint IdDma = 1 << 1;

    // FWCfgDmaAccess.control bits.
    public const uint DmaCtlError = 0x01;
    public const uint DmaCtlRead = 0x02;
    public const uint DmaCtlSkip = 0x04;
    public const uint DmaCtlSelect = 0x08;
    public const uint DmaCtlWrite = 0x10;

    /// <summary>What the DMA register reads as: "QEMU CFG" as a big-endian 64-bit value.</summary>
    public const ulong DmaSignature = 0x51454D5520434647;

    /// <summary>File slots of a pc-7.2 machine (machines up to 2.8 had 16).</summary>
    public const int DefaultFileSlots = 0x20;

    /// <summary>Longest file name plus its NUL terminator (<c>FWCfgFile.name</c>).</summary>
    public const int FileNameSize = 56;
    public const int FileDirEntrySize = 64;
    public const int DmaAccessSize = 16;

    private readonly IPhysicalMemory _memory;
    private readonly Func<ulong, ulong, bool>? _dmaRangeValid;
    private readonly bool _dmaEnabled;
    private readonly int _maxEntries;
    private readonly Item?[] _generic;
    private readonly Item?[] _arch;
    // Files in directory order; the file at index i answers key KeyFileFirst + i.
    private readonly List<FileItem> _files = [];
    private readonly byte[] _zeros = new byte[4096];
    private Item _fileDir = new([0, 0, 0, 0], false, null, null);
    private ushort _key;
    private uint _offset;
    private ulong _dmaAddress;

    /// <param name="memory">Guest-physical memory the DMA interface reads descriptors from and copies data to.</param>
    /// <param name="dmaRangeValid">Says whether a guest-physical range (address, length) is RAM a DMA may touch; a
    /// transfer touching anything else completes with the error bit, as a failed <c>dma_memory_*</c> does. Null
    /// accepts every range.</param>
    /// <param name="dmaEnabled">Whether the DMA interface exists (FW_CFG_ID bit 1; QEMU's <c>dma_enabled</c>).</param>
    /// <param name="fileSlots">Number of file keys (QEMU's <c>x-file-slots</c>).</param>
    public FwCfg(IPhysicalMemory memory, Func<ulong, ulong, bool>? dmaRangeValid = null, bool dmaEnabled = true,
        int fileSlots = DefaultFileSlots)
    {
        if (fileSlots is < 1 or > EntryMask + 1 - KeyFileFirst)
        {
            throw new FwCfgException($"fw_cfg: file slots must be between 1 and {EntryMask + 1 - KeyFileFirst}");
        }
        _memory = memory;
        _dmaRangeValid = dmaRangeValid;
        _dmaEnabled = dmaEnabled;
        _maxEntries = KeyFileFirst + fileSlots;
        _generic = new Item?[_maxEntries];
        _arch = new Item?[_maxEntries];
        AddBytes(KeySignature, "QEMU"u8.ToArray());
        AddU32(KeyId, IdTraditional | (dmaEnabled ? IdDma : 0));
        UpdateFileDir();
        Reset();
    }

    /// <summary>Whether the DMA registers exist; the board maps offsets 4–11 only then.</summary>
    public bool DmaEnabled => _dmaEnabled;

    /// <summary>Number of named files currently registered.</summary>
    public int FileCount => _files.Count;

    public uint Read(int offset, int size)
    {
        if (offset == SelectorOffset && size > 1)
        {
            // The selector/data pair only accepts byte reads; QEMU answers a wider read starting on it with 0 and no
            // side effect (observed: inw/inl 0x510 give 0 and do not advance the data offset).
            return 0;
        }
        // Anything else is assembled byte by byte, which is what QEMU's I/O dispatch does with an access that crosses
        // from one of the two register blocks into the other or into the unassigned ports 0x512–0x513.
        uint value = 0;
        for (int i = 0; i < size; i++)
        {
            value |= (uint)ReadByteAt(offset + i) << (8 * i);
        }
        return value;
    }

    private byte ReadByteAt(int offset) => offset switch
    {
        SelectorOffset or DataOffset => (byte)ReadDataByte(),
        >= DmaOffset and < DmaOffset + 8 when _dmaEnabled => (byte)(DmaSignature >> (8 * (7 - (offset - DmaOffset)))),
        _ => 0xFF,
    };

    public void Write(int offset, int size, uint value)
    {
        switch (offset)
        {
            case SelectorOffset when size == 2:
                Select((ushort)value);
                break;
            case SelectorOffset or DataOffset:
                // Data-port writes were removed from the interface; the spec says they are ignored.
                break;
            case DmaOffset when size == 4 && _dmaEnabled:
                // The register is big-endian while x86 port I/O is little-endian: the guest stores the high half
                // byte-swapped, so swap back to get the address bits.
                _dmaAddress = (ulong)BinaryPrimitives.ReverseEndianness(value) << 32;
                break;
            case DmaLowOffset when size == 4 && _dmaEnabled:
                _dmaAddress |= BinaryPrimitives.ReverseEndianness(value);
                RunDma();
                break;
        }
    }

    /// <summary>A 64-bit store to the DMA register (MMIO variants of fw_cfg; port I/O cannot do it).</summary>
    public void WriteDma64(ulong bigEndianValue)
    {
        if (_dmaEnabled)
        {
            _dmaAddress = BinaryPrimitives.ReverseEndianness(bigEndianValue);
            RunDma();
        }
    }

    // ------------------------------------------------------------------ item registration (host side)

    /// <summary>Registers (or replaces) a numbered item. File keys are handed out by <see cref="AddFile"/> instead.</summary>
    public void AddBytes(ushort key, byte[] data) => SetItem(key, new Item(data, false, null, null));

    /// <summary>Registers a numbered item whose guest reads first run <paramref name="onSelect"/>.</summary>
    public void AddBytes(ushort key, byte[] data, Action? onSelect) => SetItem(key, new Item(data, false, onSelect, null));

    public void AddU16(ushort key, ushort value)
    {
        byte[] b = new byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        AddBytes(key, b);
    }

    public void AddU32(ushort key, uint value)
    {
        byte[] b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        AddBytes(key, b);
    }

    public void AddU64(ushort key, ulong value)
    {
        byte[] b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        AddBytes(key, b);
    }

    /// <summary>A NUL-terminated string item (QEMU's <c>fw_cfg_add_string</c>).</summary>
    public void AddString(ushort key, string value) => AddBytes(key, NulTerminated(value));

    /// <summary>
    /// Adds a named file and returns its key. Keys follow name order, so a later <see cref="AddFile"/> with a smaller
    /// name moves this file up by one, exactly as QEMU 7.2 does; look keys up again with <see cref="TryGetFileKey"/>
    /// once all files are in.
    /// </summary>
    /// <param name="writable">Whether guest DMA writes may change the contents (then <paramref name="data"/> is the
    /// live buffer, and <paramref name="onWrite"/> hears about each write).</param>
    /// <param name="onSelect">Runs when the guest selects the file, before any data moves (used to regenerate
    /// ACPI tables lazily).</param>
    public ushort AddFile(string name, byte[] data, bool writable = false, FwCfgWriteCallback? onWrite = null,
        Action? onSelect = null)
    {
        byte[] encoded = EncodeName(name);
        int index = FindFile(encoded, out bool found);
        if (found)
        {
            throw new FwCfgException($"fw_cfg: duplicate file name \"{name}\"");
        }
        if (_files.Count >= _maxEntries - KeyFileFirst)
        {
            throw new FwCfgException($"fw_cfg: ran out of file slots adding \"{name}\" ({_maxEntries - KeyFileFirst} slots)");
        }
        _files.Insert(index, new FileItem(name, encoded, new Item(data, writable, onSelect, onWrite)));
        UpdateFileDir();
        return (ushort)(KeyFileFirst + index);
    }

    /// <summary>Replaces an existing file's contents (QEMU's <c>fw_cfg_modify_file</c>), or adds it when missing.</summary>
    public ushort SetFile(string name, byte[] data)
    {
        byte[] encoded = EncodeName(name);
        int index = FindFile(encoded, out bool found);
        if (!found)
        {
            return AddFile(name, data);
        }
        Item old = _files[index].Item;
        _files[index] = _files[index] with { Item = old with { Data = data } };
        UpdateFileDir();
        return (ushort)(KeyFileFirst + index);
    }

    /// <summary>The key the guest currently reaches <paramref name="name"/> with.</summary>
    public bool TryGetFileKey(string name, out ushort key)
    {
        int index = FindFile(EncodeName(name), out bool found);
        key = found ? (ushort)(KeyFileFirst + index) : (ushort)0;
        return found;
    }

    /// <summary>Current contents of a file (for writable files: what the guest wrote).</summary>
    public byte[]? GetFile(string name)
    {
        int index = FindFile(EncodeName(name), out bool found);
        return found ? _files[index].Item.Data : null;
    }

    /// <summary>The contents of a numbered item, or null when nothing is registered under <paramref name="key"/>.</summary>
    public byte[]? GetItem(ushort key) => Lookup(key)?.Data;

    // ------------------------------------------------------------------ guest protocol

    private void Select(ushort key)
    {
        _offset = 0;
        if ((key & EntryMask) >= _maxEntries)
        {
            _key = InvalidKey;
            return;
        }
        _key = key;
        Lookup(key)?.OnSelect?.Invoke();
    }

    private Item? Lookup(ushort key)
    {
        if (key == InvalidKey)
        {
            return null;
        }
        int index = key & EntryMask;
        if (index >= _maxEntries)
        {
            return null;
        }
        if ((key & ArchLocal) != 0)
        {
            return _arch[index];
        }
        if (index == KeyFileDir)
        {
            return _fileDir;
        }
        if (index >= KeyFileFirst)
        {
            int file = index - KeyFileFirst;
            return file < _files.Count ? _files[file].Item : null;
        }
        return _generic[index];
    }

    private uint ReadDataByte()
    {
        byte[]? data = Lookup(_key)?.Data;
        if (data is null || _offset >= (uint)data.Length)
        {
            return 0;
        }
        return data[_offset++];
    }

    /// <summary>Runs the descriptor at <see cref="_dmaAddress"/> (spec "DMA interface"), then writes back the control word.</summary>
    private void RunDma()
    {
        ulong descriptor = _dmaAddress;
        // The register is consumed by the transfer; a new one needs a new address write.
        _dmaAddress = 0;
        if (!RangeValid(descriptor, DmaAccessSize))
        {
            // Without a readable descriptor there is nowhere trustworthy to report to; QEMU tries the control word
            // anyway, which a failed range cannot take either.
            return;
        }
        Span<byte> access = stackalloc byte[DmaAccessSize];
        _memory.Read(descriptor, access);
        uint control = BinaryPrimitives.ReadUInt32BigEndian(access);
        uint length = BinaryPrimitives.ReadUInt32BigEndian(access[4..]);
        ulong address = BinaryPrimitives.ReadUInt64BigEndian(access[8..]);

        if ((control & DmaCtlSelect) != 0)
        {
            Select((ushort)(control >> 16));
        }
        // Read wins over write, write over skip; with none of them the descriptor is a pure select.
        bool read = (control & DmaCtlRead) != 0;
        bool write = !read && (control & DmaCtlWrite) != 0;
        bool skip = !read && !write && (control & DmaCtlSkip) != 0;
        if (!read && !write && !skip)
        {
            length = 0;
        }

        uint result = 0;
        Item? item = Lookup(_key);
        while (length > 0 && result == 0)
        {
            uint chunk;
            byte[]? data = item?.Data;
            if (data is null || _offset >= (uint)data.Length)
            {
                // Past the end: reads fill the rest with zeros, writes have nothing to land in.
                chunk = length;
                if (read && !ZeroFill(address, chunk))
                {
                    result = DmaCtlError;
                }
                if (write)
                {
                    result = DmaCtlError;
                }
            }
            else
            {
                chunk = Math.Min(length, (uint)data.Length - _offset);
                if (read)
                {
                    if (RangeValid(address, chunk))
                    {
                        _memory.Write(address, data.AsSpan((int)_offset, (int)chunk));
                    }
                    else
                    {
                        result = DmaCtlError;
                    }
                }
                if (write)
                {
                    // A write must fit in the item entirely; partial writes are refused whole.
                    if (!item!.Writable || chunk != length || !RangeValid(address, chunk))
                    {
                        result = DmaCtlError;
                    }
                    else
                    {
                        _memory.Read(address, data.AsSpan((int)_offset, (int)chunk));
                        item.OnWrite?.Invoke(_offset, chunk);
                    }
                }
                _offset += chunk;
            }
            address += chunk;
            length -= chunk;
        }

        Span<byte> status = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(status, result);
        _memory.Write(descriptor, status);
    }

    private bool ZeroFill(ulong address, uint length)
    {
        if (!RangeValid(address, length))
        {
            return false;
        }
        while (length > 0)
        {
            int n = (int)Math.Min(length, (uint)_zeros.Length);
            _memory.Write(address, _zeros.AsSpan(0, n));
            address += (ulong)n;
            length -= (uint)n;
        }
        return true;
    }

    private bool RangeValid(ulong address, ulong length) =>
        length == 0 || (address + length - 1 >= address && (_dmaRangeValid is null || _dmaRangeValid(address, length)));

    // ------------------------------------------------------------------ internals

    private sealed record Item(byte[] Data, bool Writable, Action? OnSelect, FwCfgWriteCallback? OnWrite);

    private sealed record FileItem(string Name, byte[] EncodedName, Item Item);

    private void SetItem(ushort key, Item item)
    {
        int index = key & EntryMask;
        if ((key & WriteChannel) != 0 || index >= _maxEntries)
        {
            throw new FwCfgException($"fw_cfg: key 0x{key:x4} is outside the item table");
        }
        if ((key & ArchLocal) != 0)
        {
            _arch[index] = item;
            return;
        }
        if (index == KeyFileDir || index >= KeyFileFirst)
        {
            throw new FwCfgException($"fw_cfg: key 0x{key:x4} is reserved for the file directory; use AddFile");
        }
        _generic[index] = item;
    }

    private static byte[] EncodeName(string name)
    {
        byte[] encoded = Encoding.UTF8.GetBytes(name);
        if (encoded.Length == 0 || encoded.Length >= FileNameSize || Array.IndexOf(encoded, (byte)0) >= 0)
        {
            throw new FwCfgException($"fw_cfg: file name \"{name}\" must be 1 to {FileNameSize - 1} bytes without NUL");
        }
        return encoded;
    }

    /// <summary>Binary search by byte order (C <c>strcmp</c>, which is how QEMU sorts the directory).</summary>
    private int FindFile(byte[] name, out bool found)
    {
        int lo = 0;
        int hi = _files.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            int c = _files[mid].EncodedName.AsSpan().SequenceCompareTo(name);
            if (c == 0)
            {
                found = true;
                return mid;
            }
            if (c < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }
        found = false;
        return lo;
    }

    /// <summary>Rebuilds FW_CFG_FILE_DIR: a big-endian count, then {size BE32, select BE16, reserved, name[56]}.</summary>
    private void UpdateFileDir()
    {
        byte[] dir = new byte[4 + _files.Count * FileDirEntrySize];
        BinaryPrimitives.WriteUInt32BigEndian(dir, (uint)_files.Count);
        for (int i = 0; i < _files.Count; i++)
        {
            Span<byte> e = dir.AsSpan(4 + i * FileDirEntrySize, FileDirEntrySize);
            BinaryPrimitives.WriteUInt32BigEndian(e, (uint)_files[i].Item.Data.Length);
            BinaryPrimitives.WriteUInt16BigEndian(e[4..], (ushort)(KeyFileFirst + i));
            _files[i].EncodedName.CopyTo(e[8..]);
        }
        _fileDir = new Item(dir, false, null, null);
    }

    internal static byte[] NulTerminated(string value)
    {
        byte[] b = new byte[Encoding.UTF8.GetByteCount(value) + 1];
        Encoding.UTF8.GetBytes(value, b);
        return b;
    }

    public FwCfgState Save() => new(_key, _offset, _dmaAddress);

    /// <summary>Loads <paramref name="state"/>; item contents are configuration, rebuilt by the board, not state.</summary>
    public void Restore(FwCfgState state)
    {
        _key = state.CurrentKey;
        _offset = state.CurrentOffset;
        _dmaAddress = state.DmaAddress;
    }

    public void Reset() => Restore(FwCfgState.PowerOn);
}

/// <summary>A host-side fw_cfg configuration error (duplicate file, table full, bad key).</summary>
public sealed class FwCfgException(string message) : Exception(message);
