using System.Text;
using Colo.Block;
using Colo.Block.Hmp;
using Colo.Core.Chardev;
using Colo.Core.Loop;
using Colo.Core.Objects;
using Colo.Core.Options;
using Colo.Core.Qmp;
using Colo.Monitor.Hmp;

namespace Colo.Machine.Hmp;

/// <summary>The machine-level HMP commands, with QEMU's output texts.</summary>
public static class MachineHmpCommands
{
    public static void Register(HmpCommandRegistry r, VirtualMachine vm)
    {
        r.RegisterInfo("status", "", "show the current VM status (running|paused)", _ => StatusText(vm.State));
        r.RegisterInfo("version", "", "show the version of QEMU", _ => $"{VirtualMachine.QemuMajor}.{VirtualMachine.QemuMinor}.{VirtualMachine.QemuMicro}{VirtualMachine.Package}\n");
        r.RegisterInfo("name", "", "show the current VM name", _ => vm.Name is null ? "" : vm.Name + "\n");
        r.RegisterInfo("iothreads", "", "show iothreads", _ => IoThreads(vm));
        r.RegisterInfo("chardev", "", "show the character devices", _ => Chardevs(vm));
        r.RegisterInfo("pci", "", "show PCI info", _ => BoardText(vm, b => b.DescribePci(f => vm.UserDevices.FirstOrDefault(d => d.Model == f) is { Parent.Name: "peripheral" } d ? d.Name : null)));
        r.RegisterInfo("qtree", "", "show device tree", _ => Qtree(vm));
        r.RegisterInfo("cpus", "", "show infos for each CPU", _ => Cpus(vm));
        // The monitor's current CPU (QEMU's "cpu N"), which info registers shows without -a.
        int current = 0;
        r.RegisterInfo("registers", "[-a|-c]", "show the cpu registers (-a: show register info for all cpus; -c: show register info for current cpu)",
            args => Registers(vm, args.Trim() == "-a" ? -1 : current));
        r.RegisterInfo("lapic", "[apic-id]", "show local apic state (apic-id: local apic to read, default is which of current CPU)",
            args => LocalApic(vm, args.Trim(), current));
        r.Register("cpu", "index:i", "set the default CPU", args =>
        {
            if (!int.TryParse(args.Trim(), out int index))
            {
                throw new HmpUsageException(args.Trim().Length == 0 ? "missing argument" : "invalid char in expression");
            }
            if (index < 0 || index >= vm.CpuCount)
            {
                return "invalid CPU index\n";
            }
            current = index;
            return "";
        });
        r.RegisterInfo("mtree", "[-f][-d][-o][-D]", "show memory tree", _ => BoardText(vm, b => b.DescribeMemoryTree()));
        r.Register("device_add", "driver[,prop=value][,...]", "add device, like -device on the command line",
            args => Run(() => vm.AddDevice(KeyValParser.Parse(args.Trim(), "driver"))));
        r.Register("device_del", "device", "remove device", args => Run(() => vm.DeleteDevice(args.Trim())));
        r.Register("stop", "", "stop emulation", _ => Run(vm.Stop));
        r.Register("cont|c", "", "resume emulation", _ => Run(vm.Cont));
        r.Register("system_reset", "", "reset the system", _ => Run(() => vm.Reset(false, "host-qmp-system-reset")));
        r.Register("system_powerdown", "", "send system power down event", _ => Run(vm.Powerdown));
        r.Register("system_wakeup", "", "wakeup guest from suspend", _ => Run(vm.Wakeup));
        r.Register("nmi", "", "inject an NMI", _ => Run(vm.InjectNmi));
        r.Register("quit|q", "", "quit the emulator", _ => Run(() => vm.RequestShutdown(false, "host-qmp-quit")));
        r.Register("object_add", "[qom-type=]type,id=str[,prop=value][,...]", "create QOM object",
            args => Run(() => vm.AddUserObject(KeyValParser.Parse(args.Trim(), "qom-type"))));
        r.Register("object_del", "id", "destroy QOM object", args => Run(() => vm.DeleteUserObject(args.Trim())));
        r.RegisterInfo("block", "[-n] [-v] [device]", "show info of one block device or all block devices (-n: show named nodes; -v: show details)",
            args => BlockHmpText.InfoBlock(vm.Blocks, args.Trim() is { Length: > 0 } d ? d : null));
        r.Register("drive_add", "[-n] [[<domain>:]<bus>:]<slot>\n[file=file][,if=type][,bus=n]\n[,unit=m][,media=d][,index=i]\n[,snapshot=on|off][,cache=on|off]\n[,readonly=on|off][,copy-on-read=on|off]",
            "add drive to PCI storage controller", args => BlockCommand(() => DriveAdd(vm, args)));
        r.Register("drive_del", "device", "remove host block device", args => BlockCommand(() => vm.Blocks.DeleteDrive(args.Trim())));
        r.RegisterInfo("network", "", "show the network state", _ => vm.Net.InfoNetwork());
        r.Register("netdev_add", "[user|tap|socket|vde|bridge|hubport|netmap|vhost-user],id=str[,prop=value][,...]", "add host network device",
            args => Run(() => vm.AddNetdev(KeyValParser.Parse(args.Trim(), "type"))));
        r.Register("netdev_del", "id", "remove host network device", args => Run(() => vm.Net.Delete(args.Trim())));
        HmpQemuIo.Register(r, vm);
    }

    /// <summary>A board description under the board lock; <c>-M none</c> has no board, as QEMU's none has no PCI.</summary>
    private static string BoardText(VirtualMachine vm, Func<Colo.Devices.Pc.PcBoard, string> describe)
    {
        if (vm.Board is not { } board)
        {
            return "PCI devices not supported\n";
        }
        lock (board.Lock)
        {
            return describe(board);
        }
    }

    /// <summary><c>info qtree</c>; <c>-M none</c> has only the empty system bus.</summary>
    private static string Qtree(VirtualMachine vm)
    {
        if (vm.Board is not { } board)
        {
            return "bus: main-system-bus\n  type System\n";
        }
        lock (board.Lock)
        {
            return QtreeText.Describe(vm, board, vm.UserDevices);
        }
    }

    /// <summary><c>info registers</c>: CPU <paramref name="index"/>, or every CPU for -1.</summary>
    private static string Registers(VirtualMachine vm, int index)
    {
        var sb = new StringBuilder();
        for (int i = index < 0 ? 0 : index; i < (index < 0 ? vm.CpuCount : index + 1); i++)
        {
            if (vm.TryReadCpuState(i, out Colo.Core.Cpu.X86CpuState state))
            {
                sb.Append(CpuRegistersText.Format(i, state));
            }
        }
        return sb.ToString();
    }

    /// <summary><c>info lapic [apic-id]</c>: APIC ids equal CPU indexes on this machine.</summary>
    private static string LocalApic(VirtualMachine vm, string arg, int current)
    {
        int cpu = current;
        if (arg.Length > 0 && !int.TryParse(arg, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out cpu))
        {
            throw new HmpUsageException("invalid char in expression");
        }
        if (vm.Board is not { } board)
        {
            return "local APIC state not available\n";
        }
        lock (board.Lock)
        {
            if (cpu < 0 || cpu >= board.LocalApics.Count)
            {
                return "local APIC state not available\n";
            }
            Colo.Devices.Interrupt.LocalApic apic = board.LocalApics[cpu];
            return LocalApicText.Format(cpu, apic.Save(), apic.CurrentCountRegister);
        }
    }

    /// <summary><c>info cpus</c>: the monitor's current CPU (always CPU 0 here) is starred.</summary>
    private static string Cpus(VirtualMachine vm)
    {
        var sb = new StringBuilder();
        foreach ((int index, string _, int threadId) in vm.DescribeCpus())
        {
            sb.Append(index == 0 ? "* " : "  ").Append($"CPU #{index}: thread_id={threadId}\n");
        }
        return sb.ToString();
    }

    /// <summary>QEMU's <c>info status</c>: "running", "paused", or "paused (STATE)" for the other stopped states.</summary>
    public static string StatusText(RunState state) => state switch
    {
        RunState.Running => "VM status: running\n",
        RunState.Paused => "VM status: paused\n",
        _ => $"VM status: paused ({state.ToQapi()})\n",
    };

    /// <summary>
    /// <c>drive_add [-n] ADDR OPTIONS</c>: with <c>-n</c> a node without a drive (node-name required), else a
    /// drive; only <c>if=none</c> drives can be added at run time ("OK"), as on a board without hot-plug.
    /// </summary>
    private static string DriveAdd(VirtualMachine vm, string args)
    {
        string[] words = args.Trim().Split([' ', '\t'], 3, StringSplitOptions.RemoveEmptyEntries);
        bool node = words.Length > 0 && words[0] == "-n";
        string[] rest = node ? words[1..] : words;
        if (rest.Length < 2)
        {
            throw new HmpUsageException(rest.Length == 0 ? "missing argument" : "string expected");
        }
        KeyValList options = KeyValParser.Parse(string.Join(' ', rest[1..]), null);
        if (node)
        {
            vm.Blocks.AddNode(options.Pairs);
            return "";
        }
        string iface = options["if"] ?? "ide";
        if (iface != "none")
        {
            return $"Can't hot-add drive to type {(iface == "ide" ? 1 : 0)}\n";
        }
        vm.Blocks.AddDrive(options.Pairs);
        return "OK\n";
    }

    /// <summary>Block HMP commands print the block layer's error as is (QEMU's error_report), without "Error: ".</summary>
    private static string BlockCommand(Func<string> action)
    {
        try
        {
            return action();
        }
        catch (BlockException e)
        {
            return e.Message + "\n";
        }
        catch (OptionsException e)
        {
            return e.Message + "\n";
        }
    }

    private static string BlockCommand(Action action) => BlockCommand(() =>
    {
        action();
        return "";
    });

    private static string Run(Action action)
    {
        action();
        return "";
    }

    private static string Chardevs(VirtualMachine vm)
    {
        var sb = new StringBuilder();
        foreach (Chardev chardev in ChardevFactory.All(vm.Tree))
        {
            sb.Append(chardev.Name).Append(": filename=").Append(chardev is IChardevInfo info ? info.Filename : chardev.TypeName).Append('\n');
        }
        return sb.ToString();
    }

    private static string IoThreads(VirtualMachine vm)
    {
        var sb = new StringBuilder();
        foreach (KeyValuePair<string, QomObject> child in vm.Tree.Objects.Children)
        {
            if (child.Value is IoThread t)
            {
                sb.Append(child.Key).Append(":\n");
                sb.Append("  thread_id=").Append(t.ThreadId).Append('\n');
                sb.Append("  poll-max-ns=").Append(t.Values.GetInt("poll-max-ns")).Append('\n');
                sb.Append("  poll-grow=").Append(t.Values.GetInt("poll-grow")).Append('\n');
                sb.Append("  poll-shrink=").Append(t.Values.GetInt("poll-shrink")).Append('\n');
                sb.Append("  aio-max-batch=").Append(t.Values.GetInt("aio-max-batch")).Append('\n');
            }
        }
        return sb.ToString();
    }
}
