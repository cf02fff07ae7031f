using System.Runtime.InteropServices;
using Colo.Core.Options;
using Colo.Machine;

namespace Colo.QemuSystem;

/// <summary>
/// <c>qemu-system-x86_64</c>: reads the command line, builds the VM and runs its main loop. Errors are
/// one <c>qemu-system-x86_64: CONTEXT: reason</c> line on stderr and exit status 1, as QEMU prints them.
/// </summary>
internal static class Program
{
    private const string Prog = "qemu-system-x86_64";

    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static int Main(string[] args)
    {
        KeyValParser.WarningSink = w => Console.Error.WriteLine($"{Prog}: warning: {w}");
        ConfigBuilder builder;
        try
        {
            builder = QemuCommandLine.Parse(args);
        }
        catch (StartupException e)
        {
            return Fail(e);
        }
        if (builder.InformationalOutput is { } text)
        {
            Console.Out.Write(text);
            Console.Out.Flush();
            return 0;
        }

        MachineConfig config = builder.Config;
        if (config.Daemonize)
        {
            if (DaemonizeConflict(config) is { } conflict)
            {
                Console.Error.WriteLine($"{Prog}: {conflict}");
                return 1;
            }
            if (Daemon.StatusSocket is null)
            {
                return Daemon.RunLauncher(args);
            }
        }
        using var vm = new VirtualMachine(config, CurrentStderr.Instance);
        string? pidError = null;
        using PidFile? pidFile = config.PidFile is null ? null : PidFile.Create(config.PidFile, out pidError);
        if (pidError is not null)
        {
            Console.Error.WriteLine($"{Prog}: cannot create PID file: {pidError}");
            return 1;
        }
        try
        {
            vm.Build();
        }
        catch (StartupException e)
        {
            return Fail(e);
        }

        if (config.Daemonize)
        {
            Daemon.Detach();
        }

        using PosixSignalRegistration term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => OnSignal(ctx, vm, 15));
        using PosixSignalRegistration interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => OnSignal(ctx, vm, 2));
        using PosixSignalRegistration hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, ctx => OnSignal(ctx, vm, 1));
        return vm.Run();
    }

    private static void OnSignal(PosixSignalContext context, VirtualMachine vm, int number)
    {
        context.Cancel = true;
        vm.MainLoop.Post(() =>
        {
            Console.Error.WriteLine($"{Prog}: terminating on signal {number}");
            vm.RequestShutdown(false, "host-signal");
        });
    }

    /// <summary>Writes to whatever Console.Error is now, so the VM's messages follow a daemon's detach.</summary>
    private sealed class CurrentStderr : TextWriter
    {
        public static readonly CurrentStderr Instance = new();

        public override System.Text.Encoding Encoding => Console.Error.Encoding;

        public override void Write(char value) => Console.Error.Write(value);

        public override void Write(string? value) => Console.Error.Write(value);

        public override void WriteLine(string? value) => Console.Error.WriteLine(value);
    }

    /// <summary>What QEMU refuses to combine with -daemonize: anything on the terminal.</summary>
    private static string? DaemonizeConflict(MachineConfig config)
    {
        if (config.NoGraphic)
        {
            return "-nographic cannot be used with -daemonize";
        }
        foreach (CompatChardev compat in config.CompatChardevs)
        {
            if (compat.Spec == "stdio" || compat.Spec.StartsWith("mon:stdio", StringComparison.Ordinal))
            {
                return $"{compat.Context}: cannot use stdio with -daemonize";
            }
        }
        foreach (OptionEntry chardev in config.Chardevs)
        {
            if (chardev.Value["backend"] == "stdio")
            {
                return $"{chardev.Context}: cannot use stdio with -daemonize";
            }
        }
        return null;
    }

    private static int Fail(StartupException e)
    {
        Console.Error.WriteLine(e.Context is null ? $"{Prog}: {e.Message}" : $"{Prog}: {e.Context}: {e.Message}");
        return 1;
    }
}
