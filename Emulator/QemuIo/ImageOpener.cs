using Colo.Block;
using Colo.Block.File;
using Colo.Block.Nbd;
using Colo.Block.Qcow2;
using Colo.Block.Raw;

namespace Colo.Tools;

/// <summary>
/// Opens what qemu-io and qemu-nbd are given: a filename (format probed or given with -f), an
/// <c>nbd://</c> / <c>nbd+unix://</c> URI, or with <c>--image-opts</c> a key=value list such as
/// <c>driver=qcow2,file.filename=disk.qcow2</c>. Shared by both tools (linked into each).
/// </summary>
internal static class ImageOpener
{
    public static BlockNode Open(string spec, string? format, bool imageOpts, bool readOnly)
    {
        if (!imageOpts)
        {
            return IsNbdUri(spec) ? OpenOver(NbdClient.Open(spec), format, readOnly) : BlockImage.Open(spec, format, readOnly);
        }

        Dictionary<string, string> opts = ParseKeyValues(spec);
        if (opts.Remove("read-only", out string? ro))
        {
            readOnly |= ro is "on" or "true";
        }

        string driver = opts.Remove("driver", out string? d) ? d : throw new BlockException("Must specify either driver or file");
        if (driver == "file")
        {
            string filename = opts.Remove("filename", out string? f) ? f : throw new BlockException("The 'file' block driver requires a file name");
            RejectRest(opts);
            return FileNode.Open(filename, readOnly);
        }

        if (driver is not ("raw" or "qcow2"))
        {
            throw new BlockException($"Unknown driver '{driver}'");
        }

        if (opts.Remove("file.driver", out string? fileDriver) && fileDriver != "file")
        {
            throw new BlockException($"Colo supports only the 'file' protocol under --image-opts, not '{fileDriver}'");
        }

        string name = opts.Remove("file.filename", out string? fn) ? fn
            : opts.Remove("file", out string? plain) ? plain
            : throw new BlockException("A block device must be specified for \"file\"");
        RejectRest(opts);
        return BlockImage.Open(name, driver, readOnly);
    }

    public static bool IsNbdUri(string spec) =>
        spec.StartsWith("nbd://", StringComparison.Ordinal) || spec.StartsWith("nbd+tcp://", StringComparison.Ordinal)
        || spec.StartsWith("nbd+unix://", StringComparison.Ordinal);

    /// <summary>A format over an NBD export: probed like a file unless given.</summary>
    private static BlockNode OpenOver(NbdClient nbd, string? format, bool readOnly)
    {
        try
        {
            if (nbd.ReadOnly && !readOnly)
            {
                // A read-write open of a read-only export fails, as in QEMU, rather than silently degrading.
                throw new BlockException("Could not open image: Permission denied");
            }

            format ??= BlockImage.Probe(nbd);
            return format switch
            {
                "raw" => new RawNode(nbd, readOnly),
                "qcow2" => Qcow2Node.Open(nbd, readOnly, null),
                _ => throw new BlockException($"Unknown driver '{format}'"),
            };
        }
        catch
        {
            nbd.Dispose();
            throw;
        }
    }

    private static void RejectRest(Dictionary<string, string> opts)
    {
        foreach (string key in opts.Keys)
        {
            throw new BlockException($"Invalid parameter '{key}'");
        }
    }

    /// <summary>QEMU's "key=value,key=value" (",," is a literal comma); later keys win.</summary>
    private static Dictionary<string, string> ParseKeyValues(string text)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var cur = new System.Text.StringBuilder();
        var parts = new List<string>();
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == ',' && i + 1 < text.Length && text[i + 1] == ',')
            {
                cur.Append(',');
                i++;
            }
            else if (text[i] == ',')
            {
                parts.Add(cur.ToString());
                cur.Clear();
            }
            else
            {
                cur.Append(text[i]);
            }
        }

        parts.Add(cur.ToString());
        foreach (string p in parts)
        {
            if (p.Length == 0)
            {
                continue;
            }

            int eq = p.IndexOf('=', StringComparison.Ordinal);
            if (eq < 0)
            {
                throw new BlockException($"Expected '=' after parameter '{p}'");
            }

            result[p[..eq]] = p[(eq + 1)..];
        }

        return result;
    }
}
