namespace Colo.QemuSystem;

/// <summary>The x86 CPU model names <c>-cpu</c> accepts; what each model means is the CPU issue's work.</summary>
internal static class CpuModels
{
    private static readonly string[] Models = ["qemu64", "qemu32", "kvm64", "kvm32", "max", "host", "base"];

    public static bool IsKnown(string name) => Array.IndexOf(Models, name) >= 0;

    public static string Help() => "Available CPUs:\n" + string.Concat(Models.Select(m => $"x86 {m}\n"));
}
