using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Core.Chardev;

/// <summary>
/// The <c>file</c> backend: output goes to <c>path</c> (truncated, or appended with <c>append=on</c>);
/// the optional <c>in</c> file (QMP's <c>ChardevFile.in</c>) is read once and handed to the frontend.
/// </summary>
public sealed class FileChardev : Chardev, IChardevInfo
{
    private readonly CancellationTokenSource _stop = new();
    private ChardevOutput? _output;
    private FileStream? _in;
    private Task? _reader;
    private readonly SemaphoreSlim _attached = new(0);

    internal FileChardev(ObjectTypeInfo type, PropertyValues values)
        : base(type, values)
    {
    }

    /// <inheritdoc/>
    public override bool IsConnected => true;

    /// <inheritdoc/>
    public string Filename => "file";

    /// <inheritdoc/>
    public override void Complete()
    {
        ChardevTypes.RefuseUnimplemented(this);
        string? path = Values.GetString("path");
        if (string.IsNullOrEmpty(path) && !Values.Contains("path"))
        {
            throw new QmpException("chardev: file: no filename given");
        }
        bool append = Values.GetBool("append");
        _output = new ChardevOutput(ChardevTypes.OpenFile(path!, append ? FileMode.Append : FileMode.Create, FileAccess.Write), ChardevLog.Open(Values));
        string? input = Values.GetString("in");
        if (!string.IsNullOrEmpty(input))
        {
            _in = ChardevTypes.OpenFile(input, FileMode.Open, FileAccess.Read);
            _reader = Task.Run(() => ReadAsync(_in, _stop.Token));
        }
    }

    /// <inheritdoc/>
    public override int Write(ReadOnlySpan<byte> data) => _output?.Write(data) ?? 0;

    /// <inheritdoc/>
    protected override void OnAttached()
    {
        base.OnAttached();
        _attached.Release();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _stop.Cancel();
            _output?.Close(ownsStream: true);
            _in?.Dispose();
            ChardevTypes.WaitQuietly(_reader);
            _stop.Dispose();
            _attached.Dispose();
        }
        base.Dispose(disposing);
    }

    private async Task ReadAsync(FileStream input, CancellationToken token)
    {
        byte[] buffer = new byte[4096];
        try
        {
            // Like QEMU, input is only consumed once someone listens.
            while (!HasFrontend)
            {
                await _attached.WaitAsync(250, token).ConfigureAwait(false);
            }
            int n;
            while ((n = await input.ReadAsync(buffer, token).ConfigureAwait(false)) > 0)
            {
                DeliverReceived(buffer.AsSpan(0, n));
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        catch (IOException)
        {
        }
    }
}
