using System.Text;
using System.Text.Json;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd;

/// <summary>No input on any monitor makes the process die or hang; a second monitor proves it is still alive.</summary>
[TestFixture]
public sealed class MonitorRobustnessTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("colo-e2e-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private async Task<(QemuProcess Qemu, QmpClient Stdio, QmpClient Witness)> StartAsync()
    {
        string path = Path.Combine(_dir, "witness.sock");
        QemuProcess qemu = QemuProcess.Start("-M", "none", "-S", "-qmp", "stdio", "-qmp", $"unix:{path},server=on,wait=off");
        QmpClient stdio = QmpClient.OverStdio(qemu);
        QmpClient witness = await QmpClient.ConnectUnixAsync(path);
        await stdio.HandshakeAsync();
        await witness.HandshakeAsync();
        return (qemu, stdio, witness);
    }

    private static async Task AssertAliveAsync(QemuProcess qemu, QmpClient witness)
    {
        Assert.That(await witness.ExecuteAsync("""{"execute": "query-status"}"""), Does.Contain("\"prelaunch\""), qemu.Stderr);
        Assert.That(qemu.HasExited, Is.False);
    }

    [Test]
    public async Task RandomBytes_NeverKillTheProcess_AndEveryReplyIsJson()
    {
        (QemuProcess qemu, QmpClient stdio, QmpClient witness) = await StartAsync();
        using (qemu)
        using (stdio)
        using (witness)
        {
            var random = new Random(20261125);
            string[] fragments = ["{", "}", "[", "]", "\"", "'", ":", ",", "execute", "\"execute\"", "qmp_capabilities", "query-status", "\\u0000", "\\", "1e999", "-", "null", "true", " ", "\n", "\u00e9", "\u0001"];
            var text = new StringBuilder();
            for (int i = 0; i < 400; i++)
            {
                text.Clear();
                int n = random.Next(1, 12);
                for (int j = 0; j < n; j++)
                {
                    text.Append(fragments[random.Next(fragments.Length)]);
                }
                await stdio.SendAsync(text.ToString());
            }
            // Close any value left open, then prove the stdio monitor still answers too.
            await stdio.SendAsync("\n" + new string(']', 64) + new string('}', 64) + "\n");
            await AssertAliveAsync(qemu, witness);
            await stdio.SendAsync("""{"execute": "query-name", "id": "final"}""" + "\n");
            while (true)
            {
                string line = await stdio.NextLineAsync();
                Assert.DoesNotThrow(() => JsonDocument.Parse(line), line);
                if (line.Contains("\"final\"", StringComparison.Ordinal))
                {
                    break;
                }
            }
        }
    }

    [Test]
    public async Task TenMegabyteLine_GetsAnErrorOrReply_AndMonitorLivesOn()
    {
        (QemuProcess qemu, QmpClient stdio, QmpClient witness) = await StartAsync();
        using (qemu)
        using (stdio)
        using (witness)
        {
            string huge = "{\"execute\": \"query-status\", \"arguments\": {\"x\": \"" + new string('a', 10 * 1024 * 1024) + "\"}}\n";
            await stdio.SendAsync(huge);
            string reply = await stdio.NextLineAsync();
            Assert.That(reply, Does.StartWith("{\"error\": "));
            await AssertAliveAsync(qemu, witness);
            Assert.That(await stdio.ExecuteAsync("""{"execute": "query-status"}"""), Does.Contain("\"prelaunch\""));
        }
    }

    [Test]
    public async Task InputClosedMidMessage_ProcessKeepsRunning()
    {
        (QemuProcess qemu, QmpClient stdio, QmpClient witness) = await StartAsync();
        using (qemu)
        using (stdio)
        using (witness)
        {
            await stdio.SendAsync("""{"execute": "query-st""");
            qemu.Stdin.Close();
            await AssertAliveAsync(qemu, witness);
            Assert.That(await witness.ExecuteAsync("""{"execute": "quit"}"""), Is.EqualTo("""{"return": {}}"""));
            Assert.That(qemu.WaitForExit(), Is.Zero);
        }
    }

    [Test]
    public async Task SocketClientVanishingMidMessage_ServerAcceptsNextClient()
    {
        (QemuProcess qemu, QmpClient stdio, QmpClient witness) = await StartAsync();
        using (qemu)
        using (stdio)
        {
            await witness.SendAsync("""{"execute": "qmp_capab""");
            witness.Dispose();
            using QmpClient next = await QmpClient.ConnectUnixAsync(Path.Combine(_dir, "witness.sock"));
            await next.HandshakeAsync();
            await AssertAliveAsync(qemu, next);
        }
    }
}
