using System.Runtime.InteropServices;
using Colo.Core.Objects;

namespace Colo.Core.Loop;

/// <summary>
/// <c>-object iothread,id=ID</c>: an extra event loop on its own thread, for work that should not
/// contend with the main loop (colo-compare, block I/O). The poll/batch knobs are QEMU's; they are
/// kept and reported, but this loop blocks on its queue rather than busy-polling.
/// </summary>
public sealed partial class IoThread : QomObject
{
    public static readonly ObjectTypeInfo TypeInfo = new("iothread", ObjectCategory.Object,
    [
        new PropertyDescriptor("poll-max-ns", PropertyKind.Int, "maximum polling time in ns", "32768", Writable: true),
        new PropertyDescriptor("poll-grow", PropertyKind.Int, "polling time grow factor", "0", Writable: true),
        new PropertyDescriptor("poll-shrink", PropertyKind.Int, "polling time shrink factor", "0", Writable: true),
        new PropertyDescriptor("aio-max-batch", PropertyKind.Int, "maximum number of requests in a batch", "0", Writable: true),
        new PropertyDescriptor("thread-pool-min", PropertyKind.Int, "minimum worker threads", "0", Writable: true),
        new PropertyDescriptor("thread-pool-max", PropertyKind.Int, "maximum worker threads", "64", Writable: true),
    ], (type, id, values) => new IoThread(type, values));

    private EventLoop? _loop;
    private int _threadId;

    private IoThread(ObjectTypeInfo type, PropertyValues values)
        : base(type, values)
    {
    }

    /// <summary>The loop; available after <see cref="Complete"/>.</summary>
    public IEventLoop Loop => _loop ?? throw new InvalidOperationException("iothread not started");

    /// <summary>The OS thread id, as <c>query-iothreads</c> reports it.</summary>
    public int ThreadId => Volatile.Read(ref _threadId);

    public static void Register(TypeRegistry registry) => registry.Register(TypeInfo);

    public override void Complete()
    {
        foreach (string name in (string[])["poll-max-ns", "poll-grow", "poll-shrink", "aio-max-batch", "thread-pool-min", "thread-pool-max"])
        {
            if (Values.GetInt(name) < 0)
            {
                throw new Qmp.QmpException($"{name} value must be in range [0, {long.MaxValue}]");
            }
        }
        _loop = new EventLoop("iothread " + Name);
        _loop.StartThread();
        using var started = new ManualResetEventSlim();
        _loop.Post(() =>
        {
            Volatile.Write(ref _threadId, OperatingSystem.IsLinux() ? GetTid() : Environment.CurrentManagedThreadId);
            started.Set();
        });
        started.Wait(TimeSpan.FromSeconds(10));
    }

    protected override void Dispose(bool disposing)
    {
        _loop?.Dispose();
        _loop = null;
        base.Dispose(disposing);
    }

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();
}
