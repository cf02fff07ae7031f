namespace Colo.QemuSystem;

/// <summary>One <c>qemu-system-x86_64</c> option: its name, whether it takes an argument, help, and what it does.</summary>
/// <param name="Name">Name without the dash.</param>
/// <param name="Argument">Placeholder shown in help when the option takes an argument (e.g. <c>[type=]name</c>), else null.</param>
/// <param name="Help">One help line.</param>
/// <param name="Apply">Records the option in the configuration; throws <see cref="Colo.Core.Qmp.QmpException"/> on a bad value.</param>
internal sealed record QemuOption(string Name, string? Argument, string Help, Action<ConfigBuilder, string> Apply)
{
    public bool TakesArgument => Argument is not null;
}
