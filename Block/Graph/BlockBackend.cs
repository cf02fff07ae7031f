namespace Colo.Block.Graph;

/// <summary>
/// A named attachment point of the graph (QEMU's BlockBackend): what <c>-drive id=...</c> creates and
/// what <c>query-block</c> lists. It holds the root node and the drive-level settings.
/// </summary>
public sealed class BlockBackend
{
    internal BlockBackend(string name, BlockNode root, string interfaceType, BlockNodeSettings settings)
    {
        Name = name;
        Root = root;
        InterfaceType = interfaceType;
        Settings = settings;
    }

    /// <summary>The drive id (QEMU's device name in <c>query-block</c>).</summary>
    public string Name { get; }

    /// <summary>The node the drive reads and writes now; a block job may change it (filter, pivot).</summary>
    public BlockNode Root { get; internal set; }

    /// <summary>The node devices and exports of this drive use: it follows <see cref="Root"/> when a job swaps it.</summary>
    public BlockNode Device => _device ??= new BackendNode(this);

    private BackendNode? _device;

    /// <summary>The <c>if=</c> value ("none", "ide").</summary>
    public string InterfaceType { get; }

    public BlockNodeSettings Settings { get; }

    /// <summary>For <c>if=ide</c>: the channel (<c>bus</c>, or <c>index</c> / 2) and unit the drive asks for.</summary>
    public (int Bus, int Unit)? IdePosition { get; init; }
}

/// <summary>Per-node options that change reporting and policy but not the driver's own state.</summary>
/// <param name="Writeback">Cache mode: writeback (true) or writethrough.</param>
/// <param name="Direct"><c>cache.direct</c> (O_DIRECT).</param>
/// <param name="NoFlush"><c>cache.no-flush</c>: flushes are ignored.</param>
/// <param name="DetectZeroes"><c>detect-zeroes</c>: off, on or unmap.</param>
/// <param name="Discard"><c>discard</c>: ignore or unmap.</param>
public sealed record BlockNodeSettings(bool Writeback, bool Direct, bool NoFlush, string DetectZeroes, string Discard)
{
    public static readonly BlockNodeSettings Default = new(true, false, false, "off", "ignore");
}
