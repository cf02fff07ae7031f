using System.Runtime.InteropServices;

namespace Colo.Core.Memory;

/// <summary>The few libc calls guest RAM needs.</summary>
internal static unsafe partial class LibC
{
    public const int ProtRead = 0x1;
    public const int ProtWrite = 0x2;
    public const int ProtExec = 0x4;
    public const int MapPrivate = 0x02;
    public const int MapAnonymous = 0x20;
    public const int MapNoReserve = 0x4000;
    public const int MadvDontFork = 10;
    public const int MadvHugePage = 14;

    /// <summary>mmap's error return, <c>(void*)-1</c>.</summary>
    public static readonly void* MapFailed = (void*)-1;

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    public static partial void* Mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(void* addr, nuint length);

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    public static partial int Madvise(void* addr, nuint length, int advice);
}
