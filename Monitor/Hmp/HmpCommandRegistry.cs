using System.Text;
using Colo.Core.Qmp;

namespace Colo.Monitor.Hmp;

/// <summary>One HMP command or <c>info</c> subcommand as <c>help</c> lists it.</summary>
/// <param name="Name">Name, with aliases after '|' as QEMU writes them ("quit|q").</param>
/// <param name="ArgsHelp">Argument synopsis ("path property"), may be empty.</param>
/// <param name="Help">One-line description.</param>
/// <param name="Handler">Runs the command on the text after its name; returns output with "\n" line ends.</param>
public sealed record HmpCommand(string Name, string ArgsHelp, string Help, Func<string, string> Handler);

/// <summary>
/// Thrown by an HMP handler whose arguments don't parse ("string expected", "extraneous characters at the
/// end of line"); printed as QEMU does, followed by a pointer to the command's help.
/// </summary>
public sealed class HmpUsageException : Exception
{
    /// <summary>Creates the exception with QEMU's message text, without the command name.</summary>
    public HmpUsageException(string message)
        : base(message)
    {
    }
}

/// <summary>
/// The HMP (human monitor) command table. Subsystems register commands and <c>info</c> subcommands;
/// <c>help</c>/<c>?</c> and <c>info</c> are built in. Output comes back with "\r\n" line ends, as QEMU's
/// monitor prints them and as <c>human-monitor-command</c> returns them.
/// </summary>
public sealed class HmpCommandRegistry
{
    private readonly List<HmpCommand> _commands = [];
    private readonly List<HmpCommand> _infos = [];

    /// <summary>Creates a table holding the built-in <c>help</c> and <c>info</c>.</summary>
    public HmpCommandRegistry()
    {
        _commands.Add(new HmpCommand("help|?", "[cmd]", "show the help", Help));
        _commands.Add(new HmpCommand("info", "[subcommand]", "show various information about the system state", Info));
    }

    /// <summary>Adds a top-level command.</summary>
    /// <exception cref="InvalidOperationException">The name is taken.</exception>
    public void Register(string name, string argsHelp, string help, Func<string, string> handler) =>
        Add(_commands, new HmpCommand(name, argsHelp, help, handler));

    /// <summary>Adds an <c>info NAME</c> subcommand.</summary>
    /// <exception cref="InvalidOperationException">The name is taken.</exception>
    public void RegisterInfo(string name, string argsHelp, string help, Func<string, string> handler) =>
        Add(_infos, new HmpCommand(name, argsHelp, help, handler));

    /// <summary>Runs one command line; returns its output with "\r\n" line ends ("" for a blank line).</summary>
    public string Execute(string commandLine)
    {
        string line = commandLine.TrimStart(' ', '\t');
        if (line.Length == 0)
        {
            return "";
        }
        (string name, string rest) = SplitWord(line);
        HmpCommand? command = Find(_commands, name);
        string output = command is null ? $"unknown command: '{name}'\n" : Run(command, name, name, rest);
        return ToCrLf(output);
    }

    private static void Add(List<HmpCommand> table, HmpCommand command)
    {
        foreach (string alias in command.Name.Split('|'))
        {
            if (Find(table, alias) is not null)
            {
                throw new InvalidOperationException($"HMP command '{alias}' registered twice");
            }
        }
        table.Add(command);
    }

    private static HmpCommand? Find(List<HmpCommand> table, string name)
    {
        foreach (HmpCommand command in table)
        {
            foreach (string alias in command.Name.Split('|'))
            {
                if (alias == name)
                {
                    return command;
                }
            }
        }
        return null;
    }

    private static (string Word, string Remainder) SplitWord(string text)
    {
        text = text.TrimStart(' ', '\t');
        int end = text.IndexOfAny([' ', '\t']);
        return end < 0 ? (text, "") : (text[..end], text[end..].TrimStart(' ', '\t'));
    }

    private string Help(string args)
    {
        (string name, _) = SplitWord(args);
        if (name.Length == 0)
        {
            return List(_commands, "");
        }
        if (name == "info")
        {
            return List(_infos, "info ");
        }
        HmpCommand? command = Find(_commands, name);
        return command is null ? $"unknown command: '{name}'\n" : Line(command, "");
    }

    private string Info(string args)
    {
        (string name, string rest) = SplitWord(args);
        if (name.Length == 0)
        {
            return List(_infos, "info ");
        }
        HmpCommand? command = Find(_infos, name);
        return command is null ? $"unknown command: 'info {name}'\n" : Run(command, name, "info " + name, rest);
    }

    /// <summary>Runs a handler, turning its failures into the text QEMU's HMP prints for them.</summary>
    private static string Run(HmpCommand command, string name, string helpName, string args)
    {
        try
        {
            return command.Handler(args);
        }
        catch (HmpUsageException e)
        {
            return $"{name}: {e.Message}\nTry \"help {helpName}\" for more information\n";
        }
        catch (QmpException e)
        {
            // HMP commands built on QMP ones print the QMP error (QEMU's hmp_handle_error).
            return $"Error: {e.Message}\n";
        }
    }

    /// <summary>QEMU's help listing: sorted by name (strcmp), "PREFIXname args -- help" per line.</summary>
    private static string List(List<HmpCommand> table, string prefix)
    {
        HmpCommand[] sorted = [.. table];
        Array.Sort(sorted, static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        var sb = new StringBuilder();
        foreach (HmpCommand command in sorted)
        {
            sb.Append(Line(command, prefix));
        }
        return sb.ToString();
    }

    private static string Line(HmpCommand command, string prefix) => $"{prefix}{command.Name} {command.ArgsHelp} -- {command.Help}\n";

    /// <summary>QEMU's monitor writes every "\n" as "\r\n".</summary>
    private static string ToCrLf(string text)
    {
        if (!text.Contains('\n', StringComparison.Ordinal))
        {
            return text;
        }
        var sb = new StringBuilder(text.Length + 16);
        foreach (char c in text)
        {
            if (c == '\n')
            {
                sb.Append('\r');
            }
            sb.Append(c);
        }
        return sb.ToString();
    }
}
