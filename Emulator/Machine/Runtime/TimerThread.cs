using Colo.Core.Time;

namespace Colo.Machine.Runtime;

/// <summary>
/// Fires the virtual clock's timers on time while vCPUs run: a dedicated thread that sleeps until the earliest
/// deadline (or until the clock says a nearer one appeared), then runs due timers under the board lock, as device
/// callbacks require. QEMU does this in its main loop; a thread of its own keeps timer latency independent of
/// monitor traffic.
/// </summary>
public sealed class TimerThread : IDisposable
{
    private readonly VirtualClock _clock;
    private readonly Lock _boardLock;
    private readonly AutoResetEvent _wake = new(false);
    private readonly Thread _thread;
    private volatile bool _stopping;

    public TimerThread(VirtualClock clock, Lock boardLock)
    {
        _clock = clock;
        _boardLock = boardLock;
        _clock.DeadlineChanged += () => _wake.Set();
        _thread = new Thread(Loop) { IsBackground = true, Name = "timers" };
    }

    /// <summary>Called when a timer callback throws: a device bug must not silently stop time.</summary>
    public event Action<Exception>? UnhandledException;

    public void Start() => _thread.Start();

    public void Dispose()
    {
        _stopping = true;
        _wake.Set();
        if (_thread.IsAlive)
        {
            _thread.Join();
        }
        _wake.Dispose();
    }

    private static readonly bool Trace = Environment.GetEnvironmentVariable("COLO_TRACE_CLOCK") == "1";

    private void Loop()
    {
        while (!_stopping)
        {
            int waitMs;
            lock (_boardLock)
            {
                int fired = 0;
                try
                {
                    fired = _clock.RunDue();
                }
                catch (Exception e)
                {
                    UnhandledException?.Invoke(e);
                }
                long next = _clock.NextDeadlineNs;
                if (!_clock.IsRunning || next == long.MaxValue)
                {
                    waitMs = Timeout.Infinite;
                }
                else
                {
                    long delta = next - _clock.NowNs;
                    waitMs = delta <= 0 ? 0 : (int)Math.Min(int.MaxValue, (delta + 999_999) / 1_000_000);
                }
                if (Trace)
                {
                    Console.Error.WriteLine($"colo-timers: now={_clock.NowNs} fired={fired} wait={waitMs} armed=[{_clock.DescribeArmed()}]");
                }
            }
            if (waitMs != 0)
            {
                _wake.WaitOne(waitMs);
            }
        }
    }
}
