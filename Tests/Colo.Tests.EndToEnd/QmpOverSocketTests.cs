using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd;

/// <summary>QMP on unix and TCP sockets (<c>-qmp unix:...</c>, <c>-qmp tcp:...</c>, <c>-mon</c>), several monitors at once.</summary>
[TestFixture]
public sealed class QmpOverSocketTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("colo-e2e-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public async Task UnixSocketMonitor_AnswersAndGreetsEachNewClient()
    {
        string path = Path.Combine(_dir, "qmp.sock");
        using QemuProcess qemu = QemuProcess.Start("-M", "none", "-S", "-display", "none", "-qmp", $"unix:{path},server=on,wait=off");
        using (QmpClient first = await QmpClient.ConnectUnixAsync(path))
        {
            Assert.That(await first.HandshakeAsync(), Does.StartWith("""{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}"""));
            Assert.That(await first.ExecuteAsync("""{"execute": "query-status"}"""), Does.Contain("\"prelaunch\""));
        }
        using QmpClient second = await QmpClient.ConnectUnixAsync(path);
        string greeting = await second.NextLineAsync();
        Assert.That(greeting, Does.StartWith("""{"QMP": """));
        Assert.That(await second.ExecuteAsync("""{"execute": "query-status"}"""), Does.Contain("Expecting capabilities negotiation"));
    }

    [Test]
    public async Task TcpMonitor_AndStdioMonitor_WorkSideBySide_AndBothSeeEvents()
    {
        int port = FreePort.Next();
        using QemuProcess qemu = QemuProcess.Start("-M", "none", "-S", "-qmp", "stdio", "-qmp", $"tcp:127.0.0.1:{port},server=on,wait=off");
        using QmpClient stdio = QmpClient.OverStdio(qemu);
        using QmpClient tcp = await QmpClient.ConnectTcpAsync(port);
        await stdio.HandshakeAsync();
        await tcp.HandshakeAsync();
        Assert.That(await tcp.ExecuteAsync("""{"execute": "cont"}"""), Is.EqualTo("""{"return": {}}"""));
        Assert.That(await stdio.NextLineAsync(), Does.Contain("\"event\": \"RESUME\""));
        Assert.That(await stdio.ExecuteAsync("""{"execute": "query-status"}"""), Does.Contain("\"running\""));
    }

    [Test]
    public async Task MonOnChardev_ControlMode_IsQmp()
    {
        string path = Path.Combine(_dir, "mon.sock");
        using QemuProcess qemu = QemuProcess.Start("-M", "none", "-S", "-chardev", $"socket,id=mon0,path={path},server=on,wait=off", "-mon", "chardev=mon0,mode=control");
        using QmpClient qmp = await QmpClient.ConnectUnixAsync(path);
        await qmp.HandshakeAsync();
        Assert.That(await qmp.ExecuteAsync("""{"execute": "query-version"}"""), Does.StartWith("""{"return": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Colo """));
    }
}
