using System.Runtime.InteropServices;

namespace Colo.Core.Memory;

/// <summary>
/// A read-only image in guest-physical space (BIOS, option ROM), held in page-aligned native memory so vCPUs can
/// fetch from it by pointer like RAM. Its size is a whole number of pages; the image is copied in at creation.
/// </summary>
public sealed unsafe class RomBlock : IDisposable
{
    private byte* _host;

    /// <summary>Creates a ROM named <paramref name="name"/> holding <paramref name="image"/>, zero-padded to a page.</summary>
    public RomBlock(string name, ReadOnlySpan<byte> image)
    {
        if (image.IsEmpty)
        {
            throw new ArgumentException("a ROM image cannot be empty", nameof(image));
        }
        Name = name;
        Size = ((ulong)image.Length + RamBlock.PageSize - 1) & ~(ulong)(RamBlock.PageSize - 1);
        _host = (byte*)NativeMemory.AlignedAlloc((nuint)Size, RamBlock.PageSize);
        // SAFETY: the allocation is Size bytes, at least image.Length.
        var all = new Span<byte>(_host, (int)Size);
        all.Clear();
        image.CopyTo(all);
    }

    /// <summary>Name (QEMU's memory-region name, e.g. <c>pc.bios</c>).</summary>
    public string Name { get; }

    /// <summary>Size in bytes, a multiple of the page size.</summary>
    public ulong Size { get; }

    /// <summary>Where the ROM is mapped, set by <see cref="GuestMemory.AddRom"/>.</summary>
    public ulong GuestAddress { get; internal set; }

    /// <summary>Host address of the first byte; valid until <see cref="Dispose"/>.</summary>
    public byte* HostPointer => _host;

    /// <summary>The ROM's bytes.</summary>
    public ReadOnlySpan<byte> Bytes => new(_host, (int)Size);

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_host != null)
        {
            NativeMemory.AlignedFree(_host);
            _host = null;
        }
    }
}
