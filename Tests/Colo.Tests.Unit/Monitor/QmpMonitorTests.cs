using System.Text;
using System.Text.Json;
using Colo.Core.Qmp;
using Colo.Monitor.Hmp;
using Colo.Monitor.Json;
using Colo.Monitor.Qmp;
using CsCheck;

namespace Colo.Tests.Unit.Monitor;

[TestFixture]
public sealed class QmpMonitorTests
{
    private const string Negotiate = "{\"execute\":\"qmp_capabilities\"}\n";

    /// <summary>
    /// Inputs and the bytes QEMU 7.2.22 printed after its greeting, captured with
    /// <c>qemu-system-x86_64 -nodefaults -machine none -S -display none -qmp stdio</c> (SHUTDOWN event on exit
    /// dropped). Strings hold one byte per char. The greeting itself differs by design (version/package)
    /// and is checked separately.
    /// </summary>
    public static IEnumerable<TestCaseData> QemuTranscripts()
    {
        int n = 0;
        foreach ((string input, string expected) in QemuTranscriptData.Cases)
        {
            yield return new TestCaseData(input, expected).SetName($"Transcript_{n++:D3}");
        }
    }

    [TestCaseSource(nameof(QemuTranscripts))]
    public void Receive_QemuTranscript_SameBytesAsQemu(string input, string expected)
    {
        var host = new QmpTestHost();
        host.Chardev.Send(input);
        Assert.That(host.AfterGreeting, Is.EqualTo(expected));
    }

    [Test]
    public void Connect_Greeting_QemuFormat()
    {
        var host = new QmpTestHost();
        Assert.That(host.Chardev.Output, Is.EqualTo(QmpTestHost.Greeting));
    }

    [Test]
    public void Receive_AnyChunking_SameReplies()
    {
        string input = string.Concat(QemuTranscriptData.Cases.Select(c => c.Input));
        byte[] bytes = Encoding.Latin1.GetBytes(input);
        var whole = new QmpTestHost();
        whole.Chardev.Send(bytes);
        string expected = whole.Chardev.Output;

        Gen.Int[1, 97].Array[1, 40].Sample(sizes =>
        {
            var host = new QmpTestHost();
            int offset = 0;
            int k = 0;
            while (offset < bytes.Length)
            {
                int size = Math.Min(sizes[k++ % sizes.Length], bytes.Length - offset);
                host.Chardev.Send(bytes.AsSpan(offset, size));
                offset += size;
            }
            Assert.That(host.Chardev.Output, Is.EqualTo(expected));
        }, iter: 200);
    }

    [Test]
    public void Receive_RandomNearJson_NeverThrowsRepliesAreJsonAndStillAnswers()
    {
        string[] fragments =
        [
            "{", "}", "[", "]", ",", ":", "\"", "'", "\\", "\\u", "\\ud83d", "0", "-", "1.5e3", "12", "true", "nul", "x",
            " ", "\n", "\r", "\t", "\"execute\"", "\"qmp_capabilities\"", "\"query-name\"", "\"id\"", "\"arguments\"",
            "\"exec-oob\"", "{\"execute\":\"query-name\"}", "\u00c3", "\u00ff", "\u0001", "\u0000", "\u0080",
        ];
        Gen<string> piece = Gen.OneOf(Gen.OneOfConst(fragments), Gen.Char.Select(c => ((char)(c & 0xFF)).ToString()));
        piece.Array[0, 80].Sample(parts =>
        {
            var host = new QmpTestHost();
            Assert.DoesNotThrow(() => host.Chardev.Send(string.Concat(parts)));
            // QEMU's documented resynchronisation: a control character ends any token or string.
            host.Chardev.Send("\u0004\n" + Negotiate + "{\"execute\":\"query-commands\",\"id\":\"last\"}\n");
            string[] lines = host.Chardev.Output.Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
            foreach (string line in lines)
            {
                if (line.Contains(": inf", StringComparison.Ordinal) || line.Contains(": -inf", StringComparison.Ordinal))
                {
                    continue; // QEMU prints an overflowing number as inf, which is not JSON; so do we
                }
                Assert.DoesNotThrow(() => JsonDocument.Parse(line).Dispose(), line);
            }
            Assert.That(lines[^1], Does.StartWith("{\"return\": [{\"name\": "));
            Assert.That(lines[^1], Does.EndWith(", \"id\": \"last\"}"));
        }, iter: 300);
    }

    [Test]
    public void Receive_TenMegabyteString_EchoedOnce()
    {
        var host = new QmpTestHost();
        string big = new('A', 10 << 20);
        host.Chardev.Send(Negotiate);
        host.Chardev.ClearOutput();
        host.Chardev.Send("{\"execute\":\"x-echo\",\"arguments\":{\"value\":\"" + big + "\"}}\n");
        Assert.That(host.Chardev.Output, Is.EqualTo("{\"return\": \"" + big + "\"}\r\n"));
    }

    [Test]
    public void Receive_TenMegabyteGarbageLine_OneErrorThenRecovers()
    {
        var host = new QmpTestHost();
        host.Chardev.Send(Negotiate);
        host.Chardev.ClearOutput();
        host.Chardev.Send("@" + new string('x', 10 << 20) + "\n{\"execute\":\"query-name\",\"id\":1}\n");
        Assert.That(host.Chardev.Output, Is.EqualTo(
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '@'\"}}\r\n{\"return\": {}, \"id\": 1}\r\n"));
    }

    [Test]
    public void Receive_TenMegabytesOfBrackets_NestingErrorsOnly()
    {
        var host = new QmpTestHost();
        host.Chardev.Send(Negotiate);
        host.Chardev.ClearOutput();
        int count = 10 << 20;
        host.Chardev.Send(new string('[', count));
        string error = "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON nesting depth limit exceeded\"}}\r\n";
        // Each error drops the message; counting restarts, so one error per 1025 brackets.
        Assert.That(host.Chardev.Output.Length, Is.EqualTo(count / (QmpJsonStreamer.MaxNesting + 1) * error.Length));
    }

    [TestCase(1024, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON object\"}}\r\n", 0)]
    [TestCase(1025, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON nesting depth limit exceeded\"}}\r\n", 1025)]
    public void Receive_NestingAtLimit_SameAsQemu(int depth, string first, int expectingValueErrors)
    {
        // QEMU 7.2: 1024 levels parse; the 1025th '[' fails and each following ']' is then a lone "expecting value".
        var host = new QmpTestHost();
        host.Chardev.Send(Negotiate);
        host.Chardev.ClearOutput();
        host.Chardev.Send(new string('[', depth) + new string(']', depth) + "\n{\"execute\":\"query-name\",\"id\":\"after\"}\n");
        var expected = new StringBuilder(first);
        for (int i = 0; i < expectingValueErrors; i++)
        {
            expected.Append("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expecting value\"}}\r\n");
        }
        expected.Append("{\"return\": {}, \"id\": \"after\"}\r\n");
        Assert.That(host.Chardev.Output, Is.EqualTo(expected.ToString()));
    }

    [Test]
    public void Receive_TooManyTokens_TokenCountErrorThenRecovers()
    {
        var host = new QmpTestHost();
        host.Chardev.Send(Negotiate);
        host.Chardev.ClearOutput();
        // '[' plus commas fill the token budget exactly; the closing ']' is one token too many.
        // QEMU 7.2 printed exactly these two lines for this input (verified, minutes because it reads 1 byte at a time).
        host.Chardev.Send("[" + new string(',', QmpJsonStreamer.MaxTokenCount - 1) + "]\n{\"execute\":\"query-name\",\"id\":\"after\"}\n");
        Assert.That(host.Chardev.Output, Is.EqualTo(
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON token count limit exceeded\"}}\r\n{\"return\": {}, \"id\": \"after\"}\r\n"));
    }

    [Test]
    public void Disconnect_MidMessage_NextClientGetsFreshSession()
    {
        var host = new QmpTestHost();
        host.Chardev.Send(Negotiate + "{\"execute\":\"query-");
        host.Chardev.Disconnect();
        host.Chardev.ClearOutput();
        host.Chardev.Connect();
        host.Chardev.Send("{\"execute\":\"query-name\"}\n" + Negotiate);
        Assert.That(host.Chardev.Output, Is.EqualTo(QmpTestHost.Greeting
            + "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}\r\n"
            + "{\"return\": {}}\r\n"));
    }

    [Test]
    public void Disconnect_MidMessage_QemuSocketTranscript()
    {
        // Captured from QEMU 7.2 on -qmp unix:...,server=on: the first client leaves mid-message, the second
        // client's bytes are lexed from a clean state (greetings differ by design: version/package).
        var host = new QmpTestHost();
        host.Chardev.Send("{\"execute\":\"qmp_capabilities\"}{\"execute\":\"query-na");
        Assert.That(host.AfterGreeting, Is.EqualTo("{\"return\": {}}\r\n"));
        host.Chardev.Disconnect();
        host.Chardev.ClearOutput();
        host.Chardev.Connect();
        host.Chardev.Send("me\"}");
        host.Chardev.Send("{\"execute\":\"quit\"}");
        Assert.That(host.AfterGreeting, Is.EqualTo(
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, invalid keyword 'me'\"}}\r\n"
            + "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON object\"}}\r\n"
            + "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, invalid keyword 'execute'\"}}\r\n"
            + "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON object\"}}\r\n"
            + "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, invalid keyword 'quit'\"}}\r\n"));
    }

    [Test]
    public void Events_OnlyAfterNegotiation_QemuFormat()
    {
        var host = new QmpTestHost();
        host.Events.Emit("STOP");
        Assert.That(host.AfterGreeting, Is.Empty);
        host.Chardev.Send(Negotiate);
        host.Chardev.ClearOutput();
        host.Events.Emit("STOP");
        host.Events.Emit("X", "a\u00e9", MonitorTestJsonContext.Default.String);
        string[] lines = host.Chardev.Output.Split("\r\n");
        Assert.That(lines[0], Does.Match("^\\{\"timestamp\": \\{\"seconds\": [0-9]+, \"microseconds\": [0-9]+\\}, \"event\": \"STOP\"\\}$"));
        Assert.That(lines[1], Does.Match("^\\{\"timestamp\": \\{\"seconds\": [0-9]+, \"microseconds\": [0-9]+\\}, \"event\": \"X\", \"data\": \"a\\\\u00E9\"\\}$"));
    }

    [Test]
    public void Invoke_HandlerThrows_GenericErrorAndMonitorSurvives()
    {
        var host = new QmpTestHost();
        host.Chardev.Send(Negotiate + "{\"execute\":\"x-crash\",\"id\":1}{\"execute\":\"query-name\",\"id\":2}");
        Assert.That(host.AfterGreeting, Is.EqualTo("{\"return\": {}}\r\n"
            + "{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"boom\"}}\r\n"
            + "{\"return\": {}, \"id\": 2}\r\n"));
    }

    [Test]
    public void Return_Double_PrintedAsPercent17g()
    {
        var host = new QmpTestHost();
        host.Chardev.Send(Negotiate + "{\"execute\":\"x-pi\"}");
        Assert.That(host.AfterGreeting, Is.EqualTo("{\"return\": {}}\r\n{\"return\": 3.1415899999999999}\r\n"));
    }

    [Test]
    public void TwoMonitors_IndependentSessions()
    {
        var a = new QmpTestHost();
        var b = new QmpMonitor(new MemoryChardev(), new InlineLoop(), a.Registry, a.Events, new QmpVersionInfo(7, 2, 0, "Colo 0.1.0"));
        a.Chardev.Send(Negotiate);
        Assert.That(a.Monitor.IsNegotiating, Is.False);
        Assert.That(b.IsNegotiating, Is.True);
    }

    [Test]
    public void QueryCommands_ListsRegistry()
    {
        var host = new QmpTestHost();
        host.Chardev.Send(Negotiate + "{\"execute\":\"query-commands\"}");
        Assert.That(host.AfterGreeting, Is.EqualTo("{\"return\": {}}\r\n{\"return\": [{\"name\": \"human-monitor-command\"}, "
            + "{\"name\": \"qmp_capabilities\"}, {\"name\": \"query-commands\"}, {\"name\": \"query-name\"}, "
            + "{\"name\": \"x-crash\"}, {\"name\": \"x-echo\"}, {\"name\": \"x-pi\"}]}\r\n"));
    }

    [TestCase("info status", "{\"return\": \"VM status: paused (prelaunch)\\r\\n\"}\r\n")]
    [TestCase("foo bar", "{\"return\": \"unknown command: 'foo'\\r\\n\"}\r\n")]
    [TestCase("info foo", "{\"return\": \"unknown command: 'info foo'\\r\\n\"}\r\n")]
    [TestCase("help help", "{\"return\": \"help|? [cmd] -- show the help\\r\\n\"}\r\n")]
    [TestCase("help foo", "{\"return\": \"unknown command: 'foo'\\r\\n\"}\r\n")]
    [TestCase("", "{\"return\": \"\"}\r\n")]
    [TestCase("  ", "{\"return\": \"\"}\r\n")]
    public void HumanMonitorCommand_SameAsQemu(string commandLine, string expected)
    {
        // Expected replies captured from QEMU 7.2 (info status under -S).
        var host = new QmpTestHost();
        host.Chardev.Send(Negotiate);
        host.Chardev.ClearOutput();
        host.Chardev.Send("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":" + JsonSerializer.Serialize(commandLine, MonitorTestJsonContext.Default.String) + "}}");
        Assert.That(host.Chardev.Output, Is.EqualTo(expected));
    }

    [TestCase("{\"execute\":\"human-monitor-command\"}", "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'command-line' is missing\"}}\r\n")]
    [TestCase("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info\",\"cpu-index\":\"x\"}}", "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type for 'cpu-index', expected: integer\"}}\r\n")]
    public void HumanMonitorCommand_BadArguments_QemuErrors(string request, string expected)
    {
        var host = new QmpTestHost();
        host.Chardev.Send(Negotiate);
        host.Chardev.ClearOutput();
        host.Chardev.Send(request);
        Assert.That(host.Chardev.Output, Is.EqualTo(expected));
    }

    [Test]
    public void Help_ListsSortedWithAliases()
    {
        var hmp = new HmpCommandRegistry();
        hmp.Register("stop|s", "", "stop emulation", _ => "");
        hmp.Register("stopcapture", "capture index", "stop capture", _ => "");
        hmp.RegisterInfo("version", "", "show the version of QEMU", _ => "7.2.0\n");
        // Same line shapes as QEMU 7.2's help (two spaces when a command takes no arguments).
        Assert.That(hmp.Execute("help"), Is.EqualTo("help|? [cmd] -- show the help\r\n"
            + "info [subcommand] -- show various information about the system state\r\n"
            + "stopcapture capture index -- stop capture\r\n"
            + "stop|s  -- stop emulation\r\n"));
        Assert.That(hmp.Execute("?"), Is.EqualTo(hmp.Execute("help")));
        Assert.That(hmp.Execute("info"), Is.EqualTo("info version  -- show the version of QEMU\r\n"));
        Assert.That(hmp.Execute("help info"), Is.EqualTo(hmp.Execute("info")));
        Assert.That(hmp.Execute("info version"), Is.EqualTo("7.2.0\r\n"));
        Assert.That(hmp.Execute("s"), Is.Empty);
    }

    [Test]
    public void Execute_HandlerFails_QemuTexts()
    {
        // Texts as QEMU 7.2 returned them for "qom-get /nonexist x", "qom-get" and "info status extra".
        var hmp = new HmpCommandRegistry();
        hmp.Register("qom-get", "path property", "print QOM property", args => args.Length == 0
            ? throw new HmpUsageException("string expected")
            : throw new QmpException("Device '/nonexist' not found", QmpErrorClass.DeviceNotFound));
        hmp.RegisterInfo("status", "", "show the current VM status (running|paused)", _ => throw new HmpUsageException("extraneous characters at the end of line"));
        Assert.That(hmp.Execute("qom-get /nonexist x"), Is.EqualTo("Error: Device '/nonexist' not found\r\n"));
        Assert.That(hmp.Execute("qom-get"), Is.EqualTo("qom-get: string expected\r\nTry \"help qom-get\" for more information\r\n"));
        Assert.That(hmp.Execute("info status extra"), Is.EqualTo("status: extraneous characters at the end of line\r\nTry \"help info status\" for more information\r\n"));
    }

    [Test]
    public void HmpMonitor_Transcript_BannerPromptAndLines()
    {
        var hmp = new HmpCommandRegistry();
        hmp.RegisterInfo("status", "", "show the current VM status (running|paused)", _ => "VM status: paused (prelaunch)\n");
        var chardev = new MemoryChardev();
        var monitor = new HmpMonitor(chardev, new InlineLoop(), hmp, "7.2.0");
        monitor.Start();
        chardev.Send("info status\nfoo\r\n\n");
        // QEMU echoes through readline with cursor escapes; we echo the plain line (by design).
        Assert.That(chardev.Output, Is.EqualTo("QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) "
            + "info status\r\nVM status: paused (prelaunch)\r\n(qemu) "
            + "foo\r\nunknown command: 'foo'\r\n(qemu) "
            + "\r\n(qemu) \r\n(qemu) "));
    }

    // Member orders as QEMU 7.2 printed them (query-status, SHUTDOWN data, query-version), from any input order.
    [TestCase("{\"running\":false,\"singlestep\":false,\"status\":\"prelaunch\"}", "{\"status\": \"prelaunch\", \"singlestep\": false, \"running\": false}")]
    [TestCase("{\"reason\":\"host-signal\",\"guest\":false}", "{\"guest\": false, \"reason\": \"host-signal\"}")]
    [TestCase("{\"package\":\"p\",\"qemu\":{\"major\":7,\"minor\":2,\"micro\":22}}", "{\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": \"p\"}")]
    public void WriteJson_AnyMemberOrder_QemuOrder(string json, string expected)
    {
        var sb = new StringBuilder();
        QmpJsonFormatter.WriteJson(sb, json);
        Assert.That(sb.ToString(), Is.EqualTo(expected));
    }

    [TestCase(0.1, "0.10000000000000001")]
    [TestCase(100.0, "100")]
    [TestCase(1e-7, "9.9999999999999995e-08")]
    [TestCase(1.8446744073709552e+19, "1.8446744073709552e+19")]
    [TestCase(-1.5e-300, "-1.5000000000000001e-300")]
    [TestCase(123456.5, "123456.5")]
    [TestCase(0.0001, "0.0001")]
    [TestCase(1e16, "10000000000000000")]
    [TestCase(1e17, "1e+17")]
    [TestCase(double.PositiveInfinity, "inf")]
    public void FormatG17_MatchesC(double value, string expected) =>
        Assert.That(QmpJsonFormatter.FormatG17(value), Is.EqualTo(expected));
}
