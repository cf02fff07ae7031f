using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Net;

/// <summary>
/// <c>-netdev socket</c> and <c>hubport</c> against the published emulator: two listening socket netdevs joined by a
/// hub carry frames between two TCP clients with QEMU's 4-byte big-endian length framing; a garbled prefix closes
/// only that connection; netdev_add/netdev_del and <c>info network</c> read as in QEMU 7.2.
/// </summary>
[TestFixture]
public sealed class SocketNetdevTests
{
    private static async Task<string> Hmp(QmpClient qmp, string command)
    {
        string reply = await qmp.ExecuteAsync($"{{\"execute\": \"human-monitor-command\", \"arguments\": {{\"command-line\": \"{JsonEncodedText.Encode(command)}\"}}}}");
        return QmpClient.Parse(reply).GetProperty("return").GetString()!;
    }

    private static async Task WaitForInfo(QmpClient qmp, Func<string, bool> ready)
    {
        DateTime deadline = DateTime.UtcNow + QemuProcess.Timeout;
        string info;
        while (!ready(info = await Hmp(qmp, "info network")))
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), info);
            await Task.Delay(20);
        }
    }

    private static byte[] Framed(byte[] frame)
    {
        var data = new byte[4 + frame.Length];
        BinaryPrimitives.WriteInt32BigEndian(data, frame.Length);
        frame.CopyTo(data, 4);
        return data;
    }

    private static byte[] ReadExactly(Socket s, int count)
    {
        var data = new byte[count];
        int got = 0;
        while (got < count)
        {
            int n = s.Receive(data, got, count - got, SocketFlags.None);
            Assert.That(n, Is.GreaterThan(0), "connection closed early");
            got += n;
        }
        return data;
    }

    [Test]
    public async Task TwoSocketNetdevsOnAHub_ForwardFramedFrames_BothWays()
    {
        int p1 = FreePort.Next();
        int p2 = FreePort.Next();
        using QemuProcess qemu = QemuProcess.Start("-M", "none", "-display", "none", "-nodefaults", "-qmp", "stdio",
            "-netdev", $"socket,id=s1,listen=127.0.0.1:{p1}", "-netdev", "hubport,id=h1,hubid=0,netdev=s1",
            "-netdev", $"socket,id=s2,listen=127.0.0.1:{p2}", "-netdev", "hubport,id=h2,hubid=0,netdev=s2");
        using QmpClient qmp = QmpClient.OverStdio(qemu);
        await qmp.HandshakeAsync();
        Assert.That(await Hmp(qmp, "info network"), Is.EqualTo("hub 0\r\n \\ h2: s2: index=0,type=socket,\r\n \\ h1: s1: index=0,type=socket,\r\n"));

        using var c1 = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 10_000 };
        using var c2 = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 10_000 };
        c1.Connect("127.0.0.1", p1);
        c2.Connect("127.0.0.1", p2);
        await WaitForInfo(qmp, i => i.Split("connection from").Length == 3);
        string info = await Hmp(qmp, "info network");
        Assert.That(info, Does.Match(@"^hub 0\r\n \\ h2: s2: index=0,type=socket,socket: connection from 127\.0\.0\.1:\d+\r\n \\ h1: s1: index=0,type=socket,socket: connection from 127\.0\.0\.1:\d+\r\n$"));

        byte[] frame = [.. Enumerable.Range(0, 60).Select(i => (byte)i)];
        // Sent in two pieces that split the length prefix: framing must not depend on read boundaries.
        byte[] framed = Framed(frame);
        c1.Send(framed.AsSpan(0, 2));
        await Task.Delay(20);
        c1.Send(framed.AsSpan(2));
        Assert.That(ReadExactly(c2, 64), Is.EqualTo(framed));
        byte[] back = Framed([0xAB, 0xCD]);
        c2.Send(back);
        Assert.That(ReadExactly(c1, back.Length), Is.EqualTo(back));

        // A garbled length prefix closes that connection only; the listener takes a new client.
        c1.Send([0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]);
        Assert.That(c1.Receive(new byte[16]), Is.Zero, "garbled stream closed");
        using var c3 = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 10_000 };
        c3.Connect("127.0.0.1", p1);
        await WaitForInfo(qmp, i => i.Contains($"connection from 127.0.0.1:{((System.Net.IPEndPoint)c3.LocalEndPoint!).Port}"));
        c3.Send(Framed([7, 7, 7]));
        Assert.That(ReadExactly(c2, 7), Is.EqualTo(Framed([7, 7, 7])));

        Assert.That(await qmp.ExecuteAsync("""{"execute": "netdev_del", "arguments": {"id": "s1"}}"""), Is.EqualTo("""{"return": {}}"""));
        Assert.That(c3.Receive(new byte[16]), Is.Zero, "deleting the netdev closes its connection");
        Assert.That(await Hmp(qmp, "info network"), Does.Match(@"^hub 0\r\n \\ h2: s2: index=0,type=socket,socket: connection from 127\.0\.0\.1:\d+\r\n \\ h1\r\n$"));
        Assert.That(await qmp.ExecuteAsync("{\"execute\": \"quit\"}"), Is.EqualTo("{\"return\": {}}"));
        Assert.That(qemu.WaitForExit(), Is.Zero);
    }

    [Test]
    public async Task NetdevAddDel_QemuTexts()
    {
        using QemuProcess qemu = QemuProcess.Start("-M", "none", "-display", "none", "-nodefaults", "-qmp", "stdio");
        using QmpClient qmp = QmpClient.OverStdio(qemu);
        await qmp.HandshakeAsync();
        string[] expected =
        [
            """{"return": {}}""",
            """{"error": {"class": "GenericError", "desc": "Duplicate ID 'h0'"}}""",
            """{"error": {"class": "GenericError", "desc": "s2: Can't use file descriptor 999: Bad file descriptor"}}""",
            """{"error": {"class": "GenericError", "desc": "Parameter 'type' does not accept value 'nope'"}}""",
            """{"error": {"class": "GenericError", "desc": "Parameter 'id' expects an identifier"}}""",
            """{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'hubid', expected: integer"}}""",
            """{"error": {"class": "GenericError", "desc": "Parameter 'foo' is unexpected"}}""",
            """{"error": {"class": "GenericError", "desc": "exactly one of listen=, connect=, mcast= or udp= is required"}}""",
            """{"error": {"class": "DeviceNotFound", "desc": "Device 'zz' not found"}}""",
            """{"return": {}}""",
        ];
        string[] commands =
        [
            """{"execute": "netdev_add", "arguments": {"type": "hubport", "id": "h0", "hubid": 0}}""",
            """{"execute": "netdev_add", "arguments": {"type": "hubport", "id": "h0", "hubid": 0}}""",
            """{"execute": "netdev_add", "arguments": {"type": "socket", "id": "s2", "fd": "999"}}""",
            """{"execute": "netdev_add", "arguments": {"type": "nope", "id": "x"}}""",
            """{"execute": "netdev_add", "arguments": {"type": "socket", "id": "1bad", "listen": "127.0.0.1:0"}}""",
            """{"execute": "netdev_add", "arguments": {"type": "hubport", "id": "h9", "hubid": "x"}}""",
            """{"execute": "netdev_add", "arguments": {"type": "hubport", "id": "h9", "hubid": 0, "foo": 1}}""",
            """{"execute": "netdev_add", "arguments": {"type": "socket", "id": "s3"}}""",
            """{"execute": "netdev_del", "arguments": {"id": "zz"}}""",
            """{"execute": "netdev_del", "arguments": {"id": "h0"}}""",
        ];
        for (int i = 0; i < commands.Length; i++)
        {
            Assert.That(await qmp.ExecuteAsync(commands[i]), Is.EqualTo(expected[i]), commands[i]);
        }
        Assert.That(await Hmp(qmp, "netdev_add hubport,id=h7,hubid=0"), Is.Empty);
        Assert.That(await Hmp(qmp, "info network"), Is.EqualTo("hub 0\r\n \\ h7\r\n"));
        Assert.That(await Hmp(qmp, "netdev_del h7"), Is.Empty);
        Assert.That(await Hmp(qmp, "netdev_del h7"), Is.EqualTo("Error: Device 'h7' not found\r\n"));
        await qmp.ExecuteAsync("{\"execute\": \"quit\"}");
    }

    [TestCase("socket,id=n,fd=987", "n: Can't use file descriptor 987: Bad file descriptor")]
    [TestCase("socket,id=n,fd=abc", "Invalid file descriptor number 'abc'")]
    [TestCase("socket,id=n", "exactly one of listen=, connect=, mcast= or udp= is required")]
    [TestCase("socket,id=n,fd=3,listen=:1", "exactly one of listen=, connect=, mcast= or udp= is required")]
    [TestCase("socket,id=n,udp=127.0.0.1:1", "localaddr= is mandatory with udp=")]
    [TestCase("socket,id=n,localaddr=127.0.0.1:1,connect=127.0.0.1:2", "localaddr= is only valid with mcast= or udp=")]
    [TestCase("socket,id=n,listen=127.0.0.1:notaport", "port number 'notaport' is invalid")]
    [TestCase("tap,id=n,fd=987", "n: Can't use file descriptor 987: Bad file descriptor")]
    [TestCase("tap,id=n,fd=abc", "Invalid file descriptor number 'abc'")]
    [TestCase("tap,id=n,fd=3,ifname=x", "ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, fds=, and vhostfds= are invalid with fd=")]
    [TestCase("hubport,id=n", "Parameter 'hubid' is missing")]
    [TestCase("hubport,id=n,hubid=0,netdev=zz", "netdev 'zz' not found")]
    public void CommandLineErrors_QemuTexts(string netdev, string message)
    {
        (int code, _, string stderr) = QemuProcess.Run("-M", "none", "-display", "none", "-nodefaults", "-netdev", netdev);
        Assert.That((code, stderr), Is.EqualTo((1, $"qemu-system-x86_64: -netdev {netdev}: {message}\n")));
    }

    [Test]
    public void CommandLine_DuplicateId_QemuText()
    {
        (int code, _, string stderr) = QemuProcess.Run("-M", "none", "-display", "none", "-nodefaults",
            "-netdev", "hubport,id=n,hubid=0", "-netdev", "hubport,id=n,hubid=0");
        Assert.That((code, stderr), Is.EqualTo((1, "qemu-system-x86_64: -netdev hubport,id=n,hubid=0: Duplicate ID 'n' for netdev\n")));
    }
}
