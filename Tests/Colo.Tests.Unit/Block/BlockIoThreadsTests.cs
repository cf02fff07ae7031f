using Colo.Block.File;

namespace Colo.Tests.Unit.Block;

/// <summary>The block-io worker pool lets idle workers go and still serves requests afterwards.</summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(60_000)]
public sealed class BlockIoThreadsTests
{
    private sealed class Item(CountdownEvent done, ManualResetEventSlim release) : IThreadPoolWorkItem
    {
        public void Execute()
        {
            release.Wait();
            done.Signal();
        }
    }

    [Test]
    public void IdleWorkers_Retire_ThenNewRequestsStillRun()
    {
        TimeSpan saved = BlockIoThreads.IdleTimeout;
        BlockIoThreads.IdleTimeout = TimeSpan.FromMilliseconds(200);
        try
        {
            using var release = new ManualResetEventSlim();
            using var done = new CountdownEvent(8);
            for (int i = 0; i < 8; i++)
            {
                BlockIoThreads.Queue(new Item(done, release)); // all block: 8 workers must start
            }
            SpinWait.SpinUntil(() => BlockIoThreads.Threads >= 8, 10_000);
            Assert.That(BlockIoThreads.Threads, Is.GreaterThanOrEqualTo(8));
            release.Set();
            Assert.That(done.Wait(10_000), Is.True);

            Assert.That(SpinWait.SpinUntil(() => BlockIoThreads.Threads == 0, 20_000), Is.True, "idle workers exit");

            using var again = new CountdownEvent(3);
            for (int i = 0; i < 3; i++)
            {
                BlockIoThreads.Queue(new Item(again, release));
            }
            Assert.That(again.Wait(10_000), Is.True, "a request after the workers retired still runs");
        }
        finally
        {
            BlockIoThreads.IdleTimeout = saved;
        }
    }
}
