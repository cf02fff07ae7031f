using System.Diagnostics;
using Colo.Block;
using Colo.Block.File;
using Colo.Block.Qcow2;

namespace Colo.Tests.Unit.Block.Qcow2;

/// <summary>
/// Asynchronous qcow2 writes with many requests in flight, mixed with reads, discards and write-zeroes:
/// overlapping requests take effect in issue order (every read sees exactly the data as of its issue),
/// the image stays consistent (ours and real qemu-img check, qemu-img compare), and a read in flight pins
/// its clusters so a discard plus reallocation cannot hand them to other data under it.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class Qcow2ConcurrentWriteTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "qcow2cw-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string NewImage(long size, int clusterSize)
    {
        string path = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".qcow2");
        Qcow2Creator.Create(path, new Qcow2CreateOptions { Size = size, ClusterSize = clusterSize, Version = 3, RefcountBits = 16 });
        return path;
    }

    [TestCase(65536, 1)]
    [TestCase(4096, 2)]
    [TestCase(512, 3)]
    public async Task ManyInFlight_MixedRequests_IssueOrderAndCleanImage(int clusterSize, int seed)
    {
        const int size = 4 << 20;
        string path = NewImage(size, clusterSize);
        var reference = new byte[size];
        var rng = new Random(seed);
        var pending = new List<Task>();
        var checks = new List<(byte[] Buffer, byte[] Expected, int Op)>();
        using (var node = (Qcow2Node)BlockImage.Open(path, "qcow2", readOnly: false))
        {
            Assert.That(node.ConcurrentWrites, Is.True);
            for (int op = 0; op < 3000; op++)
            {
                int kind = rng.Next(100);
                // Mostly small requests in a few hot spots, so that many overlap while in flight.
                int len = rng.Next(3) == 0 ? rng.Next(1, 200_000) : rng.Next(1, 9000);
                long off = rng.Next(4) == 0 ? rng.NextInt64(size - len) : Math.Min(size - len, rng.Next(8) * 300_000L + rng.Next(20_000));
                if (kind < 55)
                {
                    var data = new byte[len];
                    rng.NextBytes(data);
                    data.CopyTo(reference, off);
                    pending.Add(node.WriteAsync(off, data).AsTask());
                }
                else if (kind < 90)
                {
                    var buf = new byte[len];
                    checks.Add((buf, reference.AsSpan((int)off, len).ToArray(), op));
                    pending.Add(node.ReadAsync(off, buf).AsTask());
                }
                else if (kind < 95)
                {
                    // Whole clusters: they then read as zeroes (no backing file).
                    long start = off / clusterSize * clusterSize;
                    long n = Math.Max(1, len / clusterSize) * clusterSize;
                    n = Math.Min(n, size - start);
                    node.Discard(start, n);
                    reference.AsSpan((int)start, (int)n).Clear();
                }
                else
                {
                    node.WriteZeroes(off, len);
                    reference.AsSpan((int)off, len).Clear();
                }

                if (pending.Count >= 64)
                {
                    await Task.WhenAny(pending);
                    pending.RemoveAll(t => t.IsCompletedSuccessfully);
                    foreach (Task t in pending)
                    {
                        Assert.That(t.IsFaulted, Is.False, () => t.Exception!.ToString());
                    }
                }
            }

            await Task.WhenAll(pending);
            foreach ((byte[] buf, byte[] expected, int op) in checks)
            {
                Assert.That(buf, Is.EqualTo(expected), $"read issued as op {op} saw data other than as of its issue");
            }

            Assert.That(node.RequestsInFlight, Is.Zero);
            var whole = new byte[size];
            node.Read(0, whole);
            Assert.That(whole, Is.EqualTo(reference));
            Qcow2CheckResult r = node.Check(Qcow2CheckFix.None, TextWriter.Null);
            Assert.That(r.Corruptions + r.CheckErrors, Is.Zero);
        }

        string rawPath = Path.Combine(_dir, "ref.raw");
        System.IO.File.WriteAllBytes(rawPath, reference);
        RealQemuImg("check", "-f", "qcow2", path);
        RealQemuImg("compare", "-f", "qcow2", "-F", "raw", path, rawPath);
    }

    [Test]
    public async Task ReadInFlight_DiscardThenReallocation_WaitsAndReadSeesOldData()
    {
        const int cs = 65536;
        string path = NewImage(1 << 20, cs);
        var gated = new GatedNode(FileNode.Open(path, readOnly: false));
        using var node = Qcow2Node.Open(gated, readOnly: false);
        var oldData = new byte[cs];
        Array.Fill(oldData, (byte)0xAA);
        node.Write(0, oldData); // cluster 0: host cluster H

        gated.Close();
        var got = new byte[cs];
        Task read = node.ReadAsync(0, got).AsTask();
        Assert.That(SpinWait.SpinUntil(() => gated.Held == 1, 10_000), Is.True, "the read is mapped and held at the file");

        // Another requester frees cluster 0 and allocates cluster 3, which would get H back.
        var newData = new byte[cs];
        Array.Fill(newData, (byte)0xBB);
        Task mutate = Task.Run(() =>
        {
            node.Discard(0, cs);
            node.Write(3 * cs, newData);
        });
        bool finishedUnderRead = mutate.Wait(500);
        gated.Open();
        await read;
        await mutate;

        Assert.Multiple(() =>
        {
            Assert.That(finishedUnderRead, Is.False, "the discard waits for the read in flight");
            Assert.That(got, Is.EqualTo(oldData), "the read in flight saw the cluster's old data, not the new owner's");
        });
        var check = new byte[cs];
        node.Read(3 * cs, check);
        Assert.That(check, Is.EqualTo(newData));
        node.Read(0, check);
        Assert.That(check, Is.EqualTo(new byte[cs]));
    }

    [Test]
    public async Task WriteAsync_InPlace_AllocatesNothingPerRequest()
    {
        const int cs = 65536;
        string path = NewImage(8 << 20, cs);
        using var node = (Qcow2Node)BlockImage.Open(path, "qcow2", readOnly: false);
        var data = new byte[cs * 16];
        node.Write(0, new byte[8 << 20]); // allocate everything: later writes are in place
        for (int i = 0; i < 200; i++)
        {
            await node.WriteAsync(i % 8 * (long)data.Length, data);
        }

        // Steady state: each request is a pooled state machine plus a pooled file request; measured over all
        // threads, as completions run on block-io workers.
        long before = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < 2000; i++)
        {
            await node.WriteAsync(i % 8 * (long)data.Length, data);
        }
        long perRequest = (GC.GetTotalAllocatedBytes(precise: true) - before) / 2000;
        Assert.That(perRequest, Is.LessThan(64), "bytes allocated per in-place write");
    }

    private static void RealQemuImg(params string[] args)
    {
        string? qemuImg = new[] { "/usr/bin/qemu-img", "/usr/local/bin/qemu-img" }.FirstOrDefault(System.IO.File.Exists);
        if (qemuImg is null)
        {
            return;
        }
        var psi = new ProcessStartInfo(qemuImg, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.That(p.ExitCode, Is.Zero, $"qemu-img {args[0]}: {output}");
    }
}
