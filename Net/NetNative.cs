using System.Runtime.InteropServices;

namespace Colo.Net;

/// <summary>The libc calls the tap backend and fd adoption need (Linux x86-64 numbers).</summary>
internal static unsafe partial class NetNative
{
    public const int ORdWr = 0x2;
    public const int ONonBlock = 0x800;
    public const int OCloExec = 0x80000;
    public const int FGetFl = 3;
    public const int FSetFl = 4;
    public const int EAgain = 11;
    public const int EIntr = 4;
    public const short PollIn = 0x1;
    public const int EfdCloExec = 0x80000;
    public const int EfdNonBlock = 0x800;

    /// <summary>_IOW('T', 202, int): attach to or create a tun/tap interface.</summary>
    public const uint TunSetIff = 0x400454ca;

    /// <summary>_IOR('T', 210, unsigned int): read back the interface flags; fails on anything but a tun/tap fd.</summary>
    public const uint TunGetIff = 0x800454d2;

    public const short IffTap = 0x0002;
    public const short IffNoPi = 0x1000;

    /// <summary>IFNAMSIZ.</summary>
    public const int IfNameSize = 16;

    /// <summary>struct ifreq: the name, then a union whose first member is the flags; 40 bytes on x86-64.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 40)]
    public struct IfReq
    {
        public fixed byte Name[IfNameSize];
        public short Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short REvents;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int cmd, int arg);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, IfReq* arg);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    /// <summary>strerror of the last P/Invoke error, as QEMU's error_setg_errno appends it.</summary>
    public static string LastErrorText() => Marshal.GetLastPInvokeErrorMessage();

    public static int LastError() => Marshal.GetLastPInvokeError();

    /// <summary>
    /// QEMU's check on an inherited descriptor before use (it sets O_NONBLOCK): null when usable, else the errno text.
    /// </summary>
    public static string? CheckFd(int fd, bool setNonBlocking)
    {
        int flags = Fcntl(fd, FGetFl, 0);
        if (flags < 0 || (setNonBlocking && Fcntl(fd, FSetFl, flags | ONonBlock) < 0))
        {
            return LastErrorText();
        }
        return null;
    }
}
