using Colo.Net;

namespace Colo.Tests.Unit.Net;

[TestFixture]
public sealed class StreamFramingTests
{
    private static byte[] Framed(params byte[][] frames)
    {
        var stream = new List<byte>();
        foreach (byte[] f in frames)
        {
            var header = new byte[4];
            StreamFrameWriter.WriteHeader(header, f.Length);
            stream.AddRange(header);
            stream.AddRange(f);
        }
        return [.. stream];
    }

    /// <summary>Feeds the stream in chunks of <paramref name="chunk"/> bytes; returns the frames and the last status.</summary>
    private static (List<byte[]> Frames, FrameStatus Last) Feed(byte[] stream, int chunk)
    {
        var reader = new StreamFrameReader();
        var frames = new List<byte[]>();
        FrameStatus last = FrameStatus.NeedMore;
        for (int pos = 0; pos < stream.Length; pos += chunk)
        {
            ReadOnlySpan<byte> input = stream.AsSpan(pos, Math.Min(chunk, stream.Length - pos));
            while (true)
            {
                last = reader.Next(ref input, out ReadOnlySpan<byte> frame);
                if (last == FrameStatus.Frame)
                {
                    frames.Add(frame.ToArray());
                    continue;
                }
                if (last == FrameStatus.Invalid)
                {
                    return (frames, last);
                }
                break;
            }
        }
        return (frames, last);
    }

    [TestCase(1)]
    [TestCase(3)]
    [TestCase(7)]
    [TestCase(4096)]
    public void Next_AnyChunking_ReassemblesFramesInOrder(int chunk)
    {
        byte[] a = [.. Enumerable.Range(0, 60).Select(i => (byte)i)];
        byte[] b = [0xAA];
        byte[] c = new byte[1514];
        (List<byte[]> frames, FrameStatus last) = Feed(Framed(a, b, [], c), chunk);
        Assert.That(frames, Is.EqualTo(new[] { a, b, Array.Empty<byte>(), c }));
        Assert.That(last, Is.EqualTo(FrameStatus.NeedMore));
    }

    [Test]
    public void WriteHeader_IsBigEndianLength()
    {
        Assert.That(Framed([1, 2, 3]), Is.EqualTo(new byte[] { 0, 0, 0, 3, 1, 2, 3 }));
    }

    [Test]
    public void Next_TruncatedFrame_WaitsForMore()
    {
        byte[] stream = Framed(new byte[100])[..50];
        (List<byte[]> frames, FrameStatus last) = Feed(stream, 50);
        Assert.That((frames.Count, last), Is.EqualTo((0, FrameStatus.NeedMore)));
    }

    [Test]
    public void Next_TruncatedHeader_WaitsForMore()
    {
        (List<byte[]> frames, FrameStatus last) = Feed([0, 0], 2);
        Assert.That((frames.Count, last), Is.EqualTo((0, FrameStatus.NeedMore)));
    }

    [TestCase(0xFFFFFFFFu)]
    [TestCase(0x7FFFFFFFu)]
    [TestCase((uint)StreamFrameReader.MaxFrame + 1)]
    public void Next_OversizedLength_IsInvalid_AfterEarlierFrames(uint length)
    {
        byte[] good = Framed([1, 2]);
        byte[] bad = [(byte)(length >> 24), (byte)(length >> 16), (byte)(length >> 8), (byte)length, 9, 9, 9];
        (List<byte[]> frames, FrameStatus last) = Feed([.. good, .. bad], 3);
        Assert.That(frames, Is.EqualTo(new[] { new byte[] { 1, 2 } }));
        Assert.That(last, Is.EqualTo(FrameStatus.Invalid));
    }

    [Test]
    public void Next_LargestFrame_IsAccepted()
    {
        (List<byte[]> frames, _) = Feed(Framed(new byte[StreamFrameReader.MaxFrame]), 65536);
        Assert.That(frames.Single(), Has.Length.EqualTo(StreamFrameReader.MaxFrame));
    }

    [Test]
    public void Next_RandomGarbage_NeverThrows()
    {
        var random = new Random(1234);
        for (int i = 0; i < 200; i++)
        {
            var garbage = new byte[random.Next(1, 300)];
            random.NextBytes(garbage);
            Assert.DoesNotThrow(() => Feed(garbage, random.Next(1, 17)));
        }
    }

    [Test]
    public void Reset_DropsPartialFrame()
    {
        var reader = new StreamFrameReader();
        ReadOnlySpan<byte> partial = Framed([1, 2, 3, 4]).AsSpan(0, 6);
        Assert.That(reader.Next(ref partial, out _), Is.EqualTo(FrameStatus.NeedMore));
        reader.Reset();
        ReadOnlySpan<byte> fresh = Framed([7]);
        Assert.That(reader.Next(ref fresh, out ReadOnlySpan<byte> frame), Is.EqualTo(FrameStatus.Frame));
        Assert.That(frame.ToArray(), Is.EqualTo(new byte[] { 7 }));
    }
}
