using System.Buffers.Binary;
using Colo.Block;
using Colo.Block.Qcow2;

namespace Colo.Tests.Unit.Block.Qcow2;

/// <summary>Corrupt and hostile images must fail with BlockException, never crash or hang.</summary>
[TestFixture]
public sealed class Qcow2HostileImageTests
{
    private string _path = "";

    [SetUp]
    public void SetUp()
    {
        _path = Path.Combine(TestContext.CurrentContext.WorkDirectory, "hostile-" + Guid.NewGuid().ToString("N") + ".qcow2");
        Qcow2Creator.Create(_path, new Qcow2CreateOptions { Size = 16L << 20 });
        using var n = BlockImage.Open(_path, "qcow2", false);
        n.Write(0, new byte[70000]);
    }

    [TearDown]
    public void TearDown() => File.Delete(_path);

    private void Poke(long offset, ulong value, int width)
    {
        using var f = File.OpenWrite(_path);
        f.Seek(offset, SeekOrigin.Begin);
        var b = new byte[width];
        if (width == 8)
        {
            BinaryPrimitives.WriteUInt64BigEndian(b, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(b, (uint)value);
        }

        f.Write(b);
    }

    private static readonly object[] s_cases =
    [
        new object[] { "bad magic", 0L, 0x12345678UL, 4, "not in qcow2 format" },
        new object[] { "version 4", 4L, 4UL, 4, "Unsupported qcow2 version 4" },
        new object[] { "cluster bits 30", 20L, 30UL, 4, "Unsupported cluster size" },
        new object[] { "encryption", 32L, 1UL, 4, "encryption" },
        new object[] { "huge L1", 36L, 0x10000000UL, 4, "L1 table too large" },
        new object[] { "L1 too small", 36L, 0UL, 4, "L1 table is too small" },
        new object[] { "L1 past EOF", 40L, 0x7000000UL, 8, "beyond the end" },
        new object[] { "L1 unaligned", 40L, 0x30001UL, 8, "Active L1 table offset invalid" },
        new object[] { "L1 on header", 40L, 0UL, 8, "overlaps" },
        new object[] { "reftable on L1", 48L, 0x30000UL, 8, "overlaps" },
        new object[] { "huge reftable", 56L, 0x1000000UL, 4, "too large" },
        new object[] { "refblock loops onto reftable", 0x10000L, 0x10000UL, 8, "overlaps with metadata" },
        new object[] { "unknown incompatible bit", 72L, 1UL << 40, 8, "Unsupported qcow2 feature" },
        new object[] { "external data file", 72L, 4UL, 8, "External data file" },
        new object[] { "extended L2", 72L, 16UL, 8, "Extended L2" },
        new object[] { "absurd size", 24L, ulong.MaxValue, 8, "too big" },
    ];

    [TestCaseSource(nameof(s_cases))]
    public void Open_HostileHeader_ThrowsBlockException(string what, long offset, ulong value, int width, string message)
    {
        Poke(offset, value, width);
        var e = Assert.Throws<BlockException>(() => BlockImage.Open(_path, "qcow2", readOnly: true).Dispose(), what);
        Assert.That(e!.Message, Does.Contain(message).IgnoreCase);
    }

    [Test]
    public void Read_L2PointingAtHeader_MarksCorruptAndRefusesRw()
    {
        Poke(0x30000, 0x8000000000010000UL, 8); // L1[0] -> the refcount table
        using (var n = BlockImage.Open(_path, "qcow2", false))
        {
            Assert.Throws<BlockException>(() => n.Read(0, new byte[512]));
        }

        var e = Assert.Throws<BlockException>(() => BlockImage.Open(_path, "qcow2", false));
        Assert.That(e!.Message, Does.Contain("corrupt"));
        using var ro = BlockImage.Open(_path, "qcow2", true); // read-only open of a corrupt image is allowed
        Assert.That(ro.Size, Is.EqualTo(16L << 20));
    }

    [Test]
    public void Read_L2PastEof_Throws()
    {
        Poke(0x30000, 0x8000000100000000UL, 8);
        using var n = BlockImage.Open(_path, "qcow2", true);
        var e = Assert.Throws<BlockException>(() => n.Read(0, new byte[512]));
        Assert.That(e!.Message, Does.Contain("beyond the end"));
    }

    [Test]
    public void RandomHeaderBytes_NeverCrash()
    {
        byte[] original = File.ReadAllBytes(_path);
        var rng = new Random(42);
        for (int i = 0; i < 400; i++)
        {
            byte[] img = (byte[])original.Clone();
            for (int k = 0; k < 4; k++)
            {
                img[rng.Next(0, 0x200)] = (byte)rng.Next(256);
            }

            if (rng.Next(3) == 0)
            {
                img[0x30000 + rng.Next(8)] = (byte)rng.Next(256);
            }

            File.WriteAllBytes(_path, img);
            try
            {
                using BlockNode n = BlockImage.Open(_path, "qcow2", readOnly: true);
                long len = Math.Min(n.Size, 200_000);
                n.Read(0, new byte[len]);
            }
            catch (BlockException)
            {
                // refused cleanly
            }
        }
    }

    [TestCase(7)]
    [TestCase(8)]
    [TestCase(9)]
    [TestCase(10)]
    public void RandomMetadataCorruption_ReadWriteAndCheck_OnlyBlockExceptions(int seed)
    {
        using (BlockNode n = BlockImage.Open(_path, "qcow2", false))
        {
            var d = new byte[300_000];
            new Random(1).NextBytes(d);
            n.Write(5_000_000, d);
        }

        byte[] original = File.ReadAllBytes(_path);
        var rng = new Random(seed);
        for (int i = 0; i < 300; i++)
        {
            byte[] img = (byte[])original.Clone();
            for (int k = 0; k < 6; k++)
            {
                // Hit the refcount table, refcount block, L1 and L2 tables (clusters 1-5).
                int pos = (rng.Next(0, 6) * 65536) + (rng.Next(0, 64) * 8) + rng.Next(0, 8);
                if (pos >= Math.Min(img.Length, 0x68) || pos >= 65536)
                {
                    img[Math.Min(pos, img.Length - 1)] = (byte)rng.Next(256);
                }
                else if (rng.Next(4) == 0)
                {
                    img[pos] = (byte)rng.Next(256); // occasionally the header itself
                }
            }

            File.WriteAllBytes(_path, img);
            try
            {
                using var n = (Qcow2Node)BlockImage.Open(_path, "qcow2", readOnly: false, forCheck: rng.Next(2) == 0);
                var buf = new byte[100_000];
                for (int op = 0; op < 10; op++)
                {
                    long off = rng.NextInt64(n.Size - buf.Length);
                    try
                    {
                        if (rng.Next(2) == 0)
                        {
                            n.Read(off, buf);
                        }
                        else
                        {
                            n.Write(off, buf);
                        }
                    }
                    catch (BlockException)
                    {
                        // refused cleanly
                    }
                }

                n.Check(Qcow2CheckFix.None, TextWriter.Null);
            }
            catch (BlockException)
            {
                // refused cleanly
            }
        }
    }
}
