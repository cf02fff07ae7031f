using System.CommandLine;
using Colo.Block;
using Colo.Block.File;
using Colo.Block.Qcow2;

namespace Colo.QemuImg;

/// <summary>qemu-img create [-q] [-f fmt] [-b backing -F backing_fmt] [-u] [-o options] filename [size]</summary>
internal static class CreateCommand
{
    public static Command Build()
    {
        var format = new Option<string>("-f") { DefaultValueFactory = _ => "raw" };
        var backing = new Option<string?>("-b");
        var backingFmt = new Option<string?>("-F");
        var opts = new Option<string[]>("-o") { AllowMultipleArgumentsPerToken = false };
        var quiet = new Option<bool>("-q");
        var unsafeOpt = new Option<bool>("-u");
        var filename = new Argument<string>("filename");
        var size = new Argument<string?>("size") { Arity = ArgumentArity.ZeroOrOne };
        var cmd = new Command("create", "Create a new disk image") { format, backing, backingFmt, opts, quiet, unsafeOpt, filename, size };
        cmd.SetAction(r => Run(
            r.GetValue(format)!,
            r.GetValue(backing),
            r.GetValue(backingFmt),
            r.GetValue(opts) ?? [],
            r.GetValue(quiet),
            r.GetValue(unsafeOpt),
            r.GetValue(filename)!,
            r.GetValue(size)));
        return cmd;
    }

    private static int Run(string fmt, string? backing, string? backingFmt, string[] optLists, bool quiet, bool unsafeBacking, string filename, string? sizeArg)
    {
        long? size = null;
        if (sizeArg != null)
        {
            size = SizeFormat.Parse(sizeArg);
            if (size == null)
            {
                throw new QemuImgException("Invalid image size specified. You may use k, M, G, T, P or E suffixes for\nqemu-img: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
            }
        }

        CreateImage(fmt, backing, backingFmt, optLists, quiet, unsafeBacking, filename, size);
        return 0;
    }

    /// <summary>Creates an image the way "create" does; "convert" uses it for its target.</summary>
    public static void CreateImage(string fmt, string? backing, string? backingFmt, IEnumerable<string> optLists, bool quiet, bool unsafeBacking, string filename, long? size)
    {
        string p = $"{filename}: ";
        if (fmt is not ("raw" or "qcow2"))
        {
            throw new QemuImgException($"{p}Unknown file format '{fmt}'");
        }

        List<KeyValuePair<string, string>> o = ImgOptions.Parse(optLists);
        string? compat = null;
        int clusterSize = 65536;
        bool lazy = false;
        int refBits = 16;
        bool zstd = false;
        foreach ((string key, string value) in o)
        {
            switch (key)
            {
                case "size":
                    size = SizeFormat.Parse(value) ?? throw new QemuImgException($"{p}Parameter 'size' expects a non-negative number below 2^64");
                    break;
                case "backing_file" when fmt == "qcow2":
                    backing = value;
                    break;
                case "backing_fmt" when fmt == "qcow2":
                    backingFmt = value;
                    break;
                case "compat" when fmt == "qcow2":
                    compat = value;
                    break;
                case "cluster_size" when fmt == "qcow2":
                    clusterSize = (int)Math.Min(int.MaxValue, SizeFormat.Parse(value) ?? throw new QemuImgException($"{p}Parameter 'cluster_size' expects a non-negative number below 2^64"));
                    break;
                case "lazy_refcounts" when fmt == "qcow2":
                    lazy = ImgOptions.ParseBool(p, key, value);
                    break;
                case "refcount_bits" when fmt == "qcow2":
                    refBits = int.TryParse(value, out int rb) ? rb : throw new QemuImgException($"{p}Parameter 'refcount_bits' expects a number");
                    break;
                case "compression_type" when fmt == "qcow2":
                    zstd = value switch
                    {
                        "zlib" => false,
                        "zstd" => true,
                        _ => throw new QemuImgException($"{p}Parameter 'compression-type' does not accept value '{value}'"),
                    };
                    break;
                case "extended_l2" when fmt == "qcow2":
                    if (ImgOptions.ParseBool(p, key, value))
                    {
                        throw new QemuImgException($"{p}Extended L2 entries are not supported by Colo");
                    }

                    break;
                case "preallocation":
                    if (value != "off")
                    {
                        throw new QemuImgException($"{p}Preallocation mode '{value}' is not supported by Colo");
                    }

                    break;
                case "encryption" or "encrypt.format" when fmt == "qcow2":
                    throw new QemuImgException($"{p}qcow2 encryption is not supported by Colo");
                case "data_file" or "data_file_raw" when fmt == "qcow2":
                    throw new QemuImgException($"{p}qcow2 external data files are not supported by Colo");
                default:
                    throw new QemuImgException($"{p}Invalid parameter '{key}'");
            }
        }

        if (backing != null && fmt != "qcow2")
        {
            throw new QemuImgException($"{p}Backing file not supported for file format '{fmt}'");
        }

        if (backing != null && backingFmt == null)
        {
            throw new QemuImgException($"{p}Backing file specified without backing format");
        }

        if (backing != null && (!unsafeBacking || size == null))
        {
            // Like QEMU: the backing image must open (relative to the new image) and gives the default size.
            try
            {
                using BlockNode b = BlockImage.Open(BlockImage.CombinePath(filename, backing), backingFmt, readOnly: true);
                size ??= b.Size;
            }
            catch (BlockException e)
            {
                throw new QemuImgException($"{p}{e.Message}\nCould not open backing image.");
            }
        }

        if (size == null)
        {
            throw new QemuImgException($"{p}Image creation needs a size parameter");
        }

        long rounded = (size.Value + 511) & ~511L;
        if (!quiet)
        {
            Console.WriteLine(FormattingLine(filename, fmt, size.Value, compat, backing, backingFmt, clusterSize, lazy, refBits, zstd));
        }

        if (fmt == "raw")
        {
            FileNode.Create(filename, rounded);
            AllocateFirstBlock(filename, rounded);
            return;
        }

        int version = compat switch
        {
            null or "1.1" or "v3" => 3,
            "0.10" or "v2" => 2,
            _ => throw new QemuImgException($"{p}Parameter 'version' does not accept value '{compat}'"),
        };
        Qcow2Creator.Create(filename, new Qcow2CreateOptions
        {
            Size = rounded,
            ClusterSize = clusterSize,
            Version = version,
            LazyRefcounts = lazy,
            RefcountBits = refBits,
            BackingFile = backing,
            BackingFormat = backingFmt,
            Zstd = zstd,
        });
    }

    /// <summary>QEMU writes the first block of a new raw file so later alignment probing works.</summary>
    private static void AllocateFirstBlock(string filename, long size)
    {
        if (size <= 0)
        {
            return;
        }

        using FileNode f = FileNode.Open(filename, readOnly: false);
        f.Write(0, new byte[Math.Min(size, 4096)]);
    }

    private static string FormattingLine(string filename, string fmt, long size, string? compat, string? backing, string? backingFmt, int clusterSize, bool lazy, int refBits, bool zstd)
    {
        if (fmt == "raw")
        {
            return $"Formatting '{filename}', fmt=raw size={size}";
        }

        var sb = new System.Text.StringBuilder();
        sb.Append($"Formatting '{filename}', fmt=qcow2 cluster_size={clusterSize} extended_l2=off compression_type={(zstd ? "zstd" : "zlib")} size={size}");
        if (compat != null)
        {
            sb.Append($" compat={compat}");
        }

        if (backing != null)
        {
            sb.Append($" backing_file={backing}");
        }

        if (backingFmt != null)
        {
            sb.Append($" backing_fmt={backingFmt}");
        }

        sb.Append($" lazy_refcounts={(lazy ? "on" : "off")} refcount_bits={refBits}");
        return sb.ToString();
    }
}
