using Colo.Block.Replication;
using Colo.Core.Options;

namespace Colo.Block.Graph;

/// <summary>The graph's part of the replication driver: opening it, and the graph edits its start and failover make.</summary>
public sealed partial class BlockGraph
{
    /// <summary>
    /// Rejects options that neither every node nor <paramref name="driver"/> takes, with QEMU's text.
    /// </summary>
    private static void CheckOptions(OptionTree options, string driver, bool top)
    {
        HashSet<string> own = driver switch
        {
            "file" => s_fileOptions,
            "raw" => s_rawOptions,
            "nbd" => s_nbdOptions,
            "quorum" => s_quorumOptions,
            "replication" => s_replicationOptions,
            _ => s_qcow2Options,
        };
        foreach (KeyValuePair<string, OptionTree> option in options.Children)
        {
            if (!s_commonOptions.Contains(option.Key) && !own.Contains(option.Key) && !(top && option.Key == "filename" && driver != "file"))
            {
                throw new BlockException(driver is "file" or "nbd"
                    ? $"Block protocol '{driver}' doesn't support the option '{option.Key}'"
                    : $"Block format '{driver}' does not support the option '{option.Key}'");
            }
        }
    }

    /// <summary>
    /// The replication node, in QEMU's order: the file child first, then <c>mode</c> and <c>top-id</c>, then
    /// leftover options. A secondary's active disk gets its inline backing (the hidden disk) read-write,
    /// since the copy-before-write and the checkpoints write it (QEMU reopens it so at start).
    /// </summary>
    private ReplicationNode OpenReplication(OptionTree options, bool readOnly, string? aio, BlockNodeSettings childSettings, List<BlockNode> created, string? nodeName, bool top)
    {
        string? mode = options.GetString("mode");
        BlockNode file = OpenFileChild(options, readOnly, aio, childSettings, created, writableBacking: mode == "secondary" && !readOnly);
        string? topId = options.GetString("top-id");
        ReplicationMode parsed;
        switch (mode)
        {
            case null:
                throw new BlockException("Missing the option mode");
            case "primary":
                if (topId is not null)
                {
                    throw new BlockException("The primary side does not support option top-id");
                }
                parsed = ReplicationMode.Primary;
                break;
            case "secondary":
                if (topId is null)
                {
                    throw new BlockException("Missing the option top-id");
                }
                parsed = ReplicationMode.Secondary;
                break;
            default:
                throw new BlockException("The option mode's value should be primary or secondary");
        }
        CheckOptions(options, "replication", top);
        return new ReplicationNode(this, file, parsed, topId, readOnly, nodeName) { FilenameText = ReplicationJsonName(options) };
    }

    /// <summary>QEMU's <c>json:{...}</c> name of a replication node.</summary>
    private static string ReplicationJsonName(OptionTree options)
    {
        var sb = new System.Text.StringBuilder("json:{\"driver\": \"replication\", \"mode\": ");
        sb.Append(Json(options.GetString("mode") ?? ""));
        if (options.GetString("top-id") is { } topId)
        {
            sb.Append(", \"top-id\": ").Append(Json(topId));
        }
        if (options["file"] is { } file)
        {
            sb.Append(", \"file\": ");
            AppendJson(sb, file);
        }
        return sb.Append('}').ToString();
    }

    /// <summary>True when a drive has <paramref name="node"/> as its root (QEMU's bdrv_has_blk).</summary>
    internal bool HasBackend(BlockNode node) => _backends.Exists(b => b.Root == node);

    /// <summary>QEMU's bdrv_is_root_node: no other node has <paramref name="node"/> as a child.</summary>
    internal bool IsRootNode(BlockNode node) => !_nodes.Exists(n => n != node && ChildrenOf(n).Any(c => c.Node == node));

    /// <summary>
    /// Puts <paramref name="front"/> in front of <paramref name="node"/> for its writers that are not nodes
    /// (NBD exports, present and future); null takes it away. This is the part of QEMU's bdrv_replace_node
    /// the replication secondary needs: only the export writes to the secondary disk.
    /// </summary>
    internal void SetWriteFront(BlockNode node, BlockNode? front)
    {
        if (front is null)
        {
            _writeFronts.Remove(node);
        }
        else
        {
            _writeFronts[node] = front;
        }
        Nbd.Redirect(node, front ?? node);
    }

    /// <summary>The node an export of <paramref name="node"/> should use.</summary>
    internal BlockNode WriteFrontOf(BlockNode node) => _writeFronts.GetValueOrDefault(node, node);

    /// <summary>Closes a node the graph owns and the nodes it owns (after a failover commit replaced it).</summary>
    internal void CloseSubtree(BlockNode root)
    {
        var gone = new List<BlockNode>();
        CollectOwned(root, gone);
        Nbd.RemoveExportsOf(gone.Contains);
        FlushQuietly(root);
        root.Dispose();
        foreach (BlockNode n in gone)
        {
            _nodes.Remove(n);
            _settings.Remove(n);
        }
    }
}
