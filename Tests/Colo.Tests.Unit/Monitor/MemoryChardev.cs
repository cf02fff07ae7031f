using System.Text;
using Colo.Core.Chardev;
using Colo.Core.Loop;
using Colo.Core.Objects;

namespace Colo.Tests.Unit.Monitor;

/// <summary>Runs posted work at once on the caller's thread, so monitor tests are synchronous.</summary>
internal sealed class InlineLoop : IEventLoop
{
    public bool IsLoopThread => true;

    public void Post(Action work) => work();
}

/// <summary>An in-memory chardev: the test plays the client, writes land in <see cref="Output"/>.</summary>
internal sealed class MemoryChardev : Colo.Core.Chardev.Chardev
{
    private static readonly ObjectTypeInfo TypeInfo = new("memory", ObjectCategory.Chardev, [], null);
    private readonly MemoryStream _output = new();
    private bool _connected;

    public MemoryChardev(bool connected = true)
        : base(TypeInfo, new PropertyValues(TypeInfo))
    {
        _connected = connected;
    }

    public override bool IsConnected => _connected;

    public byte[] OutputBytes => _output.ToArray();

    public string Output => Encoding.Latin1.GetString(_output.ToArray());

    public override int Write(ReadOnlySpan<byte> data)
    {
        if (!_connected)
        {
            return 0;
        }
        _output.Write(data);
        return data.Length;
    }

    public void ClearOutput() => _output.SetLength(0);

    public void Send(ReadOnlySpan<byte> data) => DeliverReceived(data);

    /// <summary>Sends a string whose chars are bytes (Latin-1), so tests can spell invalid UTF-8.</summary>
    public void Send(string latin1) => DeliverReceived(Encoding.Latin1.GetBytes(latin1));

    public void Connect()
    {
        _connected = true;
        DeliverEvent(CharEvent.Opened);
    }

    public void Disconnect()
    {
        _connected = false;
        DeliverEvent(CharEvent.Closed);
    }
}
