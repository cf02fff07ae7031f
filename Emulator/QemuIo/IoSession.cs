using Colo.Block;
using Colo.Tools;

namespace Colo.QemuIo;

/// <summary>How the image is opened: qemu-io's -r, -t/-n and -f/--image-opts.</summary>
internal sealed record OpenOptions(string? Format, bool ImageOpts, bool ReadOnly, string CacheMode)
{
    public static readonly string[] CacheModes = ["none", "writeback", "writethrough", "directsync", "unsafe"];

    /// <summary>writethrough and directsync flush after every write (QEMU's "cache.writeback=off").</summary>
    public bool WriteThrough => CacheMode is "writethrough" or "directsync";

    /// <summary>unsafe ignores flush requests (QEMU's "cache.no-flush=on").</summary>
    public bool NoFlush => CacheMode == "unsafe";
}

/// <summary>
/// The state qemu-io commands act on: at most one open image, the output streams, and whether any
/// command has failed (which makes the process exit 1, as QEMU's does).
/// </summary>
internal sealed class IoSession : IDisposable
{
    public IoSession(TextWriter output, TextWriter error)
    {
        Out = output;
        Err = error;
    }

    public TextWriter Out { get; }

    public TextWriter Err { get; }

    public BlockNode? Node { get; private set; }

    public OpenOptions Options { get; private set; } = new(null, false, false, "writeback");

    /// <summary>Set by a failing command; the exit status is 1 once it is.</summary>
    public bool Failed { get; set; }

    /// <summary>Set by quit: no further commands run.</summary>
    public bool Quit { get; set; }

    /// <summary>stderr lines are written after flushing stdout so a merged log keeps their order.</summary>
    public void Error(string line)
    {
        Out.Flush();
        Err.WriteLine(line);
        Err.Flush();
    }

    /// <summary>Opens <paramref name="spec"/>; on failure prints QEMU's "can't open device" line and returns false.</summary>
    public bool Open(string spec, OpenOptions options)
    {
        if (Node != null)
        {
            Error("qemu-io: file open already, try 'help close'");
            return false;
        }

        try
        {
            Node = ImageOpener.Open(spec, options.Format, options.ImageOpts, options.ReadOnly);
            Options = options with { ReadOnly = options.ReadOnly || Node.ReadOnly };
            return true;
        }
        catch (BlockException e)
        {
            Error(options.ImageOpts ? $"qemu-io: can't open: {e.Message}" : $"qemu-io: can't open device {spec}: {e.Message}");
            return false;
        }
    }

    /// <summary>
    /// Runs commands on a node someone else owns (the monitor's <c>qemu-io</c> on a VM's drive): closing the
    /// session leaves the node open.
    /// </summary>
    public void Attach(BlockNode node, OpenOptions options)
    {
        Node = node;
        Options = options with { ReadOnly = options.ReadOnly || node.ReadOnly };
        _borrowed = true;
    }

    private bool _borrowed;

    public void Close()
    {
        if (!_borrowed)
        {
            Node?.Dispose();
        }
        Node = null;
        _borrowed = false;
    }

    public void Dispose() => Close();
}
