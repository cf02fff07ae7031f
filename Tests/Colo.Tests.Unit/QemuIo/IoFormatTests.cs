using Colo.QemuIo;

namespace Colo.Tests.Unit.QemuIo;

/// <summary>qemu-io's number syntax and report formats, with values recorded from QEMU 7.2's qemu-io.</summary>
[TestFixture]
public sealed class IoFormatTests
{
    [TestCase("0", 0L)]
    [TestCase("512", 512L)]
    [TestCase("1b", 1L)]
    [TestCase("1k", 1024L)]
    [TestCase("1K", 1024L)]
    [TestCase("1.5k", 1536L)]
    [TestCase("64M", 64L << 20)]
    [TestCase("2G", 2L << 30)]
    [TestCase("1E", 1L << 60)]
    [TestCase("0x1000", 4096L)]
    [TestCase("0x1e", 30L)]
    [TestCase("0xb", 11L)]
    public void TryParseSize_Accepts(string text, long expected)
    {
        Assert.Multiple(() =>
        {
            Assert.That(IoFormat.TryParseSize(text, out long v), Is.Null);
            Assert.That(v, Is.EqualTo(expected));
        });
    }

    [TestCase("abc", "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- abc")]
    [TestCase("1.5", "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- 1.5")]
    [TestCase("0x", "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- 0x")]
    [TestCase("1kB", "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- 1kB")]
    [TestCase("1e3", "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- 1e3")]
    [TestCase("\"0\"", "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- \"0\"")]
    [TestCase("0x100000000000000000", "Parsing error: argument too large -- 0x100000000000000000")]
    [TestCase("16E", "Parsing error: argument too large -- 16E")]
    public void TryParseSize_RejectsWithQemuText(string text, string error) =>
        Assert.That(IoFormat.TryParseSize(text, out _), Is.EqualTo(error));

    [TestCase(0, "0 bytes")]
    [TestCase(20, "20 bytes")]
    [TestCase(1024, "1 KiB")]
    [TestCase(1536, "1.500 KiB")]
    [TestCase(65536, "64 KiB")]
    [TestCase(1048576, "1 MiB")]
    [TestCase(2147483136, "2 GiB")]
    [TestCase(7410892.8, "7.068 MiB")]
    public void Size_ThreeDecimalsUnlessWhole(double value, string text) => Assert.That(IoFormat.Size(value), Is.EqualTo(text));

    [Test]
    public void Time_ShortFormUnderASecond_ClockFormFromOneSecond()
    {
        Assert.Multiple(() =>
        {
            Assert.That(IoFormat.Time(TimeSpan.FromMilliseconds(480), false), Is.EqualTo("00.48 sec"));
            Assert.That(IoFormat.Time(TimeSpan.FromMilliseconds(8490), false), Is.EqualTo("0:00:08.49"));
            Assert.That(IoFormat.Time(TimeSpan.FromSeconds(3725.5), false), Is.EqualTo("1:02:05.50"));
            Assert.That(IoFormat.Time(TimeSpan.FromMilliseconds(360), true), Is.EqualTo("0:00:00.36"));
        });
    }

    [Test]
    public void Report_TwoLinesOrOneMachineLine()
    {
        Assert.Multiple(() =>
        {
            Assert.That(IoFormat.Report("read", TimeSpan.FromSeconds(0.5), 0, 65536, 65536, 1, false),
                Is.EqualTo("read 65536/65536 bytes at offset 0\n64 KiB, 1 ops; 00.50 sec (128 KiB/sec and 2.0000 ops/sec)\n"));
            Assert.That(IoFormat.Report("read", TimeSpan.FromSeconds(0.5), 0, 4096, 4096, 1, true),
                Is.EqualTo("4096,1,0:00:00.50,8192.000,2.000\n"));
        });
    }

    [Test]
    public void HexDump_AddressesFromTheOffset_PrintableColumn()
    {
        byte[] data = [0x41, 0x42, 0x00, 0x7f, 0x20];
        Assert.That(IoFormat.HexDump(data, 0xfffa), Is.EqualTo("0000fffa:  41 42 00 7f 20  AB.. \n"));
    }
}
