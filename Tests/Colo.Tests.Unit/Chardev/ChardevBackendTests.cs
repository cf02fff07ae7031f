using System.IO.Pipelines;
using System.Text;
using Colo.Core.Chardev;
using Colo.Core.Objects;
using Colo.Core.Qmp;
using static Colo.Tests.Unit.Chardev.ChardevTestHarness;

namespace Colo.Tests.Unit.Chardev;

[TestFixture]
public sealed class ChardevBackendTests
{
    /// <summary>QEMU 7.2's <c>-chardev help</c> list.</summary>
    private static readonly string[] QemuBackends =
    [
        "stdio", "ringbuf", "mux", "pipe", "qemu-vdagent", "null", "msmouse", "socket", "vc", "parallel",
        "udp", "memory", "file", "serial", "wctablet", "pty", "testdev",
    ];

    private static readonly string[] SocketOptions =
    [
        "host", "port", "path", "server", "wait", "reconnect", "nodelay", "to", "ipv4", "ipv6", "abstract", "tight",
        "telnet", "websocket", "tls-creds", "logfile", "logappend", "mux", "fd",
    ];

    private ChardevTestHarness _h = null!;
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _h = new ChardevTestHarness();
        _dir = Directory.CreateTempSubdirectory("colo-chardev-").FullName;
    }

    [TearDown]
    public void TearDown()
    {
        _h.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Test]
    public void File_WritesTruncateThenAppend()
    {
        string path = Path.Combine(_dir, "out.txt");
        File.WriteAllText(path, "old");
        Colo.Core.Chardev.Chardev f = _h.Create($"file,id=f0,path={path}");
        Assert.That(Write(f, "abc"), Is.EqualTo(3));
        Assert.That(((IChardevInfo)f).Filename, Is.EqualTo("file"));
        ChardevFactory.Remove(_h.Tree, "f0");
        Assert.That(File.ReadAllText(path), Is.EqualTo("abc"));

        Colo.Core.Chardev.Chardev g = _h.Create($"file,id=f1,path={path},append=on");
        Write(g, "def");
        ChardevFactory.Remove(_h.Tree, "f1");
        Assert.That(File.ReadAllText(path), Is.EqualTo("abcdef"));
    }

    [Test]
    public void File_InputFile_IsDeliveredToFrontend()
    {
        string input = Path.Combine(_dir, "in.txt");
        File.WriteAllText(input, "typed");
        Colo.Core.Chardev.Chardev f = _h.Create($"file,id=f0,path={Path.Combine(_dir, "out.txt")},in={input}");
        RecordingFrontend frontend = _h.Attach(f);
        Assert.That(frontend.WaitForText("typed"), Is.True);
    }

    [Test]
    public void File_Errors_MatchQemu()
    {
        Assert.That(Assert.Throws<QmpException>(() => _h.Create("file,id=f0"))!.Message, Is.EqualTo("chardev: file: no filename given"));
        string missing = Path.Combine(_dir, "no", "x");
        Assert.That(Assert.Throws<QmpException>(() => _h.Create($"file,id=f0,path={missing}"))!.Message,
            Is.EqualTo($"Could not open '{missing}': No such file or directory"));
    }

    [Test]
    public void Logfile_CopiesFrontendOutput_TruncateOrAppend()
    {
        string log = Path.Combine(_dir, "log.txt");
        File.WriteAllText(log, "old-");
        Colo.Core.Chardev.Chardev n = _h.Create($"null,id=n0,logfile={log},logappend=on");
        Write(n, "one");
        ChardevFactory.Remove(_h.Tree, "n0");
        Assert.That(File.ReadAllText(log), Is.EqualTo("old-one"));

        var ring = (RingbufChardev)_h.Create($"ringbuf,id=r0,logfile={log}");
        Write(ring, "two");
        ring.Store(Encoding.ASCII.GetBytes("not-logged"));
        ChardevFactory.Remove(_h.Tree, "r0");
        Assert.That(File.ReadAllText(log), Is.EqualTo("two"));
    }

    [Test]
    public void Null_SwallowsWrites()
    {
        Colo.Core.Chardev.Chardev n = _h.Create("null,id=n0");
        Assert.That(Write(n, "gone"), Is.EqualTo(4));
        Assert.That(((IChardevInfo)n).Filename, Is.EqualTo("null"));
    }

    [Test]
    public void Ringbuf_KeepsNewestBytes()
    {
        var ring = (RingbufChardev)_h.Create("ringbuf,id=r0,size=4");
        Write(ring, "abcdef");
        Assert.That(Encoding.ASCII.GetString(ring.Read(10)), Is.EqualTo("cdef"));
        Assert.That(ring.Count, Is.Zero);
        Assert.That(((RingbufChardev)_h.Create("memory,id=m0")).Size, Is.EqualTo(65536));
        Assert.That(Assert.Throws<QmpException>(() => _h.Create("ringbuf,id=r1,size=3"))!.Message,
            Is.EqualTo("size of ringbuf chardev must be power of two"));
    }

    [Test]
    public void Stdio_UsesInjectedStreams_OnlyOnce()
    {
        var input = new Pipe();
        var output = new MemoryStream();
        var types = new TypeRegistry();
        var env = new ChardevEnvironment { Report = _ => { }, OpenStdin = () => input.Reader.AsStream(), OpenStdout = () => output };
        ChardevTypes.Register(types, env);
        var tree = new ObjectTree();
        try
        {
            Colo.Core.Chardev.Chardev stdio = ChardevFactory.CreateFromOption(types, tree, "stdio,id=s0");
            var frontend = new RecordingFrontend();
            stdio.Attach(frontend, _h.Loop);
            input.Writer.AsStream().Write(Encoding.ASCII.GetBytes("keys"));
            Assert.That(frontend.WaitForText("keys"), Is.True);
            Assert.That(Write(stdio, "out"), Is.EqualTo(3));
            Assert.That(Encoding.ASCII.GetString(output.ToArray()), Is.EqualTo("out"));
            Assert.That(Assert.Throws<QmpException>(() => ChardevFactory.CreateFromOption(types, tree, "stdio,id=s1"))!.Message,
                Is.EqualTo("cannot use stdio by multiple character devices"));
            input.Writer.Complete();
            Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Opened));
            Assert.That(frontend.NextEvent(), Is.EqualTo(CharEvent.Closed));
        }
        finally
        {
            ChardevFactory.RemoveAll(tree);
        }
    }

    [TestCase("foo,id=x", "'foo' is not a valid char driver name")]
    [TestCase("null", "chardev: no id specified")]
    [TestCase("id=a", "chardev: \"a\" missing backend")]
    [TestCase("null,id=1a", "Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.")]
    [TestCase("socket,id=a,host=127.0.0.1,port=1,bogus=1", "Invalid parameter 'bogus'")]
    [TestCase("socket,id=a,host=127.0.0.1,port=1,server=on,wait=off,reconnect=1", "'reconnect' option is incompatible with socket in server listen mode")]
    [TestCase("socket,id=a,host=127.0.0.1,port=1,wait=off", "'wait' option is incompatible with socket in client connect mode")]
    [TestCase("socket,id=a,host=127.0.0.1,port=abc", "address resolution failed for 127.0.0.1:abc: Servname not supported for ai_socktype")]
    [TestCase("socket,id=a,host=127.0.0.1,port=1,server=on,telnet=on", "chardev 'socket': option 'telnet' is not implemented yet in Colo")]
    [TestCase("socket,id=a,host=127.0.0.1,port=1,tls-creds=tls0", "chardev 'socket': option 'tls-creds' is not implemented yet in Colo")]
    [TestCase("null,id=a,mux=maybe", "Parameter 'mux' expects 'on' or 'off'")]
    [TestCase("mux,id=a,chardev=nope", "mux: base chardev nope not found")]
    [TestCase("mux,id=a", "chardev: mux: no chardev given")]
    [TestCase("null,id=a,logfile=/nonexistent-colo-dir/x", "Could not create '/nonexistent-colo-dir/x': No such file or directory")]
    [TestCase("pty,id=a", "chardev backend 'pty' is not implemented yet in Colo (the pty backend)")]
    [TestCase("pipe,id=a,path=/tmp/p", "chardev backend 'pipe' is not implemented yet in Colo (the pipe backend)")]
    [TestCase("socket,id=a,server=on,wait=off", "chardev: socket: no host given")]
    public void CreateFromOption_BadInput_QemuText(string option, string expected)
    {
        QmpException e = Assert.Throws<QmpException>(() => _h.Create(option))!;
        Assert.That(e.Message, Is.EqualTo(expected));
        Assert.That(ChardevFactory.All(_h.Tree), Is.Empty);
    }

    [Test]
    public void CreateFromOption_DuplicateId_QemuText()
    {
        _h.Create("null,id=a");
        Assert.That(Assert.Throws<QmpException>(() => _h.Create("null,id=a"))!.Message, Is.EqualTo("Duplicate ID 'a' for chardev"));
    }

    [Test]
    public void CreateFromOption_ShortFormBooleans_Accepted()
    {
        Colo.Core.Chardev.Chardev s = _h.Create("socket,id=s0,host=127.0.0.1,port=0,server,nowait");
        Assert.That(((SocketChardev)s).IsServer, Is.True);
    }

    [Test]
    public void Register_ListsEveryQemuBackend()
    {
        string[] names = [.. _h.Types.TypesOf(ObjectCategory.Chardev).Select(t => t.Name)];
        Assert.That(names, Is.EquivalentTo(QemuBackends));
        ObjectTypeInfo socket = _h.Types.Get(ObjectCategory.Chardev, "socket");
        foreach (string option in SocketOptions)
        {
            Assert.That(socket.FindProperty(option), Is.Not.Null, option);
        }
    }
}
