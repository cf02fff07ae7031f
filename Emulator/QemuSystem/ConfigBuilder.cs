using System.Globalization;
using Colo.Core.Objects;
using Colo.Core.Options;
using Colo.Core.Qmp;
using Colo.Machine;

namespace Colo.QemuSystem;

/// <summary>
/// Accumulates options into a <see cref="MachineConfig"/> as the command line is read, and notes an
/// informational request (<c>-version</c>, <c>-h</c>, <c>-device help</c>) that ends the program early.
/// </summary>
internal sealed class ConfigBuilder
{
    private int _monitorCount;
    private bool _monitorGiven;
    private bool _serialGiven;

    public MachineConfig Config { get; } = new();

    /// <summary>Set by an option whose whole job is to print something (help, version); the program prints it and exits 0.</summary>
    public string? InformationalOutput { get; private set; }

    public void Print(string text) => InformationalOutput ??= text;

    /// <summary>Parses a keyval argument and handles the <c>help</c> forms every typed option accepts.</summary>
    public KeyValList ParseTyped(string text, string impliedKey, ObjectCategory category)
    {
        KeyValList list = KeyValParser.Parse(text, impliedKey);
        string? type = list[impliedKey];
        if (type is "help" or "?")
        {
            Print(VirtualMachine.CreateTypeRegistry().ListHelp(category));
        }
        else if (list["help"] == "on" && type is not null)
        {
            Print(TypeRegistry.PropertyHelp(VirtualMachine.CreateTypeRegistry().Get(category, type)));
        }
        return list;
    }

    /// <summary>
    /// Defaults QEMU adds after reading the command line. With -nographic (and no -nodefaults): when neither a serial
    /// port nor a monitor was given, serial0 is <c>mon:stdio</c> (a mux of the serial port and the HMP monitor);
    /// otherwise the missing one of them goes to stdio, the monitor's chardev created first.
    /// </summary>
    public void ApplyDefaults()
    {
        if (!Config.NoGraphic || Config.NoDefaults)
        {
            return;
        }
        bool defaultSerial = !_serialGiven;
        bool defaultMonitor = !_monitorGiven && Config.Monitors.Count == 0;
        if (defaultSerial && defaultMonitor)
        {
            AddSerial("mon:stdio");
            return;
        }
        if (defaultSerial)
        {
            AddSerial("stdio");
        }
        if (defaultMonitor)
        {
            AddMonitor("stdio", control: false, pretty: false, "monitor");
            CompatChardev monitor = Config.CompatChardevs[^1];
            Config.CompatChardevs.RemoveAt(Config.CompatChardevs.Count - 1);
            Config.CompatChardevs.Insert(0, monitor);
        }
    }

    /// <summary><c>-echr N</c>: the mux escape character, a number in C notation (QEMU's strtol base 0).</summary>
    public static void SetEscapeChar(string text)
    {
        string t = text.Trim();
        bool negative = t.StartsWith('-');
        string digits = negative || t.StartsWith('+') ? t[1..] : t;
        int radix = digits.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? 16 : digits.Length > 1 && digits[0] == '0' ? 8 : 10;
        string body = radix == 16 ? digits[2..] : digits;
        long value = 0;
        int used = 0;
        foreach (char c in body)
        {
            int d = char.IsAsciiDigit(c) ? c - '0' : char.IsAsciiHexDigitLower(c) ? c - 'a' + 10 : char.IsAsciiHexDigitUpper(c) ? c - 'A' + 10 : 99;
            if (d >= radix)
            {
                break;
            }
            value = (value * radix) + d;
            used++;
        }
        if (used == 0)
        {
            // QEMU prints this on stdout and keeps its previous escape character.
            Console.Out.WriteLine("Bad argument to echr");
            return;
        }
        Colo.Core.Chardev.MuxChardev.EscapeChar = (byte)(negative ? -value : value);
    }

    public void AddMonitor(string spec, bool control, bool pretty, string option)
    {
        _monitorGiven = true;
        if (spec == "none")
        {
            return;
        }
        string context = $"-{option} {spec}";
        if (spec.StartsWith("chardev:", StringComparison.Ordinal))
        {
            Config.Monitors.Add(new MonitorSpec(spec["chardev:".Length..], control, pretty, context));
            return;
        }
        string id = $"compat_monitor{_monitorCount++}";
        Config.CompatChardevs.Add(new CompatChardev(id, spec, context));
        Config.Monitors.Add(new MonitorSpec(id, control, pretty, context));
    }

    public void AddSerial(string spec)
    {
        _serialGiven = true;
        if (spec == "none")
        {
            return;
        }
        if (spec.StartsWith("chardev:", StringComparison.Ordinal))
        {
            Config.Serials.Add(spec["chardev:".Length..]);
            return;
        }
        string id = $"serial{Config.Serials.Count}";
        Config.CompatChardevs.Add(new CompatChardev(id, spec, $"-serial {spec}"));
        Config.Serials.Add(id);
        if (spec.StartsWith("mon:", StringComparison.Ordinal))
        {
            // "mon:" puts the HMP monitor on the same (mux) chardev as the serial port.
            Config.Monitors.Add(new MonitorSpec(id, false, false, $"-serial {spec}"));
        }
    }

    /// <summary><c>-debugcon DEV</c>: an <c>isa-debugcon</c> at 0xE9 on a chardev made from the legacy spec.</summary>
    public void AddDebugcon(string spec)
    {
        string id = spec.StartsWith("chardev:", StringComparison.Ordinal) ? spec["chardev:".Length..] : "debugcon";
        if (id == "debugcon")
        {
            Config.CompatChardevs.Add(new CompatChardev(id, spec, $"-debugcon {spec}"));
        }
        Config.Devices.Add(new OptionEntry("device", ParseTyped($"isa-debugcon,chardev={id}", "driver", ObjectCategory.Device)));
    }

    /// <summary><c>-qtest chardev:ID</c> or a legacy chardev spec (<c>unix:PATH</c>, <c>stdio</c>, <c>tcp:...</c>).</summary>
    public void SetQtest(string spec)
    {
        if (spec.StartsWith("chardev:", StringComparison.Ordinal))
        {
            Config.QtestChardev = spec["chardev:".Length..];
            return;
        }
        Config.CompatChardevs.Add(new CompatChardev("qtest", spec, $"-qtest {spec}"));
        Config.QtestChardev = "qtest";
    }

    /// <summary><c>-hda FILE</c> and friends are shorthands for <c>-drive file=FILE,index=N,media=...</c>.</summary>
    public void AddLegacyDrive(string file, int index, string media)
    {
        string text = $"file={file.Replace(",", ",,", StringComparison.Ordinal)},index={index.ToString(CultureInfo.InvariantCulture)},media={media}";
        Config.Drives.Add(new OptionEntry("drive", KeyValParser.Parse(text, null)));
    }

    public void SetMemory(string text)
    {
        KeyValList list = KeyValParser.Parse(text, "size");
        foreach (KeyValuePair<string, string> pair in list.Pairs)
        {
            if (pair.Key is not ("size" or "slots" or "maxmem"))
            {
                throw new QmpException($"Invalid parameter '{pair.Key}'");
            }
        }
        if (list["size"] is { } size)
        {
            if (!OptionValues.TryParseSize(size, 'M', out ulong bytes))
            {
                throw new QmpException($"Parameter 'size' expects a non-negative number below 2^64\n{OptionValues.SizeHelp}");
            }
            if (bytes != 0)
            {
                Config.RamSize = bytes;
            }
        }
    }

    public void SetSmp(string text)
    {
        KeyValList list = KeyValParser.Parse(text, "cpus");
        int cpus = 0;
        int max = 0;
        foreach (KeyValuePair<string, string> pair in list.Pairs)
        {
            if (!int.TryParse(pair.Value, NumberStyles.None, CultureInfo.InvariantCulture, out int n))
            {
                throw new QmpException($"Parameter 'smp.{pair.Key}' expects integer");
            }
            switch (pair.Key)
            {
                case "cpus":
                    cpus = n;
                    break;
                case "maxcpus":
                    max = n;
                    break;
                case "sockets" or "dies" or "clusters" or "cores" or "threads":
                    break;
                default:
                    throw new QmpException($"Invalid parameter '{pair.Key}'");
            }
        }
        Config.Cpus = cpus == 0 ? 1 : cpus;
        Config.MaxCpus = Math.Max(max, Config.Cpus);
    }

    public void SetCpu(string text)
    {
        if (text is "help" or "?")
        {
            Print(CpuModels.Help());
            return;
        }
        string[] parts = text.Split(',');
        if (!CpuModels.IsKnown(parts[0]))
        {
            throw new StartupException(null, $"unable to find CPU model '{parts[0]}'");
        }
        Config.CpuModel = parts[0];
        foreach (string feature in parts.Skip(1))
        {
            if (feature.Length == 0)
            {
                continue;
            }
            KeyValuePair<string, string> setting = feature[0] switch
            {
                '+' => new(feature, "on"),
                '-' => new(feature, "off"),
                _ when feature.Contains('=', StringComparison.Ordinal) => new(feature[..feature.IndexOf('=', StringComparison.Ordinal)], feature[(feature.IndexOf('=', StringComparison.Ordinal) + 1)..]),
                _ => new(feature, "on"),
            };
            Config.CpuFeatures.Add(setting);
        }
    }

    public void SetMachine(string text)
    {
        KeyValList list = KeyValParser.Parse(text, "type");
        foreach (KeyValuePair<string, string> pair in list.Pairs)
        {
            switch (pair.Key)
            {
                case "type" when pair.Value is "help" or "?":
                    Print(MachineHelp);
                    break;
                case "type":
                    Config.MachineType = pair.Value;
                    break;
                case "accel":
                    Config.Accelerators.AddRange(pair.Value.Split(':'));
                    break;
                default:
                    Config.MachineProperties.Add(pair);
                    break;
            }
        }
    }

    public void SetAccel(string text)
    {
        KeyValList list = KeyValParser.Parse(text, "accel");
        string accel = list["accel"] ?? throw new QmpException("Parameter 'accel' is missing");
        if (accel is "help" or "?")
        {
            Print("Accelerators supported in QEMU binary:\ntcg\nkvm\nqtest\n");
            return;
        }
        foreach (KeyValuePair<string, string> pair in list.Except("accel"))
        {
            if (pair.Key is not ("thread" or "tb-size" or "kernel-irqchip" or "kvm-shadow-mem" or "split-wx" or "dirty-ring-size" or "one-insn-per-tb"))
            {
                throw new QmpException($"Invalid parameter '{pair.Key}'");
            }
        }
        Config.Accelerators.Add(accel);
    }

    public void SetName(string text)
    {
        KeyValList list = KeyValParser.Parse(text, "guest");
        Config.Name = list["guest"];
    }

    public void SetDisplay(string text)
    {
        KeyValList list = KeyValParser.Parse(text, "type");
        string type = list["type"] ?? "none";
        if (type is "help" or "?")
        {
            Print("Available display backend types:\nnone\n");
            return;
        }
        if (type != "none")
        {
            throw new QmpException($"Display '{type}' is not available in Colo: it is headless; use -display none, the serial console or a VNC-free setup");
        }
        Config.Display = type;
    }

    public static string MachineHelp => Colo.Machine.MachineTypes.Help();
}
