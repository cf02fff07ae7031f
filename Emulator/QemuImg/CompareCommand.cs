using System.CommandLine;
using Colo.Block;

namespace Colo.QemuImg;

/// <summary>
/// qemu-img compare [-f fmt] [-F fmt] [-s] [-q] img1 img2.
/// Exit codes as QEMU: 0 identical, 1 different, 2 error opening or reading.
/// </summary>
internal static class CompareCommand
{
    private const int ChunkSize = 1 << 20;

    public static Command Build()
    {
        var fmt1 = new Option<string?>("-f");
        var fmt2 = new Option<string?>("-F");
        var strict = new Option<bool>("-s");
        var quiet = new Option<bool>("-q");
        var progress = new Option<bool>("-p");
        var forceShare = new Option<bool>("-U", "--force-share");
        var files = new Argument<string[]>("files") { Arity = new ArgumentArity(2, 2) };
        var cmd = new Command("compare", "Check whether two images have the same content") { fmt1, fmt2, strict, quiet, progress, forceShare, files };
        cmd.SetAction(r => Run(r.GetValue(fmt1), r.GetValue(fmt2), r.GetValue(strict), r.GetValue(quiet), r.GetValue(files)!));
        return cmd;
    }

    private static int Run(string? fmt1, string? fmt2, bool strict, bool quiet, string[] files)
    {
        BlockNode a;
        BlockNode b;
        try
        {
            a = ConvertCommand.Open(files[0], fmt1, readOnly: true);
        }
        catch (QemuImgException e)
        {
            throw new QemuImgException(e.Message, 2);
        }

        using (a)
        {
            try
            {
                b = ConvertCommand.Open(files[1], fmt2, readOnly: true);
            }
            catch (QemuImgException e)
            {
                throw new QemuImgException(e.Message, 2);
            }

            using (b)
            {
                if (a.Size != b.Size && strict)
                {
                    Say(quiet, "Strict mode: Image size mismatch!");
                    return 1;
                }

                long common = Math.Min(a.Size, b.Size);
                var ba = new byte[ChunkSize];
                var bb = new byte[ChunkSize];
                for (long off = 0; off < common; off += ChunkSize)
                {
                    int n = (int)Math.Min(ChunkSize, common - off);
                    a.Read(off, ba.AsSpan(0, n));
                    b.Read(off, bb.AsSpan(0, n));
                    int diff = ba.AsSpan(0, n).CommonPrefixLength(bb.AsSpan(0, n));
                    if (diff < n)
                    {
                        Say(quiet, $"Content mismatch at offset {(off + diff) & ~511L}!");
                        return 1;
                    }
                }

                if (a.Size != b.Size)
                {
                    BlockNode larger = a.Size > b.Size ? a : b;
                    for (long off = common; off < larger.Size; off += ChunkSize)
                    {
                        int n = (int)Math.Min(ChunkSize, larger.Size - off);
                        larger.Read(off, ba.AsSpan(0, n));
                        int nz = ba.AsSpan(0, n).IndexOfAnyExcept((byte)0);
                        if (nz >= 0)
                        {
                            Say(quiet, $"Content mismatch at offset {(off + nz) & ~511L}!");
                            return 1;
                        }
                    }

                    Say(quiet, "Warning: Image size mismatch!");
                }

                Say(quiet, "Images are identical.");
                return 0;
            }
        }
    }

    private static void Say(bool quiet, string line)
    {
        if (!quiet)
        {
            Console.WriteLine(line);
        }
    }
}
