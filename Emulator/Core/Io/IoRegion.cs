namespace Colo.Core.Io;

/// <summary>Reads <paramref name="size"/> (1, 2, 4 or 8) bytes at <paramref name="offset"/> into the region.</summary>
public delegate ulong IoRead(ulong offset, int size);

/// <summary>Writes the low <paramref name="size"/> bytes of <paramref name="value"/> at <paramref name="offset"/>.</summary>
public delegate void IoWrite(ulong offset, int size, ulong value);

/// <summary>
/// A device's register window as the buses see it (QEMU's MemoryRegionOps): a name, a size and two callbacks that
/// take offsets, never absolute addresses, so the board alone decides where the device lives. Accesses wider than
/// <see cref="MaxAccessSize"/> are split into little-endian pieces by the bus; narrower than
/// <see cref="MinAccessSize"/> are widened (read-modify-write is the device's business, so only reads are widened).
/// </summary>
public sealed class IoRegion
{
    public IoRegion(string name, ulong size, IoRead read, IoWrite write, int minAccessSize = 1, int maxAccessSize = 4)
    {
        ArgumentOutOfRangeException.ThrowIfZero(size);
        Name = name;
        Size = size;
        Read = read;
        Write = write;
        MinAccessSize = minAccessSize;
        MaxAccessSize = maxAccessSize;
    }

    /// <summary>Name shown by <c>info mtree</c>.</summary>
    public string Name { get; }

    /// <summary>Bytes the window covers.</summary>
    public ulong Size { get; }

    /// <summary>The device's read callback.</summary>
    public IoRead Read { get; }

    /// <summary>The device's write callback.</summary>
    public IoWrite Write { get; }

    /// <summary>Smallest access the device implements.</summary>
    public int MinAccessSize { get; }

    /// <summary>Largest access the device implements; wider guest accesses are split.</summary>
    public int MaxAccessSize { get; }

    /// <summary>
    /// Performs a read of <paramref name="size"/> bytes at <paramref name="offset"/>, splitting or widening it to the
    /// sizes the device takes. Bytes beyond the region read as all-ones.
    /// </summary>
    public ulong Access(ulong offset, int size)
    {
        if (size >= MinAccessSize && size <= MaxAccessSize && offset + (ulong)size <= Size)
        {
            return Read(offset, size) & Mask(size);
        }
        ulong value = 0;
        for (int i = 0; i < size; i++)
        {
            ulong at = offset + (ulong)i;
            ulong b = 0xFF;
            if (at < Size)
            {
                int piece = Math.Max(1, MinAccessSize);
                ulong aligned = at & ~(ulong)(piece - 1);
                b = (Read(aligned, piece) >> (int)(8 * (at - aligned))) & 0xFF;
            }
            value |= b << (8 * i);
        }
        return value;
    }

    /// <summary>Performs a write, splitting it into pieces the device takes; bytes beyond the region are dropped.</summary>
    public void Access(ulong offset, int size, ulong value)
    {
        if (size >= MinAccessSize && size <= MaxAccessSize && offset + (ulong)size <= Size)
        {
            Write(offset, size, value & Mask(size));
            return;
        }
        if (size > MaxAccessSize && MaxAccessSize >= MinAccessSize)
        {
            for (int done = 0; done < size; done += MaxAccessSize)
            {
                ulong at = offset + (ulong)done;
                if (at + (ulong)MaxAccessSize <= Size)
                {
                    Write(at, MaxAccessSize, (value >> (8 * done)) & Mask(MaxAccessSize));
                }
            }
            return;
        }
        if (MinAccessSize == 1)
        {
            for (int i = 0; i < size; i++)
            {
                ulong at = offset + (ulong)i;
                if (at < Size)
                {
                    Write(at, 1, (value >> (8 * i)) & 0xFF);
                }
            }
        }
        // A write narrower than the device's minimum is dropped (QEMU's unaligned/invalid access rule).
    }

    private static ulong Mask(int size) => size >= 8 ? ulong.MaxValue : (1UL << (8 * size)) - 1;
}
