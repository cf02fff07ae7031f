using System.Text;
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
        r.Register("stop", "", "stop emulation", _ => Run(vm.Stop));
        r.Register("cont|c", "", "resume emulation", _ => Run(vm.Cont));
        r.Register("system_reset", "", "reset the system", _ => Run(() => vm.Reset(false, "host-qmp-system-reset")));
        r.Register("quit|q", "", "quit the emulator", _ => Run(() => vm.RequestShutdown(false, "host-qmp-quit")));
        r.Register("object_add", "[qom-type=]type,id=str[,prop=value][,...]", "create QOM object",
            args => Run(() => vm.AddUserObject(KeyValParser.Parse(args.Trim(), "qom-type"))));
        r.Register("object_del", "id", "destroy QOM object", args => Run(() => vm.DeleteUserObject(args.Trim())));
    }

    /// <summary>QEMU's <c>info status</c>: "running", "paused", or "paused (STATE)" for the other stopped states.</summary>
    public static string StatusText(RunState state) => state switch
    {
        RunState.Running => "VM status: running\n",
        RunState.Paused => "VM status: paused\n",
        _ => $"VM status: paused ({state.ToQapi()})\n",
    };

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
