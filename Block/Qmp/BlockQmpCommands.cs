using Colo.Block.File;
using Colo.Block.Graph;
using Colo.Block.Nbd;
using Colo.Block.Qcow2;
using Colo.Block.Replication;
using Colo.Core.Qmp;

namespace Colo.Block.Qmp;

/// <summary>The block layer's QMP commands, one line each, and the records they report.</summary>
public static class BlockQmpCommands
{
    public static void Register(QmpCommandRegistry r, BlockGraph graph, QmpEventBus events)
    {
        BlockQmpJsonContext j = BlockQmpJsonContext.Default;
        graph.QuorumFailure = f => events.Emit("QUORUM_FAILURE", new QuorumFailureEvent(f.Reference, f.SectorNum, f.SectorsCount), j.QuorumFailureEvent);
        graph.QuorumReportBad = b => events.Emit("QUORUM_REPORT_BAD", new QuorumReportBadEvent(b.Type, b.Error, b.NodeName, b.SectorNum, b.SectorsCount), j.QuorumReportBadEvent);
        graph.Nbd.ExportDeleted = id => events.Emit("BLOCK_EXPORT_DELETED", new BlockExportDeletedEvent(id), j.BlockExportDeletedEvent);
        r.Register("query-block", j.QmpNoArgs, j.BlockInfoArray, _ => QueryBlock(graph));
        r.Register("query-named-block-nodes", j.QueryNamedBlockNodesArgs, j.BlockDeviceInfoArray, a => QueryNamedBlockNodes(graph, a.Flat ?? false));
        r.Register("nbd-server-start", j.NbdServerStartArgs, j.QmpEmpty, a => Done(() => NbdServerStart(graph.Nbd, a)));
        r.Register("nbd-server-add", j.NbdServerAddArgs, j.QmpEmpty, a => Done(() => graph.Nbd.AddExport(a.Device, a.Name, a.Writable ?? false, a.Description, a.Bitmap)));
        r.Register("nbd-server-remove", j.NbdServerRemoveArgs, j.QmpEmpty, a => Done(() => graph.Nbd.RemoveExport(a.Name, ParseRemoveMode(a.Mode))));
        r.Register("nbd-server-stop", j.QmpNoArgs, j.QmpEmpty, _ => Done(graph.Nbd.Stop));
        r.Register("x-blockdev-change", j.XBlockdevChangeArgs, j.QmpEmpty, a => Done(() => graph.ChangeChild(a.Parent, a.Child, a.Node)));
        r.Register("query-block-exports", j.QmpNoArgs, j.BlockExportInfoArray, _ => QueryBlockExports(graph.Nbd));
        r.Register("xen-set-replication", j.XenSetReplicationArgs, j.QmpEmpty, a => Done(() => SetReplication(graph.Replication, a)));
        r.Register("query-xen-replication-status", j.QmpNoArgs, j.ReplicationStatusInfo, _ => ReplicationStatus(graph.Replication));
        // QEMU's xen-colo-do-checkpoint also tells COLO's net filters (colo-compare) of the checkpoint; that part
        // belongs to the COLO issue and is not done here: this runs the block part (replication_do_checkpoint_all).
        r.Register("xen-colo-do-checkpoint", j.QmpNoArgs, j.QmpEmpty, _ => Done(graph.Replication.DoCheckpointAll));
        JobQmpCommands.Register(r, graph, events);
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

    /// <summary>QMP nbd-server-start: checks in QEMU's order (running, TLS, address), then listens.</summary>
    public static void NbdServerStart(NbdServerHost nbd, NbdServerStartArgs a)
    {
        if (nbd.Running)
        {
            throw new BlockException("NBD server already running");
        }
        if (a.MaxConnections is < 0 or > uint.MaxValue)
        {
            throw new BlockException("Parameter 'max-connections' expects uint32_t");
        }
        if (a.TlsCreds is not null || a.TlsAuthz is not null)
        {
            throw new BlockException(a.TlsCreds is not null
                ? $"NBD over TLS (tls-creds '{a.TlsCreds}') is not implemented yet in Colo"
                : $"NBD over TLS (tls-authz '{a.TlsAuthz}') is not implemented yet in Colo");
        }
        int max = (int)Math.Min(a.MaxConnections ?? 0, int.MaxValue);
        BlockQmpJsonContext j = BlockQmpJsonContext.Default;
        switch (a.Addr.Type)
        {
            case "inet":
                InetSocketAddress inet = Branch(a.Addr, j.InetSocketAddress);
                if (inet.To is not null)
                {
                    throw new BlockException("Port ranges ('to') for the NBD server are not implemented yet in Colo");
                }
                if (inet.Mptcp == true)
                {
                    throw new BlockException("MPTCP for the NBD server is not implemented yet in Colo");
                }
                nbd.StartTcp(inet.Host, inet.Port, max);
                break;
            case "unix":
                UnixSocketAddress unix = Branch(a.Addr, j.UnixSocketAddress);
                if (unix.Abstract == true)
                {
                    throw new BlockException("Abstract unix sockets for the NBD server are not implemented yet in Colo");
                }
                nbd.StartUnix(unix.Path, max);
                break;
            case "vsock":
                Branch(a.Addr, j.VsockSocketAddress);
                throw new BlockException("vsock addresses for the NBD server are not implemented yet in Colo");
            case "fd":
                Branch(a.Addr, j.SocketAddressString);
                throw new BlockException("fd addresses for the NBD server are not implemented yet in Colo");
            default:
                throw new BlockException($"Parameter 'type' does not accept value '{a.Addr.Type}'");
        }
    }

    /// <summary>QMP query-block-exports: newest first, as QEMU lists them.</summary>
    public static BlockExportInfo[] QueryBlockExports(NbdServerHost nbd)
    {
        var list = new BlockExportInfo[nbd.Exports.Count];
        for (int i = 0; i < list.Length; i++)
        {
            NbdExport e = nbd.Exports[list.Length - 1 - i];
            list[i] = new BlockExportInfo(e.Name, "nbd", e.Node.NodeName, false);
        }
        return list;
    }

    /// <summary>
    /// QEMU's qmp_xen_set_replication: start in the given mode, or stop; a failover stop reports nothing
    /// (QEMU passes no error pointer then).
    /// </summary>
    private static void SetReplication(IReplicationControl control, XenSetReplicationArgs a)
    {
        if (a.Failover is not null && a.Enable)
        {
            throw new BlockException("Parameter 'failover' is only for stopping replication");
        }
        if (a.Enable)
        {
            control.StartAll(a.Primary ? ReplicationMode.Primary : ReplicationMode.Secondary);
            return;
        }
        if (a.Failover == true)
        {
            try
            {
                control.StopAll(true);
            }
            catch (BlockException)
            {
            }
            return;
        }
        control.StopAll(false);
    }

    private static ReplicationStatusInfo ReplicationStatus(IReplicationControl control) =>
        control.GetErrorAll() is { } error ? new ReplicationStatusInfo(true, error) : new ReplicationStatusInfo(false, null);

    private static bool ParseRemoveMode(string? mode) => mode switch
    {
        null or "safe" => false,
        "hard" => true,
        _ => throw new BlockException($"Parameter 'mode' does not accept value '{mode}'"),
    };

    /// <summary>Checks and reads the <c>data</c> branch of a SocketAddressLegacy with QEMU's member paths.</summary>
    private static T Branch<T>(SocketAddressLegacy addr, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info)
    {
        System.Text.Json.JsonElement data = addr.Data ?? throw new BlockException("Parameter 'addr.data' is missing");
        QmpArguments.Validate(data, info, "addr.data.");
        return System.Text.Json.JsonSerializer.Deserialize(data, info)!;
    }

    private static QmpEmpty Done(Action action)
    {
        action();
        return QmpEmpty.Instance;
    }
}
