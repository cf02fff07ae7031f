using Colo.Core.Chardev;
using Colo.Core.Qmp;

namespace Colo.Tests.Unit.Chardev;

[TestFixture]
public sealed class ChardevCompatTests
{
    [TestCase("stdio", "stdio", "")]
    [TestCase("null", "null", "")]
    [TestCase("pty", "pty", "")]
    [TestCase("vc", "vc", "")]
    [TestCase("vc:80Cx24C", "vc", "")]
    [TestCase("file:/tmp/serial.log", "file", "path=/tmp/serial.log")]
    [TestCase("pipe:/tmp/fifo", "pipe", "path=/tmp/fifo")]
    [TestCase("tcp:127.0.0.1:4444,server=on,wait=off", "socket", "host=127.0.0.1,port=4444,server=on,wait=off")]
    [TestCase("tcp:127.0.0.1:4444,server,nowait", "socket", "host=127.0.0.1,port=4444,server=on,wait=off")]
    [TestCase("tcp::4444,server=on", "socket", "host=,port=4444,server=on")]
    [TestCase("tcp:[::1]:4444", "socket", "host=::1,port=4444")]
    [TestCase("telnet:127.0.0.1:4444,server=on,wait=off", "socket", "host=127.0.0.1,port=4444,telnet=on,server=on,wait=off")]
    [TestCase("unix:/tmp/q.sock,server=on,wait=off", "socket", "path=/tmp/q.sock,server=on,wait=off")]
    [TestCase("udp:127.0.0.1:4555@:4556", "udp", "host=127.0.0.1,port=4555,localaddr=,localport=4556")]
    [TestCase("/dev/ttyS0", "serial", "path=/dev/ttyS0")]
    [TestCase("/dev/parport0", "parallel", "path=/dev/parport0")]
    [TestCase("mon:stdio", "stdio", "mux=on,signal=off")]
    [TestCase("mon:null", "null", "mux=on")]
    public void Parse_Backend(string spec, string backend, string properties)
    {
        ChardevSpec parsed = ChardevCompat.Parse(spec);
        Assert.That(parsed.Kind, Is.EqualTo(ChardevSpecKind.Backend));
        Assert.That(parsed.Backend, Is.EqualTo(backend));
        Assert.That(string.Join(',', parsed.Properties.Select(p => $"{p.Key}={p.Value}")), Is.EqualTo(properties));
    }

    [Test]
    public void Parse_ChardevReferenceAndNone()
    {
        Assert.That(ChardevCompat.Parse("chardev:mon0"), Is.EqualTo(new ChardevSpec(ChardevSpecKind.Reference, null, [], "mon0")).Using<ChardevSpec>((a, b) => a.Kind == b.Kind && a.ReferenceId == b.ReferenceId));
        Assert.That(ChardevCompat.Parse("none").Kind, Is.EqualTo(ChardevSpecKind.None));
        Assert.That(ChardevCompat.Parse("mon:stdio").MonitorMux, Is.True);
    }

    [TestCase("foo", "'foo' is not a valid char driver")]
    [TestCase("tcp:127.0.0.1", "'tcp:127.0.0.1' is not a valid char driver")]
    [TestCase("tcp:127.0.0.1:4444,server=on,bogus", "Expected '=' after parameter 'bogus'")]
    public void Parse_Invalid_QemuText(string spec, string expected)
    {
        QmpException e = Assert.Catch<QmpException>(() => ChardevCompat.Parse(spec))!;
        Assert.That(e.Message, Is.EqualTo(expected));
    }

    [Test]
    public void CreateFromCompat_QmpTcpServer_NoWait()
    {
        using var h = new ChardevTestHarness();
        Colo.Core.Chardev.Chardev? c = ChardevFactory.CreateFromCompat(h.Types, h.Tree, "compat_monitor0", "tcp:127.0.0.1:0,server=on,wait=off");
        Assert.That(c, Is.InstanceOf<SocketChardev>());
        Assert.That(c!.Name, Is.EqualTo("compat_monitor0"));
        Assert.That(ChardevFactory.CreateFromCompat(h.Types, h.Tree, "serial0", "chardev:compat_monitor0"), Is.SameAs(c));
        Assert.That(ChardevFactory.CreateFromCompat(h.Types, h.Tree, "serial0", "none"), Is.Null);
        Assert.That(Assert.Throws<QmpException>(() => ChardevFactory.CreateFromCompat(h.Types, h.Tree, "serial1", "chardev:nope"))!.Message,
            Is.EqualTo("Chardev 'nope' not found"));
    }
}
