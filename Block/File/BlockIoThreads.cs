namespace Colo.Block.File;

/// <summary>
/// Worker threads for blocking host file calls (QEMU's thread pool behind aio=threads): a thread is added
/// whenever a request finds none idle, up to 64 as QEMU allows, and retires after 10 s without work (QEMU's
/// pool lets idle workers go after 10 s too), so a burst leaves no threads behind. Blocking
/// preads here never starve .NET's thread pool, which runs the continuations and the sockets, and the
/// queue is a preallocated ring, so queuing a request allocates nothing in steady state.
/// </summary>
internal static class BlockIoThreads
{
    private const int MaxThreads = 64;
    private static TimeSpan s_idleTimeout = TimeSpan.FromSeconds(10);
    private static readonly Lock s_lock = new();
    private static readonly SemaphoreSlim s_pending = new(0);
    private static IThreadPoolWorkItem?[] s_ring = new IThreadPoolWorkItem?[256];
    private static int s_head;
    private static int s_count;
    private static int s_threads;
    private static int s_idle;

    public static void Queue(IThreadPoolWorkItem item)
    {
        bool spawn = false;
        lock (s_lock)
        {
            if (s_count == s_ring.Length)
            {
                // Grow: unroll the ring into a twice larger one (rare: only past the deepest queue so far).
                var bigger = new IThreadPoolWorkItem?[s_ring.Length * 2];
                for (int i = 0; i < s_count; i++)
                {
                    bigger[i] = s_ring[(s_head + i) % s_ring.Length];
                }
                s_ring = bigger;
                s_head = 0;
            }
            s_ring[(s_head + s_count) % s_ring.Length] = item;
            s_count++;
            // Released under the lock: a worker retiring (also under the lock) then either sees this
            // count or was not counted idle here.
            s_pending.Release();
            if (s_idle == 0 && s_threads < MaxThreads)
            {
                s_threads++;
                spawn = true;
            }
        }

        if (spawn)
        {
            new Thread(Worker) { IsBackground = true, Name = "block-io" }.UnsafeStart();
        }
    }

    /// <summary>How long a worker waits for work before it exits (tests shorten it).</summary>
    internal static TimeSpan IdleTimeout
    {
        get => s_idleTimeout;
        set => s_idleTimeout = value;
    }

    /// <summary>Worker threads alive now; for tests.</summary>
    internal static int Threads => Volatile.Read(ref s_threads);

    private static void Worker()
    {
        while (true)
        {
            lock (s_lock)
            {
                s_idle++;
            }

            if (!s_pending.Wait(s_idleTimeout))
            {
                lock (s_lock)
                {
                    if (!s_pending.Wait(0))
                    {
                        s_idle--;
                        s_threads--;
                        return;
                    }
                }
            }

            IThreadPoolWorkItem? item;
            lock (s_lock)
            {
                s_idle--;
                item = s_ring[s_head];
                s_ring[s_head] = null;
                s_head = (s_head + 1) % s_ring.Length;
                s_count--;
            }

            item!.Execute();
        }
    }
}
