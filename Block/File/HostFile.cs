using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Colo.Block.File;

/// <summary>Host file facts .NET does not expose (allocated blocks for "disk size").</summary>
internal static partial class HostFile
{
    // x86-64 Linux struct stat: 144 bytes, st_size at 48, st_blocks (512-byte units) at 64.
    private const int StatSize = 144;
    private const int StBlocksOffset = 64;

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Stat(string path, Span<byte> buf);

    public static long AllocatedBytes(string path)
    {
        if (OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64)
        {
            Span<byte> buf = stackalloc byte[StatSize];
            try
            {
                if (Stat(path, buf) == 0)
                {
                    return BinaryPrimitives.ReadInt64LittleEndian(buf[StBlocksOffset..]) * 512;
                }
            }
            catch (EntryPointNotFoundException)
            {
                // Older glibc only exports __xstat; fall through to the apparent size.
            }
        }

        return new FileInfo(path).Length;
    }
}
