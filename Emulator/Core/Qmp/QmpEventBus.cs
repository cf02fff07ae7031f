using System.Text.Json.Serialization.Metadata;

namespace Colo.Core.Qmp;

/// <summary>One emitted event: name, compact JSON of its data (or null), and the emit time as QMP reports it.</summary>
public sealed record QmpEventMessage(string Name, string? DataJson, long Seconds, long Microseconds);

/// <summary>
/// Producers emit QMP events here; every monitor subscribes and forwards them to its client
/// once capabilities negotiation is done. Subsystems never know which monitors exist.
/// </summary>
public sealed class QmpEventBus
{
    private readonly Lock _lock = new();
    private Action<QmpEventMessage>[] _subscribers = [];

    public IDisposable Subscribe(Action<QmpEventMessage> subscriber)
    {
        lock (_lock)
        {
            _subscribers = [.. _subscribers, subscriber];
        }
        return new Subscription(this, subscriber);
    }

    public void Emit(string name) => Publish(name, null);

    public void Emit<T>(string name, T data, JsonTypeInfo<T> typeInfo) =>
        Publish(name, QmpJson.Serialize(data, typeInfo));

    private void Publish(string name, string? dataJson)
    {
        long micros = (DateTimeOffset.UtcNow.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;
        var message = new QmpEventMessage(name, dataJson, micros / 1_000_000, micros % 1_000_000);
        foreach (Action<QmpEventMessage> subscriber in Volatile.Read(ref _subscribers))
        {
            subscriber(message);
        }
    }

    private void Unsubscribe(Action<QmpEventMessage> subscriber)
    {
        lock (_lock)
        {
            _subscribers = Array.FindAll(_subscribers, s => s != subscriber);
        }
    }

    private sealed class Subscription(QmpEventBus bus, Action<QmpEventMessage> subscriber) : IDisposable
    {
        public void Dispose() => bus.Unsubscribe(subscriber);
    }
}
