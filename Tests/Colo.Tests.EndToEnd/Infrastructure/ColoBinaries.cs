namespace Colo.Tests.EndToEnd.Infrastructure;

/// <summary>Finds the published executables in <c>build/bin</c> (tools/build.sh puts them there).</summary>
internal static class ColoBinaries
{
    public static string RepositoryRoot { get; } = FindRoot();

    public static string QemuSystem => Require("qemu-system-x86_64");

    public static string QemuImg => Require("qemu-img");

    public static string QemuIo => Require("qemu-io");

    public static string QemuNbd => Require("qemu-nbd");

    private static string Require(string name)
    {
        string path = Path.Combine(RepositoryRoot, "build", "bin", name);
        if (!File.Exists(path))
        {
            Assert.Fail($"{path} is missing: run tools/build.sh (tools/test.sh does) before the end-to-end tests");
        }
        return path;
    }

    private static string FindRoot()
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Colo.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("Colo.sln not found above " + AppContext.BaseDirectory);
    }
}
