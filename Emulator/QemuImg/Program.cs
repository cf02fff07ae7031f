namespace Colo.QemuImg;

internal static class Program
{
    private static int Main(string[] args)
    {
        Console.Error.WriteLine("qemu-img: not built yet");
        return 1;
    }
}
