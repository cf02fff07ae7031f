namespace Colo.Block.File;

/// <summary>
/// Worker threads for blocking host file calls (QEMU's thread pool behind aio=threads): a thread is added
/// whenever a request finds none idle, up to 64 as QEMU allows, and stays for the process's life. Blocking
/// preads here never starve .NET's thread pool, which runs the continuations and the sockets, and the
/// queue is a preallocated ring, so queuing a request allocates nothing in steady state.
/// </summary>
internal static class BlockIoThreads
{
    private const int MaxThreads = 64;
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
            if (s_idle == 0 && s_threads < MaxThreads)
            {
                s_threads++;
                spawn = true;
            }
        }

        s_pending.Release();
        if (spawn)
        {
            new Thread(Worker) { IsBackground = true, Name = "block-io" }.UnsafeStart();
        }
    }

    private static void Worker()
    {
        while (true)
        {
            Interlocked.Increment(ref s_idle);
            s_pending.Wait();
            Interlocked.Decrement(ref s_idle);
            IThreadPoolWorkItem? item;
            lock (s_lock)
            {
                item = s_ring[s_head];
                s_ring[s_head] = null;
                s_head = (s_head + 1) % s_ring.Length;
                s_count--;
            }

            item!.Execute();
        }
    }
}
