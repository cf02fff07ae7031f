using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text;

namespace Colo.QemuIo;

/// <summary>
/// qemu-io: opens one image and runs qemu-io commands on it, from -c options in order or, without
/// -c, from stdin behind a "qemu-io> " prompt. The exit status is 1 once any command (or the open)
/// has failed, 0 otherwise, as with QEMU 7.2.
/// </summary>
internal static class Program
{
    private static readonly Option<string[]> s_cmd = new("-c", "--cmd") { AllowMultipleArgumentsPerToken = false };
    private static readonly Option<string?> s_format = new("-f", "--format");
    private static readonly Option<bool> s_imageOpts = new("--image-opts");
    private static readonly Option<bool> s_readOnly = new("-r", "--read-only");
    private static readonly Option<bool> s_noCache = new("-n", "--nocache");
    private static readonly Option<string?> s_cache = new("-t", "--cache");
    // Colo takes no image locks, so there is nothing for --force-share to relax; accepted for scripts.
    private static readonly Option<bool> s_forceShare = new("-U", "--force-share");
    private static readonly Option<bool> s_help = new("-h", "--help");
    private static readonly Option<bool> s_version = new("-V", "--version");
    private static readonly Argument<string[]> s_file = new("file") { Arity = ArgumentArity.ZeroOrMore };

    /// <summary>QEMU options Colo's qemu-io recognises but does not implement: refused by name.</summary>
    private static readonly string[] s_unsupported =
        ["-s", "--snapshot", "-C", "--copy-on-read", "-m", "--misalign", "-k", "--native-aio", "-i", "--aio", "-d", "--discard", "-T", "--trace", "--object"];

    private static int Main(string[] args)
    {
        var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false), 1 << 16) { AutoFlush = false };
        var stderr = new StreamWriter(Console.OpenStandardError(), new UTF8Encoding(false)) { AutoFlush = true };
        try
        {
            return Run(args, stdout, stderr);
        }
        finally
        {
            stdout.Flush();
        }
    }

    private static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("qemu-io (Colo)");
        root.Options.Clear(); // QEMU's -h/-V, not System.CommandLine's help and version handling
        foreach (Option o in new Option[] { s_cmd, s_format, s_imageOpts, s_readOnly, s_noCache, s_cache, s_forceShare, s_help, s_version })
        {
            root.Options.Add(o);
        }

        root.Arguments.Add(s_file);
        var config = new ParserConfiguration { EnablePosixBundling = true, ResponseFileTokenReplacer = null };
        ParseResult r = root.Parse(args, config);

        foreach (Token t in r.Tokens)
        {
            if (t.Type == TokenType.Argument && s_unsupported.Contains(t.Value))
            {
                stderr.WriteLine($"qemu-io: option '{t.Value}' is not supported by Colo");
                return 1;
            }
        }

        // An unknown option lands in the file list (its arity is open), so look there too.
        string? unknown = r.UnmatchedTokens.Concat(r.GetValue(s_file) ?? []).FirstOrDefault(t => t.StartsWith('-') && t.Length > 1);
        if (r.Errors.Count > 0 || unknown != null)
        {
            string? bad = unknown;
            stderr.WriteLine(bad == null ? $"qemu-io: {r.Errors[0].Message}"
                : bad.StartsWith("--", StringComparison.Ordinal) ? $"qemu-io: unrecognized option '{bad}'"
                : $"qemu-io: invalid option -- '{bad[1]}'");
            stdout.Write(UsageText);
            return 1;
        }

        if (r.GetValue(s_help))
        {
            stdout.Write(UsageText);
            return 0;
        }

        if (r.GetValue(s_version))
        {
            stdout.WriteLine("qemu-io version 7.2.0 (Colo)");
            stdout.WriteLine("Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers");
            return 0;
        }

        string[] files = r.GetValue(s_file) ?? [];
        if (files.Length > 1)
        {
            stdout.Write(UsageText);
            return 1;
        }

        string? format = r.GetValue(s_format);
        bool imageOpts = r.GetValue(s_imageOpts);
        if (imageOpts && format != null)
        {
            stderr.WriteLine("qemu-io: --image-opts and -f are mutually exclusive");
            return 1;
        }

        string cache = r.GetValue(s_noCache) ? "none" : "writeback";
        if (r.GetValue(s_cache) is { } t2)
        {
            if (!OpenOptions.CacheModes.Contains(t2))
            {
                stderr.WriteLine($"qemu-io: Invalid cache option: {t2}");
                return 1;
            }

            cache = t2;
        }

        using var session = new IoSession(stdout, stderr);
        if (files.Length == 1 && !session.Open(files[0], new OpenOptions(format, imageOpts, r.GetValue(s_readOnly), cache)))
        {
            return 1;
        }

        string[] commands = r.GetValue(s_cmd) ?? [];
        if (commands.Length > 0)
        {
            foreach (string c in commands)
            {
                IoCommands.Execute(session, c);
                if (session.Quit)
                {
                    break;
                }
            }
        }
        else
        {
            while (!session.Quit)
            {
                stdout.Write("qemu-io> ");
                stdout.Flush();
                string? line = Console.In.ReadLine();
                if (line == null)
                {
                    break;
                }

                IoCommands.Execute(session, line);
            }
        }

        stdout.Flush();
        return session.Failed ? 1 : 0;
    }

    private const string UsageText = """
        Usage: qemu-io [OPTIONS]... [-c STRING]... [file]
        Colo's qemu-io: exercise a disk image through the block layer

          --image-opts         the file argument is a key=value option string
          -c, --cmd STRING     run this qemu-io command (repeatable; stdin is read otherwise)
          -f, --format FMT     image format (raw, qcow2); probed when omitted
          -r, --read-only      open the image read-only
          -n, --nocache        same as -t none
          -t, --cache=MODE     none, writeback, writethrough, directsync or unsafe
                               (write-through modes flush after each write; Colo does not
                               bypass the host page cache)
          -U, --force-share    accepted; Colo takes no image locks
          -h, --help           show this help and exit
          -V, --version        show the version and exit

        Run 'qemu-io -c help' for the commands.

        """;
}
