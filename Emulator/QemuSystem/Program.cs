namespace Colo.QemuSystem;

internal static class Program
{
    private static int Main(string[] args)
    {
        Console.Error.WriteLine("qemu-system-x86_64: not built yet");
        return 1;
    }
}
