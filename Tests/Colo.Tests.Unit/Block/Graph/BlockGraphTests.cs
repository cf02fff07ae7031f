using Colo.Block;
using Colo.Block.Graph;
using Colo.Block.Qcow2;
using Colo.Core.Options;

namespace Colo.Tests.Unit.Block.Graph;

[TestFixture]
public sealed class BlockGraphTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "graph-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private string Qcow2(string name, long size = 1 << 20, string? backing = null)
    {
        string path = Path.Combine(_dir, name);
        Qcow2Creator.Create(path, new Qcow2CreateOptions { Size = size, BackingFile = backing, BackingFormat = backing is null ? null : "qcow2" });
        return path;
    }

    private string Raw(string name, long size = 1 << 20)
    {
        string path = Path.Combine(_dir, name);
        using FileStream f = System.IO.File.Create(path);
        f.SetLength(size);
        return path;
    }

    private static List<KeyValuePair<string, string>> Drive(string text) => [.. KeyValParser.Parse(text, null).Pairs];

    private static string Shape(BlockGraph g, BlockNode n) =>
        n.DriverName + (g.ChildrenOf(n) is { Count: > 0 } c ? "(" + string.Join(",", c.Select(x => x.Name + "=" + Shape(g, x.Node))) + ")" : "");

    [Test]
    public void AddDrive_ColoParent0_BuildsQcow2OverFile()
    {
        string primary = Qcow2("primary.qcow2");
        using var g = new BlockGraph();
        BlockBackend b = g.AddDrive(Drive($"if=none,id=parent0,file.filename={primary},driver=qcow2"));
        Assert.Multiple(() =>
        {
            Assert.That(b.Name, Is.EqualTo("parent0"));
            Assert.That(Shape(g, b.Root), Is.EqualTo("qcow2(file=file)"));
            Assert.That(b.Root.Filename, Is.EqualTo(primary));
            Assert.That(b.Root.NodeName, Does.Match("^#block[0-9]{3}$"));
            Assert.That(g.Nodes, Has.Count.EqualTo(2));
            Assert.That(g.FindNodeOrDevice("parent0"), Is.SameAs(b.Root));
        });
    }

    [Test]
    public void AddDrive_FileShorthand_ProbesAndDefaultsToRaw()
    {
        string raw = Raw("a.raw");
        string q = Qcow2("b.qcow2");
        var warnings = new List<string>();
        using var g = new BlockGraph { Warning = warnings.Add };
        Assert.Multiple(() =>
        {
            Assert.That(g.AddDrive(Drive($"if=none,id=a,file={raw}")).Root.DriverName, Is.EqualTo("raw"));
            Assert.That(warnings.Single(), Does.StartWith($"WARNING: Image format was not specified for '{raw}'"));
            Assert.That(g.AddDrive(Drive($"if=none,id=b,file={q}")).Root.DriverName, Is.EqualTo("qcow2"));
            Assert.That(g.AddDrive(Drive($"if=none,id=c,file={q},format=raw,read-only=on")).Root.ReadOnly, Is.True);
        });
    }

    [Test]
    public void AddDrive_NodeNamesAndBackingReference_BuildTheChain()
    {
        string basePath = Qcow2("base.qcow2");
        string top = Qcow2("top.qcow2");
        using var g = new BlockGraph();
        BlockBackend parent = g.AddDrive(Drive($"if=none,id=parent0,driver=qcow2,file.filename={basePath},node-name=base"));
        BlockBackend child = g.AddDrive(Drive($"if=none,id=d1,driver=qcow2,node-name=top,file.filename={top},file.node-name=top-file,backing=parent0"));
        Assert.Multiple(() =>
        {
            Assert.That(g.FindNode("top"), Is.SameAs(child.Root));
            Assert.That(g.FindNode("top-file")!.DriverName, Is.EqualTo("file"));
            Assert.That(g.BackingOf(child.Root), Is.SameAs(parent.Root));
            Assert.That(g.BackingDepth(child.Root), Is.EqualTo(1));
        });
    }

    [Test]
    public void AddDrive_InlineBackingAndHeaderBacking_AreOpenedReadOnly()
    {
        string basePath = Qcow2("base.qcow2");
        string overlay = Qcow2("overlay.qcow2", backing: "base.qcow2");
        string other = Qcow2("other.qcow2");
        using var g = new BlockGraph();
        BlockBackend fromHeader = g.AddDrive(Drive($"if=none,id=h,driver=qcow2,file.filename={overlay}"));
        BlockBackend inline = g.AddDrive(Drive($"if=none,id=i,driver=qcow2,file.filename={other},backing.driver=qcow2,backing.file.filename={basePath},backing.node-name=bk"));
        Assert.Multiple(() =>
        {
            Assert.That(Shape(g, fromHeader.Root), Is.EqualTo("qcow2(file=file,backing=qcow2(file=file))"));
            Assert.That(g.BackingOf(fromHeader.Root)!.ReadOnly, Is.True);
            Assert.That(g.BackingOf(fromHeader.Root)!.Filename, Is.EqualTo(basePath));
            Assert.That(g.BackingOf(inline.Root), Is.SameAs(g.FindNode("bk")));
            Assert.That(g.FindNode("bk")!.ReadOnly, Is.True);
        });
    }

    [Test]
    public void AddDrive_ColoSecondaryDocumentLines_BuildTheReplicationChain()
    {
        string[] lines = Colo.Tests.Shared.ColoDocument.Secondary(_dir, "127.0.0.1");
        string[] drives = [.. lines.Select((a, i) => (a, i)).Where(x => x.i > 0 && lines[x.i - 1] == "-drive").Select(x => x.a)];
        Qcow2("primary.qcow2");
        Qcow2("secondary-active.qcow2");
        Qcow2("secondary-hidden.qcow2");
        using var g = new BlockGraph();
        g.AddDrive(Drive(drives[0]));
        BlockBackend replication = g.AddDrive(Drive(drives[1]));
        g.AddDrive(Drive(drives[2].Replace("if=ide", "if=none", StringComparison.Ordinal)));
        BlockNode active = g.ChildrenOf(replication.Root).Single().Node;
        BlockNode hidden = g.BackingOf(active)!;
        Assert.Multiple(() =>
        {
            Assert.That(replication.Root.DriverName, Is.EqualTo("replication"));
            Assert.That(g.Backends.Select(b => b.Name), Is.EqualTo(new[] { "parent0", "childs0", "colo-disk0" }));
            Assert.That(active.Filename, Does.EndWith("secondary-active.qcow2"));
            Assert.That(hidden.Filename, Does.EndWith("secondary-hidden.qcow2"));
            Assert.That(hidden.ReadOnly, Is.False, "the hidden disk takes the copy-before-write");
            Assert.That(g.BackingOf(hidden), Is.SameAs(g.FindBackend("parent0")!.Root));
        });
    }

    [Test]
    public void AddDrive_ColoSecondaryHiddenChain_ReferencesParent0()
    {
        // The document's replication drive with its qcow2 chain but without the replication filter on top.
        string primary = Qcow2("primary.qcow2");
        string active = Qcow2("secondary-active.qcow2");
        string hidden = Qcow2("secondary-hidden.qcow2");
        using var g = new BlockGraph();
        BlockBackend parent = g.AddDrive(Drive($"if=none,id=parent0,file.filename={primary},driver=qcow2"));
        BlockBackend top = g.AddDrive(Drive($"if=none,id=act,driver=qcow2,file.filename={active},backing.driver=qcow2,backing.file.filename={hidden},backing.backing=parent0"));
        BlockNode hiddenNode = g.BackingOf(top.Root)!;
        Assert.Multiple(() =>
        {
            Assert.That(hiddenNode.Filename, Is.EqualTo(hidden));
            Assert.That(g.BackingOf(hiddenNode), Is.SameAs(parent.Root));
            Assert.That(g.BackingDepth(top.Root), Is.EqualTo(2));
        });
    }

    [TestCase("if=none,id=d0,file=FILE,driver=foo", "Unknown driver 'foo'")]
    [TestCase("if=none,id=d0,file=/nonexistent/x.img,format=raw", "Could not open '/nonexistent/x.img': No such file or directory")]
    [TestCase("if=none,id=d0,file=FILE,format=raw,driver=raw", "Cannot specify both 'driver' and 'format'")]
    [TestCase("if=none,id=d0,file=FILE,format=raw,foo=1", "Block format 'raw' does not support the option 'foo'")]
    [TestCase("if=none,id=d0,file=FILE,format=raw,file.foo=1", "Block protocol 'file' doesn't support the option 'foo'")]
    [TestCase("if=none,id=d0,file=FILE,driver=raw,backing=x", "Driver doesn't support backing files")]
    [TestCase("if=none,id=d0,driver=qcow2", "A block device must be specified for \"file\"")]
    [TestCase("if=none,id=d0,driver=qcow2,file.filename=QCOW,backing=nope", "Could not open backing file: Cannot find device='nope' nor node-name='nope'")]
    [TestCase("if=none,id=d0,driver=qcow2,file.filename=QCOW,backing.foo=1", "Could not open backing file: Must specify either driver or file")]
    [TestCase("if=bogus,id=d0,file=FILE", "unsupported bus type 'bogus'")]
    [TestCase("if=ide,id=d0,file=FILE,format=raw", "machine type does not support if=ide,bus=0,unit=0")]
    [TestCase("id=d0,file=FILE,format=raw,index=3", "machine type does not support if=ide,bus=1,unit=1")]
    [TestCase("if=none,id=d0,file=FILE,detect-zeroes=foo", "invalid parameter value: foo")]
    [TestCase("if=none,id=d0,file=FILE,aio=foo", "invalid aio option")]
    [TestCase("if=none,id=d0,file=FILE,read-only=maybe", "Parameter 'read-only' expects 'on' or 'off'")]
    [TestCase("if=none,id=d0,file=FILE,node-name=d0,format=raw", "Device name 'd0' conflicts with an existing node name")]
    [TestCase("if=none,id=d0,driver=replication,mode=primary", "A block device must be specified for \"file\"")]
    public void AddDrive_BadOptions_QemuMessage(string text, string message)
    {
        string file = Raw("f.raw");
        string qcow = Qcow2("q.qcow2");
        using var g = new BlockGraph();
        BlockException e = Assert.Throws<BlockException>(() => g.AddDrive(Drive(text.Replace("FILE", file, StringComparison.Ordinal).Replace("QCOW", qcow, StringComparison.Ordinal))))!;
        Assert.That(e.Message, Is.EqualTo(message));
        Assert.That(g.Nodes, Is.Empty);
    }

    [Test]
    public void AddDrive_Duplicates_AreRefused()
    {
        string file = Raw("f.raw");
        using var g = new BlockGraph();
        g.AddDrive(Drive($"if=none,id=d0,file={file},format=raw,node-name=n"));
        Assert.Multiple(() =>
        {
            Assert.That(Assert.Throws<BlockException>(() => g.AddDrive(Drive($"if=none,id=d0,file={file},format=raw")))!.Message,
                Is.EqualTo("Duplicate ID 'd0' for drive"));
            Assert.That(Assert.Throws<BlockException>(() => g.AddDrive(Drive($"if=none,id=d1,file={file},format=raw,node-name=n")))!.Message,
                Is.EqualTo("Duplicate nodes with node-name='n'"));
        });
    }

    [Test]
    public void AddDrive_CacheAndFileOptions_AreAcceptedAndRecorded()
    {
        string file = Raw("f.raw");
        using var g = new BlockGraph();
        BlockBackend b = g.AddDrive(Drive($"if=none,id=d0,file={file},format=raw,cache.direct=off,cache.no-flush=on,aio=threads,discard=unmap,detect-zeroes=unmap,file.locking=off"));
        Assert.That(b.Settings, Is.EqualTo(new BlockNodeSettings(true, false, true, "unmap", "unmap")));
    }

    [Test]
    public void Dispose_FlushesWritesToTheImage_AndDeleteDriveClosesIt()
    {
        string q = Qcow2("w.qcow2");
        byte[] data = [1, 2, 3, 4];
        using (var g = new BlockGraph())
        {
            BlockBackend b = g.AddDrive(Drive($"if=none,id=d0,driver=qcow2,file.filename={q}"));
            b.Root.Write(65536, data);
        }
        using (var g = new BlockGraph())
        {
            BlockBackend b = g.AddDrive(Drive($"if=none,id=d0,driver=qcow2,file.filename={q},read-only=on"));
            var back = new byte[4];
            b.Root.Read(65536, back);
            Assert.That(back, Is.EqualTo(data));
            g.DeleteDrive("d0");
            Assert.That(g.Nodes, Is.Empty);
            Assert.That(Assert.Throws<BlockException>(() => g.DeleteDrive("d0"))!.ErrorClass, Is.EqualTo(Colo.Core.Qmp.QmpErrorClass.DeviceNotFound));
        }
    }

    [Test]
    public void DeleteDrive_UsedAsBacking_IsRefused()
    {
        string a = Qcow2("a.qcow2");
        string b = Qcow2("b.qcow2");
        using var g = new BlockGraph();
        g.AddDrive(Drive($"if=none,id=parent0,driver=qcow2,file.filename={a}"));
        g.AddDrive(Drive($"if=none,id=top,driver=qcow2,file.filename={b},backing=parent0"));
        Assert.That(Assert.Throws<BlockException>(() => g.DeleteDrive("parent0"))!.Message, Does.Contain("is busy"));
        g.DeleteDrive("top");
        g.DeleteDrive("parent0");
        Assert.That(g.Nodes, Is.Empty);
    }
}
