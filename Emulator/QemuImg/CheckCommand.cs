using System.CommandLine;
using System.Globalization;
using System.Text;
using Colo.Block;
using Colo.Block.Qcow2;

namespace Colo.QemuImg;

/// <summary>
/// qemu-img check [-f fmt] [--output=human|json] [-r leaks|all] [-q] filename.
/// Exit codes as QEMU documents: 0 clean, 1 check failed, 2 corruptions, 3 only leaks, 63 unsupported.
/// </summary>
internal static class CheckCommand
{
    public static Command Build()
    {
        var format = new Option<string?>("-f");
        var output = new Option<string>("--output") { DefaultValueFactory = _ => "human" };
        var repair = new Option<string?>("-r");
        var quiet = new Option<bool>("-q");
        var forceShare = new Option<bool>("-U", "--force-share");
        var filename = new Argument<string>("filename");
        var cmd = new Command("check", "Check an image for consistency") { format, output, repair, quiet, forceShare, filename };
        cmd.SetAction(r => Run(r.GetValue(format), r.GetValue(output)!, r.GetValue(repair), r.GetValue(quiet), r.GetValue(filename)!));
        return cmd;
    }

    private static int Run(string? fmt, string output, string? repair, bool quiet, string filename)
    {
        if (output is not ("human" or "json"))
        {
            throw new QemuImgException("--output must be used with human or json as argument.");
        }

        Qcow2CheckFix fix = repair switch
        {
            null => Qcow2CheckFix.None,
            "leaks" => Qcow2CheckFix.Leaks,
            "all" => Qcow2CheckFix.All,
            _ => throw new QemuImgException($"Unknown option value for -r (expecting 'leaks' or 'all'): {repair}\nTry 'qemu-img --help' for more information"),
        };

        BlockNode node;
        try
        {
            node = BlockImage.Open(filename, fmt, readOnly: fix == Qcow2CheckFix.None, openBacking: false, forCheck: true);
        }
        catch (BlockException e)
        {
            throw new QemuImgException($"Could not open '{filename}': {e.Message}");
        }

        using (node)
        {
            if (node is not Qcow2Node q)
            {
                throw new QemuImgException("This image format does not support checks", 63);
            }

            Qcow2CheckResult r = q.Check(fix, Console.Error);
            var text = new StringBuilder();
            if (r.LeaksFixed > 0 || r.CorruptionsFixed > 0)
            {
                text.Append("The following inconsistencies were found and repaired:\n\n");
                text.Append($"    {r.LeaksFixed} leaked clusters\n");
                text.Append($"    {r.CorruptionsFixed} corruptions\n\n");
                text.Append("Double checking the fixed image now...\n");
                Qcow2CheckResult again = q.Check(Qcow2CheckFix.None, Console.Error);
                again.LeaksFixed = r.LeaksFixed;
                again.CorruptionsFixed = r.CorruptionsFixed;
                r = again;
            }

            if (output == "json")
            {
                Console.WriteLine(Json(r, filename));
            }
            else if (!quiet)
            {
                Console.Write(text.ToString());
                Console.Write(Human(r));
            }

            return r.CheckErrors > 0 ? 1 : r.Corruptions > 0 ? 2 : r.Leaks > 0 ? 3 : 0;
        }
    }

    private static string Human(Qcow2CheckResult r)
    {
        var sb = new StringBuilder();
        if (r.Corruptions == 0 && r.Leaks == 0 && r.CheckErrors == 0)
        {
            sb.Append("No errors were found on the image.\n");
        }
        else
        {
            if (r.Corruptions > 0)
            {
                sb.Append($"\n{r.Corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n");
            }

            if (r.Leaks > 0)
            {
                sb.Append($"\n{r.Leaks} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n");
            }

            if (r.CheckErrors > 0)
            {
                sb.Append($"\n{r.CheckErrors} internal errors have occurred during the check.\n");
            }
        }

        if (r.TotalClusters != 0 && r.AllocatedClusters != 0)
        {
            double total = r.TotalClusters;
            double alloc = r.AllocatedClusters;
            sb.Append(string.Create(
                CultureInfo.InvariantCulture,
                $"{r.AllocatedClusters}/{r.TotalClusters} = {alloc * 100 / total:F2}% allocated, {r.FragmentedClusters * 100 / alloc:F2}% fragmented, {r.CompressedClusters * 100 / alloc:F2}% compressed clusters\n"));
        }

        if (r.ImageEndOffset > 0)
        {
            sb.Append($"Image end offset: {r.ImageEndOffset}\n");
        }

        return sb.ToString();
    }

    /// <summary>Keys in the order QEMU 7.2 prints them (its QDict's hash order, not insertion order).</summary>
    private static string Json(Qcow2CheckResult r, string filename) => JsonOut.Write(w =>
    {
        w.WriteStartObject();
        w.WriteNumber("image-end-offset", r.ImageEndOffset);
        if (r.CompressedClusters > 0)
        {
            w.WriteNumber("compressed-clusters", r.CompressedClusters);
        }

        w.WriteNumber("total-clusters", r.TotalClusters);
        if (r.Corruptions > 0)
        {
            w.WriteNumber("corruptions", r.Corruptions);
        }

        w.WriteNumber("check-errors", r.CheckErrors);
        if (r.Leaks > 0)
        {
            w.WriteNumber("leaks", r.Leaks);
        }

        if (r.CorruptionsFixed > 0)
        {
            w.WriteNumber("corruptions-fixed", r.CorruptionsFixed);
        }

        if (r.LeaksFixed > 0)
        {
            w.WriteNumber("leaks-fixed", r.LeaksFixed);
        }

        if (r.AllocatedClusters > 0)
        {
            w.WriteNumber("allocated-clusters", r.AllocatedClusters);
        }

        w.WriteString("filename", filename);
        w.WriteString("format", "qcow2");
        if (r.FragmentedClusters > 0)
        {
            w.WriteNumber("fragmented-clusters", r.FragmentedClusters);
        }

        w.WriteEndObject();
    });
}
