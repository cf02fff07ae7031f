using System.Text.Json.Serialization;
using Colo.Core.Qmp;
using Colo.Monitor.Hmp;
using Colo.Monitor.Qmp;

namespace Colo.Tests.Unit.Monitor;

/// <summary>Records for the stand-in commands the tests register next to the monitor's own.</summary>
internal sealed record EchoArguments
{
    [JsonPropertyName("value")]
    public required string Value { get; init; }
}

[JsonSerializable(typeof(QmpNoArgs))]
[JsonSerializable(typeof(QmpEmpty))]
[JsonSerializable(typeof(EchoArguments))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(double))]
internal sealed partial class MonitorTestJsonContext : JsonSerializerContext;

/// <summary>A monitor on an in-memory chardev with the monitor's commands plus QEMU-like stand-ins.</summary>
internal sealed class QmpTestHost
{
    public const string Greeting = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"Colo 0.1.0\"}, \"capabilities\": [\"oob\"]}}\r\n";

    public QmpTestHost(QmpEventBus? events = null)
    {
        Events = events ?? new QmpEventBus();
        Hmp = new HmpCommandRegistry();
        Hmp.RegisterInfo("status", "", "show the current VM status (running|paused)", _ => "VM status: paused (prelaunch)\n");
        Registry = new QmpCommandRegistry();
        MonitorQmpCommands.Register(Registry, Hmp);
        MonitorTestJsonContext j = MonitorTestJsonContext.Default;
        // query-name with no name set answers {} in QEMU, which makes it a handy probe for transcripts.
        Registry.Register("query-name", j.QmpNoArgs, j.QmpEmpty, (QmpNoArgs _) => QmpEmpty.Instance);
        Registry.Register("x-echo", j.EchoArguments, j.String, (EchoArguments a) => a.Value);
        Registry.Register("x-crash", j.QmpNoArgs, j.QmpEmpty, (QmpNoArgs _) => throw new InvalidOperationException("boom"));
        Registry.Register("x-pi", j.QmpNoArgs, j.Double, (QmpNoArgs _) => 3.14159);
        Registry.Freeze();
        Chardev = new MemoryChardev();
        Monitor = new QmpMonitor(Chardev, new InlineLoop(), Registry, Events, new QmpVersionInfo(7, 2, 0, "Colo 0.1.0"));
        Monitor.Start();
    }

    public QmpEventBus Events { get; }

    public HmpCommandRegistry Hmp { get; }

    public QmpCommandRegistry Registry { get; }

    public MemoryChardev Chardev { get; }

    public QmpMonitor Monitor { get; }

    /// <summary>Everything written after the greeting.</summary>
    public string AfterGreeting
    {
        get
        {
            string all = Chardev.Output;
            Assert.That(all, Does.StartWith(Greeting));
            return all[Greeting.Length..];
        }
    }
}
