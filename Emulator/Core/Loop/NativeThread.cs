using System.Runtime.InteropServices;

namespace Colo.Core.Loop;

/// <summary>The kernel's id of the calling thread: what QEMU reports as <c>thread-id</c> and <c>thread_id</c>.</summary>
public static partial class NativeThread
{
    /// <summary>The caller's Linux TID (the managed thread id elsewhere).</summary>
    public static int CurrentId() => OperatingSystem.IsLinux() ? GetTid() : Environment.CurrentManagedThreadId;

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();
}
