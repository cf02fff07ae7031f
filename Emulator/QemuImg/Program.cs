using System.CommandLine;
using Colo.Block;

namespace Colo.QemuImg;

/// <summary>
/// qemu-img: one System.CommandLine tree whose subcommands mirror QEMU 7.2's. Parse errors and
/// BlockExceptions become "qemu-img: ..." on stderr with QEMU's exit codes.
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        if (args.Length == 0)
        {
            Console.Error.WriteLine("qemu-img: Not enough arguments");
            Console.Error.WriteLine("Try 'qemu-img --help' for more information");
            return 1;
        }

        if (args[0] is "--version" or "-V")
        {
            Console.WriteLine("qemu-img version 7.2.0 (Colo)");
            Console.WriteLine("Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers");
            return 0;
        }

        RootCommand root = BuildCommandTree();
        ParseResult result = root.Parse(args);
        if (result.Errors.Count > 0 && !result.Tokens.Any(t => t.Value is "-h" or "--help"))
        {
            string known = !root.Subcommands.Any(c => c.Name == args[0]) ? $"Command not found: {args[0]}"
                : result.Errors[0].Message.StartsWith("Required argument missing", StringComparison.Ordinal) ? "Expecting one image file name"
                : result.Errors[0].Message;
            Console.Error.WriteLine($"qemu-img: {known}");
            Console.Error.WriteLine("Try 'qemu-img --help' for more information");
            return 1;
        }

        try
        {
            return result.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (QemuImgException e)
        {
            Console.Error.WriteLine($"qemu-img: {e.Message}");
            return e.ExitCode;
        }
        catch (BlockException e)
        {
            Console.Error.WriteLine($"qemu-img: {e.Message}");
            return 1;
        }
    }

    private static RootCommand BuildCommandTree()
    {
        var root = new RootCommand("QEMU disk image utility (Colo)");
        root.Subcommands.Add(CreateCommand.Build());
        root.Subcommands.Add(InfoCommand.Build());
        root.Subcommands.Add(CheckCommand.Build());
        root.Subcommands.Add(ConvertCommand.Build());
        root.Subcommands.Add(CompareCommand.Build());
        root.Subcommands.Add(ResizeCommand.Build());
        root.Subcommands.Add(CommitCommand.Build());
        root.Subcommands.Add(BenchCommand.Build());
        foreach (Command c in root.Subcommands)
        {
            c.TreatUnmatchedTokensAsErrors = true;
        }

        return root;
    }
}

/// <summary>A failure with the exit code QEMU uses for it.</summary>
internal sealed class QemuImgException : Exception
{
    public QemuImgException(string message, int exitCode = 1)
        : base(message)
    {
        ExitCode = exitCode;
    }

    public QemuImgException()
        : this("error")
    {
    }

    public QemuImgException(string message, Exception inner)
        : base(message, inner)
    {
        ExitCode = 1;
    }

    public int ExitCode { get; }
}
