namespace Colo.Block;

/// <summary>
/// The requests of one node in flight, by byte range (QEMU's tracked requests): a request waits for every
/// earlier one it overlaps, except that reads never wait for reads. So overlapping writes land in the order
/// they were issued, a read sees all or nothing of an overlapping write issued before it, and nothing that
/// changes a range's mapping (write, discard, write-zeroes) runs while a read of that range is in flight,
/// which is what keeps a freed qcow2 cluster from being reused under a reader.
/// </summary>
/// <remarks>
/// Requests take a slot in a small table under a lock; without overlap nothing is allocated. A request that
/// must wait gets a <see cref="TaskCompletionSource"/> (allocated only then), completed when the last request
/// it depends on ends. Slots keep their index for their life, so the index is the request's handle.
/// </remarks>
internal sealed class RequestTracker
{
    private const byte Free = 0;
    private const byte ReadKind = 1;
    private const byte WriteKind = 2;

    private readonly Lock _lock = new();
    private Entry[] _entries = new Entry[64];
    private int _used; // slots [0, _used) may be taken; beyond are free
    private long _seq;
    private int _waiting;

    private struct Entry
    {
        public long Start;
        public long End;
        public long Seq;
        public byte Kind;
        public TaskCompletionSource? Waiter; // set while the request waits for earlier overlapping ones
    }

    /// <summary>Number of requests registered (running or waiting); for tests.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                int n = 0;
                for (int i = 0; i < _used; i++)
                {
                    n += _entries[i].Kind != Free ? 1 : 0;
                }

                return n;
            }
        }
    }

    /// <summary>
    /// Registers a request for [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>)
    /// and returns its handle. <paramref name="wait"/> is null when it may run at once, else a task completed
    /// when every earlier overlapping request has ended. The caller ends the handle exactly once.
    /// </summary>
    public int Begin(long start, long length, bool write, out Task? wait)
    {
        lock (_lock)
        {
            int slot = TakeSlot();
            ref Entry e = ref _entries[slot];
            e.Start = start;
            e.End = length == long.MaxValue ? long.MaxValue : start + length;
            e.Seq = ++_seq;
            e.Kind = write ? WriteKind : ReadKind;
            e.Waiter = null;
            if (Blocked(slot))
            {
                // Continuations run elsewhere: End completes waiters while its caller may hold other locks.
                e.Waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiting++;
                wait = e.Waiter.Task;
            }
            else
            {
                wait = null;
            }

            return slot;
        }
    }

    /// <summary>Registers a request and blocks until it may run (the synchronous callers).</summary>
    public int BeginSync(long start, long length, bool write)
    {
        int slot = Begin(start, length, write, out Task? wait);
        wait?.GetAwaiter().GetResult();
        return slot;
    }

    /// <summary>Ends a request and lets the requests that waited only for it run.</summary>
    public void End(int slot)
    {
        TaskCompletionSource? one = null;
        TaskCompletionSource[]? more = null;
        int nMore = 0;
        lock (_lock)
        {
            _entries[slot] = default;
            while (_used > 0 && _entries[_used - 1].Kind == Free)
            {
                _used--;
            }

            if (_waiting == 0)
            {
                return;
            }

            for (int i = 0; i < _used; i++)
            {
                ref Entry w = ref _entries[i];
                if (w.Waiter == null || Blocked(i))
                {
                    continue;
                }

                TaskCompletionSource tcs = w.Waiter;
                w.Waiter = null;
                _waiting--;
                if (one == null)
                {
                    one = tcs;
                }
                else
                {
                    more ??= new TaskCompletionSource[_used];
                    more[nMore++] = tcs;
                }
            }
        }

        one?.SetResult();
        for (int i = 0; i < nMore; i++)
        {
            more![i].SetResult();
        }
    }

    /// <summary>True while an earlier request that conflicts with slot <paramref name="slot"/> is registered.</summary>
    private bool Blocked(int slot)
    {
        ref Entry me = ref _entries[slot];
        for (int i = 0; i < _used; i++)
        {
            ref Entry o = ref _entries[i];
            if (o.Kind == Free || o.Seq >= me.Seq || (o.Kind == ReadKind && me.Kind == ReadKind))
            {
                continue;
            }

            if (o.Start < me.End && me.Start < o.End)
            {
                return true;
            }
        }

        return false;
    }

    private int TakeSlot()
    {
        for (int i = 0; i < _used; i++)
        {
            if (_entries[i].Kind == Free)
            {
                return i;
            }
        }

        if (_used == _entries.Length)
        {
            Array.Resize(ref _entries, _entries.Length * 2); // rare: past the deepest queue so far
        }

        return _used++;
    }
}
