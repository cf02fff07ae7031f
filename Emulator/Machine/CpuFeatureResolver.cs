using Colo.Core.Cpu;

namespace Colo.Machine;

/// <summary>
/// Turns <c>-cpu MODEL,+feat,-feat,feat=on|off,...</c> into the CPUID feature words every vCPU reports, with QEMU
/// 7.2's feature names and its texts: an unknown property or a bad value is a startup error; a feature the CPU engine
/// cannot execute is dropped with QEMU's "TCG doesn't support requested feature" warning (fatal with <c>enforce</c>).
/// </summary>
public static class CpuFeatureResolver
{
    private enum Word
    {
        Leaf1Edx,
        Leaf1Ecx,
        Ext1Edx,
        Ext1Ecx,
    }

    private static readonly string?[] Leaf1EdxNames =
    [
        "fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", null, "sep", "mtrr", "pge", "mca", "cmov",
        "pat", "pse36", "pn", "clflush", null, "ds", "acpi", "mmx", "fxsr", "sse", "sse2", "ss", "ht", "tm", "ia64", "pbe",
    ];

    private static readonly string?[] Leaf1EcxNames =
    [
        "pni", "pclmulqdq", "dtes64", "monitor", "ds-cpl", "vmx", "smx", "est", "tm2", "ssse3", "cid", null, "fma", "cx16", "xtpr", "pdcm",
        null, "pcid", "dca", "sse4.1", "sse4.2", "x2apic", "movbe", "popcnt", "tsc-deadline", "aes", "xsave", null, "avx", "f16c", "rdrand", "hypervisor",
    ];

    private static readonly string?[] Ext1EdxNames =
    [
        null, null, null, null, null, null, null, null, null, null, null, "syscall", null, null, null, null,
        null, null, null, null, "nx", null, "mmxext", null, null, "fxsr-opt", "pdpe1gb", "rdtscp", null, "lm", "3dnowext", "3dnow",
    ];

    private static readonly string?[] Ext1EcxNames =
    [
        "lahf-lm", "cmp-legacy", "svm", "extapic", "cr8legacy", "abm", "sse4a", "misalignsse", "3dnowprefetch", "osvw", "ibs", "xop", "skinit", "wdt", null, "lwp",
        "fma4", "tce", null, "nodeid-msr", null, "tbm", "topoext", "perfctr-core", "perfctr-nb", null, null, null, null, null, null, null,
    ];

    // QEMU's alternative spellings (after '_' → '-').
    private static readonly Dictionary<string, string> Aliases = new(StringComparer.Ordinal)
    {
        ["sse3"] = "pni",
        ["sse4-1"] = "sse4.1",
        ["sse4-2"] = "sse4.2",
        ["i64"] = "lm",
        ["xd"] = "nx",
        ["ffxsr"] = "fxsr-opt",
    };

    // KVM paravirtual features: QEMU accepts them on any accelerator; without KVM its leaves are not exposed at all.
    private static readonly HashSet<string> KvmOnly = new(StringComparer.Ordinal)
    {
        "kvmclock", "kvm-nopiodelay", "kvm-mmu", "kvmclock-stable-bit", "kvm-asyncpf", "kvm-steal-time", "kvm-pv-eoi",
        "kvm-pv-unhalt", "kvm-pv-tlb-flush", "kvm-pv-ipi", "kvm-poll-control", "kvm-pv-sched-yield", "kvm-asyncpf-int",
        "kvm-msi-ext-dest-id",
    };

    /// <summary>
    /// The feature words of <paramref name="model"/> with <paramref name="settings"/> applied (keys "+feat"/"-feat" or
    /// "feat" with its value, in command-line order), limited to
    /// <paramref name="supported"/>; warnings go to <paramref name="warn"/> (without the program-name prefix).
    /// </summary>
    /// <exception cref="StartupException">An unknown model feature, a bad value, a model not built, or enforce failing.</exception>
    public static CpuidFeatures Resolve(string model, string accelerator, IEnumerable<KeyValuePair<string, string>> settings,
        CpuidFeatures supported, Action<string> warn)
    {
        CpuidFeatures features = model switch
        {
            "qemu64" => CpuidFeatures.Qemu64,
            "max" => supported,
            "host" => throw new StartupException(null, "CPU model 'host' requires KVM or HVF"),
            _ => throw new StartupException(null, $"CPU model '{model}' is not built yet: Colo models qemu64 and max"),
        };
        uint[] words = [features.Leaf1Edx, features.Leaf1Ecx, features.Ext1Edx, features.Ext1Ecx];
        uint[] requested = new uint[4];
        bool enforce = false;
        string typeName = $"{model}-x86_64-cpu";
        foreach ((string key, string value) in settings)
        {
            // "+feat"/"-feat" arrive with their sign; QEMU words their errors without the "can't apply global".
            bool signed = key.Length > 0 && key[0] is '+' or '-';
            string rawName = signed ? key[1..] : key;
            string name = rawName.Replace('_', '-');
            if (Aliases.TryGetValue(name, out string? canonical))
            {
                name = canonical;
            }
            bool known = name is "enforce" or "check" || KvmOnly.Contains(name) || Find(name, out _, out _);
            if (!known)
            {
                string property = $"Property '{typeName}.{rawName}' not found";
                throw new StartupException(null, signed ? property : $"can't apply global {typeName}.{rawName}={value}: {property}");
            }
            bool? on = value switch
            {
                "on" or "yes" or "true" or "y" => true,
                "off" or "no" or "false" or "n" => false,
                _ => null,
            };
            if (on is not bool enabled)
            {
                throw new StartupException(null, $"can't apply global {typeName}.{rawName}={value}: Parameter '{rawName}' expects 'on' or 'off'");
            }
            if (name == "enforce")
            {
                enforce = enabled;
                continue;
            }
            if (name == "check" || KvmOnly.Contains(name))
            {
                continue;
            }
            Find(name, out Word word, out int bit);
            if (enabled)
            {
                words[(int)word] |= 1u << bit;
                requested[(int)word] |= 1u << bit;
            }
            else
            {
                words[(int)word] &= ~(1u << bit);
                requested[(int)word] &= ~(1u << bit);
            }
        }
        uint[] limit = [supported.Leaf1Edx, supported.Leaf1Ecx, supported.Ext1Edx, supported.Ext1Ecx];
        bool missing = false;
        string engine = accelerator == "kvm" ? "KVM" : "TCG";
        for (int w = 0; w < 4; w++)
        {
            uint unsupported = requested[w] & ~limit[w];
            for (int bit = 0; bit < 32; bit++)
            {
                if ((unsupported & (1u << bit)) != 0)
                {
                    warn($"warning: {engine} doesn't support requested feature: {RegisterName((Word)w)}.{NamesOf((Word)w)[bit]} [bit {bit}]");
                    missing = true;
                }
            }
            words[w] &= limit[w];
        }
        if (missing && enforce)
        {
            throw new StartupException(null, $"{engine} doesn't support requested features");
        }
        return new CpuidFeatures(Leaf1Ecx: words[1], Leaf1Edx: words[0], Ext1Ecx: words[3], Ext1Edx: words[2]);
    }

    private static bool Find(string name, out Word word, out int bit)
    {
        for (int w = 0; w < 4; w++)
        {
            int i = Array.IndexOf(NamesOf((Word)w), name);
            if (i >= 0)
            {
                word = (Word)w;
                bit = i;
                return true;
            }
        }
        word = default;
        bit = -1;
        return false;
    }

    private static string?[] NamesOf(Word word) => word switch
    {
        Word.Leaf1Edx => Leaf1EdxNames,
        Word.Leaf1Ecx => Leaf1EcxNames,
        Word.Ext1Edx => Ext1EdxNames,
        _ => Ext1EcxNames,
    };

    private static string RegisterName(Word word) => word switch
    {
        Word.Leaf1Edx => "CPUID.01H:EDX",
        Word.Leaf1Ecx => "CPUID.01H:ECX",
        Word.Ext1Edx => "CPUID.80000001H:EDX",
        _ => "CPUID.80000001H:ECX",
    };
}
