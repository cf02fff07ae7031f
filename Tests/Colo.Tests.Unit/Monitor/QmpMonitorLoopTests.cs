using Colo.Core.Loop;
using Colo.Core.Qmp;
using Colo.Monitor.Hmp;
using Colo.Monitor.Qmp;

namespace Colo.Tests.Unit.Monitor;

[TestFixture]
public sealed class QmpMonitorLoopTests
{
    [Test]
    public void Receive_RealEventLoop_CommandsAndEventsRunOnLoopThread()
    {
        using var loop = new EventLoop("monitor-test");
        loop.StartThread();
        using var running = new ManualResetEventSlim();
        loop.Post(running.Set);
        Assert.That(running.Wait(TimeSpan.FromSeconds(10)), Is.True); // Invoke below then really goes through the loop
        bool? handlerOnLoop = null;
        var registry = new QmpCommandRegistry();
        MonitorQmpCommands.Register(registry, new HmpCommandRegistry());
        MonitorTestJsonContext j = MonitorTestJsonContext.Default;
        registry.Register("x-where", j.QmpNoArgs, j.QmpEmpty, (QmpNoArgs _) =>
        {
            handlerOnLoop = loop.IsLoopThread;
            return QmpEmpty.Instance;
        });
        registry.Freeze();
        var events = new QmpEventBus();
        var chardev = new MemoryChardev();
        using var monitor = new QmpMonitor(chardev, loop, registry, events, new QmpVersionInfo(7, 2, 0, "Colo 0.1.0"));
        monitor.Start();

        // The test thread plays the backend's I/O thread and an event producer on another thread.
        chardev.Send("{\"execute\":\"qmp_capabilities\"}{\"execute\":\"x-");
        chardev.Send("where\",\"id\":1}");
        loop.Invoke(() => 0); // everything posted so far has run
        events.Emit("RESUME");
        string output = loop.Invoke(() => chardev.Output);

        Assert.That(handlerOnLoop, Is.True);
        string[] lines = output.Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(4));
        Assert.That(lines[1], Is.EqualTo("{\"return\": {}}"));
        Assert.That(lines[2], Is.EqualTo("{\"return\": {}, \"id\": 1}"));
        Assert.That(lines[3], Does.EndWith("\"event\": \"RESUME\"}"));
    }
}
