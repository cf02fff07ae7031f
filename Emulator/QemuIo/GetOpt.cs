namespace Colo.QemuIo;

/// <summary>
/// The option syntax inside one qemu-io command ("read -P 0xab -v 0 64k"). QEMU parses these with
/// glibc getopt, so options may follow positionals, clusters such as <c>-qv</c> work, "--" ends
/// options, and a negative number is an (invalid) option. The process command line itself goes
/// through System.CommandLine; these strings are data handed to -c or read from stdin.
/// </summary>
internal sealed class GetOpt
{
    private readonly Dictionary<char, string?> _values = [];

    private GetOpt(List<string> positionals) => Positionals = positionals;

    public List<string> Positionals { get; }

    /// <summary>Options in the order given, for commands where order matters.</summary>
    public List<(char Option, string? Value)> Given { get; } = [];

    public bool Has(char option) => _values.ContainsKey(option);

    public string? Value(char option) => _values.GetValueOrDefault(option);

    /// <summary>
    /// Splits <paramref name="args"/> by <paramref name="optString"/> (getopt's: a letter followed by
    /// ':' takes a value). On failure <paramref name="error"/> holds getopt's message.
    /// </summary>
    public static GetOpt? Parse(string command, IReadOnlyList<string> args, string optString, out string? error)
    {
        var positionals = new List<string>();
        var result = new GetOpt(positionals);
        error = null;
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (a == "--")
            {
                positionals.AddRange(args.Skip(i + 1));
                break;
            }

            if (a.Length < 2 || a[0] != '-')
            {
                positionals.Add(a);
                continue;
            }

            for (int j = 1; j < a.Length; j++)
            {
                char c = a[j];
                int at = optString.IndexOf(c, StringComparison.Ordinal);
                if (at < 0 || c == ':')
                {
                    error = $"{command}: invalid option -- '{c}'";
                    return null;
                }

                if (at + 1 < optString.Length && optString[at + 1] == ':')
                {
                    string? value = j + 1 < a.Length ? a[(j + 1)..] : i + 1 < args.Count ? args[++i] : null;
                    if (value == null)
                    {
                        error = $"{command}: option requires an argument -- '{c}'";
                        return null;
                    }

                    result._values[c] = value;
                    result.Given.Add((c, value));
                    break;
                }

                result._values[c] = null;
                result.Given.Add((c, null));
            }
        }

        return result;
    }
}
