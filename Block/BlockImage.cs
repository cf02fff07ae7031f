using Colo.Block.File;
using Colo.Block.Qcow2;
using Colo.Block.Raw;

namespace Colo.Block;

/// <summary>Opening images by filename: format probing and backing chains (QEMU's bdrv_open).</summary>
public static class BlockImage
{
    /// <summary>Backing chains deeper than this are treated as a loop.</summary>
    public const int MaxChainDepth = 64;

    public static readonly string[] KnownFormats = ["raw", "qcow2"];

    /// <summary>Guesses the format from the first bytes, as QEMU's probing does for our two drivers.</summary>
    public static string Probe(BlockNode file)
    {
        Span<byte> magic = stackalloc byte[4];
        file.Read(0, magic);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(magic) == Qcow2Header.Magic ? "qcow2" : "raw";
    }

    /// <summary>
    /// Opens <paramref name="filename"/> as <paramref name="format"/> (probed when null) with its
    /// backing chain. Backing files are opened read-only; relative names resolve against the
    /// directory of the image naming them.
    /// </summary>
    public static BlockNode Open(string filename, string? format, bool readOnly, bool openBacking = true, bool forCheck = false)
        => Open(filename, format, readOnly, openBacking, forCheck, 0, []);

    private static BlockNode Open(string filename, string? format, bool readOnly, bool openBacking, bool forCheck, int depth, HashSet<string> seen)
    {
        if (depth > MaxChainDepth || !seen.Add(Path.GetFullPath(filename)))
        {
            throw new BlockException($"Backing file chain of '{filename}' is too deep or contains a loop");
        }

        FileNode file = FileNode.Open(filename, readOnly);
        try
        {
            format ??= Probe(file);
            switch (format)
            {
                case "raw":
                    return new RawNode(file, readOnly);
                case "qcow2":
                    return Qcow2Node.Open(
                        file,
                        readOnly,
                        openBacking ? h => h.BackingFile is null ? null : Open(CombinePath(filename, h.BackingFile), h.BackingFormat, true, true, false, depth + 1, seen) : null,
                        forCheck: forCheck);
                default:
                    throw new BlockException($"Unknown driver '{format}'");
            }
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// QEMU's path_combine: an absolute backing name is used as is, a relative one is taken
    /// relative to the directory part of the image's own name.
    /// </summary>
    public static string CombinePath(string baseFile, string name)
    {
        if (name.StartsWith('/') || name.Contains("://", StringComparison.Ordinal))
        {
            return name;
        }

        int slash = baseFile.LastIndexOf('/');
        return slash < 0 ? name : string.Concat(baseFile.AsSpan(0, slash + 1), name);
    }
}
