using System.CommandLine;
using Colo.Block;

namespace Colo.QemuImg;

/// <summary>qemu-img resize [-f fmt] [--shrink] [-q] filename [+|-]size</summary>
internal static class ResizeCommand
{
    public static Command Build()
    {
        var format = new Option<string?>("-f");
        var shrink = new Option<bool>("--shrink");
        var quiet = new Option<bool>("-q");
        var filename = new Argument<string>("filename");
        var size = new Argument<string>("size");
        var cmd = new Command("resize", "Change the virtual size of an image") { format, shrink, quiet, filename, size };
        cmd.SetAction(r => Run(r.GetValue(format), r.GetValue(shrink), r.GetValue(quiet), r.GetValue(filename)!, r.GetValue(size)!));
        return cmd;
    }

    private static int Run(string? fmt, bool shrink, bool quiet, string filename, string sizeArg)
    {
        int sign = sizeArg.StartsWith('+') ? 1 : sizeArg.StartsWith('-') ? -1 : 0;
        long? n = SizeFormat.Parse(sign != 0 ? sizeArg[1..] : sizeArg);
        if (n == null)
        {
            throw new QemuImgException("Invalid image size specified. You may use k, M, G, T, P or E suffixes for\nqemu-img: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        }

        using BlockNode node = ConvertCommand.Open(filename, fmt, readOnly: false);
        long newSize = sign == 0 ? n.Value : node.Size + (sign * n.Value);
        if (newSize < 0)
        {
            throw new QemuImgException("New image size must be positive");
        }

        if (newSize < node.Size && !shrink)
        {
            throw new QemuImgException("Use the --shrink option to perform a shrink operation.\nqemu-img: warning: Shrinking an image will delete all data beyond the shrunken image's end. Before performing such an operation, make sure there is no important data there.");
        }

        node.Truncate(newSize);
        node.Flush();
        if (!quiet)
        {
            Console.WriteLine("Image resized.");
        }

        return 0;
    }
}
