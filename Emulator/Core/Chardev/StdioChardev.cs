using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Core.Chardev;

/// <summary>
/// The <c>stdio</c> backend: the process's standard input and output (one per process, as in QEMU).
/// A terminal on stdin is put into raw mode while the chardev exists (keys reach the guest one by one, no local
/// echo); with <c>signal=on</c> (the default) Ctrl-C still interrupts the process, with <c>signal=off</c> it is a key.
/// </summary>
public sealed class StdioChardev : Chardev, IChardevInfo
{
    private readonly ChardevEnvironment _env;
    private readonly SemaphoreSlim _attached = new(0);
    private Stream? _stdin;
    private ChardevOutput? _output;
    private Thread? _reader;
    private bool _claimed;
    private bool _raw;
    private volatile bool _disposed;
    private volatile bool _eof;

    internal StdioChardev(ObjectTypeInfo type, PropertyValues values, ChardevEnvironment env)
        : base(type, values)
    {
        _env = env;
    }

    /// <summary>False once standard input reached end of file.</summary>
    public override bool IsConnected => !_eof;

    /// <inheritdoc/>
    public string Filename => "stdio";

    /// <inheritdoc/>
    public override void Complete()
    {
        ChardevTypes.RefuseUnimplemented(this);
        bool signals = !Values.Contains("signal") || Values.GetBool("signal");
        if (!_env.TryClaimStdio())
        {
            throw new QmpException("cannot use stdio by multiple character devices");
        }
        _claimed = true;
        _raw = _env.UsesProcessStdio && TerminalMode.EnterRaw(signals);
        _output = new ChardevOutput(_env.OpenStdout(), ChardevLog.Open(Values));
        _stdin = _env.OpenStdin();
        // A dedicated thread: console reads cannot be cancelled, so they must not hold a pool thread.
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = "chardev-stdio" };
        _reader.Start();
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
        if (disposing && !_disposed)
        {
            _disposed = true;
            _attached.Release();
            _output?.Close(ownsStream: false);
            // Closing our stdin stream ends an injected stream's read; a console read stays blocked on a
            // background thread until the process exits, which is harmless.
            _stdin?.Dispose();
            _reader?.Join(TimeSpan.FromSeconds(1));
            if (_raw)
            {
                TerminalMode.Restore();
            }
            if (_claimed)
            {
                _env.ReleaseStdio();
            }
        }
        base.Dispose(disposing);
    }

    private void ReadLoop()
    {
        byte[] buffer = new byte[4096];
        try
        {
            while (!_disposed)
            {
                if (!HasFrontend)
                {
                    _attached.Wait(250);
                    continue;
                }
                int n = _stdin!.Read(buffer, 0, buffer.Length);
                if (n == 0)
                {
                    _eof = true;
                    DeliverEvent(CharEvent.Closed);
                    return;
                }
                DeliverReceived(buffer.AsSpan(0, n));
            }
        }
        catch (IOException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }
}
