using System.Reflection;
using Colo.Block;
using Colo.Block.Graph;
using Colo.Block.Qmp;
using Colo.Core.Chardev;
using Colo.Core.Chardev.Qmp;
using Colo.Core.Loop;
using Colo.Core.Objects;
using Colo.Core.Options;
using Colo.Core.Qmp;
using Colo.Core.Time;
using Colo.Devices;
using Colo.Devices.Interrupt;
using Colo.Devices.Pc;
using Colo.Devices.Pc.Boot;
using Colo.Core.Cpu;
using Colo.Cpu.Interpreter;
using Colo.Machine.Qtest;
using Colo.Machine.Runtime;
using Colo.Machine.Hmp;
using Colo.Machine.Qmp;
using Colo.Migration;
using Colo.Monitor.Hmp;
using Colo.Monitor.Qmp;
using Colo.Net;
using Colo.Net.Qmp;

namespace Colo.Machine;

/// <summary>
/// The composition root at run time: turns a <see cref="MachineConfig"/> into objects in QEMU's order
/// (chardevs, early objects, netdevs, late objects, drives, devices, monitors), owns the run state and
/// the main loop, and is what the machine-level QMP commands act on.
/// </summary>
public sealed class VirtualMachine : IDisposable
{
    public const int QemuMajor = 7;
    public const int QemuMinor = 2;
    public const int QemuMicro = 0;

    private readonly MachineConfig _config;
    private readonly List<IDisposable> _monitors = [];
    private IncomingMigration? _incoming;
    private PcBoard? _board;
    private ManualClock? _qtestClock;
    private VirtualClock? _virtualClock;
    private TimerThread? _timers;
    private VcpuRunner? _cpu;
    private CpuidFeatures _cpuFeatures = CpuidFeatures.Qemu64;
    private readonly List<VcpuRunner> _aps = [];
    private readonly List<DeviceObject> _cpuObjects = [];
    private readonly List<DeviceObject> _devices = [];
    private TextWriter? _qtestLog;
    private int _anonymousDevices;
    private bool _autostart;
    private int _exitCode;

    public VirtualMachine(MachineConfig config, TextWriter stderr)
    {
        _config = config;
        Stderr = stderr;
        MainLoop = new EventLoop("main-loop");
        MainLoop.UnhandledException += e => Stderr.WriteLine($"qemu-system-x86_64: internal error: {e}");
        Net.Report = message => Stderr.WriteLine("qemu-system-x86_64: " + message);
        // The tree mirrors the netdevs so qom-list shows them; NetClients owns their lifetime.
        Net.Added += client => Tree.Netdevs.AddChild(client.Id, client);
        Net.Removed += client => Tree.Netdevs.RemoveChild(client);
        Types = CreateTypeRegistry(Net);
        MachineQmpCommands.Register(Qmp, this);
        MonitorQmpCommands.Register(Qmp, Hmp);
        MachineHmpCommands.Register(Hmp, this);
        ChardevQmpCommands.Register(Qmp, Types, Tree);
        BlockQmpCommands.Register(Qmp, Blocks, Events);
        NetQmpCommands.Register(Qmp, Types, Net);
        Blocks.Warning = stderr.WriteLine;
        Blocks.Jobs.Loop = MainLoop; // jobs finish (pivot, close) on the loop that owns the graph
    }

    /// <summary>Colo's own version, reported as the QMP/version "package".</summary>
    public static string ColoVersion { get; } =
        typeof(VirtualMachine).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public static string Package => $"Colo {ColoVersion}";

    public TextWriter Stderr { get; }

    public EventLoop MainLoop { get; }

    public ObjectTree Tree { get; } = new();

    public TypeRegistry Types { get; }

    /// <summary>The netdevs (<c>-netdev</c>, <c>netdev_add</c>) and hubs.</summary>
    public NetClients Net { get; } = new();

    public QmpEventBus Events { get; } = new();

    public QmpCommandRegistry Qmp { get; } = new();

    public HmpCommandRegistry Hmp { get; } = new();

    /// <summary>The block graph: the drives of <c>-drive</c> and <c>drive_add</c> and their nodes.</summary>
    public BlockGraph Blocks { get; } = new();

    public RunState State { get; private set; } = RunState.Prelaunch;

    public string? Name => _config.Name;

    /// <summary>The pc board, once built (null for <c>-M none</c>).</summary>
    public PcBoard? Board => _board;

    /// <summary>The machine type in use, once <see cref="Build"/> has checked it.</summary>
    public MachineTypeInfo? MachineType { get; private set; }

    /// <summary>The plugged <c>-device</c>/<c>device_add</c> instances, oldest first.</summary>
    public IReadOnlyList<DeviceObject> UserDevices => _devices;

    /// <summary>The configured accelerator that is in use.</summary>
    public string Accelerator { get; private set; } = "tcg";

    /// <summary>Every creatable type of every subsystem; also what the <c>help</c> options list.</summary>
    public static TypeRegistry CreateTypeRegistry() => CreateTypeRegistry(new NetClients());

    /// <summary>Every creatable type; the netdevs it creates join <paramref name="net"/>.</summary>
    public static TypeRegistry CreateTypeRegistry(NetClients net)
    {
        var registry = new TypeRegistry();
        ChardevTypes.Register(registry);
        IoThread.Register(registry);
        NetTypes.Register(registry, net);
        DeviceTypes.Register(registry);
        return registry;
    }

    /// <summary>Creates everything the configuration names, in QEMU's order.</summary>
    /// <exception cref="StartupException">The first thing that cannot be built, with the option it came from.</exception>
    public void Build()
    {
        Preflight();

        foreach (OptionEntry entry in _config.Chardevs)
        {
            At(entry.Context, () => ChardevFactory.CreateFromOptions(Types, Tree, entry.Value));
        }
        foreach (CompatChardev compat in _config.CompatChardevs)
        {
            At(compat.Context, () => ChardevFactory.CreateFromCompat(Types, Tree, compat.Id, compat.Spec));
        }
        foreach (OptionEntry entry in _config.Objects.Where(e => !NetTypes.IsLateObject(e.Value["qom-type"] ?? "")))
        {
            At(entry.Context, () => AddUserObject(entry.Value));
        }
        foreach (OptionEntry entry in _config.Netdevs)
        {
            At(entry.Context, () => AddNetdev(entry.Value));
        }
        foreach (OptionEntry entry in _config.Objects.Where(e => NetTypes.IsLateObject(e.Value["qom-type"] ?? "")))
        {
            At(entry.Context, () => AddUserObject(entry.Value));
        }
        Blocks.HasIdeController = _config.MachineType != "none";
        foreach (OptionEntry entry in _config.Drives)
        {
            At(entry.Context, () => AddDrive(entry.Value));
        }
        if (_config.MachineType != "none")
        {
            BuildBoard();
        }
        foreach (string warning in Net.UnconnectedWarnings())
        {
            Stderr.WriteLine("qemu-system-x86_64: " + warning); // QEMU's net_check_clients, once the machine is built
        }
        Qmp.Freeze();
        foreach (MonitorSpec spec in _config.Monitors)
        {
            At(spec.Context, () => StartMonitor(spec));
        }
        foreach (Chardev chardev in ChardevFactory.All(Tree))
        {
            if (chardev is MuxChardev mux)
            {
                // Ctrl-A x ends the process with status 0 and no SHUTDOWN event, as QEMU's exit(0) there.
                mux.TerminateHandler = () => MainLoop.Post(() =>
                {
                    StopCpus();
                    _exitCode = 0;
                    MainLoop.Stop();
                });
                mux.Realize();
            }
        }

        if (_config.Incoming is not null)
        {
            At("-incoming " + _config.Incoming, () => _incoming = IncomingMigration.Start(_config.Incoming, reason => MainLoop.Post(() => FailIncoming(reason))));
            State = RunState.InMigrate;
            _autostart = !_config.StartPaused;
        }
        else
        {
            State = _config.StartPaused ? RunState.Prelaunch : RunState.Running;
        }
        if (State == RunState.Running)
        {
            StartCpus();
        }
    }

    /// <summary>Runs the main loop until quit; returns the process exit status.</summary>
    public int Run()
    {
        MainLoop.Run();
        return _exitCode;
    }

    /// <summary><c>stop</c>: pauses a running VM (STOP event); in inmigrate it only cancels autostart.</summary>
    public void Stop()
    {
        if (State == RunState.InMigrate)
        {
            _autostart = false;
        }
        else if (State == RunState.Running)
        {
            StopCpus();
            State = RunState.Paused;
            Events.Emit("STOP");
        }
    }

    /// <summary><c>cont</c>: resumes (RESUME event); in inmigrate it only asks to start once migration is done.</summary>
    public void Cont()
    {
        switch (State)
        {
            case RunState.InMigrate:
                _autostart = true;
                break;
            case RunState.Running:
                break;
            case RunState.Shutdown or RunState.InternalError or RunState.GuestPanicked:
                throw new QmpException("Resetting the Virtual Machine is required");
            default:
                State = RunState.Running;
                Events.Emit("RESUME");
                StartCpus();
                break;
        }
    }

    /// <summary><c>system_reset</c>: a stopped VM comes back in prelaunch, as in QEMU.</summary>
    public void Reset(bool guest, string reason)
    {
        if (_board is not null)
        {
            bool running = State == RunState.Running;
            _cpu?.Pause();
            foreach (VcpuRunner ap in _aps)
            {
                ap.Pause();
            }
            lock (_board.Lock)
            {
                _board.Reset();
            }
            if (_cpu is not null)
            {
                PrepareBoot(_board, ref _cpu.Vcpu.State);
                _cpu.ClearHalt();
                foreach (VcpuRunner ap in _aps)
                {
                    ap.WaitForStartup();
                }
                if (running)
                {
                    _cpu.Resume();
                    foreach (VcpuRunner ap in _aps)
                    {
                        ap.Resume();
                    }
                }
            }
        }
        Events.Emit("RESET", new ShutdownEvent(guest, reason), MachineQmpJsonContext.Default.ShutdownEvent);
        if (State is not (RunState.Running or RunState.InMigrate or RunState.FinishMigrate))
        {
            State = RunState.Prelaunch;
        }
    }

    /// <summary>Emits SHUTDOWN and ends the main loop after the current work item (so a reply still goes out).</summary>
    public void RequestShutdown(bool guest, string reason)
    {
        Events.Emit("SHUTDOWN", new ShutdownEvent(guest, reason), MachineQmpJsonContext.Default.ShutdownEvent);
        StopCpus();
        State = RunState.Shutdown;
        MainLoop.Stop();
    }

    /// <summary>
    /// <c>system_powerdown</c>: the POWERDOWN event, then a press of the ACPI power button (which the guest sees only
    /// if it enabled PWRBTN_EN), as QEMU.
    /// </summary>
    public void Powerdown()
    {
        Events.Emit("POWERDOWN");
        if (_board is not null)
        {
            lock (_board.Lock)
            {
                _board.PressPowerButton();
            }
        }
    }

    /// <summary><c>inject-nmi</c> / HMP <c>nmi</c>: an NMI to every CPU, as QEMU's x86 machines do.</summary>
    public void InjectNmi()
    {
        _cpu?.Nmi();
        foreach (VcpuRunner ap in _aps)
        {
            ap.Nmi();
        }
    }

    /// <summary><c>system_wakeup</c>: Colo never suspends (no S3), so there is nothing to wake, with QEMU's texts.</summary>
    public void Wakeup()
    {
        throw new QmpException(_board is null
            ? "wake-up from suspend is not supported by this guest"
            : "Unable to wake up: guest is not in suspended state");
    }

    /// <summary>The guest entered S5: SHUTDOWN and exit, or with <c>-no-shutdown</c> stop in the shutdown state (STOP), as QEMU.</summary>
    private void GuestPowerOff()
    {
        if (State == RunState.Shutdown)
        {
            return;
        }
        if (!_config.NoShutdown)
        {
            RequestShutdown(guest: true, "guest-shutdown");
            return;
        }
        Events.Emit("SHUTDOWN", new ShutdownEvent(true, "guest-shutdown"), MachineQmpJsonContext.Default.ShutdownEvent);
        StopCpus();
        State = RunState.Shutdown;
        Events.Emit("STOP");
    }

    public void Dispose()
    {
        // Jobs still running end first, so their events (QEMU's at quit) reach the monitors: the job threads post
        // them to the stopped loop, whose queue this thread then runs.
        Blocks.CancelJobsAtQuit();
        MainLoop.RunPending();
        foreach (IDisposable monitor in _monitors)
        {
            monitor.Dispose();
        }
        _incoming?.Dispose();
        _cpu?.Dispose();
        foreach (VcpuRunner ap in _aps)
        {
            ap.Dispose();
        }
        _timers?.Dispose();
        // Drives are flushed and closed before anything else goes: QEMU's bdrv_close_all at exit.
        Blocks.Dispose();
        _board?.Dispose();
        if (_qtestLog is not null && _qtestLog != Stderr)
        {
            _qtestLog.Dispose();
        }
        // Objects before chardevs: filters and monitors use chardevs, not the other way round.
        DisposeChildren(Tree.Objects);
        Net.DisposeAll();
        ChardevFactory.RemoveAll(Tree);
        MainLoop.Dispose();
    }

    /// <summary>Adds an <c>-object</c>/<c>object-add</c> object under /objects.</summary>
    internal void AddUserObject(KeyValList options)
    {
        string type = options["qom-type"] ?? throw new QmpException("Parameter 'qom-type' is missing");
        string? id = options["id"];
        TypeRegistry.CheckId(id);
        if (Tree.Objects.FindChild(id!) is not null)
        {
            throw new QmpException($"Duplicate ID '{id}' for object");
        }
        QomObject obj = Types.CreateFromStrings(ObjectCategory.Object, type, id, options.Except("qom-type", "id"));
        Tree.Objects.AddChild(id!, obj);
    }

    /// <summary>Creates a netdev (<c>-netdev</c>, HMP <c>netdev_add</c>) with the command line's texts.</summary>
    internal void AddNetdev(KeyValList options) =>
        Net.Add(Types, Required(options, "type"), options["id"], options.Except("type", "id"), fromQmp: false);

    /// <summary>Removes a user object (object-del) after checking nothing uses it.</summary>
    internal void DeleteUserObject(string id)
    {
        QomObject obj = Tree.Objects.FindChild(id) ?? throw new QmpException($"object '{id}' not found");
        if (obj.DeleteBlocker() is { } reason)
        {
            throw new QmpException(reason);
        }
        Tree.Objects.RemoveChild(obj);
        obj.Dispose();
    }

    private void StartMonitor(MonitorSpec spec)
    {
        Chardev chardev = ChardevFactory.Find(Tree, spec.ChardevId) ?? throw new QmpException($"Chardev '{spec.ChardevId}' not found");
        if (spec.Pretty)
        {
            throw new QmpException("pretty-printed QMP (pretty=on, -qmp-pretty) is not implemented yet in Colo");
        }
        if (spec.Control)
        {
            var monitor = new QmpMonitor(chardev, MainLoop, Qmp, Events, new QmpVersionInfo(QemuMajor, QemuMinor, QemuMicro, Package));
            _monitors.Add(monitor);
            monitor.Start();
        }
        else
        {
            var monitor = new HmpMonitor(chardev, MainLoop, Hmp, $"{QemuMajor}.{QemuMinor}.{QemuMicro}");
            _monitors.Add(monitor);
            monitor.Start();
        }
    }

    private void CheckMachineAndAccelerator()
    {
        MachineType = MachineTypes.Find(_config.MachineType)
            ?? throw new StartupException(null, "unsupported machine type\nUse -machine help to list supported machines");
        if (_config.MaxCpus > MachineType.CpuMax)
        {
            throw new StartupException(null, $"Invalid SMP CPUs {_config.MaxCpus}. The max CPUs supported by machine '{MachineType.Name}' is {MachineType.CpuMax}");
        }

        string[] accels = _config.Accelerators.Count == 0 ? ["tcg"] : [.. _config.Accelerators];
        string? lastError = null;
        foreach (string accel in accels)
        {
            switch (accel)
            {
                case "tcg":
                    Accelerator = accel;
                    return;
                case "kvm":
                    lastError = "the KVM accelerator is not implemented yet in Colo (the KVM issue builds it; without -enable-kvm Colo uses its interpreter)";
                    break;
                case "qtest":
                    Accelerator = accel;
                    return;
                default:
                    throw new StartupException($"-accel {accel}", $"invalid accelerator {accel}");
            }
            if (accels.Length > 1)
            {
                Stderr.WriteLine($"qemu-system-x86_64: -accel {accel}: {lastError}");
            }
        }
        throw new StartupException(accels.Length == 1 ? $"-accel {accels[0]}" : null, accels.Length == 1 ? lastError! : "no accelerator found");
    }

    /// <summary>
    /// Checks every typed option before anything is created: first that each type exists and its
    /// properties are valid (QEMU's parse-time errors), then, after the machine and accelerator, that each
    /// type is built, so a command line that names a part Colo does not have yet fails at once instead of
    /// after binding sockets or waiting for a peer.
    /// </summary>
    private void Preflight()
    {
        var typed = new List<(string Context, ObjectTypeInfo Type)>();
        foreach (OptionEntry e in _config.Chardevs)
        {
            At(e.Context, () => typed.Add((e.Context, Types.Validate(ObjectCategory.Chardev, Required(e.Value, "backend"), e.Value.Except("backend", "id")))));
        }
        foreach (OptionEntry e in _config.Objects)
        {
            At(e.Context, () => typed.Add((e.Context, Types.Validate(ObjectCategory.Object, Required(e.Value, "qom-type"), e.Value.Except("qom-type", "id")))));
        }
        foreach (OptionEntry e in _config.Netdevs)
        {
            At(e.Context, () => typed.Add((e.Context, Types.Validate(ObjectCategory.Netdev, Required(e.Value, "type"), e.Value.Except("type", "id")))));
        }
        foreach (OptionEntry e in _config.Devices)
        {
            At(e.Context, () => typed.Add((e.Context, Types.Validate(ObjectCategory.Device, Required(e.Value, "driver"), e.Value.Except("driver", "id")))));
        }

        CheckMachineAndAccelerator();
        _cpuFeatures = CpuFeatureResolver.Resolve(_config.CpuModel, Accelerator, _config.CpuFeatures, InterpreterVcpu.SupportedFeatures,
            warning => Stderr.WriteLine("qemu-system-x86_64: " + warning));

        foreach ((string context, ObjectTypeInfo type) in typed)
        {
            if (type.Factory is null)
            {
                throw new StartupException(context, TypeRegistry.NotImplementedText(type));
            }
        }
    }

    /// <summary>
    /// Builds the pc board from the configuration: RAM, firmware, serial ports, the <c>-device</c> list and qtest.
    /// </summary>
    private void BuildBoard()
    {
        ReadOnlyMemory<byte>? bios = LoadBios();
        var serials = new List<Chardev?>();
        foreach (string id in _config.Serials)
        {
            serials.Add(ChardevFactory.Find(Tree, id) ?? throw new StartupException("-serial chardev:" + id, $"chardev '{id}' not found"));
        }
        if (serials.Count == 0 && !_config.NoDefaults)
        {
            serials.Add(null); // QEMU's default COM1 writes to a virtual console; headless, that is nowhere
        }
        _qtestClock = Accelerator == "qtest" ? new ManualClock() : null;
        _virtualClock = _qtestClock is null ? new VirtualClock() : null;
        IClock clock = (IClock?)_qtestClock ?? _virtualClock!;
        try
        {
            _board = new PcBoard(new PcBoardOptions(_config.RamSize, _config.Cpus, bios, serials, LoadKernel()), clock, MainLoop);
            if (_virtualClock is not null)
            {
                Lock boardLock = _board.Lock;
                _virtualClock.OwnerCheck = () => boardLock.IsHeldByCurrentThread;
            }
        }
        catch (QmpException e)
        {
            throw new StartupException("-serial", e.Message);
        }
        AddBoardObjects(_board);
        _board.ResetRequested += () => MainLoop.Post(OnGuestReset);
        _board.PowerOffRequested += () => MainLoop.Post(GuestPowerOff);
        _board.ExitRequested += status => MainLoop.Post(() =>
        {
            _exitCode = status;
            MainLoop.Stop();
        });

        int ideCount = 0;
        foreach (BlockBackend backend in Blocks.Backends)
        {
            if (backend.IdePosition is (int bus, int unit))
            {
                int index = ideCount++;
                try
                {
                    _board.AttachIdeDrive(backend, bus, unit, index);
                }
                catch (Exception e) when (e is InvalidOperationException or ArgumentException)
                {
                    throw new StartupException($"-drive {backend.Name}", e.Message);
                }
            }
        }
        foreach (OptionEntry entry in _config.Devices)
        {
            At(entry.Context, () => AddDevice(entry.Value));
        }
        if (_virtualClock is not null)
        {
            CreateCpu(_board, _virtualClock);
        }
        else if (_config.Kernel is not null)
        {
            // qtest: no CPU runs, but the kernel is laid out in RAM as at power-on, for tests to inspect.
            var scratch = default(X86CpuState);
            PrepareBoot(_board, ref scratch);
        }

        if (_config.QtestChardev is string qtestId)
        {
            Chardev chardev = ChardevFactory.Find(Tree, qtestId) ?? throw new StartupException($"-qtest chardev:{qtestId}", $"chardev '{qtestId}' not found");
            _qtestLog = _config.QtestLog switch
            {
                null => Stderr,
                "none" => null,
                string path => OpenQtestLog(path),
            };
            var server = new QtestServer(chardev, _board, Tree, _qtestClock, _qtestLog);
            At($"-qtest chardev:{qtestId}", () => chardev.Attach(server, MainLoop));
        }
    }

    /// <summary>
    /// The board's parts as QOM objects where QEMU's pc puts them, so QOM paths, <c>device_del</c> refusals and
    /// qtest's interception name them as in QEMU: CPU 0 at <c>/machine/unattached/device[0]</c>, CPU N at
    /// <c>device[N+1]</c> (QEMU creates the boot CPU's kvmvapic in between), then the chipset parts in QEMU's
    /// creation order, skipping the indices of the parts Colo does not model (DMA controllers, HPET, speaker,
    /// floppy, vmport, vmmouse) so the ones it has keep QEMU's numbers; the host bridge and fw_cfg under /machine.
    /// </summary>
    private void AddBoardObjects(PcBoard board)
    {
        var unattached = new QomContainer();
        Tree.Machine.AddChild("unattached", unattached);
        for (int i = 0; i < _config.Cpus; i++)
        {
            _cpuObjects.Add(AddBoardObject(unattached, $"device[{(i == 0 ? 0 : i + 1)}]", MachineTypes.DefaultCpuType, null));
        }
        int next = _config.Cpus + 1;
        int serials = board.Serials.Count;
        AddBoardObject(unattached, $"device[{next}]", "i440FX", board.Host);
        AddBoardObject(unattached, $"device[{next + 1}]", "PIIX3", board.Isa);
        AddBoardObject(unattached, $"device[{next + 4}]", "isa-i8259", board.Pic);
        AddBoardObject(unattached, $"device[{next + 5}]", "isa-i8259", null);
        AddBoardObject(unattached, $"device[{next + 7}]", "mc146818rtc", board.Rtc);
        AddBoardObject(unattached, $"device[{next + 8}]", "isa-pit", board.Pit);
        for (int i = 0; i < serials; i++)
        {
            AddBoardObject(unattached, $"device[{next + 10 + i}]", "isa-serial", board.Serials[i]);
        }
        AddBoardObject(unattached, $"device[{next + 11 + serials}]", "i8042", board.Keyboard);
        AddBoardObject(unattached, $"device[{next + 14 + serials}]", "port92", board.Port92);
        AddBoardObject(unattached, $"device[{next + 15 + serials}]", "piix3-ide", board.Ide);
        DeviceObject host = AddBoardObject(Tree.Machine, "i440fx", "i440FX-pcihost", null);
        AddBoardObject(host, "ioapic", "ioapic", board.IoApic);
        AddBoardObject(Tree.Machine, "fw_cfg", "fw_cfg_io", board.FwCfg);
    }

    private DeviceObject AddBoardObject(QomObject parent, string name, string type, object? model)
    {
        ObjectTypeInfo info = Types.Find(ObjectCategory.Device, type)!;
        var device = new DeviceObject(info, new PropertyValues(info)) { Model = model };
        parent.AddChild(name, device);
        return device;
    }

    /// <summary>
    /// The vCPUs for query-cpus-fast and <c>info cpus</c>: index, QOM path and host thread. Under qtest no vCPU
    /// thread exists (QEMU's are dummies that never run guest code), so the main loop's thread stands in.
    /// </summary>
    internal IReadOnlyList<(int Index, string QomPath, int ThreadId)> DescribeCpus()
    {
        var list = new List<(int, string, int)>();
        for (int i = 0; i < _cpuObjects.Count; i++)
        {
            VcpuRunner? runner = i == 0 ? _cpu : i - 1 < _aps.Count ? _aps[i - 1] : null;
            list.Add((i, _cpuObjects[i].CanonicalPath, runner?.ThreadId ?? NativeThread.CurrentId()));
        }
        return list;
    }

    /// <summary>
    /// A copy of vCPU <paramref name="index"/>'s state (false when there is no such vCPU). A running vCPU is parked
    /// for the copy and resumed at once; it stays halted if it was.
    /// </summary>
    internal bool TryReadCpuState(int index, out X86CpuState state)
    {
        VcpuRunner? runner = index == 0 ? _cpu : index - 1 >= 0 && index - 1 < _aps.Count ? _aps[index - 1] : null;
        if (runner is null)
        {
            state = default;
            return false;
        }
        bool running = State == RunState.Running;
        runner.Pause();
        state = runner.Vcpu.State;
        if (running)
        {
            runner.Resume();
        }
        return true;
    }

    /// <summary>How many vCPUs the machine has.</summary>
    internal int CpuCount => _cpuObjects.Count;

    /// <summary>The <c>-kernel</c>/<c>-initrd</c>/<c>-append</c> files, read up front so errors come at startup.</summary>
    private KernelBoot? LoadKernel()
    {
        if (_config.Kernel is not string path)
        {
            if (_config.Initrd is not null)
            {
                throw new StartupException(null, "-initrd cannot be used without -kernel");
            }
            return _config.Append is null ? null : throw new StartupException(null, "-append cannot be used without -kernel");
        }
        byte[] image = ReadBootFile(path, e => $"could not open kernel file '{path}': {e}");
        byte[]? initrd = null;
        var modules = new List<MultibootModule>();
        if (_config.Initrd is string initrdSpec)
        {
            bool multiboot;
            try
            {
                multiboot = KernelImage.Detect(image) == KernelImageKind.Multiboot;
            }
            catch (KernelImageException e)
            {
                throw new StartupException(null, e.Message);
            }
            if (multiboot)
            {
                foreach ((string modulePath, string commandLine) in MultibootLoader.ParseModuleList(initrdSpec))
                {
                    modules.Add(new MultibootModule(ReadBootFile(modulePath, e => $"Failed to open file '{modulePath}': {e}"), commandLine));
                }
            }
            else
            {
                initrd = ReadBootFile(initrdSpec, e => $"error reading initrd {initrdSpec}: {e}");
            }
        }
        return new KernelBoot(path, image, initrd, modules, _config.Append ?? "");
    }

    private static byte[] ReadBootFile(string path, Func<string, string> message)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StartupException(null, message(e is FileNotFoundException or DirectoryNotFoundException ? "No such file or directory" : e.Message));
        }
    }

    /// <summary>Power-on/reset CPU state (and kernel load), turning a bad image into a startup error.</summary>
    private static void PrepareBoot(PcBoard board, ref X86CpuState cpu)
    {
        try
        {
            lock (board.Lock)
            {
                board.PrepareBoot(ref cpu);
            }
        }
        catch (KernelImageException e)
        {
            throw new StartupException(null, e.Message);
        }
    }

    /// <summary>The interpreter vCPU on its thread with its local APIC (PIC on LINT0, IOAPIC messages), and the timer thread.</summary>
    private void CreateCpu(PcBoard board, VirtualClock clock)
    {
        var vcpu = new InterpreterVcpu(0, board.Memory, board) { TscClock = clock, Features = _cpuFeatures };
        PrepareBoot(board, ref vcpu.State);
        // The PIC reaches the vCPU through the boot CPU's local APIC (LINT0 ExtINT, or pass-through while the APIC
        // is hardware-disabled); the APIC also takes IOAPIC messages and owns the 0xFEE00000 page.
        LocalApic apic = board.CreateLocalApic(0);
        apic.InterruptRequested = vcpu.NotifyInterruptRequest;
        var locked = new LockedLocalApic(apic, board.Lock);
        vcpu.LocalApic = locked;
        vcpu.Interrupts = locked;
        _cpu = new VcpuRunner(vcpu, "CPU 0/TCG");
        apic.NmiReceived = _cpu.Nmi;
        _cpu.Exited += exit => MainLoop.Post(() => OnVcpuExit(vcpu, exit));
        for (int i = 1; i < board.Options.Cpus; i++)
        {
            CreateApplicationProcessor(board, i);
        }
        _timers = new TimerThread(clock, board.Lock);
        _timers.UnhandledException += e => MainLoop.Post(() => Stderr.WriteLine($"qemu-system-x86_64: internal error in a device timer: {e}"));
        _timers.Start();
    }

    /// <summary>
    /// An application processor: its own APIC on the APIC bus, parked in wait-for-SIPI until the BSP's INIT-SIPI.
    /// </summary>
    private void CreateApplicationProcessor(PcBoard board, int index)
    {
        var vcpu = new InterpreterVcpu(index, board.Memory, board) { TscClock = _virtualClock, Features = _cpuFeatures };
        var runner = new VcpuRunner(vcpu, $"CPU {index}/TCG");
        runner.WaitForStartup();
        LocalApic apic = board.CreateLocalApic(index);
        apic.InterruptRequested = vcpu.NotifyInterruptRequest;
        apic.InitReceived = runner.Init;
        apic.StartupReceived = runner.Startup;
        apic.NmiReceived = runner.Nmi;
        var locked = new LockedLocalApic(apic, board.Lock);
        vcpu.LocalApic = locked;
        vcpu.Interrupts = locked;
        runner.Exited += exit => MainLoop.Post(() => OnVcpuExit(vcpu, exit));
        _aps.Add(runner);
    }

    /// <summary>What a vCPU exit means for the machine (on the main loop).</summary>
    private void OnVcpuExit(InterpreterVcpu vcpu, VcpuExit exit)
    {
        switch (exit)
        {
            case VcpuExit.Shutdown or VcpuExit.Reset:
                // A triple fault resets the machine, as on a PC.
                OnGuestReset();
                break;
            default:
                Stderr.WriteLine($"qemu-system-x86_64: CPU {vcpu.Index}: {vcpu.InternalErrorDetail ?? exit.ToString()} at RIP 0x{vcpu.State.Rip:x}");
                StopCpus();
                State = RunState.InternalError;
                Events.Emit("STOP");
                break;
        }
    }

    /// <summary>A reset the guest asked for (0xCF9, port 0x92, the 8042, a triple fault); -no-reboot makes it an exit.</summary>
    private void OnGuestReset()
    {
        if (_config.NoReboot)
        {
            RequestShutdown(guest: true, "guest-reset");
        }
        else
        {
            Reset(guest: true, "guest-reset");
        }
    }

    /// <summary>Lets guest time pass and the vCPU run.</summary>
    private void StartCpus()
    {
        if (_cpu is null || _board is null)
        {
            return;
        }
        lock (_board.Lock)
        {
            _virtualClock?.Start();
        }
        _cpu.Resume();
        foreach (VcpuRunner ap in _aps)
        {
            ap.Resume();
        }
    }

    /// <summary>Parks the vCPU and freezes guest time.</summary>
    private void StopCpus()
    {
        if (_cpu is null || _board is null)
        {
            return;
        }
        _cpu.Pause();
        foreach (VcpuRunner ap in _aps)
        {
            ap.Pause();
        }
        lock (_board.Lock)
        {
            _virtualClock?.Stop();
        }
    }

    private static StreamWriter OpenQtestLog(string path)
    {
        try
        {
            return new StreamWriter(path, append: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StartupException("-qtest-log " + path, $"Could not open '{path}': {e.Message}");
        }
    }

    /// <summary>Creates a <c>-device</c> instance (keyval) and plugs it into the board.</summary>
    internal DeviceObject AddDevice(KeyValList options)
    {
        string driver = options["driver"] ?? throw new QmpException("Parameter 'driver' is missing");
        string? id = options["id"];
        return AddDevice(driver, id, () => (DeviceObject)Types.CreateFromStrings(ObjectCategory.Device, driver, id, options.Except("driver", "id")));
    }

    /// <summary>Creates a <c>device_add</c> instance (QMP JSON members) and plugs it into the board.</summary>
    internal DeviceObject AddDevice(string driver, string? id, IEnumerable<KeyValuePair<string, System.Text.Json.JsonElement>> members) =>
        AddDevice(driver, id, () => (DeviceObject)Types.CreateFromJson(ObjectCategory.Device, driver, id, members));

    /// <summary><c>device_del</c>: unplugs at once where the bus allows it and emits DEVICE_DELETED.</summary>
    internal void DeleteDevice(string id)
    {
        QomObject? found = id.StartsWith('/') ? TryResolve(id) : Tree.Peripheral.FindChild(id);
        if (found is not DeviceObject device)
        {
            throw new QmpException($"Device '{id}' not found", QmpErrorClass.DeviceNotFound);
        }
        if (_board is null)
        {
            throw new QmpException($"Bus of device '{id}' does not support hotplugging");
        }
        if (!_devices.Contains(device))
        {
            throw new QmpException(BoardPartUnplugRefusal(device));
        }
        try
        {
            lock (_board.Lock)
            {
                _board.Unplug(device);
            }
        }
        catch (InvalidOperationException e)
        {
            throw new QmpException(e.Message);
        }
        string path = device.CanonicalPath;
        string? name = device.Parent == Tree.Peripheral ? device.Name : null;
        device.Parent!.RemoveChild(device);
        _devices.Remove(device);
        device.Dispose();
        Events.Emit("DEVICE_DELETED", new DeviceDeletedEvent(name, path), MachineQmpJsonContext.Default.DeviceDeletedEvent);
    }

    /// <summary>
    /// Why a part the board built cannot be unplugged, in QEMU's words: qdev checks the parent bus first (ISA and
    /// the system bus have no hot-plug), then the device (the chipset's PCI functions are not hot-pluggable).
    /// </summary>
    private string BoardPartUnplugRefusal(DeviceObject device)
    {
        if (Types.Implements(device.Type, "cpu"))
        {
            return _cpuObjects.IndexOf(device) == 0 ? "Boot CPU is unpluggable" : "CPU hot-unplug is not implemented yet in Colo";
        }
        if (Types.Implements(device.Type, "isa-device"))
        {
            return "Bus 'isa.0' does not support hotplugging";
        }
        if (Types.Implements(device.Type, "pci-device"))
        {
            return $"Device '{device.TypeName}' does not support hotplugging";
        }
        return "Bus 'main-system-bus' does not support hotplugging";
    }

    private QomObject? TryResolve(string path)
    {
        try
        {
            return Tree.Resolve(path);
        }
        catch (QmpException)
        {
            return null;
        }
    }

    private DeviceObject AddDevice(string driver, string? id, Func<DeviceObject> create)
    {
        if (id is not null)
        {
            TypeRegistry.CheckId(id);
            if (Tree.Peripheral.FindChild(id) is not null)
            {
                throw new QmpException($"Duplicate device ID '{id}'");
            }
        }
        DeviceObject device = create();
        if (device.Values.GetString("chardev") is string chardevId)
        {
            // QEMU's text when a chardev property names nothing.
            device.Chardev = ChardevFactory.Find(Tree, chardevId)
                ?? throw new QmpException($"Property '{driver}.chardev' can't find value '{chardevId}'");
        }
        if (_board is null)
        {
            throw new QmpException($"No '{Types.Find(ObjectCategory.Device, driver)?.Bus ?? "device"}' bus found for device '{driver}'");
        }
        try
        {
            lock (_board.Lock)
            {
                _board.Plug(device);
            }
        }
        catch (InvalidOperationException e)
        {
            throw new QmpException(e.Message);
        }
        if (id is not null)
        {
            Tree.Peripheral.AddChild(id, device);
        }
        else
        {
            Tree.PeripheralAnon.AddChild($"device[{_anonymousDevices++}]", device);
        }
        _devices.Add(device);
        return device;
    }

    /// <summary>
    /// The BIOS image: <c>-bios FILE</c> (a bare name is searched in <c>-L</c> directories), else SeaBIOS's
    /// <c>bios-256k.bin</c> from the data directories as QEMU's <c>pc</c> does. Size rules are QEMU's.
    /// </summary>
    private ReadOnlyMemory<byte>? LoadBios()
    {
        string name = _config.Bios ?? "bios-256k.bin";
        string[] dirs = [.. _config.DataDirs, "/usr/share/qemu", "/usr/share/seabios"];
        string? path = name.Contains('/') ? name : dirs.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
        if (path is null || !File.Exists(path))
        {
            throw new StartupException(null, $"could not load PC BIOS '{name}'");
        }
        byte[] image = File.ReadAllBytes(path);
        if (image.Length == 0 || image.Length % 65536 != 0 || image.Length > 16 << 20)
        {
            throw new StartupException(null, $"could not load PC BIOS '{name}'");
        }
        return image;
    }

    private static string Required(KeyValList options, string key) =>
        options[key] ?? throw new QmpException($"Parameter '{key}' is missing");

    /// <summary>Creates a drive (<c>-drive</c>, HMP <c>drive_add</c>) in the block graph.</summary>
    internal void AddDrive(KeyValList options) => Blocks.AddDrive(options.Pairs);

    private void FailIncoming(string reason)
    {
        Stderr.WriteLine($"qemu-system-x86_64: load of migration failed: {reason}");
        _exitCode = 1;
        MainLoop.Stop();
    }

    private static void DisposeChildren(QomObject container)
    {
        for (int i = container.Children.Count - 1; i >= 0; i--)
        {
            QomObject child = container.Children[i].Value;
            container.RemoveChild(child);
            child.Dispose();
        }
    }

    private static void At(string context, Action action)
    {
        try
        {
            action();
        }
        catch (QmpException e)
        {
            throw new StartupException(context, e.Message);
        }
    }
}
