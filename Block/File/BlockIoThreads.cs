namespace Colo.Block.File;

/// <summary>
/// Worker threads for blocking host file calls (QEMU's thread pool behind aio=threads): a thread is added
/// whenever a request finds none idle, up to 64 as QEMU allows, and retires after 10 s without work (as
/// QEMU's do), so a burst leaves no threads behind. Blocking preads here never starve .NET's thread pool,
/// which runs the continuations and the sockets, and the queue is a preallocated ring, so queuing a request
/// allocates nothing in steady state.
/// </summary>
/// <remarks>
/// An idle worker sleeps on its own event without spinning, and a request wakes exactly one (the last to
/// go idle, whose cache is warmest). A semaphore's spin-then-yield wait made 64 waiters on 2 cores steal the
/// CPU from the workers that were copying data: sequential reads then ran at one core's speed.
/// </remarks>
internal static class BlockIoThreads
{
    private const int MaxThreads = 64;
    private static TimeSpan s_idleTimeout = TimeSpan.FromSeconds(10);
    private static readonly Lock s_lock = new();
    private static IThreadPoolWorkItem?[] s_ring = new IThreadPoolWorkItem?[256];
    private static readonly Worker?[] s_idle = new Worker?[MaxThreads];
    private static int s_head;
    private static int s_count;
    private static int s_threads;
    private static int s_idleCount;

    // Set on a worker while it runs a request: the first request its completion queues is left for the
    // worker itself, which takes it as soon as the completion returns, instead of waking a sleeping one
    // (a wake-up and a sleep per request otherwise, for a request loop such as qemu-img bench's).
    [ThreadStatic]
    private static bool t_pickUp;

    private sealed class Worker : IDisposable
    {
        // No spinning: a waiter goes straight to sleep (see the remarks above).
        public readonly ManualResetEventSlim Wake = new(false, 0);

        public void Dispose() => Wake.Dispose();
    }

    public static void Queue(IThreadPoolWorkItem item)
    {
        Worker? wake = null;
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
            if (t_pickUp)
            {
                t_pickUp = false;
            }
            else if (s_idleCount > 0)
            {
                wake = s_idle[--s_idleCount];
                s_idle[s_idleCount] = null;
            }
            else if (s_threads < MaxThreads)
            {
                s_threads++;
                spawn = true;
            }
        }

        wake?.Wake.Set();
        if (spawn)
        {
            new Thread(Run) { IsBackground = true, Name = "block-io" }.UnsafeStart();
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

    private static void Run()
    {
        var self = new Worker();
        while (true)
        {
            IThreadPoolWorkItem? item = null;
            lock (s_lock)
            {
                if (s_count > 0)
                {
                    item = s_ring[s_head];
                    s_ring[s_head] = null;
                    s_head = (s_head + 1) % s_ring.Length;
                    s_count--;
                }
                else
                {
                    // Reset before going on the idle stack, so a wake-up after this is never lost.
                    self.Wake.Reset();
                    s_idle[s_idleCount++] = self;
                }
            }

            if (item != null)
            {
                t_pickUp = true;
                item.Execute();
                t_pickUp = false;
                continue;
            }

            if (!self.Wake.Wait(s_idleTimeout))
            {
                lock (s_lock)
                {
                    int at = Array.IndexOf(s_idle, self, 0, s_idleCount);
                    if (at >= 0)
                    {
                        // Still idle: nobody handed us work, so retire.
                        s_idle[at] = s_idle[--s_idleCount];
                        s_idle[s_idleCount] = null;
                        s_threads--;
                        self.Dispose();
                        return;
                    }
                }
                // A request woke us just as the wait timed out: take it on the next turn.
            }
        }
    }
}
