using System.CommandLine;
using Colo.Block;
using Colo.Block.File;
using Colo.Block.Qcow2;

namespace Colo.QemuImg;

/// <summary>
/// qemu-img commit [-f fmt] [-d] [-p] [-q] filename: copies the clusters the image itself holds
/// into its backing file, then empties the image unless -d.
/// </summary>
internal static class CommitCommand
{
    public static Command Build()
    {
        var format = new Option<string?>("-f");
        var keep = new Option<bool>("-d");
        var progress = new Option<bool>("-p");
        var quiet = new Option<bool>("-q");
        var filename = new Argument<string>("filename");
        var cmd = new Command("commit", "Commit an image into its backing file") { format, keep, progress, quiet, filename };
        cmd.SetAction(r => Run(r.GetValue(format), r.GetValue(keep), r.GetValue(progress) && !r.GetValue(quiet), r.GetValue(quiet), r.GetValue(filename)!));
        return cmd;
    }

    private static int Run(string? fmt, bool keep, bool progress, bool quiet, string filename)
    {
        BlockNode node;
        try
        {
            node = BlockImage.Open(filename, fmt, readOnly: false, openBacking: false);
        }
        catch (BlockException e)
        {
            throw new QemuImgException($"Could not open '{filename}': {e.Message}");
        }

        using (node)
        {
            if (node is not Qcow2Node top || top.Header.BackingFile == null)
            {
                throw new QemuImgException("Image does not have a backing file");
            }

            string basePath = BlockImage.CombinePath(filename, top.Header.BackingFile);
            using BlockNode baseNode = ConvertCommand.Open(basePath, top.Header.BackingFormat, readOnly: false);
            if (baseNode.Size < top.Size)
            {
                baseNode.Truncate(top.Size);
            }

            var p = new Progress(progress);
            int cs = top.ClusterSize;
            var buf = new byte[cs];
            long clusters = (top.Size + cs - 1) / cs;
            for (long vc = 0; vc < clusters; vc++)
            {
                long off = vc * cs;
                int n = (int)Math.Min(cs, top.Size - off);
                switch (top.GetClusterStatus(vc))
                {
                    case Qcow2ClusterStatus.Data:
                    case Qcow2ClusterStatus.Compressed:
                        top.Read(off, buf.AsSpan(0, n));
                        baseNode.Write(off, buf.AsSpan(0, n));
                        break;
                    case Qcow2ClusterStatus.Zero:
                        baseNode.WriteZeroes(off, n);
                        break;
                }

                p.Report((vc + 1) * 100.0 / clusters);
            }

            baseNode.Flush();
            if (!keep)
            {
                top.MakeEmpty();
            }

            p.Done();
            if (!quiet)
            {
                Console.WriteLine("Image committed.");
            }

            return 0;
        }
    }
}
