namespace Colo.Machine;

/// <summary>One machine type Colo offers (<c>-M</c>), with what <c>query-machines</c> reports about it.</summary>
/// <param name="Name">The versioned name (<c>pc-i440fx-7.2</c>).</param>
/// <param name="Alias">The unversioned alias (<c>pc</c>), or null.</param>
/// <param name="Description">The <c>-M help</c> text.</param>
/// <param name="IsDefault">Used without <c>-M</c>.</param>
/// <param name="CpuMax">Largest <c>-smp</c>.</param>
/// <param name="HotpluggableCpus">Whether QEMU offers CPU hot-plug on it.</param>
/// <param name="DefaultCpuType">The QOM type of its CPUs, or null (none has no CPU type).</param>
/// <param name="DefaultRamId">The id of its RAM backend.</param>
public sealed record MachineTypeInfo(string Name, string? Alias, string Description, bool IsDefault, int CpuMax, bool HotpluggableCpus, string? DefaultCpuType, string DefaultRamId);

/// <summary>The machine types: the single table behind <c>-M</c>, <c>-M help</c> and <c>query-machines</c>.</summary>
public static class MachineTypes
{
    /// <summary>QEMU's x86 CPU model the pc machine uses by default.</summary>
    public const string DefaultCpuType = "qemu64-x86_64-cpu";

    public static readonly IReadOnlyList<MachineTypeInfo> All =
    [
        new("pc-i440fx-7.2", "pc", "Standard PC (i440FX + PIIX, 1996)", IsDefault: true, CpuMax: 255, HotpluggableCpus: true, DefaultCpuType, "pc.ram"),
        new("none", null, "empty machine", IsDefault: false, CpuMax: 1, HotpluggableCpus: false, null, "ram"),
    ];

    /// <summary>The type <paramref name="name"/> (or its alias) names, or null.</summary>
    public static MachineTypeInfo? Find(string name)
    {
        foreach (MachineTypeInfo m in All)
        {
            if (m.Name == name || m.Alias == name)
            {
                return m;
            }
        }
        return null;
    }

    /// <summary>The text of <c>-M help</c>: aliases first, as QEMU lists them.</summary>
    public static string Help()
    {
        var sb = new System.Text.StringBuilder("Supported machines are:\n");
        foreach (MachineTypeInfo m in All)
        {
            if (m.Alias is not null)
            {
                sb.Append($"{m.Alias,-20} {m.Description} (alias of {m.Name})\n");
            }
            sb.Append($"{m.Name,-20} {m.Description}{(m.IsDefault ? " (default)" : "")}\n");
        }
        return sb.ToString();
    }
}
