using System.Buffers.Binary;
using Colo.Block;

namespace Colo.Devices.Ide;

/// <summary>
/// An ATA hard disk attached to a channel (QEMU's <c>ide-hd</c>): the block node it reads and writes, its identity
/// strings, and the geometry QEMU reports for it. The task-file registers live in the channel, because an absent
/// slave still answers register reads; this object is only the medium and what IDENTIFY DEVICE says about it.
/// </summary>
public sealed class AtaDrive
{
    /// <summary>Logical sector size; the ATA command set counts in 512-byte sectors.</summary>
    public const int SectorSize = 512;

    /// <summary>The model string QEMU gives a hard disk.</summary>
    public const string DefaultModel = "QEMU HARDDISK";

    /// <summary>Firmware revision QEMU reports (IDENTIFY words 23–26).</summary>
    public const string FirmwareRevision = "2.5+";

    /// <summary>Largest DRQ block of READ/WRITE MULTIPLE (IDENTIFY word 47 low byte).</summary>
    public const int MaxMultipleSectors = 16;

    // Physical-geometry fallbacks when the disk carries no usable partition table: 16 heads of 63 sectors, and
    // the cylinder count limited to what IDENTIFY word 1 can describe (ATA-6 6.2.1: at most 16383).
    private const int StandardHeads = 16;
    private const int StandardSectors = 63;
    private const int MaxCylinders = 16383;

    internal AtaDrive(BlockNode node, string serial, string model, bool writeCache, bool honourDiscard, bool honourFlush)
    {
        Node = node;
        Serial = serial;
        Model = model;
        WriteCacheAtPowerOn = writeCache;
        HonourDiscard = honourDiscard;
        HonourFlush = honourFlush;
        (Cylinders, Heads, SectorsPerTrack) = GuessGeometry(node);
    }

    /// <summary>The block node sectors are read from and written to.</summary>
    public BlockNode Node { get; }

    /// <summary>Serial number (IDENTIFY words 10–19), at most 20 characters.</summary>
    public string Serial { get; }

    /// <summary>Model number (IDENTIFY words 27–46), at most 40 characters.</summary>
    public string Model { get; }

    /// <summary>Default-geometry cylinders (IDENTIFY word 1).</summary>
    public int Cylinders { get; }

    /// <summary>Default-geometry heads (IDENTIFY word 3).</summary>
    public int Heads { get; }

    /// <summary>Default-geometry sectors per track (IDENTIFY word 6).</summary>
    public int SectorsPerTrack { get; }

    /// <summary>Whether the volatile write cache starts enabled (the drive's cache mode is writeback).</summary>
    public bool WriteCacheAtPowerOn { get; }

    /// <summary>False when the drive's <c>discard=ignore</c>: TRIM succeeds without reaching the node.</summary>
    internal bool HonourDiscard { get; }

    /// <summary>False with <c>cache.no-flush=on</c>: FLUSH CACHE succeeds without reaching the node.</summary>
    internal bool HonourFlush { get; }

    /// <summary>Addressable sectors (the node's size in whole sectors).</summary>
    public long SectorCount => Node.Size / SectorSize;

    /// <summary>
    /// The geometry QEMU reports: taken from the MBR partition table when one describes at most 16 heads
    /// (the partitioning tool then used the physical geometry), else the standard 16 heads × 63 sectors with as many
    /// cylinders as fit, clamped to [2, 16383].
    /// </summary>
    internal static (int Cylinders, int Heads, int Sectors) GuessGeometry(BlockNode node)
    {
        long sectors = node.Size / SectorSize;
        if (TryPartitionGeometry(node, sectors, out int c, out int h, out int s) && h <= StandardHeads)
        {
            return (c, h, s);
        }
        long cylinders = sectors / (StandardHeads * StandardSectors);
        return ((int)Math.Clamp(cylinders, 2, MaxCylinders), StandardHeads, StandardSectors);
    }

    /// <summary>
    /// Infers the logical geometry from the first MBR partition entry whose ending CHS names a head and a sector:
    /// the ending head + 1 is the head count and the ending sector the sectors per track.
    /// </summary>
    private static bool TryPartitionGeometry(BlockNode node, long totalSectors, out int cylinders, out int heads, out int sectors)
    {
        cylinders = heads = sectors = 0;
        if (node.Size < SectorSize)
        {
            return false;
        }
        Span<byte> mbr = stackalloc byte[SectorSize];
        try
        {
            node.Read(0, mbr);
        }
        catch (Exception e) when (e is BlockException or IOException)
        {
            return false;
        }
        if (mbr[510] != 0x55 || mbr[511] != 0xAA)
        {
            return false;
        }
        for (int i = 0; i < 4; i++)
        {
            // MBR partition entry: +5 ending head, +6 ending sector (bits 0-5), +12 sector count.
            ReadOnlySpan<byte> entry = mbr.Slice(0x1BE + (16 * i), 16);
            uint count = BinaryPrimitives.ReadUInt32LittleEndian(entry[12..]);
            if (count == 0 || entry[5] == 0)
            {
                continue;
            }
            int h = entry[5] + 1;
            int s = entry[6] & 63;
            if (s == 0)
            {
                continue;
            }
            long c = totalSectors / (h * s);
            if (c < 1 || c > MaxCylinders)
            {
                continue;
            }
            (cylinders, heads, sectors) = ((int)c, h, s);
            return true;
        }
        return false;
    }

    /// <summary>
    /// Fills the 256-word IDENTIFY DEVICE block (ATA/ATAPI-6 section 8.15, table 27) with the values QEMU 7.2 reports
    /// for a hard disk. <paramref name="multipleSectors"/> and <paramref name="writeCache"/> are the drive's settings
    /// when the block is first built; later SET FEATURES commands edit the block in place.
    /// </summary>
    internal void BuildIdentify(Span<byte> block, int multipleSectors, bool writeCache)
    {
        block.Clear();
        Put(block, 0, 0x0040); // fixed (non-removable) device
        Put(block, 1, (ushort)Cylinders);
        Put(block, 3, (ushort)Heads);
        Put(block, 4, (ushort)(SectorSize * SectorsPerTrack)); // obsolete: unformatted bytes per track
        Put(block, 5, SectorSize); // obsolete: unformatted bytes per sector
        Put(block, 6, (ushort)SectorsPerTrack);
        PutString(block, 10, Serial, 20);
        Put(block, 20, 3); // obsolete buffer type: dual-ported with read cache
        Put(block, 21, 512); // obsolete buffer size in sectors
        Put(block, 22, 4); // obsolete ECC bytes on READ/WRITE LONG
        PutString(block, 23, FirmwareRevision, 8);
        PutString(block, 27, Model, 40);
        Put(block, 47, 0x8000 | MaxMultipleSectors);
        Put(block, 48, 1); // doubleword I/O
        Put(block, 49, (1 << 11) | (1 << 9) | (1 << 8)); // IORDY supported, LBA, DMA
        Put(block, 51, 0x200); // PIO timing mode 2
        Put(block, 52, 0x200); // single-word DMA timing mode 2
        Put(block, 53, 1 | (1 << 1) | (1 << 2)); // words 54-58, 64-70 and 88 are valid
        Put(block, 54, (ushort)Cylinders);
        Put(block, 55, (ushort)Heads);
        Put(block, 56, (ushort)SectorsPerTrack);
        uint chsCapacity = (uint)(Cylinders * Heads * SectorsPerTrack);
        Put(block, 57, (ushort)chsCapacity);
        Put(block, 58, (ushort)(chsCapacity >> 16));
        if (multipleSectors != 0)
        {
            Put(block, 59, (ushort)(0x100 | multipleSectors)); // multiple setting valid
        }
        Put(block, 62, 0x07); // single-word DMA 0-2 supported
        Put(block, 63, 0x07); // multiword DMA 0-2 supported
        Put(block, 64, 0x03); // PIO 3-4 supported
        Put(block, 65, 120); // minimum multiword DMA cycle time (ns)
        Put(block, 66, 120); // recommended multiword DMA cycle time
        Put(block, 67, 120); // minimum PIO cycle time without flow control
        Put(block, 68, 120); // minimum PIO cycle time with IORDY
        Put(block, 69, 1 << 14); // deterministic read after TRIM
        Put(block, 80, 0xF0); // major version: ATA-4 to ATA-7
        Put(block, 81, 0x16); // minor version
        Put(block, 82, (1 << 14) | (1 << 5) | 1); // NOP supported, write cache, SMART
        Put(block, 83, (1 << 14) | (1 << 13) | (1 << 12) | (1 << 10)); // FLUSH CACHE EXT, FLUSH CACHE, 48-bit
        Put(block, 84, 1 << 14);
        Put(block, 85, (ushort)((1 << 14) | (writeCache ? 1 << 5 : 0) | 1));
        Put(block, 86, (1 << 13) | (1 << 12) | (1 << 10));
        Put(block, 87, 1 << 14);
        Put(block, 88, 0x3F | (1 << 13)); // UDMA 0-5 supported, mode 5 selected
        Put(block, 93, 1 | (1 << 14) | 0x2000); // hardware reset result: device 0, CBLID- above threshold
        Put(block, 106, 0x6000); // logical sectors per physical sector: 1 (valid)
        Put(block, 169, 1); // DATA SET MANAGEMENT TRIM supported
        UpdateIdentifySize(block);
    }

    /// <summary>Rewrites the capacity words (60-61, 100-103), which follow the node's size at every IDENTIFY.</summary>
    internal void UpdateIdentifySize(Span<byte> block)
    {
        long total = SectorCount;
        // LBA28 capacity saturates at 2^28 - 1 (ATA-6 8.15.33) for larger disks, which then need LBA48.
        long lba28 = Math.Min(total, (1L << 28) - 1);
        Put(block, 60, (ushort)lba28);
        Put(block, 61, (ushort)(lba28 >> 16));
        Put(block, 100, (ushort)total);
        Put(block, 101, (ushort)(total >> 16));
        Put(block, 102, (ushort)(total >> 32));
        Put(block, 103, (ushort)(total >> 48));
    }

    internal static void Put(Span<byte> block, int word, ushort value) =>
        BinaryPrimitives.WriteUInt16LittleEndian(block[(2 * word)..], value);

    internal static ushort Get(ReadOnlySpan<byte> block, int word) =>
        BinaryPrimitives.ReadUInt16LittleEndian(block[(2 * word)..]);

    /// <summary>ATA strings: space padded, two characters per word with the first in the high byte (ATA-6 3.2.11).</summary>
    private static void PutString(Span<byte> block, int word, string text, int length)
    {
        Span<byte> at = block.Slice(2 * word, length);
        for (int i = 0; i < length; i++)
        {
            byte c = i < text.Length && text[i] < 0x80 ? (byte)text[i] : (byte)' ';
            at[i ^ 1] = c;
        }
    }
}
