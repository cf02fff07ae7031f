using Colo.Core.Objects;
using Colo.Core.Options;
using Colo.Core.Qmp;
using Colo.Machine;

namespace Colo.QemuSystem;

/// <summary>
/// The option table of <c>qemu-system-x86_64</c>: one row per option, in the order <c>-h</c> lists them.
/// Options QEMU has but Colo does not build yet are rows whose action refuses with a message naming them.
/// </summary>
internal static class QemuOptions
{
    public static readonly QemuOption[] All =
    [
        new("h", null, "display this help and exit", (b, _) => b.Print(Usage())),
        new("help", null, "display this help and exit", (b, _) => b.Print(Usage())),
        new("version", null, "display version information and exit", (b, _) => b.Print(VersionText())),
        new("machine", "[type=]name[,prop[=value][,...]]", "selects emulated machine ('-machine help' for list); accel=kvm|tcg selects the accelerator", (b, v) => b.SetMachine(v)),
        new("M", "[type=]name[,prop[=value][,...]]", "same as -machine", (b, v) => b.SetMachine(v)),
        new("cpu", "cpu", "select CPU ('-cpu help' for list); e.g. qemu64,kvmclock=on", (b, v) => b.SetCpu(v)),
        new("accel", "[accel=]accelerator[,prop[=value][,...]]", "select accelerator (kvm or tcg; use 'help' for a list)", (b, v) => b.SetAccel(v)),
        new("enable-kvm", null, "enable KVM full virtualization support", (b, _) => b.Config.Accelerators.Add("kvm")),
        new("smp", "[cpus=]n[,maxcpus=cpus][,sockets=s][,cores=c][,threads=t]", "set the number of CPUs to 'n' [default=1]", (b, v) => b.SetSmp(v)),
        new("m", "[size=]megs[,slots=n,maxmem=size]", "configure guest RAM (default 128M; a bare number is MiB)", (b, v) => b.SetMemory(v)),
        new("name", "string1[,debug-threads=on|off]", "set the name of the guest", (b, v) => b.SetName(v)),
        new("S", null, "freeze CPU at startup (use 'c' to start execution)", (b, _) => b.Config.StartPaused = true),
        new("incoming", "uri", "wait for an incoming migration on tcp:HOST:PORT, unix:PATH or defer", (b, v) => b.Config.Incoming = v),
        new("object", "TYPENAME[,PROP1=VALUE1,...]", "create a new object of type TYPENAME ('-object help' for list)", (b, v) => b.Config.Objects.Add(new("object", b.ParseTyped(v, "qom-type", ObjectCategory.Object)))),
        new("device", "driver[,prop[=value][,...]]", "add device (based on driver); '-device help' lists drivers", (b, v) => b.Config.Devices.Add(new("device", b.ParseTyped(v, "driver", ObjectCategory.Device)))),
        new("netdev", "type,id=str[,...]", "configure a network backend ('-netdev help' for list)", (b, v) => b.Config.Netdevs.Add(new("netdev", b.ParseTyped(v, "type", ObjectCategory.Netdev)))),
        new("chardev", "backend,id=id[,...]", "configure a character device backend ('-chardev help' for list)", (b, v) => b.Config.Chardevs.Add(new("chardev", b.ParseTyped(v, "backend", ObjectCategory.Chardev)))),
        new("drive", "[file=file][,if=type][,id=str][,driver=...][,node-name=...]", "use 'file' as a drive image; dotted options build nested block nodes", (b, v) => b.Config.Drives.Add(new("drive", KeyValParser.Parse(v, null)))),
        new("hda", "file", "use 'file' as IDE hard disk 0 image", (b, v) => b.AddLegacyDrive(v, 0, "disk")),
        new("hdb", "file", "use 'file' as IDE hard disk 1 image", (b, v) => b.AddLegacyDrive(v, 1, "disk")),
        new("hdc", "file", "use 'file' as IDE hard disk 2 image", (b, v) => b.AddLegacyDrive(v, 2, "disk")),
        new("hdd", "file", "use 'file' as IDE hard disk 3 image", (b, v) => b.AddLegacyDrive(v, 3, "disk")),
        new("cdrom", "file", "use 'file' as IDE cdrom image (cdrom is ide1 master)", (b, v) => b.AddLegacyDrive(v, 2, "cdrom")),
        new("qmp", "dev", "like -monitor but opens in 'control' mode (QMP)", (b, v) => b.AddMonitor(v, control: true, pretty: false, "qmp")),
        new("qmp-pretty", "dev", "like -qmp but uses pretty JSON formatting", (b, v) => b.AddMonitor(v, control: true, pretty: true, "qmp-pretty")),
        new("monitor", "dev", "redirect the HMP monitor to char device 'dev'", (b, v) => b.AddMonitor(v, control: false, pretty: false, "monitor")),
        new("mon", "[chardev=]name[,mode=readline|control][,pretty[=on|off]]", "create a monitor on a chardev", (b, v) => AddMon(b, v)),
        new("serial", "dev", "redirect the serial port to char device 'dev'", (b, v) => b.AddSerial(v)),
        new("echr", "chr", "set terminal escape character instead of ctrl-a", (_, v) => ConfigBuilder.SetEscapeChar(v)),
        new("nographic", null, "disable graphical output and redirect serial I/Os to console", (b, _) => b.Config.NoGraphic = true),
        new("display", "type", "select display backend type (Colo is headless: none)", (b, v) => b.SetDisplay(v)),
        new("vga", "type", "select video card type (none: Colo has no display)", (b, v) => b.Config.Vga = v),
        new("nodefaults", null, "don't create default devices", (b, _) => b.Config.NoDefaults = true),
        new("no-reboot", null, "exit instead of rebooting", (b, _) => b.Config.NoReboot = true),
        new("no-shutdown", null, "stop before shutdown", (b, _) => b.Config.NoShutdown = true),
        new("kernel", "bzImage", "use 'bzImage' as kernel image", (b, v) => b.Config.Kernel = v),
        new("initrd", "file", "use 'file' as initial ram disk", (b, v) => b.Config.Initrd = v),
        new("append", "cmdline", "use 'cmdline' as kernel command line", (b, v) => b.Config.Append = v),
        new("bios", "file", "set the filename for the BIOS", (b, v) => b.Config.Bios = v),
        new("L", "path", "set the directory for the BIOS, VGA BIOS and keymaps", (b, v) => b.Config.DataDirs.Add(v)),
        new("boot", "[order=drives][,once=drives][,menu=on|off]", "boot order (accepted; the pc-machine issue uses it)", (b, v) => KeyValParser.Parse(v, "order")),
        new("usb", null, "enable on-board USB host controller (if not enabled by default)", (_, _) => { }),
        new("pidfile", "file", "write PID to 'file'", (b, v) => b.Config.PidFile = v),
        new("daemonize", null, "daemonize QEMU after initializing", (b, _) => b.Config.Daemonize = true),
        new("msg", "[timestamp=on|off][,guest-name=on|off]", "control error message format", (_, v) => KeyValParser.Parse(v, null)),
        new("vnc", "display", "VNC display (not available: Colo is headless)", (_, _) => throw NotBuilt("VNC display")),
        new("gdb", "dev", "accept gdb connection on 'dev'", (_, _) => throw NotBuilt("the gdb stub")),
        new("s", null, "shorthand for -gdb tcp::1234", (_, _) => throw NotBuilt("the gdb stub")),
        new("debugcon", "dev", "redirect the Bochs/SeaBIOS debug console (port 0xe9) to char device 'dev'", (b, v) => b.AddDebugcon(v)),
        new("qtest", "dev", "run the qtest protocol on char device 'dev'", (b, v) => b.SetQtest(v)),
        new("qtest-log", "file", "log the qtest protocol to 'file' (none: no log; default stderr)", (b, v) => b.Config.QtestLog = v),
        new("icount", "[shift=N|auto]", "instruction counting", (_, _) => throw NotBuilt("-icount")),
        new("loadvm", "tag", "start right away with a saved state", (_, _) => throw NotBuilt("-loadvm")),
        new("net", "none", "legacy network option (only 'none' is accepted; use -netdev/-device)", (_, v) => { if (v != "none") { throw NotBuilt("the legacy -net option (use -netdev with -device)"); } }),
    ];

    private static QmpException NotBuilt(string what) => new($"{what} is not implemented yet in Colo");

    private static void AddMon(ConfigBuilder b, string text)
    {
        KeyValList list = KeyValParser.Parse(text, "chardev");
        string chardev = list["chardev"] ?? throw new QmpException("Parameter 'chardev' is missing");
        string mode = list["mode"] ?? "readline";
        if (mode is not ("readline" or "control"))
        {
            throw new QmpException($"Parameter 'mode' does not accept value '{mode}'");
        }
        bool pretty = list["pretty"] is { } p && OptionValues.ParseBool("pretty", p);
        b.Config.Monitors.Add(new MonitorSpec(chardev, mode == "control", pretty, "-mon " + text));
    }

    public static string VersionText() =>
        $"QEMU emulator version {VirtualMachine.QemuMajor}.{VirtualMachine.QemuMinor}.{VirtualMachine.QemuMicro} ({VirtualMachine.Package})\n" +
        "Copyright (c) 2026 the Colo developers; command line, QMP and file formats compatible with QEMU 7.2\n";

    public static string Usage()
    {
        var sb = new System.Text.StringBuilder();
        sb.Append(VersionText());
        sb.Append("usage: qemu-system-x86_64 [options] [disk_image]\n\n'disk_image' is a raw hard disk image for IDE hard disk 0\n\n");
        foreach (QemuOption option in All)
        {
            string left = option.Argument is null ? "-" + option.Name : $"-{option.Name} {option.Argument}";
            sb.Append(left.Length < 16 ? left.PadRight(16) : left + "\n" + new string(' ', 16)).Append(option.Help).Append('\n');
        }
        return sb.ToString();
    }
}
