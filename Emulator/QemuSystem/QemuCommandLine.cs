using System.CommandLine;
using System.CommandLine.Parsing;
using Colo.Core.Qmp;
using Colo.Machine;

namespace Colo.QemuSystem;

/// <summary>
/// Reads QEMU's command line with System.CommandLine: every row of <see cref="QemuOptions"/> becomes an
/// option spelled <c>-name</c> (and <c>--name</c>, which QEMU also accepts). QEMU applies options in the
/// order given, so the result is read from the token stream rather than per option.
/// </summary>
internal static class QemuCommandLine
{
    private static readonly Dictionary<string, QemuOption> ByAlias = QemuOptions.All
        .SelectMany(row => new[] { KeyValuePair.Create("-" + row.Name, row), KeyValuePair.Create("--" + row.Name, row) })
        .ToDictionary(StringComparer.Ordinal);

    private static readonly RootCommand Root = BuildRoot();

    private static readonly ParserConfiguration Parsing = new()
    {
        EnablePosixBundling = false, // -nographic is one option, never -n -o -g ...
        ResponseFileTokenReplacer = null, // QEMU gives @file no meaning
    };

    /// <summary>Parses <paramref name="args"/> into a configuration.</summary>
    /// <exception cref="StartupException">An unknown option, a missing argument, or a bad value (QEMU's text).</exception>
    public static ConfigBuilder Parse(IReadOnlyList<string> args)
    {
        var builder = new ConfigBuilder();
        ParseResult result = Root.Parse(args, Parsing);
        IReadOnlyList<Token> tokens = result.Tokens;
        for (int i = 0; i < tokens.Count; i++)
        {
            Token token = tokens[i];
            if (token.Type == TokenType.Option && ByAlias.TryGetValue(token.Value, out QemuOption? row))
            {
                string name = "-" + row.Name;
                string value = "";
                if (row.TakesArgument)
                {
                    if (i + 1 >= tokens.Count || tokens[i + 1].Type != TokenType.Argument)
                    {
                        throw new StartupException(name, "requires an argument");
                    }
                    value = tokens[++i].Value;
                }
                Apply(builder, row, name, value);
            }
            else if (token.Value.StartsWith('-') && token.Value.Length > 1)
            {
                throw new StartupException(token.Value, "invalid option");
            }
            else
            {
                // A bare argument is the disk image for IDE disk 0, as with -hda.
                builder.AddLegacyDrive(token.Value, 0, "disk");
            }
        }
        builder.ApplyDefaults();
        return builder;
    }

    private static void Apply(ConfigBuilder builder, QemuOption row, string name, string value)
    {
        try
        {
            row.Apply(builder, value);
        }
        catch (QmpException e)
        {
            throw new StartupException(row.TakesArgument ? $"{name} {value}" : name, e.Message);
        }
    }

    private static RootCommand BuildRoot()
    {
        var root = new RootCommand("Colo: a QEMU-compatible x86-64 system emulator for COLO fault tolerance");
        root.Options.Clear(); // no built-in --help/--version: QEMU's -h and -version are rows of the table
        root.Directives.Clear();
        root.TreatUnmatchedTokensAsErrors = false;
        root.Arguments.Add(new Argument<string[]>("disk_image") { Arity = ArgumentArity.ZeroOrMore });
        foreach (QemuOption row in QemuOptions.All)
        {
            Option option = row.TakesArgument
                ? new Option<string[]>("-" + row.Name, "--" + row.Name) { Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false }
                : new Option<bool>("-" + row.Name, "--" + row.Name) { Arity = ArgumentArity.Zero };
            option.Description = row.Help;
            root.Options.Add(option);
        }
        return root;
    }
}
