using System.Runtime.InteropServices;

namespace Colo.Tests.Unit.Cpu;

internal static unsafe partial class NativeMethods
{
    public const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;
    public const int MapPrivate = 0x02, MapAnonymous = 0x20, MapFixedNoReplace = 0x100000;

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    public static partial void* Mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(void* addr, nuint length);
}
