using System.Text;
using Colo.Block;
using Colo.Block.Graph;
using Colo.Monitor.Hmp;
using Colo.QemuIo;

namespace Colo.Machine.Hmp;

/// <summary>
/// HMP <c>qemu-io [-d] device "command"</c>: one qemu-io command on a drive (by id) or a node (by node-name).
/// As in QEMU 7.2, the command's output goes to the process's standard output and the monitor answers
/// nothing; a device that does not exist is the monitor's error.
/// </summary>
public static class HmpQemuIo
{
    public static void Register(HmpCommandRegistry r, VirtualMachine vm) =>
        r.Register("qemu-io", "[-d] [device] \"[command]\"", "run a qemu-io command on a block device\n\t\t\t-d: [device] is a device ID rather than a drive ID or node name",
            args => Run(vm.Blocks, args, Console.Out, Console.Error));

    /// <summary>Parses the arguments, finds the node and runs the command; returns the monitor's reply text.</summary>
    public static string Run(BlockGraph graph, string args, TextWriter output, TextWriter error)
    {
        int pos = 0;
        string? first = NextWord(args, ref pos);
        bool qdev = first == "-d";
        string? device = qdev ? NextWord(args, ref pos) : first;
        string? command = NextString(args, ref pos);
        if (device is null || command is null)
        {
            throw new HmpUsageException("string expected");
        }
        if (qdev)
        {
            throw new BlockException("qemu-io -d (a device ID) is not implemented yet in Colo; name the drive or node");
        }
        BlockNode node = graph.FindNodeOrDevice(device) ?? throw new BlockException($"Cannot find device='' nor node-name='{device}'");
        using var session = new IoSession(output, error);
        session.Attach(node, new OpenOptions(null, false, false, "writeback"));
        IoCommands.Execute(session, command);
        output.Flush();
        return "";
    }

    private static string? NextWord(string s, ref int pos)
    {
        while (pos < s.Length && char.IsWhiteSpace(s[pos]))
        {
            pos++;
        }
        int start = pos;
        while (pos < s.Length && !char.IsWhiteSpace(s[pos]))
        {
            pos++;
        }
        return pos > start ? s[start..pos] : null;
    }

    /// <summary>HMP's quoted string argument: "..." with \" and \\ escapes, or one bare word.</summary>
    private static string? NextString(string s, ref int pos)
    {
        while (pos < s.Length && char.IsWhiteSpace(s[pos]))
        {
            pos++;
        }
        if (pos >= s.Length)
        {
            return null;
        }
        if (s[pos] != '"')
        {
            return NextWord(s, ref pos);
        }
        var sb = new StringBuilder();
        for (pos++; pos < s.Length && s[pos] != '"'; pos++)
        {
            if (s[pos] == '\\' && pos + 1 < s.Length)
            {
                pos++;
            }
            sb.Append(s[pos]);
        }
        if (pos >= s.Length)
        {
            throw new HmpUsageException("unterminated string literal");
        }
        pos++;
        return sb.ToString();
    }
}
