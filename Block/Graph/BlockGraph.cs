using Colo.Core.Qmp;
using Colo.Block.File;
using Colo.Block.Nbd;
using Colo.Block.Qcow2;
using Colo.Block.Quorum;
using Colo.Block.Raw;
using Colo.Block.Replication;
using Colo.Core.Options;

namespace Colo.Block.Graph;

/// <summary>
/// The block graph of one VM: every named node and every backend (drive). Builds node trees from
/// <c>-drive</c> option trees the way QEMU's drive_new/bdrv_open do (driver, <c>file</c> and
/// <c>backing</c> children given inline as dotted options or by reference to an existing node), and
/// closes everything (after a flush) when disposed. Not thread-safe: the main loop owns it.
/// </summary>
public sealed partial class BlockGraph : IDisposable
{
    /// <summary>Drivers QEMU 7.2 has that Colo does not build yet: refused naming the driver, not as unknown.</summary>
    public static readonly IReadOnlySet<string> PlannedDrivers = new HashSet<string>(StringComparer.Ordinal)
    {
        "blkdebug", "blkverify", "blkreplay", "null-co", "null-aio", "copy-on-read",
        "throttle", "vmdk", "vdi", "vpc", "vhdx", "qed", "luks", "dmg", "bochs", "cloop", "parallels", "vvfat",
        "host_device", "host_cdrom", "nfs", "iscsi", "iser", "ssh", "http", "https", "ftp", "ftps", "gluster", "rbd",
        "compress", "preallocate", "copy-before-write", "snapshot-access", "blklogwrites", "nvme", "vxhs",
    };

    // Options every node accepts (QAPI BlockdevOptionsBase), and those of each driver we build.
    private static readonly HashSet<string> s_commonOptions =
        ["driver", "node-name", "read-only", "auto-read-only", "force-share", "cache", "discard", "detect-zeroes"];

    private static readonly HashSet<string> s_fileOptions =
        ["filename", "aio", "aio-max-batch", "locking", "pr-manager", "drop-cache", "x-check-cache-dropped"];

    private static readonly HashSet<string> s_rawOptions = ["file", "offset", "size"];

    private static readonly HashSet<string> s_replicationOptions = ["file", "mode", "top-id"];

    private static readonly HashSet<string> s_quorumOptions = ["children", "vote-threshold", "blkverify", "rewrite-corrupted", "read-pattern"];

    // BlockdevOptionsNbd, plus the legacy spellings (host, port, path) and the filename QEMU parses into them.
    private static readonly HashSet<string> s_nbdOptions =
        ["server", "export", "tls-creds", "tls-hostname", "x-dirty-bitmap", "reconnect-delay", "open-timeout", "host", "port", "path", "filename"];

    private static readonly HashSet<string> s_qcow2Options =
    [
        "file", "backing", "lazy-refcounts", "pass-discard-request", "pass-discard-snapshot", "pass-discard-other",
        "overlap-check", "cache-size", "l2-cache-size", "l2-cache-entry-size", "refcount-cache-size",
        "cache-clean-interval", "encrypt", "data-file", "discard-no-unref",
    ];

    // Options -drive consumes itself before the node tree is built (QEMU's qemu_legacy_drive_opts and
    // qemu_common_drive_opts that are not node options).
    private static readonly HashSet<string> s_driveOptions =
    [
        "id", "if", "index", "bus", "unit", "media", "format", "serial", "werror", "rerror", "copy-on-read", "snapshot",
        "cyls", "heads", "secs", "trans", "addr", "boot", "throttling", "group", "stats-account-invalid",
        "stats-account-failed", "stats-intervals", "bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr", "iops_size",
    ];

    private static readonly string[] s_interfaces = ["none", "ide", "scsi", "floppy", "pflash", "mtd", "sd", "virtio", "xen"];

    private readonly List<BlockNode> _nodes = [];
    private readonly List<BlockBackend> _backends = [];
    private readonly Dictionary<BlockNode, BlockNodeSettings> _settings = [];

    // Nodes whose writers (NBD exports) go through a filter: the replication secondary's copy-before-write.
    private readonly Dictionary<BlockNode, BlockNode> _writeFronts = [];
    private int _noneIndex;
    private bool _disposed;

    public BlockGraph()
    {
        Nbd = new NbdServerHost(this);
        Replication = new ReplicationControl(this);
    }

    /// <summary>The replication operations COLO calls (start, checkpoint, get error, stop).</summary>
    public ReplicationControl Replication { get; }

    /// <summary>The built-in NBD server and its exports of this graph's nodes.</summary>
    public NbdServerHost Nbd { get; }

    /// <summary>True when the board has an IDE controller for <c>if=ide</c> drives to attach to.</summary>
    public bool HasIdeController { get; set; }

    /// <summary>Receives QEMU's warnings (probed raw format); the executable sends them to stderr.</summary>
    public Action<string>? Warning { get; set; }

    /// <summary>Every node, in creation order (children before parents).</summary>
    public IReadOnlyList<BlockNode> Nodes => _nodes;

    /// <summary>Every backend, in creation order.</summary>
    public IReadOnlyList<BlockBackend> Backends => _backends;

    public BlockNode? FindNode(string nodeName) => _nodes.Find(n => n.NodeName == nodeName);

    public BlockBackend? FindBackend(string name) => _backends.Find(b => b.Name == name);

    /// <summary>QEMU's bdrv_lookup_bs: a drive id names its root node, else a node-name.</summary>
    public BlockNode? FindNodeOrDevice(string name) => FindBackend(name)?.Root ?? FindNode(name);

    /// <summary>The settings a node was opened with.</summary>
    public BlockNodeSettings SettingsOf(BlockNode node) => _settings.GetValueOrDefault(node, BlockNodeSettings.Default);

    /// <summary>The node's children as the graph sees them: borrowed references resolved.</summary>
    public IReadOnlyList<BlockChild> ChildrenOf(BlockNode node)
    {
        var list = new List<BlockChild>();
        foreach (BlockChild child in node.Children)
        {
            list.Add(child.Node is BorrowedNode b ? new BlockChild(child.Name, b.Target) : child);
        }
        return list;
    }

    /// <summary>The node's <c>backing</c> child, or null.</summary>
    public BlockNode? BackingOf(BlockNode node) => ChildrenOf(node).FirstOrDefault(c => c.Name == "backing")?.Node;

    /// <summary>The node itself or, for a filter-less format over a protocol, nothing more: QEMU's backing_file_depth.</summary>
    public int BackingDepth(BlockNode node)
    {
        int depth = 0;
        for (BlockNode? b = BackingOf(node); b is not null && depth <= BlockImage.MaxChainDepth; b = BackingOf(b))
        {
            depth++;
        }
        return depth;
    }

    /// <summary>
    /// Creates a drive from a <c>-drive</c> option tree: checks the drive-level options, builds the node
    /// tree and registers the backend under its id.
    /// </summary>
    /// <exception cref="BlockException">QEMU's message for the first problem; nothing stays registered.</exception>
    public BlockBackend AddDrive(OptionTree options) => AddDrive([.. options.Flatten()]);

    /// <summary>
    /// Creates a drive from the flat <c>-drive</c> pairs. <c>file=PATH</c> is the image's filename; with
    /// <c>file.*</c> options beside it, it becomes <c>file.filename</c> so both reach the protocol node.
    /// </summary>
    /// <exception cref="BlockException">QEMU's message for the first problem; nothing stays registered.</exception>
    public BlockBackend AddDrive(IReadOnlyList<KeyValuePair<string, string>> pairs)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool fileSubOptions = pairs.Any(p => p.Key.StartsWith("file.", StringComparison.Ordinal));
        var renamed = new List<KeyValuePair<string, string>>(pairs.Count);
        foreach (KeyValuePair<string, string> p in pairs)
        {
            renamed.Add(p.Key == "file" ? new(fileSubOptions ? "file.filename" : "filename", p.Value) : p);
        }
        OptionTree options;
        try
        {
            options = OptionTree.FromFlat(renamed);
        }
        catch (OptionsException e)
        {
            throw new BlockException(e.Message);
        }

        string iface = options.GetString("if") ?? "ide";
        if (Array.IndexOf(s_interfaces, iface) < 0)
        {
            throw new BlockException($"unsupported bus type '{iface}'");
        }

        string? id = options.GetString("id");
        if (id is not null && FindBackend(id) is not null)
        {
            throw new BlockException($"Duplicate ID '{id}' for drive");
        }

        string? driver = options.GetString("driver");
        string? format = options.GetString("format");
        if (driver is not null && format is not null)
        {
            throw new BlockException("Cannot specify both 'driver' and 'format'");
        }
        driver ??= format;

        bool readOnly = ParseBool(options, "read-only", false);
        string? aio = options.GetString("aio");
        if (aio is not null and not ("threads" or "native" or "io_uring"))
        {
            throw new BlockException("invalid aio option");
        }

        BlockNodeSettings settings = ParseSettings(options, BlockNodeSettings.Default, legacyCache: true);
        (int Bus, int Unit)? idePosition = null;
        if (iface != "none")
        {
            (int bus, int unit) = BusUnit(options);
            idePosition = (bus, unit);
            if (iface == "ide" && !HasIdeController)
            {
                throw new BlockException($"machine type does not support if=ide,bus={bus},unit={unit}");
            }
            if (iface != "ide")
            {
                throw new BlockException($"-drive if={iface} is not implemented yet in Colo (only if=none and if=ide)");
            }
            id ??= $"ide{bus}-hd{unit}";
        }
        id ??= $"none{_noneIndex}";

        // The node tree: everything that is not a drive-level option. A scalar file= is the image's filename.
        var nodePairs = new List<KeyValuePair<string, string>>();
        foreach (KeyValuePair<string, string> pair in options.Flatten())
        {
            string head = pair.Key.Split('.')[0];
            if (s_driveOptions.Contains(head) || head is "aio" or "cache" or "read-only" or "driver")
            {
                continue;
            }
            nodePairs.Add(pair);
        }
        OptionTree nodeOptions = OptionTree.FromFlat(nodePairs);
        if (nodeOptions.GetString("node-name") is { } ownName && ownName == id)
        {
            throw new BlockException($"Device name '{id}' conflicts with an existing node name");
        }
        if (FindNode(id) is not null)
        {
            throw new BlockException($"Device name '{id}' conflicts with an existing node name");
        }

        var created = new List<BlockNode>();
        try
        {
            BlockNode root = OpenTop(nodeOptions, driver, readOnly, aio, settings, created);
            var backend = new BlockBackend(id, root, iface, settings) { IdePosition = idePosition };
            _nodes.AddRange(created);
            _backends.Add(backend);
            if (iface == "none")
            {
                _noneIndex++;
            }
            return backend;
        }
        catch
        {
            Discard(created);
            throw;
        }
    }

    /// <summary>
    /// Creates a node without a backend (HMP <c>drive_add -n</c>, blockdev semantics: <c>file=NODE</c>
    /// names an existing node). The node-name is required.
    /// </summary>
    /// <exception cref="BlockException">QEMU's message for the first problem; nothing stays registered.</exception>
    public BlockNode AddNode(IReadOnlyList<KeyValuePair<string, string>> pairs)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        OptionTree options;
        try
        {
            options = OptionTree.FromFlat(pairs);
        }
        catch (OptionsException e)
        {
            throw new BlockException(e.Message);
        }
        if (options.GetString("node-name") is null)
        {
            throw new BlockException("'node-name' needs to be specified");
        }
        var created = new List<BlockNode>();
        try
        {
            BlockNode node = OpenChild(options, false, null, BlockNodeSettings.Default, created);
            _nodes.AddRange(created);
            return node;
        }
        catch
        {
            Discard(created);
            throw;
        }
    }

    /// <summary>
    /// <c>drive_del</c>: removes a drive and closes its nodes. A root used as another node's backing file makes
    /// it fail; a root used otherwise (a quorum's child, a replication's file) outlives the drive.
    /// </summary>
    /// <exception cref="BlockException">No such drive (DeviceNotFound), or a node of it is used elsewhere.</exception>
    public void DeleteDrive(string id)
    {
        BlockBackend backend = FindBackend(id) ?? throw new BlockException(QmpErrorClass.DeviceNotFound, $"Device '{id}' not found");
        CheckNoJob(backend);
        bool usedElsewhere = false;
        foreach (BlockNode other in _nodes)
        {
            if (IsInTree(backend.Root, other))
            {
                continue;
            }
            foreach (BlockChild c in ChildrenOf(other))
            {
                if (c.Node != backend.Root)
                {
                    continue;
                }
                // A backing file blocks drive_del (QEMU's op blocker); any other parent keeps the node alive.
                if (c.Name == "backing")
                {
                    throw new BlockException($"Node '{backend.Root.NodeName}' is busy: node is used as backing hd of '{other.NodeName}'");
                }
                usedElsewhere = true;
            }
        }
        _backends.Remove(backend);
        if (usedElsewhere)
        {
            // The node stays, as a node of its own, for the parent that uses it; exports of the drive go with it.
            Nbd.RemoveExportsOf(n => n is BackendNode d && d.Backend == backend);
            return;
        }
        var owned = new List<BlockNode>();
        CollectOwned(backend.Root, owned);
        // An export must not outlive its node: its clients are dropped (QEMU would keep the node alive instead).
        Nbd.RemoveExportsOf(n => owned.Contains(n) || (n is BackendNode d && d.Backend == backend));
        FlushQuietly(backend.Root);
        backend.Root.Dispose();
        foreach (BlockNode n in owned)
        {
            _nodes.Remove(n);
            _settings.Remove(n);
        }
    }

    /// <summary>Flushes every writable node, children last (QEMU's bdrv_flush_all).</summary>
    public void FlushAll()
    {
        for (int i = _nodes.Count - 1; i >= 0; i--)
        {
            FlushQuietly(_nodes[i]);
        }
    }

    /// <summary>
    /// Quit: ends every block job with QEMU's events (drained, then cancelled). The machine calls it while the
    /// monitors are still open, so the events reach them; the main loop has stopped, so the jobs' graph work
    /// runs here, on the caller's thread.
    /// </summary>
    public void CancelJobsAtQuit()
    {
        Jobs.Loop = null;
        Jobs.CancelAll(TimeSpan.FromSeconds(5));
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        CancelJobsAtQuit();
        // A failover commit still running must end before the graph goes (it closes the active disk's tree).
        foreach (Colo.Block.Replication.ReplicationNode r in Replication.Nodes)
        {
            r.WaitForFailover(TimeSpan.FromSeconds(60));
        }
        Nbd.Dispose();
        FlushAll();
        // Parents first: a parent's Dispose closes the children it owns; BlockNode.Dispose is idempotent.
        for (int i = _nodes.Count - 1; i >= 0; i--)
        {
            _nodes[i].Dispose();
        }
        _nodes.Clear();
        _backends.Clear();
    }

    private static void FlushQuietly(BlockNode node)
    {
        try
        {
            if (!node.ReadOnly)
            {
                node.Flush();
            }
        }
        catch (BlockException)
        {
            // Closing goes on; QEMU likewise reports nothing for a failed flush at exit.
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private static bool IsInTree(BlockNode root, BlockNode node)
    {
        if (root == node)
        {
            return true;
        }
        foreach (BlockChild c in root.Children)
        {
            if (c.Node is not BorrowedNode && IsInTree(c.Node, node))
            {
                return true;
            }
        }
        return false;
    }

    private static void CollectOwned(BlockNode node, List<BlockNode> into)
    {
        into.Add(node);
        foreach (BlockChild c in node.Children)
        {
            if (c.Node is not BorrowedNode)
            {
                CollectOwned(c.Node, into);
            }
        }
    }

    private void Discard(List<BlockNode> created)
    {
        for (int i = created.Count - 1; i >= 0; i--)
        {
            _settings.Remove(created[i]);
            created[i].Dispose();
        }
    }

    private static (int Bus, int Unit) BusUnit(OptionTree options)
    {
        if (options.GetString("index") is { } index && int.TryParse(index, out int i))
        {
            return (i / 2, i % 2);
        }
        int bus = int.TryParse(options.GetString("bus"), out int b) ? b : 0;
        int unit = int.TryParse(options.GetString("unit"), out int u) ? u : 0;
        return (bus, unit);
    }

    private BlockNode OpenTop(OptionTree options, string? driver, bool readOnly, string? aio, BlockNodeSettings settings, List<BlockNode> created)
    {
        string? filename = options.GetString("filename") ?? options["file"]?.GetString("filename");
        if (driver is null && (IsNbdFilename(filename) || options["file"]?.GetString("driver") == "nbd"))
        {
            // Probe over the one NBD connection and keep it as the file child: a second connection might
            // not be accepted (qemu-nbd without --persistent serves one client).
            BlockNode nbd = OpenFileChild(options, readOnly, aio, settings with { DetectZeroes = "off" }, created);
            driver = BlockImage.Probe(nbd);
            if (driver == "raw")
            {
                Warning?.Invoke(ProbedRawWarning(nbd.Filename));
            }
            var formatOptions = new List<KeyValuePair<string, string>>();
            foreach (KeyValuePair<string, string> pair in options.Flatten())
            {
                if (pair.Key != "filename" && !pair.Key.StartsWith("file.", StringComparison.Ordinal))
                {
                    formatOptions.Add(pair);
                }
            }
            return Open(OptionTree.FromFlat(formatOptions), driver, readOnly, aio, settings, created, top: true, preopenedFile: nbd);
        }
        if (driver is null && filename is not null && options["file"]?.GetString("driver") is null or "file")
        {
            // Probe the format, as QEMU does for -drive file=X without format=.
            FileNode probe = FileNode.Open(filename, true);
            try
            {
                driver = BlockImage.Probe(probe);
            }
            finally
            {
                probe.Dispose();
            }
            if (driver == "raw")
            {
                Warning?.Invoke(ProbedRawWarning(filename));
            }
        }
        return Open(options, driver ?? "raw", readOnly, aio, settings, created, top: true);
    }

    /// <summary>Opens one node and, recursively, its children. <paramref name="created"/> collects what was opened.</summary>
    /// <param name="writableBacking">Open an inline backing read-write (the replication secondary's hidden disk).</param>
    private BlockNode Open(OptionTree options, string driver, bool readOnly, string? aio, BlockNodeSettings inherited, List<BlockNode> created, bool top = false, BlockNode? preopenedFile = null, bool writableBacking = false)
    {
        CheckDriver(driver);
        if (driver is "raw" or "file" or "nbd" && options["backing"] is not null)
        {
            throw new BlockException("Driver doesn't support backing files");
        }
        if (driver != "replication")
        {
            CheckOptions(options, driver, top);
        }

        readOnly = ParseBool(options, "read-only", readOnly);
        BlockNodeSettings settings = ParseSettings(options, inherited, legacyCache: false);
        string? nodeName = options.GetString("node-name");
        if (nodeName is not null)
        {
            CheckNodeName(nodeName, created);
        }

        if (driver == "file")
        {
            string filename = options.GetString("filename") ?? throw new BlockException("The 'file' block driver requires a file name");
            string? fileAio = options.GetString("aio") ?? aio;
            if (fileAio is not null and not ("threads" or "native" or "io_uring"))
            {
                throw new BlockException($"Parameter 'aio' does not accept value '{fileAio}'");
            }
            string? locking = options.GetString("locking");
            if (locking is not null and not ("on" or "off" or "auto"))
            {
                throw new BlockException($"Parameter 'locking' does not accept value '{locking}'");
            }
            FileNode file = FileNode.Open(filename, readOnly, nodeName);
            Register(file, settings, created);
            return file;
        }

        if (driver == "nbd")
        {
            NbdClient nbd = OpenNbd(options, readOnly, nodeName);
            Register(nbd, settings, created);
            return nbd;
        }

        // Children inherit cache and discard settings, not detect-zeroes (QEMU applies it where it is given).
        BlockNodeSettings childSettings = settings with { DetectZeroes = "off" };
        if (driver == "quorum")
        {
            QuorumNode quorum = OpenQuorum(options, readOnly, aio, childSettings, created, nodeName);
            Register(quorum, settings, created);
            return quorum;
        }
        if (driver == "replication")
        {
            ReplicationNode replication = OpenReplication(options, readOnly, aio, childSettings, created, nodeName, top);
            Register(replication, settings, created);
            return replication;
        }
        BlockNode fileChild = preopenedFile ?? OpenFileChild(options, readOnly, aio, childSettings, created, writableBacking);
        if (driver == "raw")
        {
            var raw = new RawNode(fileChild, readOnly, nodeName);
            Register(raw, settings, created);
            return raw;
        }

        // qcow2: backing given inline, by reference, explicitly absent, or taken from the header. The
        // node is registered before its backing chain, as QEMU names it before opening the backing.
        int position = created.Count;
        OptionTree? backingOption = options["backing"];
        BlockNode? explicitBacking = null;
        bool backingIsReference = backingOption?.IsScalar == true;
        bool noBacking = backingOption?.Scalar is "" or "null";
        if (backingOption is not null && !noBacking)
        {
            try
            {
                explicitBacking = backingOption.IsScalar
                    ? FindNodeOrDevice(backingOption.Scalar!) ?? throw new BlockException(
                        $"Cannot find device='{backingOption.Scalar}' nor node-name='{backingOption.Scalar}'")
                    : OpenChild(backingOption, !writableBacking || readOnly, aio, childSettings, created);
            }
            catch (BlockException e)
            {
                throw new BlockException(e.ErrorClass, $"Could not open backing file: {e.Message}", e);
            }
        }

        BlockNode? used = null;
        Qcow2Node qcow2 = Qcow2Node.Open(
            fileChild,
            readOnly,
            header =>
            {
                if (noBacking)
                {
                    return null;
                }
                if (explicitBacking is null && header.BackingFile is null)
                {
                    return null;
                }
                used = explicitBacking is null
                    ? OpenHeaderBacking(fileChild.Filename, header, aio, childSettings, created)
                    : backingIsReference ? new BorrowedNode(explicitBacking, true) : explicitBacking;
                return used;
            },
            nodeName);
        created.Insert(position, qcow2);
        _settings[qcow2] = settings;
        return qcow2;
    }

    private BlockNode OpenFileChild(OptionTree options, bool readOnly, string? aio, BlockNodeSettings settings, List<BlockNode> created, bool writableBacking = false)
    {
        OptionTree? file = options["file"];
        if (file is null)
        {
            string filename = options.GetString("filename") ?? throw new BlockException("A block device must be specified for \"file\"");
            return Open(OptionTree.FromFlat([new("filename", filename)]), ProtocolOf(filename), readOnly, aio, settings, created);
        }
        if (file.IsScalar)
        {
            BlockNode target = FindNodeOrDevice(file.Scalar!)
                ?? throw new BlockException($"Cannot find device='{file.Scalar}' nor node-name='{file.Scalar}'");
            return new BorrowedNode(target, readOnly);
        }
        return OpenChild(file, readOnly, aio, settings, created, defaultDriver: ProtocolOf(file.GetString("filename")), writableBacking: writableBacking);
    }

    /// <summary>An inline child (<c>file.*</c>, <c>backing.*</c>): its driver, or a protocol/probe default.</summary>
    private BlockNode OpenChild(OptionTree options, bool readOnly, string? aio, BlockNodeSettings settings, List<BlockNode> created, string? defaultDriver = null, bool writableBacking = false)
    {
        string? driver = options.GetString("driver");
        if (driver is null)
        {
            if (defaultDriver is not null)
            {
                driver = defaultDriver;
            }
            else if (options["file"] is not null || options.GetString("filename") is not null)
            {
                // A format child without a driver: probe what the file holds.
                string? filename = options.GetString("filename") ?? options["file"]?.GetString("filename");
                if (filename is null)
                {
                    throw new BlockException("Must specify either driver or file");
                }
                using FileNode probe = FileNode.Open(filename, true);
                driver = BlockImage.Probe(probe);
            }
            else
            {
                throw new BlockException("Must specify either driver or file");
            }
        }
        return Open(options, driver, readOnly, aio, settings, created, writableBacking: writableBacking);
    }

    private BlockNode OpenHeaderBacking(string imageFilename, Qcow2Header header, string? aio, BlockNodeSettings settings, List<BlockNode> created)
    {
        string path = BlockImage.CombinePath(imageFilename, header.BackingFile!);
        if (created.Count > BlockImage.MaxChainDepth)
        {
            throw new BlockException($"Backing file chain of '{imageFilename}' is too deep or contains a loop");
        }
        try
        {
            var pairs = new List<KeyValuePair<string, string>> { new("file.filename", path) };
            if (header.BackingFormat is not null)
            {
                pairs.Add(new("driver", header.BackingFormat));
            }
            return OpenChild(OptionTree.FromFlat(pairs), true, aio, settings, created);
        }
        catch (BlockException e)
        {
            throw new BlockException(e.ErrorClass, $"Could not open backing file: {e.Message}", e);
        }
    }

    private static string ProbedRawWarning(string filename) =>
        $"WARNING: Image format was not specified for '{filename}' and probing guessed raw.\n"
        + "         Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.\n"
        + "         Specify the 'raw' format explicitly to remove the restrictions.";

    /// <summary>QEMU's bdrv_find_protocol for the protocols Colo has: an NBD URI or legacy nbd: name, else a host file.</summary>
    private static string ProtocolOf(string? filename) => IsNbdFilename(filename) ? "nbd" : "file";

    private static bool IsNbdFilename(string? filename) =>
        filename is not null && (filename.StartsWith("nbd:", StringComparison.Ordinal)
            || filename.StartsWith("nbd+tcp:", StringComparison.Ordinal) || filename.StartsWith("nbd+unix:", StringComparison.Ordinal));

    /// <summary>
    /// The nbd protocol node: the server from <c>server.*</c> (QAPI SocketAddress), the legacy
    /// <c>host</c>/<c>port</c>/<c>path</c>, or a filename (URI or <c>nbd:</c> form), in QEMU's precedence and texts.
    /// </summary>
    private static NbdClient OpenNbd(OptionTree options, bool readOnly, string? nodeName)
    {
        string? filename = options.GetString("filename");
        OptionTree? server = options["server"];
        string? host = options.GetString("host");
        string? port = options.GetString("port");
        string? path = options.GetString("path");
        string? export = options.GetString("export");
        NbdServerAddress address;
        if (filename is not null)
        {
            foreach (string key in new[] { "host", "port", "path", "export", "server" })
            {
                if (options[key] is not null)
                {
                    throw new BlockException($"Option '{key}' cannot be used with a file name");
                }
            }
            (address, export) = NbdClient.ParseFilename(filename);
        }
        else if (server is not null)
        {
            if (host is not null || port is not null || path is not null)
            {
                throw new BlockException("Cannot use 'server' and path/host/port at the same time");
            }
            address = ParseSocketAddress(server);
        }
        else if (path is not null)
        {
            if (host is not null)
            {
                throw new BlockException("path and host may not be used at the same time");
            }
            if (port is not null)
            {
                throw new BlockException("port may not be used without host");
            }
            address = NbdServerAddress.Unix(path);
        }
        else if (host is not null)
        {
            address = NbdServerAddress.Tcp(host, port);
        }
        else
        {
            throw new BlockException("NBD server address missing");
        }

        if (options.GetString("tls-creds") is { } tls)
        {
            throw new BlockException($"NBD over TLS (tls-creds '{tls}') is not implemented yet in Colo");
        }
        if (options.GetString("x-dirty-bitmap") is not null)
        {
            throw new BlockException("x-dirty-bitmap (qemu:dirty-bitmap contexts) is not implemented yet in Colo");
        }
        uint reconnectDelay = ParseUInt(options, "reconnect-delay");
        uint openTimeout = ParseUInt(options, "open-timeout");
        return NbdClient.Connect(address, export ?? "", readOnly, TimeSpan.FromSeconds(reconnectDelay), TimeSpan.FromSeconds(openTimeout), nodeName);
    }

    /// <summary>A flat QAPI SocketAddress (<c>server.type=inet,server.host=..,server.port=..</c> or unix with <c>path</c>).</summary>
    private static NbdServerAddress ParseSocketAddress(OptionTree server)
    {
        if (server.IsScalar)
        {
            throw new BlockException("Invalid parameter type for 'server', expected: object");
        }
        string type = server.GetString("type") ?? throw new BlockException("Parameter 'type' is missing");
        string[] allowed = type switch
        {
            "inet" => ["type", "host", "port", "numeric", "to", "ipv4", "ipv6", "keep-alive", "mptcp"],
            "unix" => ["type", "path", "abstract", "tight"],
            "vsock" or "fd" => throw new BlockException($"NBD server addresses of type '{type}' are not implemented yet in Colo"),
            _ => throw new BlockException($"Parameter 'type' does not accept value '{type}'"),
        };
        foreach (KeyValuePair<string, OptionTree> member in server.Children)
        {
            if (Array.IndexOf(allowed, member.Key) < 0)
            {
                throw new BlockException($"Parameter '{member.Key}' is unexpected");
            }
        }
        if (type == "unix")
        {
            if (server.GetString("abstract") is "on" or "true" or "yes")
            {
                throw new BlockException("Abstract unix sockets are not implemented yet in Colo");
            }
            return NbdServerAddress.Unix(server.GetString("path") ?? throw new BlockException("Parameter 'path' is missing"));
        }
        string host = server.GetString("host") ?? throw new BlockException("Parameter 'host' is missing");
        string port = server.GetString("port") ?? throw new BlockException("Parameter 'port' is missing");
        if (server["to"] is not null)
        {
            throw new BlockException("Port ranges ('to') are not implemented yet in Colo");
        }
        return NbdServerAddress.Tcp(host, port);
    }

    private static uint ParseUInt(OptionTree options, string key)
    {
        string? text = options.GetString(key);
        if (text is null)
        {
            return 0;
        }
        // QEMU's keyval takes any 64-bit number here (open-timeout=-1 included) and narrows it.
        if (long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out long value))
        {
            return value < 0 ? 0 : (uint)Math.Min(value, uint.MaxValue);
        }
        throw new BlockException($"Parameter '{key}' expects a number");
    }

    private void Register(BlockNode node, BlockNodeSettings settings, List<BlockNode> created)
    {
        created.Add(node);
        _settings[node] = settings;
    }

    private void CheckNodeName(string name, List<BlockNode> created)
    {
        if (name.Length == 0 || !char.IsAsciiLetter(name[0]) || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
        {
            throw new BlockException("Invalid node-name: '" + name + "'");
        }
        if (FindBackend(name) is not null)
        {
            throw new BlockException($"node-name={name} is conflicting with a device id");
        }
        if (FindNode(name) is not null || created.Exists(n => n.NodeName == name))
        {
            throw new BlockException($"Duplicate nodes with node-name='{name}'");
        }
    }

    private static void CheckDriver(string driver)
    {
        if (driver is "raw" or "qcow2" or "file" or "nbd" or "quorum" or "replication")
        {
            return;
        }
        if (PlannedDrivers.Contains(driver))
        {
            throw new BlockException($"Block driver '{driver}' is not implemented yet in Colo (the storage issue builds it)");
        }
        throw new BlockException($"Unknown driver '{driver}'");
    }

    /// <summary>Receives QUORUM_FAILURE from every quorum node of the graph.</summary>
    public Action<QuorumFailure>? QuorumFailure { get; set; }

    /// <summary>Receives QUORUM_REPORT_BAD from every quorum node of the graph.</summary>
    public Action<QuorumReportBad>? QuorumReportBad { get; set; }

    /// <summary>QEMU's bdrv_get_device_or_node_name: the drive id when the node is a drive's root.</summary>
    public string DeviceOrNodeName(BlockNode node) => _backends.Find(b => b.Root == node)?.Name ?? node.NodeName;

    /// <summary>
    /// QMP x-blockdev-change: adds the free node <paramref name="node"/> to the quorum <paramref name="parent"/>,
    /// or removes its child named <paramref name="child"/> (closing it unless it is a node of its own).
    /// </summary>
    public void ChangeChild(string parent, string? child, string? node)
    {
        BlockNode p = FindNodeOrDevice(parent) ?? throw new BlockException($"Cannot find device='{parent}' nor node-name='{parent}'");
        if (child is not null && node is not null)
        {
            throw new BlockException("The parameters child and node are in conflict");
        }
        if (node is not null)
        {
            BlockNode added = FindNode(node) ?? throw new BlockException($"Node '{node}' not found");
            if (p is not QuorumNode q)
            {
                throw new BlockException($"The node {DeviceOrNodeName(p)} does not support adding a child");
            }
            if (HasParent(added))
            {
                throw new BlockException($"The node {added.NodeName} already has a parent");
            }
            q.AddChild(added);
            return;
        }
        if (child is null)
        {
            throw new BlockException("Either child or node must be specified");
        }
        if (!p.Children.Any(c => c.Name == child))
        {
            throw new BlockException($"Node '{p.NodeName}' does not have child '{child}'");
        }
        if (p is not QuorumNode quorum)
        {
            throw new BlockException($"The node {DeviceOrNodeName(p)} does not support removing a child");
        }
        (BlockNode removed, bool owned) = quorum.RemoveChild(child);
        if (owned)
        {
            var gone = new List<BlockNode>();
            CollectOwned(removed, gone);
            FlushQuietly(removed);
            removed.Dispose();
            foreach (BlockNode n in gone)
            {
                _nodes.Remove(n);
                _settings.Remove(n);
            }
        }
    }

    /// <summary>True when a drive or another node uses <paramref name="node"/> (QEMU: it has a parent).</summary>
    private bool HasParent(BlockNode node) =>
        _backends.Exists(b => b.Root == node) || _nodes.Exists(n => n != node && ChildrenOf(n).Any(c => c.Node == node));

    /// <summary>The quorum node: <c>children.N</c> inline or by node reference, then QEMU's checks in its order.</summary>
    private QuorumNode OpenQuorum(OptionTree options, bool readOnly, string? aio, BlockNodeSettings childSettings, List<BlockNode> created, string? nodeName)
    {
        OptionTree? children = options["children"];
        if (children is null || children.IsScalar || children.Children.Count == 0)
        {
            throw new BlockException("Number of provided children must be 1 or more");
        }
        if (!children.IsList)
        {
            throw new BlockException("Option children is not a valid array");
        }
        int count = children.Children.Count;
        long threshold = 0;
        if (options.GetString("vote-threshold") is { } t && !long.TryParse(t, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out threshold))
        {
            throw new BlockException("Parameter 'vote-threshold' expects a number");
        }
        if (threshold < 1)
        {
            throw new BlockException("Parameter 'vote-threshold' expects a value >= 1");
        }
        if (threshold > count)
        {
            throw new BlockException("threshold may not exceed children count");
        }
        QuorumReadPattern pattern = options.GetString("read-pattern") switch
        {
            null or "quorum" => QuorumReadPattern.Quorum,
            "fifo" => QuorumReadPattern.Fifo,
            _ => throw new BlockException("Please set read-pattern as fifo or quorum"),
        };
        // QEMU reads blkverify and rewrite-corrupted only for the voting pattern; with fifo they are ignored.
        bool blkverify = pattern == QuorumReadPattern.Quorum && ParseBool(options, "blkverify", false);
        bool rewrite = pattern == QuorumReadPattern.Quorum && ParseBool(options, "rewrite-corrupted", false);
        if (blkverify && (count != 2 || threshold != 2))
        {
            throw new BlockException("blkverify=on can only be set if there are exactly two files and vote-threshold is 2");
        }
        if (blkverify && rewrite)
        {
            throw new BlockException("rewrite-corrupted=on cannot be used with blkverify=on");
        }

        var list = new List<BlockChild>(count);
        for (int i = 0; i < count; i++)
        {
            OptionTree c = children[i.ToString(System.Globalization.CultureInfo.InvariantCulture)]!;
            BlockNode childNode = c.IsScalar
                ? new BorrowedNode(FindNodeOrDevice(c.Scalar!) ?? throw new BlockException($"Cannot find device='{c.Scalar}' nor node-name='{c.Scalar}'"), readOnly)
                : OpenChild(c, readOnly, aio, childSettings, created);
            list.Add(new BlockChild($"children.{i}", childNode));
        }
        long size = list[0].Node.Size;
        if (list.Exists(c => c.Node.Size != size))
        {
            throw new BlockException("The children of a quorum must all have the same size");
        }
        var quorum = new QuorumNode(list, (int)threshold, pattern, rewrite, blkverify, readOnly, nodeName)
        {
            FilenameText = QuorumJsonName(options),
        };
        quorum.Failure = (q, sector, sectors) => QuorumFailure?.Invoke(new QuorumFailure(DeviceOrNodeName(q), sector, sectors));
        quorum.ReportBad = bad => QuorumReportBad?.Invoke(bad);
        return quorum;
    }

    /// <summary>QEMU names a quorum node by its options as <c>json:{...}</c>; this keeps its key order for the common forms.</summary>
    private string QuorumJsonName(OptionTree options)
    {
        var sb = new System.Text.StringBuilder("json:{");
        if (options.GetString("read-pattern") is { } rp)
        {
            sb.Append("\"read-pattern\": ").Append(Json(rp)).Append(", ");
        }
        sb.Append("\"children\": [");
        OptionTree children = options["children"]!;
        for (int i = 0; i < children.Children.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(", ");
            }
            OptionTree c = children[i.ToString(System.Globalization.CultureInfo.InvariantCulture)]!;
            AppendJson(sb, c);
        }
        sb.Append("], \"driver\": \"quorum\"");
        foreach (string key in new[] { "rewrite-corrupted", "blkverify", "vote-threshold" })
        {
            if (options.GetString(key) is { } v)
            {
                sb.Append(", ").Append(Json(key)).Append(": ").Append(Json(v));
            }
        }
        return sb.Append('}').ToString();
    }

    private static void AppendJson(System.Text.StringBuilder sb, OptionTree tree)
    {
        if (tree.IsScalar)
        {
            sb.Append(Json(tree.Scalar!));
            return;
        }
        sb.Append('{');
        bool first = true;
        // QEMU prints a child's driver before its file.
        foreach (KeyValuePair<string, OptionTree> kv in tree.Children.OrderBy(kv => kv.Key == "driver" ? 0 : 1))
        {
            if (!first)
            {
                sb.Append(", ");
            }
            first = false;
            sb.Append(Json(kv.Key)).Append(": ");
            if (kv.Key == "file" && !kv.Value.IsScalar && kv.Value.GetString("driver") is null)
            {
                sb.Append("{\"driver\": \"file\"");
                foreach (KeyValuePair<string, OptionTree> f in kv.Value.Children)
                {
                    sb.Append(", ").Append(Json(f.Key)).Append(": ");
                    AppendJson(sb, f.Value);
                }
                sb.Append('}');
            }
            else
            {
                AppendJson(sb, kv.Value);
            }
        }
        sb.Append('}');
    }

    private static string Json(string s) => "\"" + System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping.Encode(s) + "\"";

    private static bool ParseBool(OptionTree options, string key, bool fallback) => options.GetString(key) switch
    {
        null => fallback,
        "on" or "yes" or "true" => true,
        "off" or "no" or "false" => false,
        _ => throw new BlockException($"Parameter '{key}' expects 'on' or 'off'"),
    };

    private static BlockNodeSettings ParseSettings(OptionTree options, BlockNodeSettings inherited, bool legacyCache)
    {
        BlockNodeSettings s = inherited;
        if (legacyCache && options["cache"] is { IsScalar: true } mode)
        {
            s = mode.Scalar switch
            {
                "writeback" => s with { Writeback = true, Direct = false, NoFlush = false },
                "writethrough" => s with { Writeback = false, Direct = false, NoFlush = false },
                "none" => s with { Writeback = true, Direct = true, NoFlush = false },
                "directsync" => s with { Writeback = false, Direct = true, NoFlush = false },
                "unsafe" => s with { Writeback = true, Direct = false, NoFlush = true },
                _ => throw new BlockException("invalid cache option"),
            };
        }
        if (options["cache"] is { IsScalar: false } cache)
        {
            s = s with
            {
                Writeback = ParseBool(cache, "writeback", s.Writeback),
                Direct = ParseBool(cache, "direct", s.Direct),
                NoFlush = ParseBool(cache, "no-flush", s.NoFlush),
            };
        }
        if (options.GetString("detect-zeroes") is { } dz)
        {
            if (dz is not ("off" or "on" or "unmap"))
            {
                throw new BlockException($"invalid parameter value: {dz}");
            }
            s = s with { DetectZeroes = dz };
        }
        if (options.GetString("discard") is { } discard)
        {
            s = s with
            {
                Discard = discard switch
                {
                    "ignore" or "off" => "ignore",
                    "unmap" or "on" => "unmap",
                    _ => throw new BlockException("Invalid discard option"),
                },
            };
        }
        return s;
    }
}
