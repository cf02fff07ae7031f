using Colo.Core.Cpu;

namespace Colo.Machine.Runtime;

/// <summary>
/// Runs one vCPU on its own thread (never the thread pool) while the machine runs, and parks it while it is
/// stopped, so the main loop can safely touch the CPU state (reset, migration, QMP). Exits that need the machine
/// (reset, shutdown, internal error) are handed to <see cref="Exited"/>, which posts them to the main loop; the
/// vCPU then stays parked until the machine resumes it.
/// </summary>
public sealed class VcpuRunner : IDisposable
{
    private readonly IVcpu _vcpu;
    private readonly Thread _thread;
    private readonly object _gate = new();
    private bool _runRequested;
    private bool _parked = true;
    private bool _stopping;
    private bool _haltedForever;

    public VcpuRunner(IVcpu vcpu, string threadName)
    {
        _vcpu = vcpu;
        _thread = new Thread(Loop) { IsBackground = true, Name = threadName };
        _thread.Start();
    }

    /// <summary>The vCPU this runner drives.</summary>
    public IVcpu Vcpu => _vcpu;

    /// <summary>An exit the machine must act on (reset, shutdown, internal error), raised on the vCPU thread.</summary>
    public event Action<VcpuExit>? Exited;

    /// <summary>Lets the vCPU run.</summary>
    public void Resume()
    {
        lock (_gate)
        {
            _runRequested = true;
            System.Threading.Monitor.PulseAll(_gate);
        }
    }

    /// <summary>After a reset of the CPU state: a CPU halted with interrupts off may run again.</summary>
    public void ClearHalt()
    {
        lock (_gate)
        {
            _haltedForever = false;
            System.Threading.Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Stops the vCPU and waits until it is parked, so its state may be read or written.</summary>
    public void Pause()
    {
        lock (_gate)
        {
            _runRequested = false;
            while (!_parked)
            {
                _vcpu.Kick();
                System.Threading.Monitor.Wait(_gate, 10);
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            _runRequested = false;
            System.Threading.Monitor.PulseAll(_gate);
        }
        _vcpu.Kick();
        _thread.Join();
    }

    private void Loop()
    {
        while (true)
        {
            lock (_gate)
            {
                while ((!_runRequested || _haltedForever) && !_stopping)
                {
                    _parked = true;
                    System.Threading.Monitor.PulseAll(_gate);
                    System.Threading.Monitor.Wait(_gate);
                }
                if (_stopping)
                {
                    _parked = true;
                    System.Threading.Monitor.PulseAll(_gate);
                    return;
                }
                _parked = false;
            }
            VcpuExit exit = _vcpu.Run();
            switch (exit)
            {
                case VcpuExit.Kicked:
                    break;
                case VcpuExit.Halted:
                    // HLT with interrupts off (or no interrupt source): only a reset ends it (no NMI source yet).
                    lock (_gate)
                    {
                        _haltedForever = true;
                    }
                    break;
                default:
                    lock (_gate)
                    {
                        _runRequested = false;
                    }
                    Exited?.Invoke(exit);
                    break;
            }
        }
    }
}
