using Colo.Core.Cpu;

namespace Colo.Core.Memory;

/// <summary>
/// The guest-physical address space as the CPU sees it for now: one RAM block at address 0 and everything above it
/// forwarded to <see cref="IIoBus"/> as MMIO. Sealed and concrete so the interpreter's hot path makes no interface
/// calls; the flattened region tree (ARCHITECTURE 2.2) can replace the single block without changing callers.
/// </summary>
public sealed unsafe class GuestMemory : IPhysicalMemory
{
    private readonly IIoBus _io;
    private int _codeGeneration;

    /// <summary>Creates the address space over <paramref name="ram"/> (mapped at guest-physical 0).</summary>
    public GuestMemory(RamBlock ram, IIoBus io)
    {
        Ram = ram;
        _io = io;
    }

    /// <summary>The RAM block at guest-physical 0.</summary>
    public RamBlock Ram { get; }

    /// <summary>The MMIO bus for addresses beyond RAM.</summary>
    public IIoBus Io => _io;

    /// <summary>
    /// Bumped whenever a page holding decoded code is written; CPUs compare it at block boundaries and drop their
    /// decoded blocks when it moved.
    /// </summary>
    public int CodeGeneration => Volatile.Read(ref _codeGeneration);

    /// <summary>Records that decoded code now depends on page <paramref name="page"/>.</summary>
    public void MarkCode(ulong page)
    {
        if (page < Ram.CodePages.PageCount)
        {
            Ram.CodePages.Set(page);
        }
    }

    /// <summary>Called on a write to a tracked code page: clears its bit and invalidates all decoded blocks.</summary>
    public void NotifyCodeWrite(ulong page)
    {
        if (Ram.CodePages.TestAndClear(page))
        {
            Interlocked.Increment(ref _codeGeneration);
        }
    }

    /// <inheritdoc/>
    public void Read(ulong address, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            int chunk = Chunk(address, destination.Length);
            if (address < Ram.Size)
            {
                // SAFETY: Chunk keeps [address, address + chunk) inside the RAM block and one page.
                new ReadOnlySpan<byte>(Ram.HostPointer + address, chunk).CopyTo(destination);
            }
            else
            {
                _io.MmioRead(address, destination[..chunk]);
            }
            destination = destination[chunk..];
            address += (ulong)chunk;
        }
    }

    /// <inheritdoc/>
    public void Write(ulong address, ReadOnlySpan<byte> source)
    {
        while (!source.IsEmpty)
        {
            int chunk = Chunk(address, source.Length);
            if (address < Ram.Size)
            {
                ulong page = address / RamBlock.PageSize;
                NotifyCodeWrite(page);
                Ram.DirtyPages.Set(page);
                // SAFETY: Chunk keeps [address, address + chunk) inside the RAM block and one page.
                source[..chunk].CopyTo(new Span<byte>(Ram.HostPointer + address, chunk));
            }
            else
            {
                _io.MmioWrite(address, source[..chunk]);
            }
            source = source[chunk..];
            address += (ulong)chunk;
        }
    }

    /// <summary>Bytes from <paramref name="address"/> up to the page end, capped at <paramref name="length"/>.</summary>
    private static int Chunk(ulong address, int length)
    {
        int toPageEnd = RamBlock.PageSize - (int)(address & (RamBlock.PageSize - 1));
        return Math.Min(toPageEnd, length);
    }
}
