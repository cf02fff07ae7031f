using System.Text.Json;
using Colo.Core.Qmp;
using Colo.Monitor.Hmp;

namespace Colo.Monitor.Qmp;

/// <summary>The commands the monitor itself owns, one row each.</summary>
public static class MonitorQmpCommands
{
    /// <summary>Registers <c>qmp_capabilities</c>, <c>query-commands</c> and <c>human-monitor-command</c>.</summary>
    /// <param name="r">The command table (not yet frozen).</param>
    /// <param name="hmp">Where <c>human-monitor-command</c> sends its command line.</param>
    /// <param name="cpuExists">Whether a <c>cpu-index</c> names an existing vCPU; null accepts any.</param>
    public static void Register(QmpCommandRegistry r, HmpCommandRegistry hmp, Func<long, bool>? cpuExists = null)
    {
        MonitorQmpJsonContext j = MonitorQmpJsonContext.Default;
        r.Register("qmp_capabilities", j.QmpCapabilitiesArguments, j.QmpEmpty, QmpCapabilities, allowedBeforeNegotiation: true);
        r.Register("query-commands", j.QmpNoArgs, j.IReadOnlyListCommandInfo, (QmpNoArgs _) => QueryCommands(r));
        r.Register("human-monitor-command", j.HumanMonitorCommandArguments, j.String, a => HumanMonitorCommand(a, hmp, cpuExists));
    }

    private static QmpEmpty QmpCapabilities(QmpCapabilitiesArguments args, QmpContext context)
    {
        bool oob = false;
        if (args.Enable is { } enable)
        {
            // Checked here rather than by type so each element gets QEMU's own message, in QEMU's order.
            if (enable.ValueKind != JsonValueKind.Array)
            {
                throw new QmpException("Invalid parameter type for 'enable', expected: array");
            }
            int i = 0;
            foreach (JsonElement capability in enable.EnumerateArray())
            {
                if (capability.ValueKind != JsonValueKind.String)
                {
                    throw new QmpException($"Invalid parameter type for 'enable[{i}]', expected: string");
                }
                if (capability.GetString() != "oob")
                {
                    // QEMU's visitor names list elements 'null' in this message.
                    throw new QmpException($"Parameter 'null' does not accept value '{capability.GetString()}'");
                }
                oob = true;
                i++;
            }
        }
        if (context.Session is not QmpMonitor monitor || !monitor.IsNegotiating)
        {
            throw new QmpException("Capabilities negotiation is already complete, command ignored", QmpErrorClass.CommandNotFound);
        }
        monitor.CompleteNegotiation(oob);
        return QmpEmpty.Instance;
    }

    private static IReadOnlyList<CommandInfo> QueryCommands(QmpCommandRegistry r)
    {
        IReadOnlyList<string> names = r.Names;
        var list = new CommandInfo[names.Count];
        for (int i = 0; i < list.Length; i++)
        {
            list[i] = new CommandInfo { Name = names[i] };
        }
        return list;
    }

    private static string HumanMonitorCommand(HumanMonitorCommandArguments args, HmpCommandRegistry hmp, Func<long, bool>? cpuExists)
    {
        if (args.CpuIndex is { } cpu && cpuExists is not null && !cpuExists(cpu))
        {
            throw new QmpException("Parameter 'cpu-index' expects a CPU number");
        }
        return hmp.Execute(args.CommandLine);
    }
}
