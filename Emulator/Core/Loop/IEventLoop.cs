namespace Colo.Core.Loop;

/// <summary>
/// A thread that owns some state and runs work posted to it in order: the main loop (QEMU's BQL role)
/// or an iothread. Backends that read on their own threads post what they read to the loop that owns
/// the consumer, so consumers never need locks.
/// </summary>
public interface IEventLoop
{
    /// <summary>Queues <paramref name="work"/>; safe from any thread.</summary>
    void Post(Action work);

    /// <summary>True on the loop's own thread.</summary>
    bool IsLoopThread { get; }
}
