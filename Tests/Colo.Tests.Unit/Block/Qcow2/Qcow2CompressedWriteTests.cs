using System.IO.Compression;
using Colo.Block;
using Colo.Block.Qcow2;

namespace Colo.Tests.Unit.Block.Qcow2;

[TestFixture]
public sealed class Qcow2CompressedWriteTests
{
    private static byte[] Compressible(int size, int seed)
    {
        var rng = new Random(seed);
        var b = new byte[size];
        string[] words = ["colo ", "qcow2 ", "cluster ", "refcount ", "replication "];
        int i = 0;
        while (i < size)
        {
            string w = words[rng.Next(words.Length)];
            for (int k = 0; k < w.Length && i < size; k++)
            {
                b[i++] = (byte)w[k];
            }

            if (rng.Next(10) == 0 && i < size)
            {
                b[i++] = (byte)rng.Next(256);
            }
        }

        return b;
    }

    [TestCase(512)]
    [TestCase(4096)]
    [TestCase(65536)]
    public void Compress_InflatesBackToInput(int size)
    {
        byte[] src = Compressible(size, size);
        var dest = new byte[size + 64];
        int len = new Deflate4K().Compress(src, dest, size);
        Assert.That(len, Is.GreaterThan(0).And.LessThan(size));
        using var ds = new DeflateStream(new MemoryStream(dest, 0, len), CompressionMode.Decompress);
        var back = new byte[size];
        ds.ReadExactly(back);
        Assert.That(back, Is.EqualTo(src));
    }

    [Test]
    public void WriteCompressed_RoundTripsAndChecksClean()
    {
        string path = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"cw-{Guid.NewGuid():N}.qcow2");
        Qcow2Creator.Create(path, new Qcow2CreateOptions { Size = 4 << 20 });
        var expected = new byte[4 << 20];
        using (var node = (Qcow2Node)BlockImage.Open(path, "qcow2", false))
        {
            for (int c = 0; c < 40; c += 3)
            {
                byte[] data = c % 2 == 0 ? Compressible(65536, c) : RandomBytes(65536, c);
                node.WriteCompressed(c, data);
                data.CopyTo(expected, c * 65536);
            }

            Assert.That(node.GetClusterStatus(0), Is.EqualTo(Qcow2ClusterStatus.Compressed));
            Assert.That(node.Check(Qcow2CheckFix.None, TextWriter.Null) is { Leaks: 0, Corruptions: 0 }, Is.True);

            // Overwriting part of a compressed cluster rewrites it uncompressed and drops the old reference.
            node.Write(10, new byte[] { 1, 2, 3 });
            new byte[] { 1, 2, 3 }.CopyTo(expected, 10);
            Assert.That(node.Check(Qcow2CheckFix.None, TextWriter.Null) is { Leaks: 0, Corruptions: 0 }, Is.True);
        }

        using BlockNode ro = BlockImage.Open(path, null, true);
        var all = new byte[4 << 20];
        ro.Read(0, all);
        Assert.That(all.AsSpan().SequenceEqual(expected), Is.True);
        File.Delete(path);
    }

    private static byte[] RandomBytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }
}
