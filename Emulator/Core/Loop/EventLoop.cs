using System.Collections.Concurrent;

namespace Colo.Core.Loop;

/// <summary>
/// A work-queue loop with one-shot timers. <see cref="Run"/> runs on the caller's thread (the main
/// loop uses the process's main thread); <see cref="StartThread"/> gives it a dedicated thread (iothreads).
/// </summary>
public sealed class EventLoop : IEventLoop, IDisposable
{
    private readonly BlockingCollection<Action> _queue = new(new ConcurrentQueue<Action>());
    private readonly PriorityQueue<Action, long> _timers = new();
    private readonly Lock _timerLock = new();
    private readonly string _name;
    private Thread? _thread;
    private int _loopThreadId = -1;
    private volatile bool _stopping;

    public EventLoop(string name)
    {
        _name = name;
    }

    /// <summary>Raised on the loop thread when a posted item throws; the loop keeps running.</summary>
    public event Action<Exception>? UnhandledException;

    public bool IsLoopThread => Environment.CurrentManagedThreadId == _loopThreadId;

    public void Post(Action work)
    {
        if (!_queue.IsAddingCompleted)
        {
            try
            {
                _queue.Add(work);
            }
            catch (InvalidOperationException)
            {
                // The loop stopped between the check and the add: the work is dropped, as after quit.
            }
        }
    }

    /// <summary>Runs <paramref name="work"/> once, no sooner than <paramref name="delay"/> from now.</summary>
    public void Schedule(TimeSpan delay, Action work)
    {
        long due = Environment.TickCount64 + (long)Math.Ceiling(delay.TotalMilliseconds);
        lock (_timerLock)
        {
            _timers.Enqueue(work, due);
        }
        Post(static () => { }); // wake the loop so it recomputes its wait
    }

    /// <summary>Runs work on the calling thread until <see cref="Stop"/>.</summary>
    public void Run()
    {
        _loopThreadId = Environment.CurrentManagedThreadId;
        while (!_stopping)
        {
            int wait = RunDueTimers();
            if (_queue.TryTake(out Action? work, wait))
            {
                Execute(work);
            }
        }
    }

    /// <summary>Runs the loop on a new background thread.</summary>
    public void StartThread()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = _name };
        _thread.Start();
    }

    /// <summary>Ends <see cref="Run"/> after the current item; pending items are dropped.</summary>
    public void Stop()
    {
        _stopping = true;
        Post(static () => { });
    }

    /// <summary>
    /// Runs the work already queued, on the calling thread, without waiting for more: after <see cref="Stop"/>,
    /// what shutdown itself posts (events of block jobs cancelled at quit) still goes out.
    /// </summary>
    public void RunPending()
    {
        while (!_queue.IsAddingCompleted && _queue.TryTake(out Action? work))
        {
            Execute(work);
        }
    }

    /// <summary>Runs <paramref name="func"/> on the loop and waits for its result (or rethrows its exception).</summary>
    public T Invoke<T>(Func<T> func)
    {
        if (IsLoopThread || _loopThreadId == -1)
        {
            return func();
        }
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            try
            {
                done.SetResult(func());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        });
        return done.Task.GetAwaiter().GetResult();
    }

    public void Dispose()
    {
        Stop();
        if (_thread is not null && _thread != Thread.CurrentThread)
        {
            _thread.Join(TimeSpan.FromSeconds(5));
        }
        _queue.CompleteAdding();
        _queue.Dispose();
    }

    private void Execute(Action work)
    {
        try
        {
            work();
        }
        catch (Exception e) when (UnhandledException is not null)
        {
            UnhandledException(e);
        }
    }

    /// <summary>Runs expired timers; returns milliseconds until the next one (-1: none).</summary>
    private int RunDueTimers()
    {
        while (true)
        {
            Action? due = null;
            long wait;
            lock (_timerLock)
            {
                if (!_timers.TryPeek(out Action? next, out long at))
                {
                    return -1;
                }
                wait = at - Environment.TickCount64;
                if (wait <= 0)
                {
                    due = _timers.Dequeue();
                }
            }
            if (due is null)
            {
                return (int)Math.Min(wait, int.MaxValue);
            }
            Execute(due);
        }
    }
}
