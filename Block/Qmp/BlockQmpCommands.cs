using Colo.Block.File;
using Colo.Block.Graph;
using Colo.Block.Qcow2;
using Colo.Core.Qmp;

namespace Colo.Block.Qmp;

/// <summary>The block layer's QMP commands, one line each, and the records they report.</summary>
public static class BlockQmpCommands
{
    public static void Register(QmpCommandRegistry r, BlockGraph graph)
    {
        BlockQmpJsonContext j = BlockQmpJsonContext.Default;
        r.Register("query-block", j.QmpNoArgs, j.BlockInfoArray, _ => QueryBlock(graph));
        r.Register("query-named-block-nodes", j.QueryNamedBlockNodesArgs, j.BlockDeviceInfoArray, a => QueryNamedBlockNodes(graph, a.Flat ?? false));
    }

    /// <summary>QEMU's query-block: one entry per drive, in creation order.</summary>
    public static BlockInfo[] QueryBlock(BlockGraph graph)
    {
        var list = new BlockInfo[graph.Backends.Count];
        for (int i = 0; i < list.Length; i++)
        {
            BlockBackend b = graph.Backends[i];
            list[i] = new BlockInfo(b.Name, null, "unknown", true, false, DeviceInfo(graph, b.Root, flat: false));
        }
        return list;
    }

    /// <summary>QEMU's query-named-block-nodes: every node, newest first; <paramref name="flat"/> leaves out backing images.</summary>
    public static BlockDeviceInfo[] QueryNamedBlockNodes(BlockGraph graph, bool flat)
    {
        var list = new BlockDeviceInfo[graph.Nodes.Count];
        for (int i = 0; i < list.Length; i++)
        {
            list[i] = DeviceInfo(graph, graph.Nodes[list.Length - 1 - i], flat);
        }
        return list;
    }

    /// <summary>QEMU's bdrv_block_device_info for one node.</summary>
    public static BlockDeviceInfo DeviceInfo(BlockGraph graph, BlockNode node, bool flat)
    {
        BlockNodeSettings s = graph.SettingsOf(node);
        BlockNode? backing = graph.BackingOf(node);
        return new BlockDeviceInfo(
            node.Filename, node.NodeName, node.ReadOnly, node.DriverName, BackingFileName(node, backing), flat ? 0 : graph.BackingDepth(node), // QEMU leaves the chain unwalked when flat
            false, s.DetectZeroes, 0, 0, 0, 0, 0, 0, Image(graph, node, flat), new BlockdevCacheInfo(s.Writeback, s.Direct, s.NoFlush), 0);
    }

    /// <summary>The backing file name as QEMU keeps it: as the image header writes it, else the attached node's.</summary>
    public static string? BackingFileName(BlockNode node, BlockNode? backing) =>
        backing is null ? null : (node as Qcow2Node)?.Header.BackingFile ?? backing.Filename;

    /// <summary>QEMU's bdrv_query_image_info, with the backing chain unless <paramref name="flat"/>.</summary>
    public static ImageInfo Image(BlockGraph graph, BlockNode node, bool flat)
    {
        BlockNode? backing = graph.BackingOf(node);
        Qcow2Node? qcow2 = node as Qcow2Node;
        string? backingName = qcow2?.Header.BackingFile ?? backing?.Filename;
        string? fullBacking = backing?.Filename ?? (backingName is null ? null : BlockImage.CombinePath(node.Filename, backingName));
        string? backingFormat = qcow2?.Header.BackingFormat ?? backing?.DriverName;
        return new ImageInfo(
            node.Filename,
            node.DriverName,
            false,
            ActualSize(node.Filename),
            (node.Size + 511) & ~511L, // QEMU counts whole 512-byte sectors (bdrv_getlength)
            qcow2?.ClusterSize,
            backingName,
            fullBacking,
            backingFormat,
            flat || backing is null ? null : Image(graph, backing, false),
            qcow2 is null ? null : new ImageInfoSpecific("qcow2", Qcow2Specific(qcow2.Header)));
    }

    private static ImageInfoSpecificQCow2 Qcow2Specific(Qcow2Header h)
    {
        bool v3 = h.Version >= 3;
        string compression = (h.IncompatibleFeatures & Qcow2Header.IncompatCompressionType) != 0 && h.CompressionType == 1 ? "zstd" : "zlib";
        return new ImageInfoSpecificQCow2(
            v3 ? "1.1" : "0.10",
            v3 ? (h.IncompatibleFeatures & Qcow2Header.IncompatExtendedL2) != 0 : null,
            v3 ? (h.CompatibleFeatures & Qcow2Header.CompatLazyRefcounts) != 0 : null,
            v3 ? (h.IncompatibleFeatures & Qcow2Header.IncompatCorrupt) != 0 : null,
            1 << h.RefcountOrder,
            compression);
    }

    private static long? ActualSize(string filename)
    {
        try
        {
            return FileNode.GetAllocatedSize(filename);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or BlockException)
        {
            return null;
        }
    }
}
