using Colo.Core.Options;

namespace Colo.Machine;

/// <summary>One occurrence of a repeatable option, kept with its text so errors can quote it.</summary>
/// <param name="Option">The option name without the dash (<c>drive</c>).</param>
/// <param name="Value">The parsed argument.</param>
public sealed record OptionEntry(string Option, KeyValList Value)
{
    /// <summary>How QEMU prefixes errors about this option: <c>-drive if=none,id=x</c>.</summary>
    public string Context => $"-{Option} {Value.Text}";
}

/// <summary>A monitor to create: which chardev it runs on and whether it speaks QMP or HMP.</summary>
/// <param name="ChardevId">The chardev (created from <c>-chardev</c> or from a compat spec).</param>
/// <param name="Control">True for QMP (<c>mode=control</c>), false for HMP (<c>readline</c>).</param>
/// <param name="Pretty">QMP pretty-printing (<c>pretty=on</c>).</param>
/// <param name="Context">The option text, for errors.</param>
public sealed record MonitorSpec(string ChardevId, bool Control, bool Pretty, string Context);

/// <summary>A chardev implied by a legacy spec (<c>-qmp tcp:...</c>, <c>-serial stdio</c>), created under an internal id.</summary>
/// <param name="Id">Its id (<c>compat_monitor0</c>, <c>serial0</c>).</param>
/// <param name="Spec">The spec as given.</param>
/// <param name="Context">The option text, for errors.</param>
public sealed record CompatChardev(string Id, string Spec, string Context);

/// <summary>
/// Everything the <c>qemu-system-x86_64</c> command line says, typed. Built by the executable's
/// parser; consumed by <see cref="VirtualMachine"/>. Defaults are QEMU's.
/// </summary>
public sealed class MachineConfig
{
    public const ulong DefaultRamSize = 128UL << 20;

    /// <summary>The board: <c>pc</c> (alias of pc-i440fx-7.2) by default, or <c>none</c>.</summary>
    public string MachineType { get; set; } = "pc";

    /// <summary>Extra <c>-machine</c> properties besides type and accel.</summary>
    public List<KeyValuePair<string, string>> MachineProperties { get; } = [];

    /// <summary>Accelerators to try, in order (<c>-accel</c>, <c>-machine accel=</c>, <c>-enable-kvm</c>); empty means tcg.</summary>
    public List<string> Accelerators { get; } = [];

    public ulong RamSize { get; set; } = DefaultRamSize;

    public int Cpus { get; set; } = 1;

    public int MaxCpus { get; set; } = 1;

    public string CpuModel { get; set; } = "qemu64";

    /// <summary><c>-cpu</c> feature settings in order: <c>kvmclock=on</c> as (kvmclock, on), <c>+x</c> as (+x, on), <c>-x</c> as (-x, off).</summary>
    public List<KeyValuePair<string, string>> CpuFeatures { get; } = [];

    public string? Name { get; set; }

    /// <summary><c>-S</c>: stay in prelaunch until <c>cont</c>.</summary>
    public bool StartPaused { get; set; }

    /// <summary><c>-incoming URI</c> or null.</summary>
    public string? Incoming { get; set; }

    public List<OptionEntry> Chardevs { get; } = [];

    public List<OptionEntry> Objects { get; } = [];

    public List<OptionEntry> Netdevs { get; } = [];

    public List<OptionEntry> Devices { get; } = [];

    public List<OptionEntry> Drives { get; } = [];

    public List<CompatChardev> CompatChardevs { get; } = [];

    public List<MonitorSpec> Monitors { get; } = [];

    /// <summary>Chardev ids of the serial ports, in order (COM1 first).</summary>
    public List<string> Serials { get; } = [];

    public string? Kernel { get; set; }

    public string? Initrd { get; set; }

    public string? Append { get; set; }

    public string? Bios { get; set; }

    public List<string> DataDirs { get; } = [];

    public bool NoDefaults { get; set; }

    public bool NoGraphic { get; set; }

    public bool NoReboot { get; set; }

    public bool NoShutdown { get; set; }

    public string Display { get; set; } = "none";

    public string? Vga { get; set; }

    /// <summary>The chardev the qtest protocol runs on (<c>-qtest</c>), or null.</summary>
    public string? QtestChardev { get; set; }

    /// <summary><c>-qtest-log FILE</c>: null logs to stderr as QEMU does, <c>none</c> disables.</summary>
    public string? QtestLog { get; set; }

    public string? PidFile { get; set; }

    public bool Daemonize { get; set; }
}
