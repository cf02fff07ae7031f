using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Colo.Block;

namespace Colo.QemuImg;

/// <summary>
/// qemu-img bench [-c count] [-d depth] [-f fmt] [--flush-interval=N] [--no-drain] [-i aio] [-n] [-o offset]
/// [--pattern=byte] [-q] [-s buffer_size] [-S step_size] [-t cache] [-U] [-w] filename: QEMU's request loop,
/// the same messages and checks. Each request goes to the offset of the previous one plus the step, modulo the
/// image size. Reads and writes keep up to <c>-d</c> requests in flight through the asynchronous paths (where the
/// node allows concurrent requests); with <c>--flush-interval</c> the requests in flight drain before each flush.
/// </summary>
internal static class BenchCommand
{
    public static Command Build()
    {
        var count = new Option<string?>("-c");
        var depth = new Option<string?>("-d");
        var fmt = new Option<string?>("-f");
        var flushInterval = new Option<string?>("--flush-interval");
        var noDrain = new Option<bool>("--no-drain");
        var aio = new Option<string?>("-i");
        var nocache = new Option<bool>("-n");
        var offset = new Option<string?>("-o");
        var pattern = new Option<string?>("--pattern");
        var quiet = new Option<bool>("-q");
        var bufSize = new Option<string?>("-s");
        var stepSize = new Option<string?>("-S");
        var cache = new Option<string?>("-t");
        var forceShare = new Option<bool>("-U", "--force-share");
        var write = new Option<bool>("-w");
        var file = new Argument<string>("filename");
        var cmd = new Command("bench", "Run a simple image benchmark")
        {
            count, depth, fmt, flushInterval, noDrain, aio, nocache, offset, pattern, quiet, bufSize, stepSize, cache, forceShare, write, file,
        };
        cmd.SetAction(r => Run(new Settings(
            Number(r.GetValue(count), 75000, "Invalid request count specified"),
            Number(r.GetValue(depth), 64, "Invalid queue depth specified"),
            r.GetValue(fmt),
            r.GetValue(flushInterval) is { } fi ? Number(fi, 0, "Invalid flush interval specified") : -1,
            r.GetValue(noDrain),
            r.GetValue(aio),
            r.GetValue(nocache),
            Size(r.GetValue(offset), 0, "Invalid offset specified"),
            Pattern(r.GetValue(pattern)),
            r.GetValue(quiet),
            Size(r.GetValue(bufSize), 4096, "Invalid buffer size specified"),
            r.GetValue(stepSize) is { } s ? Size(s, 0, "Invalid step size specified") : -1,
            r.GetValue(cache),
            r.GetValue(write),
            r.GetValue(file)!)));
        return cmd;
    }

    private sealed record Settings(
        long Count, long Depth, string? Format, long FlushInterval, bool NoDrain, string? Aio, bool NoCache, long Offset,
        byte Pattern, bool Quiet, long BufSize, long Step, string? Cache, bool Write, string File);

    private static int Run(Settings s)
    {
        if (s.FlushInterval >= 0 && !s.Write)
        {
            throw new QemuImgException("--flush-interval is only available in write tests");
        }
        if (s.FlushInterval > 0 && s.FlushInterval < s.Depth)
        {
            throw new QemuImgException("Flush interval can't be smaller than depth");
        }
        if (s.Cache is not (null or "writeback" or "writethrough" or "none" or "directsync" or "unsafe"))
        {
            throw new QemuImgException("Invalid cache mode");
        }
        if (s.Aio is not (null or "threads" or "native" or "io_uring"))
        {
            throw new QemuImgException($"Invalid aio option: {s.Aio}");
        }
        if (s.BufSize > int.MaxValue)
        {
            throw new QemuImgException("Invalid buffer size specified");
        }
        long step = s.Step < 0 ? s.BufSize : s.Step;
        using BlockNode node = ConvertCommand.Open(s.File, s.Format, readOnly: !s.Write);
        long size = node.Size;
        // QEMU 7.2 prints both lines even with -q (only other messages are quietened); so does Colo.
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Sending {s.Count} {(s.Write ? "write" : "read")} requests, {s.BufSize} bytes each, {s.Depth} in parallel (starting at offset {s.Offset}, step size {step})"));
            if (s.FlushInterval > 0)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Sending flush every {s.FlushInterval} requests"));
            }
            Console.Out.Flush();
        }

        bool inFlight = (s.Write ? node.ConcurrentWrites : node.ConcurrentReads) && s.Depth > 1 && s.Count > 1 && size > 0;
        int depth = inFlight ? (int)Math.Min(s.Depth, s.Count) : 1;
        if (s.BufSize * depth > int.MaxValue)
        {
            throw new QemuImgException("Invalid buffer size specified");
        }
        // As QEMU: one buffer slice per request in flight, filled (so touched) before the clock starts.
        byte[] buffer = GC.AllocateUninitializedArray<byte>((int)s.BufSize * depth, pinned: true);
        buffer.AsSpan().Fill(s.Pattern);
        var clock = Stopwatch.StartNew();
        try
        {
            if (inFlight)
            {
                InFlight(node, s, step, size, buffer, depth).GetAwaiter().GetResult();
            }
            else
            {
                OneAtATime(node, s, step, size, buffer);
            }
        }
        catch (BlockException)
        {
            throw new QemuImgException("Failed request: Input/output error");
        }
        clock.Stop();
        if (s.Write)
        {
            // QEMU flushes when it closes the image, after it took the time: so does Colo.
            try
            {
                node.Flush();
            }
            catch (BlockException)
            {
                throw new QemuImgException("Failed request: Input/output error");
            }
        }
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Run completed in {clock.Elapsed.TotalSeconds:F3} seconds."));
        }
        return 0;
    }

    private static void OneAtATime(BlockNode node, Settings s, long step, long size, byte[] buffer)
    {
        long offset = s.Offset;
        for (long i = 0; i < s.Count; i++)
        {
            if (s.Write)
            {
                node.Write(offset, buffer);
                if (s.FlushInterval > 0 && (i + 1) % s.FlushInterval == 0)
                {
                    node.Flush();
                }
            }
            else
            {
                node.Read(offset, buffer);
            }
            offset = size == 0 ? 0 : (offset + step) % size;
        }
    }

    /// <summary>
    /// QEMU's bench loop: <c>depth</c> requests in flight, each taking the next request number when its
    /// previous one completes, so the offsets are issued in the same order as one at a time. Writes with a
    /// flush interval run in rounds of that many requests, each drained and then flushed (QEMU waits for the
    /// requests in flight before its flush too).
    /// </summary>
    private static async Task InFlight(BlockNode node, Settings s, long step, long size, byte[] buffer, int depth)
    {
        int bufSize = (int)s.BufSize;
        long round = s.Write && s.FlushInterval > 0 ? s.FlushInterval : s.Count;
        var workers = new Task[depth];
        for (long first = 0; first < s.Count; first += round)
        {
            long next = first - 1;
            long end = Math.Min(s.Count, first + round);
            for (int w = 0; w < depth; w++)
            {
                workers[w] = Worker(buffer.AsMemory(w * bufSize, bufSize), end);
            }
            await Task.WhenAll(workers).ConfigureAwait(false);
            if (s.Write && s.FlushInterval > 0)
            {
                await node.FlushAsync().ConfigureAwait(false);
            }

            async Task Worker(Memory<byte> slice, long end)
            {
                await Task.Yield(); // start the workers side by side, not nested in the loop above
                while (true)
                {
                    long i = Interlocked.Increment(ref next);
                    if (i >= end)
                    {
                        return;
                    }
                    // Request i of the one-at-a-time loop: the start offset, then (start + i * step) mod size.
                    long offset = i == 0 ? s.Offset : (long)(((UInt128)(ulong)i * (ulong)step + (ulong)s.Offset) % (ulong)size);
                    if (s.Write)
                    {
                        await node.WriteAsync(offset, slice).ConfigureAwait(false);
                    }
                    else
                    {
                        await node.ReadAsync(offset, slice).ConfigureAwait(false);
                    }
                }
            }
        }
    }

    /// <summary>QEMU's qemu_strtol checks for -c, -d and --flush-interval: a whole number, positive where it must be.</summary>
    private static long Number(string? text, long fallback, string error)
    {
        if (text is null)
        {
            return fallback;
        }
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v) || v < 0 || v > int.MaxValue)
        {
            throw new QemuImgException(error);
        }
        return v;
    }

    /// <summary>QEMU's cvtnum for -o, -s, -S: a size with an optional K/M/G/T suffix.</summary>
    private static long Size(string? text, long fallback, string error) =>
        text is null ? fallback : SizeFormat.Parse(text) is long v and >= 0 ? v : throw new QemuImgException(error);

    private static byte Pattern(string? text)
    {
        if (text is null)
        {
            return 0;
        }
        bool hex = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
        if (!long.TryParse(hex ? text[2..] : text, hex ? NumberStyles.AllowHexSpecifier : NumberStyles.None, CultureInfo.InvariantCulture, out long v) || v > 0xff)
        {
            throw new QemuImgException("Invalid pattern byte specified");
        }
        return (byte)v;
    }
}
