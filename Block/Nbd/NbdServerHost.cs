using System.Net;
using System.Net.Sockets;
using Colo.Block.Graph;

namespace Colo.Block.Nbd;

/// <summary>
/// The VM's one built-in NBD server (QMP <c>nbd-server-*</c>): at most one listening server, and the
/// exports of graph nodes by export id. Texts follow QEMU 7.2's. The main loop owns it, as it owns
/// the graph; the server's connection tasks only touch the exported nodes, under each export's lock.
/// </summary>
public sealed class NbdServerHost : IDisposable
{
    private readonly BlockGraph _graph;

    // Export id → export, in creation order (nbd-server-stop and shutdown report them in that order).
    private readonly List<NbdExport> _exports = [];
    private NbdServer? _server;

    public NbdServerHost(BlockGraph graph)
    {
        _graph = graph;
    }

    /// <summary>Told the id of every export that goes away (QMP's BLOCK_EXPORT_DELETED).</summary>
    public Action<string>? ExportDeleted { get; set; }

    public bool Running => _server is not null;

    /// <summary>The running server, or null.</summary>
    public NbdServer? Server => _server;

    /// <summary>Exports in creation order.</summary>
    public IReadOnlyList<NbdExport> Exports => _exports;

    /// <summary>Starts listening on TCP. <paramref name="port"/> is QAPI's string port (a number or a service name).</summary>
    public void StartTcp(string host, string port, int maxConnections)
    {
        CheckNotRunning();
        if (!ushort.TryParse(port, System.Globalization.NumberStyles.None, null, out ushort portNumber))
        {
            // getaddrinfo's answer for a service name it doesn't know; Colo resolves numeric ports only.
            throw new BlockException($"address resolution failed for {host}:{port}: Servname not supported for ai_socktype");
        }
        IPAddress address;
        if (!IPAddress.TryParse(host.Trim('[', ']'), out address!))
        {
            try
            {
                IPAddress[] found = Dns.GetHostAddresses(host);
                if (found.Length == 0)
                {
                    throw new BlockException($"address resolution failed for {host}:{port}: Name or service not known");
                }
                address = found[0];
            }
            catch (SocketException)
            {
                throw new BlockException($"address resolution failed for {host}:{port}: Name or service not known");
            }
        }
        NbdServer server = NbdServer.StartTcp(new IPEndPoint(address, portNumber));
        server.MaxConnections = maxConnections;
        _server = server;
    }

    public void StartUnix(string path, int maxConnections)
    {
        CheckNotRunning();
        NbdServer server;
        try
        {
            server = NbdServer.StartUnix(path);
        }
        catch (BlockException e) when (e.InnerException is SocketException se)
        {
            throw new BlockException($"Failed to bind socket to {path}: {UnixBindReason(se, path)}", e);
        }
        server.MaxConnections = maxConnections;
        _server = server;
    }

    /// <summary>
    /// QMP <c>nbd-server-add</c>: exports the node a drive id or node-name designates, under
    /// <paramref name="name"/> (default: <paramref name="device"/>), which is also the export id.
    /// A read-only node is exported read-only even when <paramref name="writable"/> asks otherwise, as QEMU's
    /// nbd-server-add does, so the node still refuses every write (NBD's EPERM).
    /// </summary>
    public NbdExport AddExport(string device, string? name, bool writable, string? description, string? bitmap)
    {
        NbdServer server = _server ?? throw new BlockException("NBD server not running");
        name ??= device;
        // A drive is exported through its device view, so a block job's filter or pivot reaches the export too.
        BlockNode node = _graph.FindBackend(device)?.Device ?? _graph.FindNode(device)
            ?? throw new BlockException($"Cannot find device='{device}' nor node-name='{device}'");
        if (!IsWellFormedId(name))
        {
            throw new BlockException("Invalid block export id");
        }
        if (Find(name) is not null)
        {
            throw new BlockException($"Block export id '{name}' is already in use");
        }
        if (description is not null && description.Length > NbdProtocol.MaxNameLength)
        {
            throw new BlockException($"description '{description[..16]}...' too long");
        }
        if (bitmap is not null)
        {
            // Colo has no dirty bitmaps (no block-dirty-bitmap-add), so no name can match one.
            throw new BlockException($"Bitmap '{bitmap}' is not found");
        }
        NbdExport export = server.AddExport(name, node, writable && !node.ReadOnly, description);
        BlockNode target = Underlying(node);
        BlockNode front = _graph.WriteFrontOf(target);
        export.Node = front == target ? node : front;
        _exports.Add(export);
        return export;
    }

    /// <summary>QMP <c>nbd-server-remove</c>: safe leaves connected clients running, hard drops them.</summary>
    public void RemoveExport(string name, bool hard)
    {
        NbdExport export = Find(name) ?? throw new BlockException($"Export '{name}' is not found");
        _server?.RemoveExport(name, hard);
        _exports.Remove(export);
        ExportDeleted?.Invoke(name);
    }

    /// <summary>Drops (hard) every export of a node that is about to close.</summary>
    public void RemoveExportsOf(Func<BlockNode, bool> closing)
    {
        foreach (NbdExport e in _exports.ToArray())
        {
            if (closing(e.Origin))
            {
                RemoveExport(e.Name, hard: true);
            }
        }
    }

    /// <summary>
    /// Sends the requests of every export of <paramref name="origin"/> to <paramref name="front"/> (the origin
    /// itself to undo). Each switch waits for the export's request in flight, so none straddles it.
    /// </summary>
    internal void Redirect(BlockNode origin, BlockNode front)
    {
        foreach (NbdExport e in _exports)
        {
            if (Underlying(e.Origin) == origin)
            {
                // Undoing restores what the export named (a drive's device view stays a view).
                e.SwitchNode(front == origin ? e.Origin : front);
            }
        }
    }

    /// <summary>The node an export's requests end up at: a drive's device view stands for the drive's root.</summary>
    public static BlockNode Underlying(BlockNode node) => node is BackendNode view ? view.Backend.Root : node;

    /// <summary>QMP <c>nbd-server-stop</c>: closes every export and connection, then the listener.</summary>
    public void Stop()
    {
        NbdServer server = _server ?? throw new BlockException("NBD server not running");
        _server = null;
        server.Dispose();
        NbdExport[] gone = [.. _exports];
        _exports.Clear();
        foreach (NbdExport e in gone)
        {
            ExportDeleted?.Invoke(e.Name);
        }
    }

    public void Dispose()
    {
        if (_server is not null)
        {
            Stop();
        }
    }

    private NbdExport? Find(string name) => _exports.Find(e => e.Name == name);

    private void CheckNotRunning()
    {
        if (_server is not null)
        {
            throw new BlockException("NBD server already running");
        }
    }

    /// <summary>QEMU's id_wellformed: a letter, then letters, digits, '-', '.', '_'.</summary>
    internal static bool IsWellFormedId(string id)
    {
        if (id.Length == 0 || !char.IsAsciiLetter(id[0]))
        {
            return false;
        }
        foreach (char c in id)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_'))
            {
                return false;
            }
        }
        return true;
    }

    private static string UnixBindReason(SocketException e, string path) => e.SocketErrorCode switch
    {
        // .NET reports a missing directory as an access/address error; name it as strerror(ENOENT) would.
        _ when !Directory.Exists(Path.GetDirectoryName(Path.GetFullPath(path))) => "No such file or directory",
        SocketError.AccessDenied => "Permission denied",
        SocketError.AddressAlreadyInUse => "Address already in use",
        _ => e.Message,
    };
}
