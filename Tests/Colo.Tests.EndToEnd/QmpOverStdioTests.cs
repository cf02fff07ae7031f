using System.Text.RegularExpressions;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd;

/// <summary>The built qemu-system-x86_64 speaking QMP on stdio, as QEMU's COLO document drives it.</summary>
[TestFixture]
public sealed partial class QmpOverStdioTests
{
    [GeneratedRegex("""^\{"QMP": \{"version": \{"qemu": \{"micro": 0, "minor": 2, "major": 7\}, "package": "Colo \d+\.\d+\.\d+"\}, "capabilities": \["oob"\]\}\}$""")]
    private static partial Regex Greeting();

    [Test]
    public async Task Greeting_ThenNegotiation_ThenQueryStatusPrelaunch()
    {
        using QemuProcess qemu = QemuProcess.Start("-M", "none", "-S", "-qmp", "stdio", "-name", "primary");
        using QmpClient qmp = QmpClient.OverStdio(qemu);
        string greeting = await qmp.NextLineAsync();
        Assert.That(greeting, Does.Match(Greeting()));
        Assert.That(await qmp.ExecuteAsync("{'execute':'query-status'}"), Is.EqualTo("""{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"""));
        Assert.That(await qmp.ExecuteAsync("{'execute':'qmp_capabilities'}"), Is.EqualTo("""{"return": {}}"""));
        Assert.That(await qmp.ExecuteAsync("{'execute':'query-status'}"), Is.EqualTo("""{"return": {"status": "prelaunch", "singlestep": false, "running": false}}"""));
        Assert.That(await qmp.ExecuteAsync("""{"execute": "query-name", "id": {"a": [1, "x"]}}"""), Is.EqualTo("""{"return": {"name": "primary"}, "id": {"a": [1, "x"]}}"""));
    }

    [Test]
    public async Task Incoming_QueryStatusIsInmigrate()
    {
        int port = FreePort.Next();
        using QemuProcess qemu = QemuProcess.Start("-M", "none", "-qmp", "stdio", "-incoming", $"tcp:127.0.0.1:{port}");
        using QmpClient qmp = QmpClient.OverStdio(qemu);
        await qmp.HandshakeAsync();
        Assert.That(await qmp.ExecuteAsync("""{"execute": "query-status"}"""), Is.EqualTo("""{"return": {"status": "inmigrate", "singlestep": false, "running": false}}"""));
    }

    [Test]
    public async Task StopContReset_EmitEventsBeforeReplies()
    {
        using QemuProcess qemu = QemuProcess.Start("-M", "none", "-S", "-qmp", "stdio");
        using QmpClient qmp = QmpClient.OverStdio(qemu);
        await qmp.HandshakeAsync();
        await qmp.SendAsync("""{"execute": "cont"}""" + "\n");
        Assert.That(await qmp.NextLineAsync(), Does.Match("""^\{"timestamp": \{"seconds": \d+, "microseconds": \d+\}, "event": "RESUME"\}$"""));
        Assert.That(await qmp.NextLineAsync(), Is.EqualTo("""{"return": {}}"""));
        await qmp.SendAsync("""{"execute": "stop"}""" + "\n");
        Assert.That(await qmp.NextLineAsync(), Does.Contain("\"event\": \"STOP\""));
        Assert.That(await qmp.NextLineAsync(), Is.EqualTo("""{"return": {}}"""));
        await qmp.SendAsync("""{"execute": "system_reset"}""" + "\n");
        Assert.That(await qmp.NextLineAsync(), Does.EndWith("\"event\": \"RESET\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-system-reset\"}}"));
        Assert.That(await qmp.NextLineAsync(), Is.EqualTo("""{"return": {}}"""));
        Assert.That(await qmp.ExecuteAsync("""{"execute": "query-status"}"""), Does.Contain("\"prelaunch\""));
    }

    [Test]
    public async Task Quit_EmitsShutdown_RepliesAndExitsZero()
    {
        using QemuProcess qemu = QemuProcess.Start("-M", "none", "-S", "-qmp", "stdio");
        using QmpClient qmp = QmpClient.OverStdio(qemu);
        await qmp.HandshakeAsync();
        await qmp.SendAsync("""{"execute": "quit"}""" + "\n");
        Assert.That(await qmp.NextLineAsync(), Does.EndWith("\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}"));
        Assert.That(await qmp.NextLineAsync(), Is.EqualTo("""{"return": {}}"""));
        Assert.That(qemu.WaitForExit(), Is.Zero);
    }

    [Test]
    public async Task Sigterm_ExitsZeroWithQemuMessage()
    {
        using QemuProcess qemu = QemuProcess.Start("-M", "none", "-S", "-qmp", "stdio");
        using QmpClient qmp = QmpClient.OverStdio(qemu);
        await qmp.HandshakeAsync();
        qemu.Terminate();
        Assert.That(qemu.WaitForExit(), Is.Zero);
        Assert.That(qemu.Stderr, Does.Contain("qemu-system-x86_64: terminating on signal 15"));
    }

    [TestCase("""{"execute": "nope"}""", """{"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}""")]
    [TestCase("[1]", """{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}""")]
    [TestCase("""{"execute": "query-status", "arguments": {"x": 1}}""", """{"error": {"class": "GenericError", "desc": "Parameter 'x' is unexpected"}}""")]
    [TestCase("""{"execute": "object-add", "arguments": {"qom-type": "iothread"}}""", """{"error": {"class": "GenericError", "desc": "Parameter 'id' is missing"}}""")]
    [TestCase("""{"execute": "object-del", "arguments": {"id": "nope"}}""", """{"error": {"class": "GenericError", "desc": "object 'nope' not found"}}""")]
    public async Task BadRequests_GetQemuErrors(string request, string reply)
    {
        using QemuProcess qemu = QemuProcess.Start("-M", "none", "-S", "-qmp", "stdio");
        using QmpClient qmp = QmpClient.OverStdio(qemu);
        await qmp.HandshakeAsync();
        Assert.That(await qmp.ExecuteAsync(request), Is.EqualTo(reply));
        Assert.That(await qmp.ExecuteAsync("""{"execute": "query-status"}"""), Does.StartWith("""{"return": """));
    }

    [Test]
    public async Task HumanMonitorCommand_InfoStatusAndVersion()
    {
        using QemuProcess qemu = QemuProcess.Start("-M", "none", "-S", "-qmp", "stdio");
        using QmpClient qmp = QmpClient.OverStdio(qemu);
        await qmp.HandshakeAsync();
        Assert.That(await qmp.ExecuteAsync("""{"execute": "human-monitor-command", "arguments": {"command-line": "info status"}}"""), Is.EqualTo("""{"return": "VM status: paused (prelaunch)\r\n"}"""));
        Assert.That(await qmp.ExecuteAsync("""{"execute": "human-monitor-command", "arguments": {"command-line": "info version"}}"""), Does.Match("""^\{"return": "7\.2\.0Colo \d+\.\d+\.\d+\\r\\n"\}$"""));
        Assert.That(await qmp.ExecuteAsync("""{"execute": "human-monitor-command", "arguments": {"command-line": "foo"}}"""), Is.EqualTo("""{"return": "unknown command: 'foo'\r\n"}"""));
    }
}
