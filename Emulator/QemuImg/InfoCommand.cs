using System.CommandLine;
using Colo.Block;
using Colo.Block.Qcow2;

namespace Colo.QemuImg;

/// <summary>qemu-img info [-f fmt] [--output=human|json] [--backing-chain] [-U] filename</summary>
internal static class InfoCommand
{
    public static Command Build()
    {
        var format = new Option<string?>("-f");
        var output = new Option<string>("--output") { DefaultValueFactory = _ => "human" };
        var chain = new Option<bool>("--backing-chain");
        var forceShare = new Option<bool>("-U", "--force-share");
        var filename = new Argument<string>("filename");
        var cmd = new Command("info", "Show information about an image") { format, output, chain, forceShare, filename };
        cmd.SetAction(r => Run(r.GetValue(format), r.GetValue(output)!, r.GetValue(chain), r.GetValue(filename)!));
        return cmd;
    }

    private static int Run(string? fmt, string output, bool chain, string filename)
    {
        if (output is not ("human" or "json"))
        {
            throw new QemuImgException($"--output must be used with human or json as argument.");
        }

        var infos = new List<ImageInfo>();
        string? current = filename;
        string? currentFmt = fmt;
        var seen = new HashSet<string>();
        while (current != null)
        {
            if (!seen.Add(Path.GetFullPath(current)))
            {
                throw new QemuImgException($"Backing file '{current}' creates an infinite loop.");
            }

            ImageInfo info;
            try
            {
                using BlockNode node = BlockImage.Open(current, currentFmt, readOnly: true, openBacking: false);
                info = ImageInfo.Of(current, node);
            }
            catch (BlockException e)
            {
                throw new QemuImgException($"Could not open '{current}': {e.Message}");
            }

            infos.Add(info);
            if (!chain || info.FullBackingFilename == null)
            {
                break;
            }

            current = info.FullBackingFilename;
            currentFmt = info.BackingFormat;
        }

        if (output == "json")
        {
            string json = JsonOut.Write(w =>
            {
                if (chain)
                {
                    w.WriteStartArray();
                }

                foreach (ImageInfo i in infos)
                {
                    i.WriteJson(w);
                }

                if (chain)
                {
                    w.WriteEndArray();
                }
            });
            Console.WriteLine(json);
        }
        else
        {
            Console.Write(string.Join("\n", infos.Select(i => i.ToHuman())));
        }

        return 0;
    }
}
