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
    private bool _waitForSipi;
    private bool _pendingInit;
    private int _pendingSipi = -1;
    private int _threadId;

    public VcpuRunner(IVcpu vcpu, string threadName)
    {
        _vcpu = vcpu;
        _thread = new Thread(Loop) { IsBackground = true, Name = threadName };
        _thread.Start();
    }

    /// <summary>The host thread's kernel id (0 until the thread has started).</summary>
    public int ThreadId => Volatile.Read(ref _threadId);

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

    /// <summary>
    /// An INIT for this (application) processor: it stops at its next block boundary, resets, and waits for a
    /// startup IPI. The reset itself happens on the vCPU's own thread, so no other thread touches its state.
    /// </summary>
    public void Init()
    {
        lock (_gate)
        {
            _pendingInit = true;
            _pendingSipi = -1;
            System.Threading.Monitor.PulseAll(_gate);
        }
        _vcpu.Kick();
    }

    /// <summary>An NMI (LINT1, an NMI IPI, <c>inject-nmi</c>): it also ends a halt with interrupts off. A CPU waiting for SIPI ignores it.</summary>
    public void Nmi()
    {
        lock (_gate)
        {
            if (_waitForSipi)
            {
                return;
            }
            _vcpu.InjectNmi();
            _haltedForever = false;
            System.Threading.Monitor.PulseAll(_gate);
        }
    }

    /// <summary>A startup IPI: if the processor waits for one, it starts in real mode at <c>vector × 0x1000</c>.</summary>
    public void Startup(byte vector)
    {
        lock (_gate)
        {
            if (_waitForSipi || _pendingInit)
            {
                _pendingSipi = vector;
                System.Threading.Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>Puts an application processor in wait-for-SIPI (power-on and machine reset), with its state reset.</summary>
    public void WaitForStartup()
    {
        lock (_gate)
        {
            _vcpu.State.Reset();
            _vcpu.State.Halted = true;
            _waitForSipi = true;
            _pendingInit = false;
            _pendingSipi = -1;
            _haltedForever = false;
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

    /// <summary>On the vCPU thread, under the gate: INIT resets into wait-for-SIPI; a SIPI then sets CS:IP = vector:0.</summary>
    private void ApplyInitSipi()
    {
        if (_pendingInit)
        {
            _pendingInit = false;
            _vcpu.State.Reset();
            _vcpu.State.Halted = true; // wait-for-SIPI shows as halted (info registers), as in QEMU
            _waitForSipi = true;
            _haltedForever = false;
        }
        if (_waitForSipi && _pendingSipi >= 0)
        {
            ref X86CpuState state = ref _vcpu.State;
            ref SegmentRegister cs = ref state.Segments[(int)SegmentIndex.Cs];
            cs.Selector = (ushort)(_pendingSipi << 8);
            cs.Base = (ulong)_pendingSipi << 12;
            state.Rip = 0;
            state.Halted = false;
            _pendingSipi = -1;
            _waitForSipi = false;
        }
    }

    private void Loop()
    {
        Volatile.Write(ref _threadId, Colo.Core.Loop.NativeThread.CurrentId());
        while (true)
        {
            lock (_gate)
            {
                while (true)
                {
                    if (_runRequested)
                    {
                        // Only while the machine runs: a paused vCPU's state belongs to the main loop.
                        ApplyInitSipi();
                    }
                    if ((_runRequested && !_haltedForever && !_waitForSipi) || _stopping)
                    {
                        break;
                    }
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
