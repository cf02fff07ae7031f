using System.Buffers.Binary;
using Colo.Block;
using Colo.Block.Qcow2;

namespace Colo.Tests.Unit.Block.Qcow2;

[TestFixture]
public sealed class Qcow2NodeTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "qcow2-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string NewImage(long size, int clusterSize = 65536, int version = 3, int refcountBits = 16, string? backing = null, string? backingFmt = null)
    {
        string path = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".qcow2");
        Qcow2Creator.Create(path, new Qcow2CreateOptions
        {
            Size = size, ClusterSize = clusterSize, Version = version, RefcountBits = refcountBits,
            BackingFile = backing, BackingFormat = backingFmt,
        });
        return path;
    }

    private static void AssertClean(Qcow2Node node)
    {
        Qcow2CheckResult r = node.Check(Qcow2CheckFix.None, TextWriter.Null);
        Assert.Multiple(() =>
        {
            Assert.That(r.Corruptions, Is.Zero, "corruptions");
            Assert.That(r.Leaks, Is.Zero, "leaks");
            Assert.That(r.CheckErrors, Is.Zero, "check errors");
        });
    }

    [Test]
    public void Create_Default_HasQemuLayout()
    {
        string path = NewImage(10L << 30);
        byte[] b = File.ReadAllBytes(path);
        Assert.Multiple(() =>
        {
            Assert.That(b, Has.Length.EqualTo(0x30000 + 160));
            Assert.That(BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(40)), Is.EqualTo(0x30000UL));
            Assert.That(BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(36)), Is.EqualTo(20u));
            Assert.That(BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(48)), Is.EqualTo(0x10000UL));
            Assert.That(BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(0x10000)), Is.EqualTo(0x20000UL));
            Assert.That(BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(0x20006)), Is.EqualTo(1));
            Assert.That(BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(0x20008)), Is.Zero);
            Assert.That(BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(0x70)), Is.EqualTo(Qcow2Header.ExtFeatureTable));
        });
    }

    [TestCase(65536, 3, 16)]
    [TestCase(512, 3, 16)]
    [TestCase(4096, 2, 16)]
    [TestCase(65536, 3, 1)]
    [TestCase(2048, 3, 64)]
    [TestCase(1024, 3, 4)]
    public void Write_ThenRead_RoundTrips(int clusterSize, int version, int refBits)
    {
        string path = NewImage(8L << 20, clusterSize, version, refBits);
        var data = new byte[100_000];
        new Random(1).NextBytes(data);
        using (var node = (Qcow2Node)BlockImage.Open(path, "qcow2", readOnly: false))
        {
            node.Write(12345, data);
            node.Write((8L << 20) - 7, data.AsSpan(0, 7));
            AssertClean(node);
        }

        using var ro = (Qcow2Node)BlockImage.Open(path, null, readOnly: true);
        var back = new byte[data.Length];
        ro.Read(12345, back);
        Assert.That(back, Is.EqualTo(data));
        var tail = new byte[7];
        ro.Read((8L << 20) - 7, tail);
        Assert.That(tail, Is.EqualTo(data.AsSpan(0, 7).ToArray()));
        var head = new byte[12345];
        ro.Read(0, head);
        Assert.That(head, Is.All.EqualTo(0));
    }

    [TestCase(65536, 3)]
    [TestCase(512, 3)]
    [TestCase(4096, 2)]
    public void RandomOperations_MatchInMemoryModel_AndCheckClean(int clusterSize, int version)
    {
        const long size = 4L << 20;
        string basePath = NewImage(size, clusterSize, version);
        var baseModel = new byte[size];
        var rng = new Random(clusterSize + version);
        using (var b = (Qcow2Node)BlockImage.Open(basePath, "qcow2", false))
        {
            var chunk = new byte[200_000];
            rng.NextBytes(chunk);
            b.Write(1_000_000, chunk);
            chunk.CopyTo(baseModel, 1_000_000);
        }

        string path = NewImage(size, clusterSize, version, backing: Path.GetFileName(basePath), backingFmt: "qcow2");
        var model = (byte[])baseModel.Clone();
        using (var node = (Qcow2Node)BlockImage.Open(path, null, false))
        {
            for (int op = 0; op < 300; op++)
            {
                long off = rng.NextInt64(size);
                int len = (int)Math.Min(size - off, rng.Next(1, 3 * clusterSize));
                switch (rng.Next(5))
                {
                    case 0:
                    case 1:
                    {
                        var buf = new byte[len];
                        rng.NextBytes(buf);
                        node.Write(off, buf);
                        buf.CopyTo(model, off);
                        break;
                    }

                    case 2:
                        node.WriteZeroes(off, len);
                        Array.Clear(model, (int)off, len);
                        break;
                    default:
                    {
                        var buf = new byte[len];
                        node.Read(off, buf);
                        Assert.That(buf.AsSpan().SequenceEqual(model.AsSpan((int)off, len)), Is.True, $"op {op} read at {off}+{len}");
                        break;
                    }
                }
            }

            AssertClean(node);
        }

        using var ro = BlockImage.Open(path, null, true);
        var all = new byte[size];
        ro.Read(0, all);
        Assert.That(all.AsSpan().SequenceEqual(model), Is.True);
    }

    [Test]
    public void BackingChain_PartialWrite_CopiesRestFromBacking()
    {
        string rawPath = Path.Combine(_dir, "base.raw");
        var pattern = new byte[1 << 20];
        new Random(7).NextBytes(pattern);
        File.WriteAllBytes(rawPath, pattern);
        string path = NewImage(1 << 20, backing: "base.raw", backingFmt: "raw");
        using (var node = (Qcow2Node)BlockImage.Open(path, null, false))
        {
            Assert.That(node.Backing, Is.Not.Null);
            node.Write(70000, new byte[] { 1, 2, 3 });
            AssertClean(node);
        }

        pattern[70000] = 1;
        pattern[70001] = 2;
        pattern[70002] = 3;
        using var ro = BlockImage.Open(path, null, true);
        var all = new byte[1 << 20];
        ro.Read(0, all);
        Assert.That(all, Is.EqualTo(pattern));
    }

    [Test]
    public void WriteZeroes_V3WithBacking_UsesZeroFlagAndHidesBacking()
    {
        string basePath = NewImage(1 << 20);
        using (var b = BlockImage.Open(basePath, "qcow2", false))
        {
            b.Write(0, Enumerable.Repeat((byte)0xab, 1 << 20).ToArray());
        }

        string path = NewImage(1 << 20, backing: basePath, backingFmt: "qcow2");
        using (var node = (Qcow2Node)BlockImage.Open(path, null, false))
        {
            node.WriteZeroes(0, 65536 * 2);
            AssertClean(node);
        }

        using var ro = BlockImage.Open(path, null, true);
        var buf = new byte[65536 * 3];
        ro.Read(0, buf);
        Assert.Multiple(() =>
        {
            Assert.That(buf.AsSpan(0, 131072).ToArray(), Is.All.EqualTo(0));
            Assert.That(buf.AsSpan(131072).ToArray(), Is.All.EqualTo(0xab));
        });
    }

    [Test]
    public void MakeEmpty_DropsAllClusters_ReadsBacking()
    {
        string basePath = NewImage(1 << 20);
        string path = NewImage(1 << 20, backing: basePath, backingFmt: "qcow2");
        using var node = (Qcow2Node)BlockImage.Open(path, null, false);
        node.Write(0, new byte[300_000].Select(_ => (byte)5).ToArray());
        node.MakeEmpty();
        var buf = new byte[300_000];
        node.Read(0, buf);
        Assert.That(buf, Is.All.EqualTo(0));
        AssertClean(node);
    }

    [Test]
    public void SmallClusters_ManyAllocations_GrowRefcountTable()
    {
        string path = NewImage(64L << 20, clusterSize: 512);
        var data = new byte[512];
        using (var node = (Qcow2Node)BlockImage.Open(path, null, false))
        {
            ulong before = node.Header.RefcountTableOffset;
            for (int i = 0; i < 20000; i++)
            {
                data[0] = (byte)i;
                data[511] = (byte)(i >> 8);
                node.Write((long)i * 2048, data);
            }

            Assert.That(node.Header.RefcountTableOffset, Is.Not.EqualTo(before), "refcount table should have moved");
            AssertClean(node);
        }

        using var ro = BlockImage.Open(path, null, true);
        for (int i = 0; i < 20000; i += 997)
        {
            ro.Read((long)i * 2048, data);
            Assert.That((data[0], data[511]), Is.EqualTo(((byte)i, (byte)(i >> 8))));
        }
    }

    [Test]
    public void Truncate_Grow_KeepsDataAndChecksClean()
    {
        string path = NewImage(1 << 20, clusterSize: 512);
        using var node = (Qcow2Node)BlockImage.Open(path, null, false);
        node.Write(1000, new byte[] { 9, 9, 9 });
        node.Truncate(1L << 30);
        Assert.That(node.Size, Is.EqualTo(1L << 30));
        node.Write((1L << 30) - 512, new byte[512]);
        var b = new byte[3];
        node.Read(1000, b);
        Assert.That(b, Is.EqualTo(new byte[] { 9, 9, 9 }));
        AssertClean(node);
    }

    [Test]
    public void Check_LeakedCluster_IsReportedAndRepaired()
    {
        string path = NewImage(1 << 20);
        using (var f = File.OpenWrite(path))
        {
            // Claim cluster 5 (beyond the 4 metadata clusters) in the refcount block: a leak.
            f.Seek(0x20000 + 10, SeekOrigin.Begin);
            f.Write([0, 1]);
            f.SetLength(6 * 65536);
        }

        using var node = (Qcow2Node)BlockImage.Open(path, null, false, forCheck: true);
        var log = new StringWriter();
        Qcow2CheckResult r = node.Check(Qcow2CheckFix.None, log);
        Assert.That((r.Leaks, r.Corruptions), Is.EqualTo((1L, 0L)));
        Assert.That(log.ToString(), Does.Contain("Leaked cluster 5 refcount=1 reference=0"));
        r = node.Check(Qcow2CheckFix.Leaks, TextWriter.Null);
        Assert.That(r.LeaksFixed, Is.EqualTo(1));
        AssertClean(node);
    }

    [Test]
    public void Open_DirtyImageReadWrite_RepairsRefcountsAndClearsDirtyBit()
    {
        string path = NewImage(1 << 20);
        using (FileStream f = File.OpenWrite(path))
        {
            f.Seek(Qcow2Header.OffsetIncompatibleFeatures + 7, SeekOrigin.Begin);
            f.WriteByte(1); // dirty bit, as a crashed lazy-refcounts writer leaves it
            f.Seek(0x20000 + 10, SeekOrigin.Begin);
            f.Write([0, 1]); // and a stale refcount for cluster 5
            f.SetLength(6 * 65536);
        }

        using (var node = (Qcow2Node)BlockImage.Open(path, null, false))
        {
            Assert.That(node.IsDirty, Is.False);
            AssertClean(node);
        }

        using var ro = (Qcow2Node)BlockImage.Open(path, null, true);
        Assert.That(ro.IsDirty, Is.False);
    }

    [Test]
    public void Truncate_Shrink_FreesClustersPastEnd_AndChecksClean()
    {
        string path = NewImage(4 << 20);
        using var node = (Qcow2Node)BlockImage.Open(path, null, false);
        var data = new byte[4 << 20];
        new Random(3).NextBytes(data);
        node.Write(0, data);
        node.Truncate(1 << 20);
        Assert.That(node.Size, Is.EqualTo(1 << 20));
        var back = new byte[1 << 20];
        node.Read(0, back);
        Assert.That(back.AsSpan().SequenceEqual(data.AsSpan(0, 1 << 20)), Is.True);
        Qcow2CheckResult r = node.Check(Qcow2CheckFix.None, TextWriter.Null);
        Assert.That((r.Corruptions, r.Leaks, r.AllocatedClusters), Is.EqualTo((0L, 0L, 16L)));
        node.Truncate(2 << 20);
        node.Read(1 << 20, back);
        Assert.That(back, Is.All.EqualTo(0), "grown area must not resurrect dropped data");
    }

    [Test]
    public async Task ReadAsync_ManyInFlightWithWritesBetween_MatchesReferenceAndRealQemuImgAgrees()
    {
        const int size = 8 << 20;
        string path = NewImage(size);
        string rawPath = Path.Combine(_dir, "ref.raw");
        byte[] reference = new byte[size];
        var rng = new Random(5);
        using (var node = (Qcow2Node)BlockImage.Open(path, "qcow2", readOnly: false))
        {
            Assert.That(node.ConcurrentReads, Is.True);
            byte[] chunk = new byte[96 << 10];
            for (int round = 0; round < 4; round++)
            {
                // Writes are exclusive: a batch of them, then a burst of reads all in flight at once.
                for (int i = 0; i < 40; i++)
                {
                    rng.NextBytes(chunk);
                    int len = rng.Next(1, chunk.Length);
                    long off = rng.NextInt64(size - len);
                    node.Write(off, chunk.AsSpan(0, len));
                    chunk.AsSpan(0, len).CopyTo(reference.AsSpan((int)off));
                }
                node.WriteZeroes(3 << 20, 1 << 20);
                Array.Clear(reference, 3 << 20, 1 << 20);

                var buffers = new byte[64][];
                var offsets = new long[64];
                var reads = new Task[64];
                for (int r = 0; r < reads.Length; r++)
                {
                    int len = rng.Next(1, 300 << 10);
                    offsets[r] = rng.NextInt64(size - len);
                    buffers[r] = new byte[len];
                    int k = r;
                    reads[k] = Task.Run(async () => await node.ReadAsync(offsets[k], buffers[k]));
                }
                await Task.WhenAll(reads);
                for (int r = 0; r < reads.Length; r++)
                {
                    Assert.That(buffers[r], Is.EqualTo(reference.AsSpan((int)offsets[r], buffers[r].Length).ToArray()), $"round {round} read {r}");
                }
            }
            byte[] whole = new byte[size];
            await node.ReadAsync(0, whole);
            Assert.That(whole, Is.EqualTo(reference));
            AssertClean(node);
        }
        System.IO.File.WriteAllBytes(rawPath, reference);

        string? qemuImg = new[] { "/usr/bin/qemu-img", "/usr/local/bin/qemu-img" }.FirstOrDefault(System.IO.File.Exists);
        if (qemuImg is null)
        {
            return;
        }
        foreach (string[] args in new[] { new[] { "check", "-f", "qcow2", path }, new[] { "compare", "-f", "qcow2", "-F", "raw", path, rawPath } })
        {
            var psi = new System.Diagnostics.ProcessStartInfo(qemuImg, args) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = System.Diagnostics.Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.That(p.ExitCode, Is.Zero, $"qemu-img {args[0]}: {output}");
        }
    }

    [Test]
    public void ReadAsync_BeyondSize_Throws()
    {
        using var node = (Qcow2Node)BlockImage.Open(NewImage(1 << 20), "qcow2", readOnly: true);
        Assert.Throws<BlockException>(() => node.ReadAsync((1 << 20) - 10, new byte[20]).AsTask().GetAwaiter().GetResult());
    }
}
