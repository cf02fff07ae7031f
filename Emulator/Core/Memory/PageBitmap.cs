namespace Colo.Core.Memory;

/// <summary>
/// One bit per 4 KiB guest page, set and cleared atomically so vCPU threads, DMA and migration can share it
/// (QEMU's per-client dirty bitmaps: one instance per client, e.g. code tracking or migration).
/// </summary>
public sealed class PageBitmap
{
    private readonly ulong[] _words;

    /// <summary>Creates a bitmap covering <paramref name="pageCount"/> pages, all clear.</summary>
    public PageBitmap(ulong pageCount)
    {
        PageCount = pageCount;
        _words = new ulong[(pageCount + 63) / 64];
    }

    /// <summary>Pages covered.</summary>
    public ulong PageCount { get; }

    /// <summary>Whether the page's bit is set.</summary>
    public bool Test(ulong page) => (Volatile.Read(ref _words[page >> 6]) & (1UL << (int)(page & 63))) != 0;

    /// <summary>Sets the page's bit.</summary>
    public void Set(ulong page) => Interlocked.Or(ref _words[page >> 6], 1UL << (int)(page & 63));

    /// <summary>Clears the page's bit and reports whether it was set.</summary>
    public bool TestAndClear(ulong page)
    {
        ulong bit = 1UL << (int)(page & 63);
        return (Interlocked.And(ref _words[page >> 6], ~bit) & bit) != 0;
    }

    /// <summary>Clears every bit.</summary>
    public void ClearAll() => Array.Clear(_words);
}
