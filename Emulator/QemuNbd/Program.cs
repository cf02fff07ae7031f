using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Colo.Block;
using Colo.Block.Nbd;
using Colo.QemuSystem;
using Colo.Tools;

namespace Colo.QemuNbd;

/// <summary>
/// qemu-nbd: serves one image over NBD (TCP or a unix socket) with the Block library's NbdServer.
/// Without --persistent it exits once the last client that reached the transmission phase has
/// left, as QEMU 7.2 does; --fork returns once the server is listening.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal static class Program
{
    private const int DefaultPort = 10809;

    private static readonly Option<string?> s_format = new("-f", "--format");
    private static readonly Option<bool> s_imageOpts = new("--image-opts");
    private static readonly Option<string?> s_export = new("-x", "--export-name");
    private static readonly Option<string?> s_description = new("-D", "--description");
    private static readonly Option<string?> s_port = new("-p", "--port");
    private static readonly Option<string?> s_bind = new("-b", "--bind");
    private static readonly Option<string?> s_socket = new("-k", "--socket");
    private static readonly Option<bool> s_persistent = new("-t", "--persistent");
    private static readonly Option<bool> s_readOnly = new("-r", "--read-only");
    private static readonly Option<string?> s_shared = new("-e", "--shared");
    private static readonly Option<bool> s_fork = new("--fork");
    private static readonly Option<string?> s_pidFile = new("--pid-file");
    private static readonly Option<string?> s_discard = new("--discard");
    private static readonly Option<bool> s_help = new("-h", "--help");
    private static readonly Option<bool> s_version = new("-V", "--version");
    private static readonly Argument<string[]> s_file = new("file") { Arity = ArgumentArity.ZeroOrMore };

    /// <summary>QEMU options Colo's qemu-nbd recognises but does not implement: refused by name.</summary>
    private static readonly string[] s_unsupported =
    [
        "-c", "--connect", "-d", "--disconnect", "-L", "--list", "-o", "--offset", "-A", "--allocation-depth",
        "-B", "--bitmap", "-s", "--snapshot", "-l", "--load-snapshot", "-n", "--nocache", "--cache", "--aio",
        "--detect-zeroes", "--object", "--tls-creds", "--tls-authz", "--tls-hostname", "-T", "--trace",
        "--selinux-label", "-v", "--verbose", "-U", "--force-share",
    ];

    private static int Main(string[] args)
    {
        try
        {
            return Run(args);
        }
        catch (NbdToolException e)
        {
            Console.Error.WriteLine($"qemu-nbd: {e.Message}");
            return 1;
        }
    }

    private static int Run(string[] args)
    {
        var root = new RootCommand("qemu-nbd (Colo)");
        root.Options.Clear(); // QEMU's -h/-V, not System.CommandLine's help and version handling
        foreach (Option o in new Option[] { s_format, s_imageOpts, s_export, s_description, s_port, s_bind, s_socket, s_persistent, s_readOnly, s_shared, s_fork, s_pidFile, s_discard, s_help, s_version })
        {
            root.Options.Add(o);
        }

        root.Arguments.Add(s_file);
        ParseResult r = root.Parse(args, new ParserConfiguration { EnablePosixBundling = true, ResponseFileTokenReplacer = null });
        foreach (Token t in r.Tokens)
        {
            string name = t.Value.Split('=')[0];
            if (t.Type == TokenType.Argument && s_unsupported.Contains(name))
            {
                throw new NbdToolException($"option '{name}' is not supported by Colo");
            }
        }

        // An unknown option lands in the file list (its arity is open), so look there too.
        string? unknown = r.UnmatchedTokens.Concat(r.GetValue(s_file) ?? []).FirstOrDefault(t => t.StartsWith('-') && t.Length > 1);
        if (r.Errors.Count > 0 || unknown != null)
        {
            string? bad = unknown;
            string message = bad == null ? r.Errors[0].Message
                : bad.StartsWith("--", StringComparison.Ordinal) ? $"unrecognized option '{bad}'"
                : $"invalid option -- '{bad[1]}'";
            if (bad == null && r.Errors[0].Message.StartsWith("Required argument missing for option: '", StringComparison.Ordinal))
            {
                string opt = r.Errors[0].Message.Split('\'')[1];
                message = opt.StartsWith("--", StringComparison.Ordinal) ? $"option '{opt}' requires an argument" : $"option requires an argument -- '{opt.TrimStart('-')}'";
            }

            Console.Error.WriteLine($"qemu-nbd: {message}");
            Console.Error.WriteLine("qemu-nbd: Try `qemu-nbd --help' for more information.");
            return 1;
        }

        if (r.GetValue(s_help))
        {
            Console.Write(UsageText);
            return 0;
        }

        if (r.GetValue(s_version))
        {
            Console.WriteLine("qemu-nbd 7.2.0 (Colo)");
            return 0;
        }

        string[] files = r.GetValue(s_file) ?? [];
        if (files.Length != 1)
        {
            Console.Error.WriteLine("qemu-nbd: Invalid number of arguments");
            Console.Error.WriteLine("Try `qemu-nbd --help' for more information.");
            return 1;
        }

        int shared = 1;
        if (r.GetValue(s_shared) is { } sharedText
            && (!int.TryParse(sharedText, NumberStyles.None, CultureInfo.InvariantCulture, out shared) || shared < 0))
        {
            throw new NbdToolException($"Invalid shared device number '{sharedText}'");
        }

        string discard = r.GetValue(s_discard) ?? "ignore";
        if (discard is not ("ignore" or "off" or "unmap" or "on"))
        {
            throw new NbdToolException($"Invalid discard mode `{discard}'");
        }

        if (r.GetValue(s_imageOpts) && r.GetValue(s_format) != null)
        {
            throw new NbdToolException("--image-opts and -f are mutually exclusive");
        }

        if (r.GetValue(s_fork) && Daemon.StatusSocket is null)
        {
            return Daemon.RunLauncher(args);
        }

        return Serve(r, files[0], shared);
    }

    private static int Serve(ParseResult r, string file, int shared)
    {
        bool readOnly = r.GetValue(s_readOnly);
        BlockNode node;
        try
        {
            node = ImageOpener.Open(file, r.GetValue(s_format), r.GetValue(s_imageOpts), readOnly);
        }
        catch (BlockException e)
        {
            throw new NbdToolException($"Failed to blk_new_open '{file}': {e.Message}");
        }

        using (node)
        {
            NbdServer server = Listen(r);
            server.MaxConnections = shared;
            var exported = new DiscardFilter(node, r.GetValue(s_discard) is "unmap" or "on");
            server.AddExport(r.GetValue(s_export) ?? "", exported, !readOnly, r.GetValue(s_description));

            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            bool persistent = r.GetValue(s_persistent);
            server.ClientDisconnected += negotiated =>
            {
                if (negotiated && !persistent && server.ConnectionCount == 0)
                {
                    done.TrySetResult();
                }
            };

            // SIGTERM and SIGINT end the server cleanly (flushed image, pid file removed), exit 0.
            using PosixSignalRegistration term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            using PosixSignalRegistration interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);

            string? pidPath = r.GetValue(s_pidFile);
            string? pidError = null;
            using PidFile? pidFile = pidPath == null ? null : PidFile.Create(pidPath, out pidError);
            if (pidPath != null && pidFile == null)
            {
                server.Dispose();
                throw new NbdToolException($"Failed to write pid file '{pidPath}': {pidError}");
            }

            if (Daemon.StatusSocket is not null)
            {
                Daemon.Detach();
            }

            done.Task.Wait();
            server.Dispose();
            node.Flush();
            return 0;

            void Stop(PosixSignalContext context)
            {
                context.Cancel = true;
                done.TrySetResult();
            }
        }
    }

    /// <summary>Binds the unix socket (-k) or TCP address (-b/-p), with qemu-nbd's error texts.</summary>
    private static NbdServer Listen(ParseResult r)
    {
        if (r.GetValue(s_socket) is { } path)
        {
            if (System.Text.Encoding.UTF8.GetByteCount(path) >= 108)
            {
                throw new NbdToolException($"UNIX socket path '{path}' is too long"); // sun_path's size
            }

            try
            {
                return NbdServer.StartUnix(path);
            }
            catch (BlockException e)
            {
                // .NET reports a missing directory as EADDRNOTAVAIL; bind(2) itself says ENOENT.
                string reason = Path.GetDirectoryName(Path.GetFullPath(path)) is { } dir && !Directory.Exists(dir) ? "No such file or directory" : Strerror(e);
                throw new NbdToolException($"Failed to bind socket to {path}: {reason}");
            }
        }

        string host = r.GetValue(s_bind) ?? "0.0.0.0";
        string portText = r.GetValue(s_port) ?? DefaultPort.ToString(CultureInfo.InvariantCulture);
        if (!ushort.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out ushort port))
        {
            throw new NbdToolException($"address resolution failed for {host}:{portText}: Servname not supported for ai_socktype");
        }

        IPAddress? address;
        if (!IPAddress.TryParse(host, out address))
        {
            try
            {
                address = Dns.GetHostAddresses(host).FirstOrDefault();
            }
            catch (SocketException)
            {
                address = null;
            }

            if (address == null)
            {
                throw new NbdToolException($"address resolution failed for {host}:{portText}: Name or service not known");
            }
        }

        try
        {
            return NbdServer.StartTcp(new IPEndPoint(address, port));
        }
        catch (BlockException e)
        {
            throw new NbdToolException(e.InnerException is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse }
                ? $"Failed to find an available port: {Strerror(e)}"
                : $"Failed to bind socket: {Strerror(e)}");
        }
    }

    /// <summary>The OS's text for the failure under a BlockException (.NET's socket messages are strerror's).</summary>
    private static string Strerror(BlockException e) => e.InnerException switch
    {
        SocketException s => s.Message,
        DirectoryNotFoundException => "No such file or directory",
        UnauthorizedAccessException => "Permission denied",
        { } inner => inner.Message,
        null => e.Message,
    };

    private const string UsageText = """
        Usage: qemu-nbd [OPTIONS] FILE
        Colo's qemu-nbd: serve a disk image over the NBD protocol

          -h, --help                show this help and exit
          -V, --version             show the version and exit
          -p, --port=PORT           TCP port to listen on (default 10809)
          -b, --bind=IFACE          address to listen on (default 0.0.0.0)
          -k, --socket=PATH         listen on this unix socket instead of TCP
          -e, --shared=NUM          serve at most NUM clients at once (default 1, 0 = no limit)
          -t, --persistent          keep serving after the last client leaves
          -x, --export-name=NAME    export name (default: the empty string)
          -D, --description=TEXT    export description shown to clients
          -f, --format=FORMAT       image format (raw, qcow2); probed when omitted
          --image-opts              FILE is a key=value option string
          -r, --read-only           export read-only
          --discard=MODE            ignore (default) or unmap client discard requests
          --fork                    return once the server is listening, leaving it in the background
          --pid-file=PATH           write the server's process id to PATH

        """;
}

/// <summary>A startup failure printed as "qemu-nbd: message" with exit status 1.</summary>
internal sealed class NbdToolException : Exception
{
    public NbdToolException(string message)
        : base(message)
    {
    }

    public NbdToolException()
    {
    }

    public NbdToolException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
