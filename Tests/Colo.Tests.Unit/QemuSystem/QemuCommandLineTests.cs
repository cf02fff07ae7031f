using Colo.Tests.Shared;
using Colo.Core.Options;
using Colo.Machine;
using Colo.QemuSystem;

namespace Colo.Tests.Unit.QemuSystem;

[TestFixture]
public sealed class QemuCommandLineTests
{
    [Test]
    public void Parse_ColoPrimary_RecordsEveryOption()
    {
        MachineConfig c = QemuCommandLine.Parse(ColoDocument.Primary("/img")).Config;
        Assert.Multiple(() =>
        {
            Assert.That(c.Accelerators, Is.EqualTo(new[] { "kvm" }));
            Assert.That(c.CpuModel, Is.EqualTo("qemu64"));
            Assert.That(c.CpuFeatures, Is.EqualTo(new[] { KeyValuePair.Create("kvmclock", "on") }));
            Assert.That(c.RamSize, Is.EqualTo(512UL << 20));
            Assert.That(c.Cpus, Is.EqualTo(1));
            Assert.That(c.Name, Is.EqualTo("primary"));
            Assert.That(c.StartPaused, Is.True);
            Assert.That(c.Incoming, Is.Null);
            Assert.That(c.Monitors, Has.Count.EqualTo(1));
            Assert.That(c.Monitors[0].Control, Is.True);
            Assert.That(c.CompatChardevs.Single().Spec, Is.EqualTo("stdio"));
            Assert.That(c.Devices.Select(d => d.Value["driver"]), Is.EqualTo(new[] { "piix3-usb-uhci", "usb-tablet", "rtl8139" }));
            Assert.That(c.Netdevs.Single().Value["type"], Is.EqualTo("tap"));
            Assert.That(c.Chardevs.Select(d => d.Value["id"]), Is.EqualTo(new[] { "mirror0", "compare1", "compare0", "compare0-0", "compare_out", "compare_out0" }));
            Assert.That(c.Chardevs[1].Value["wait"], Is.EqualTo("on"));
            Assert.That(c.Objects.Select(o => o.Value["qom-type"]), Is.EqualTo(new[] { "filter-mirror", "filter-redirector", "filter-redirector", "iothread", "colo-compare" }));
            Assert.That(c.Objects[4].Value["iothread"], Is.EqualTo("iothread1"));
        });
        OptionTree drive = c.Drives.Single().Value.ToTree();
        Assert.Multiple(() =>
        {
            Assert.That(drive.GetString("driver"), Is.EqualTo("quorum"));
            Assert.That(drive.Find("children.0.file.filename")!.Scalar, Is.EqualTo("/img/primary.qcow2"));
            Assert.That(drive.Find("children.0.driver")!.Scalar, Is.EqualTo("qcow2"));
            Assert.That(drive["children"]!.IsList, Is.True);
        });
    }

    [Test]
    public void Parse_ColoSecondary_RecordsEveryOption()
    {
        MachineConfig c = QemuCommandLine.Parse(ColoDocument.Secondary("/img", "127.0.0.1")).Config;
        Assert.Multiple(() =>
        {
            Assert.That(c.Incoming, Is.EqualTo("tcp:0.0.0.0:9998"));
            Assert.That(c.StartPaused, Is.False);
            Assert.That(c.Name, Is.EqualTo("secondary"));
            Assert.That(c.Chardevs.Select(d => d.Value["reconnect"]), Is.EqualTo(new[] { "1", "1" }));
            Assert.That(c.Objects.Select(o => o.Value["id"]), Is.EqualTo(new[] { "f1", "f2", "rew0" }));
            Assert.That(c.Drives, Has.Count.EqualTo(3));
        });
        OptionTree replication = c.Drives[1].Value.ToTree();
        Assert.Multiple(() =>
        {
            Assert.That(replication.GetString("top-id"), Is.EqualTo("colo-disk0"));
            Assert.That(replication.Find("file.backing.backing")!.Scalar, Is.EqualTo("parent0"));
            Assert.That(replication.Find("file.backing.file.filename")!.Scalar, Is.EqualTo("/img/secondary-hidden.qcow2"));
            Assert.That(c.Drives[2].Value.ToTree().Find("children.0")!.Scalar, Is.EqualTo("childs0"));
        });
    }

    [TestCase(new[] { "-foo" }, "-foo: invalid option")]
    [TestCase(new[] { "-m" }, "-m: requires an argument")]
    [TestCase(new[] { "-m", "abc" }, "-m abc: Parameter 'size' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.")]
    [TestCase(new[] { "-smp", "abc" }, "-smp abc: Parameter 'smp.cpus' expects integer")]
    [TestCase(new[] { "-cpu", "foo" }, "unable to find CPU model 'foo'")]
    [TestCase(new[] { "-vnc", ":7" }, "-vnc :7: VNC display is not implemented yet in Colo")]
    [TestCase(new[] { "-mon", "chardev=m,mode=bogus" }, "-mon chardev=m,mode=bogus: Parameter 'mode' does not accept value 'bogus'")]
    public void Parse_BadInput_GivesQemuStyleError(string[] args, string expected)
    {
        StartupException e = Assert.Throws<StartupException>(() => QemuCommandLine.Parse(args))!;
        Assert.That(e.Context is null ? e.Message : $"{e.Context}: {e.Message}", Is.EqualTo(expected));
    }

    [Test]
    public void Parse_DoubleDashSpelling_IsAccepted()
    {
        Assert.That(QemuCommandLine.Parse(["--m", "1G", "--S"]).Config.RamSize, Is.EqualTo(1UL << 30));
    }

    [Test]
    public void Parse_OptionsThatLookBundled_AreNotSplit()
    {
        MachineConfig c = QemuCommandLine.Parse(["-nographic", "-nodefaults", "-S"]).Config;
        Assert.That(c.NoGraphic && c.NoDefaults && c.StartPaused, Is.True);
    }

    [Test]
    public void Parse_BareArgument_IsIdeDiskZero()
    {
        MachineConfig c = QemuCommandLine.Parse(["disk.img", "-m", "64"]).Config;
        Assert.That(c.Drives.Single().Value.Text, Is.EqualTo("file=disk.img,index=0,media=disk"));
    }

    [Test]
    public void Parse_EscapedCommaInDriveFile_Survives()
    {
        MachineConfig c = QemuCommandLine.Parse(["-drive", "file=/tmp/a,,b.img,if=none,id=d"]).Config;
        Assert.That(c.Drives.Single().Value["file"], Is.EqualTo("/tmp/a,b.img"));
    }

    [Test]
    public void Parse_QmpSocketSpecs_BecomeCompatChardevs()
    {
        MachineConfig c = QemuCommandLine.Parse(["-qmp", "tcp:127.0.0.1:4444,server=on,wait=off", "-qmp", "unix:/tmp/q.sock,server=on,wait=off", "-mon", "chardev=c0,mode=control"]).Config;
        Assert.Multiple(() =>
        {
            Assert.That(c.CompatChardevs.Select(x => x.Id), Is.EqualTo(new[] { "compat_monitor0", "compat_monitor1" }));
            Assert.That(c.Monitors.Select(m => m.ChardevId), Is.EqualTo(new[] { "compat_monitor0", "compat_monitor1", "c0" }));
            Assert.That(c.Monitors.All(m => m.Control), Is.True);
        });
    }

    [Test]
    public void Parse_MachineAccel_SplitsAlternatives()
    {
        MachineConfig c = QemuCommandLine.Parse(["-machine", "pc,accel=kvm:tcg"]).Config;
        Assert.That(c.Accelerators, Is.EqualTo(new[] { "kvm", "tcg" }));
    }

    [TestCase("-version")]
    [TestCase("-h")]
    [TestCase("-device help")]
    [TestCase("-object iothread,help")]
    [TestCase("-machine help")]
    [TestCase("-cpu help")]
    public void Parse_InformationalOptions_ProduceOutput(string line)
    {
        Assert.That(QemuCommandLine.Parse(line.Split(' ')).InformationalOutput, Is.Not.Empty);
    }

    [Test]
    public void Version_FirstLine_NamesQemu72AndColo()
    {
        Assert.That(QemuOptions.VersionText(), Does.StartWith("QEMU emulator version 7.2.0 (Colo "));
    }
}
