using System.Runtime.InteropServices;

namespace Colo.Core.Memory;

/// <summary>
/// A block of guest RAM backed by one anonymous private mapping, so KVM, the interpreter, DMA and migration can all
/// use the same host bytes without copies. Never a managed array: RAM can exceed 2 GiB and must not move.
/// </summary>
public sealed unsafe class RamBlock : IDisposable
{
    /// <summary>Guest page size the bitmaps count in.</summary>
    public const int PageSize = 4096;

    private byte* _host;

    /// <summary>Maps <paramref name="size"/> bytes (rounded up to a page) of zeroed memory.</summary>
    public RamBlock(string name, ulong size)
    {
        ArgumentOutOfRangeException.ThrowIfZero(size);
        Name = name;
        Size = (size + PageSize - 1) & ~(ulong)(PageSize - 1);
        // NORESERVE: the guest's RAM size is a ceiling, pages materialize on first touch.
        void* p = LibC.Mmap(null, (nuint)Size, LibC.ProtRead | LibC.ProtWrite, LibC.MapPrivate | LibC.MapAnonymous | LibC.MapNoReserve, -1, 0);
        if (p == LibC.MapFailed)
        {
            throw new InvalidOperationException($"cannot allocate {Size} bytes of guest RAM '{name}': errno {Marshal.GetLastPInvokeError()}");
        }
        _host = (byte*)p;
        // Advice only: failure (e.g. no THP support) costs speed, not correctness.
        _ = LibC.Madvise(p, (nuint)Size, LibC.MadvHugePage);
        _ = LibC.Madvise(p, (nuint)Size, LibC.MadvDontFork);
        CodePages = new PageBitmap(Size / PageSize);
        DirtyPages = new PageBitmap(Size / PageSize);
    }

    /// <summary>Block name (QEMU's RAMBlock idstr, e.g. <c>pc.ram</c>).</summary>
    public string Name { get; }

    /// <summary>Size in bytes, a multiple of <see cref="PageSize"/>.</summary>
    public ulong Size { get; }

    /// <summary>Host address of the first byte; valid until <see cref="Dispose"/>.</summary>
    public byte* HostPointer => _host;

    /// <summary>Pages holding decoded code: a write to one must invalidate the interpreter's block cache.</summary>
    public PageBitmap CodePages { get; }

    /// <summary>Pages written since the migration client last cleared them.</summary>
    public PageBitmap DirtyPages { get; }

    /// <summary>A window of at most one page-span; Span lengths are int, RAM offsets are not.</summary>
    public Span<byte> GetSpan(ulong offset, int length)
    {
        if (offset > Size || (ulong)length > Size - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(offset));
        }
        // SAFETY: offset + length was checked against Size above, and the mapping lives until Dispose.
        return new Span<byte>(_host + offset, length);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_host != null)
        {
            _ = LibC.Munmap(_host, (nuint)Size);
            _host = null;
        }
    }
}
