using System.Text;
using Colo.Block.Graph;

namespace Colo.Block.Hmp;

/// <summary>The texts of the block HMP commands; the Machine layer registers them (Block does not know the monitor).</summary>
public static class BlockHmpText
{
    /// <summary>QEMU's <c>info block [device]</c> for the drives (the <c>-n</c>/<c>-v</c> forms are not built).</summary>
    public static string InfoBlock(BlockGraph graph, string? device)
    {
        var sb = new StringBuilder();
        bool first = true;
        foreach (BlockBackend b in graph.Backends)
        {
            if (device is not null && b.Name != device)
            {
                continue;
            }
            if (!first)
            {
                sb.Append('\n');
            }
            first = false;
            BlockNode root = b.Root;
            BlockNodeSettings s = graph.SettingsOf(root);
            sb.Append(b.Name).Append(" (").Append(root.NodeName).Append("): ").Append(root.Filename)
                .Append(" (").Append(root.DriverName).Append(root.ReadOnly ? ", read-only)" : ")").Append('\n');
            sb.Append("    Removable device: not locked, tray closed\n");
            sb.Append("    Cache mode:       ").Append(s.Writeback ? "writeback" : "writethrough");
            if (s.Direct)
            {
                sb.Append(", direct");
            }
            if (s.NoFlush)
            {
                sb.Append(", ignore flushes");
            }
            sb.Append('\n');
            if (graph.BackingOf(root) is { } backing)
            {
                sb.Append("    Backing file:     ").Append(Qmp.BlockQmpCommands.BackingFileName(root, backing)).Append(" (chain depth: ").Append(graph.BackingDepth(root)).Append(")\n");
            }
            if (s.DetectZeroes != "off")
            {
                sb.Append("    Detect zeroes:    ").Append(s.DetectZeroes).Append('\n');
            }
        }
        return sb.ToString();
    }
}
