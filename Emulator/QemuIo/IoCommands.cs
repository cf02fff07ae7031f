using System.Diagnostics;
using System.Globalization;
using Colo.Block;
using Colo.Block.Qcow2;

namespace Colo.QemuIo;

/// <summary>One qemu-io command: its names, argument counts, getopt letters and body.</summary>
/// <param name="ArgMin">Fewest words after the name, options included (QEMU counts them that way).</param>
/// <param name="ArgMax">Most words after the name; -1 for no limit.</param>
/// <param name="Writes">Needs a writable image: refused up front on a read-only one.</param>
internal sealed record IoCommand(
    string Name,
    string? AltName,
    int ArgMin,
    int ArgMax,
    string OptString,
    bool NeedsFile,
    bool Writes,
    string Synopsis,
    string Summary,
    Func<IoSession, GetOpt, bool> Run);

/// <summary>
/// The qemu-io command set: the table, the dispatcher and the command bodies. Output lines follow
/// QEMU 7.2's shapes ("read 65536/65536 bytes at offset 0", the timing line, map lines, pattern
/// mismatch lines) so scripts written for QEMU read ours the same way.
/// </summary>
internal static class IoCommands
{
    private const byte DefaultWritePattern = 0xcd;

    public static readonly IoCommand[] All =
    [
        new("abort", null, 0, 0, "", false, false, "", "crash the process with abort(3), leaving the image as a crash would", Abort),
        new("aio_flush", null, 0, 0, "", true, false, "", "wait for all outstanding aio requests", (_, _) => true),
        new("aio_read", null, 2, -1, "CiqvP:", true, false, "[-Ciqv] [-P pattern] off len [len..]", "start reading bytes at an offset", AioRead),
        new("aio_write", null, 2, -1, "CfiquzP:", true, true, "[-Cfiquz] [-P pattern] off len [len..]", "start writing bytes at an offset", AioWrite),
        new("alloc", null, 1, 2, "", true, false, "offset [count]", "count the allocated bytes of a range", Alloc),
        new("close", null, 0, 0, "", true, false, "", "close the open image", Close),
        new("discard", null, 2, -1, "Cq", true, true, "[-Cq] off len", "discard a range of bytes", Discard),
        new("flush", null, 0, 0, "", true, false, "", "flush the image to stable storage", Flush),
        new("help", "?", 0, 1, "", false, false, "[command]", "list the commands, or describe one", Help),
        new("info", null, 0, 0, "", true, false, "", "describe the open image", Info),
        new("length", null, 0, 0, "", true, false, "", "print the image length", Length),
        new("map", null, 0, 0, "", true, false, "", "list allocated and unallocated ranges", Map),
        new("open", "o", 1, -1, "rsCnkUt:d:o:", false, false, "[-rsCnkU] [-t cache] [-d discard] [-o options] [path]", "open an image", Open),
        new("quit", "q", 0, 0, "", false, false, "", "leave qemu-io", Quit),
        new("read", "r", 2, -1, "abCpqvP:s:l:", true, false, "[-abCqv] [-P pattern [-s off] [-l len]] off len", "read bytes at an offset", Read),
        new("readv", null, 2, -1, "CqvP:", true, false, "[-Cqv] [-P pattern] off len [len..]", "read bytes at an offset into several buffers", Readv),
        new("sleep", null, 1, 1, "", false, false, "milliseconds", "pause for the given time", Sleep),
        new("truncate", null, 1, 3, "m:", true, true, "[-m prealloc_mode] off", "resize the image", Truncate),
        new("write", "w", 2, -1, "bcCfnpP:qs:uz", true, true, "[-bcCfnquz] [-P pattern | -s source_file] off len", "write bytes at an offset", Write),
        new("writev", null, 2, -1, "CfqP:", true, true, "[-Cfq] [-P pattern] off len [len..]", "write bytes at an offset from several buffers", Writev),
    ];

    /// <summary>QEMU 7.2 commands Colo's qemu-io lacks (blkdebug breakpoints, reopen, signals): refused by name.</summary>
    private static readonly string[] s_unsupported = ["break", "wait_break", "resume", "remove_break", "reopen", "sigraise"];

    /// <summary>Runs one command line: split on blanks, look up, check counts and permissions, run.</summary>
    public static void Execute(IoSession s, string line)
    {
        string[] words = line.Split([' ', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0)
        {
            return;
        }

        IoCommand? cmd = Find(words[0]);
        if (cmd == null && s_unsupported.Contains(words[0]))
        {
            s.Error($"{words[0]}: command not supported by Colo's qemu-io");
            s.Failed = true;
            return;
        }

        if (cmd == null)
        {
            s.Error($"command \"{words[0]}\" not found");
            s.Failed = true;
            return;
        }

        if (cmd.NeedsFile && s.Node == null)
        {
            s.Error("no file open, try 'help open'");
            s.Failed = true;
            return;
        }

        int argc = words.Length - 1;
        if (argc < cmd.ArgMin || (cmd.ArgMax >= 0 && argc > cmd.ArgMax))
        {
            string expected = cmd.ArgMax < 0 ? $"at least {cmd.ArgMin}"
                : cmd.ArgMin == cmd.ArgMax ? $"{cmd.ArgMin}"
                : $"between {cmd.ArgMin} and {cmd.ArgMax}";
            s.Error($"bad argument count {argc} to {cmd.Name}, expected {expected} arguments");
            s.Failed = true;
            return;
        }

        if (cmd.Writes && s.Options.ReadOnly)
        {
            s.Error("qemu-io: Block node is read-only");
            s.Failed = true;
            return;
        }

        GetOpt? opts = GetOpt.Parse(cmd.Name, words[1..], cmd.OptString, out string? error);
        if (opts == null)
        {
            s.Error(error!);
            Usage(s, cmd);
            s.Failed = true;
            return;
        }

        try
        {
            if (!cmd.Run(s, opts))
            {
                s.Failed = true;
            }
        }
        catch (BlockException e)
        {
            s.Out.WriteLine($"{cmd.Name} failed: {e.Message}");
            s.Failed = true;
        }
    }

    public static IoCommand? Find(string name)
    {
        foreach (IoCommand c in All)
        {
            if (c.Name == name || c.AltName == name)
            {
                return c;
            }
        }

        return null;
    }

    private static IoCommand Cmd(string name) => Find(name)!;

    private static bool Usage(IoSession s, IoCommand cmd)
    {
        s.Out.WriteLine(OneLine(cmd));
        return false;
    }

    private static string OneLine(IoCommand c) => c.Synopsis.Length > 0 ? $"{c.Name} {c.Synopsis} -- {c.Summary}" : $"{c.Name} -- {c.Summary}";

    /// <summary>A QEMU feature Colo's qemu-io does not have: say which, and fail the command.</summary>
    private static bool Unsupported(IoSession s, string command, string what)
    {
        s.Out.WriteLine($"{command}: {what} is not supported by Colo's qemu-io");
        return false;
    }

    // ---- argument parsing ------------------------------------------------------------------------

    private static bool ParseNumber(IoSession s, string text, out long value)
    {
        string? error = IoFormat.TryParseSize(text, out value);
        if (error != null)
        {
            s.Out.WriteLine(error);
            return false;
        }

        return true;
    }

    /// <summary>A transfer length, which QEMU caps at one request's maximum.</summary>
    private static bool ParseLength(IoSession s, string text, out long value)
    {
        if (!ParseNumber(s, text, out value))
        {
            return false;
        }

        if (value > IoFormat.MaxRequestBytes)
        {
            s.Out.WriteLine($"length cannot exceed {IoFormat.MaxRequestBytes}, given {text}");
            return false;
        }

        return true;
    }

    /// <summary>A pattern byte in C's base-0 syntax (0x.. hex, 0.. octal, decimal), 0..255.</summary>
    private static bool ParsePattern(IoSession s, string text, out byte pattern)
    {
        pattern = 0;
        string t = text.Trim();
        bool ok;
        long v;
        if (t.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            ok = long.TryParse(t[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out v);
        }
        else if (t.Length > 1 && t[0] == '0')
        {
            ok = t[1..].All(c => c is >= '0' and <= '7');
            v = ok ? Convert.ToInt64(t[1..], 8) : 0;
        }
        else
        {
            ok = long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out v);
        }

        if (!ok || v is < 0 or > 0xff)
        {
            s.Out.WriteLine($"{text} is not a valid pattern byte");
            return false;
        }

        pattern = (byte)v;
        return true;
    }

    /// <summary>Requests past the end fail with EIO, as QEMU's BlockBackend checks before the driver.</summary>
    private static bool InRange(IoSession s, long offset, long count) => offset >= 0 && count >= 0 && offset <= s.Node!.Size && count <= s.Node.Size - offset;

    private const string Eio = "Input/output error";

    // ---- read -----------------------------------------------------------------------------------

    private static bool Read(IoSession s, GetOpt o)
    {
        if (o.Has('b'))
        {
            return Unsupported(s, "read", "-b (VM state)");
        }

        if (o.Has('a'))
        {
            return Unsupported(s, "read", "-a (accounting)");
        }

        if (o.Positionals.Count != 2)
        {
            return Usage(s, Cmd("read"));
        }

        if (!ParseNumber(s, o.Positionals[0], out long offset) || !ParseLength(s, o.Positionals[1], out long count))
        {
            return false;
        }

        byte? pattern = null;
        if (o.Has('P'))
        {
            if (!ParsePattern(s, o.Value('P')!, out byte p))
            {
                return false;
            }

            pattern = p;
        }

        long patternOffset = 0;
        long patternCount = count;
        if (o.Has('s') && !ParseNumber(s, o.Value('s')!, out patternOffset))
        {
            return false;
        }

        if (o.Has('l') && !ParseLength(s, o.Value('l')!, out patternCount))
        {
            return false;
        }

        if ((o.Has('s') || o.Has('l')) && pattern == null)
        {
            s.Out.WriteLine("-s and -l need -P");
            return false;
        }

        if (!o.Has('l'))
        {
            patternCount = count - patternOffset;
        }

        if (patternOffset + patternCount > count || patternCount < 0)
        {
            s.Out.WriteLine("pattern verification range exceeds end of read data");
            return false;
        }

        if (!InRange(s, offset, count))
        {
            s.Out.WriteLine($"read failed: {Eio}");
            return false;
        }

        byte[] buffer = new byte[count];
        var sw = Stopwatch.StartNew();
        s.Node!.Read(offset, buffer);
        TimeSpan t = sw.Elapsed;
        bool ok = true;
        if (pattern != null && !Verify(buffer.AsSpan((int)patternOffset, (int)patternCount), pattern.Value))
        {
            s.Out.WriteLine($"Pattern verification failed at offset {offset + patternOffset}, {patternCount} bytes");
            ok = false;
        }

        if (o.Has('q'))
        {
            return ok;
        }

        if (o.Has('v'))
        {
            s.Out.Write(IoFormat.HexDump(buffer, offset));
        }

        s.Out.Write(IoFormat.Report("read", t, offset, count, count, 1, o.Has('C')));
        return ok;
    }

    private static bool Verify(ReadOnlySpan<byte> data, byte pattern) => data.IndexOfAnyExcept(pattern) < 0;

    /// <summary>readv, and aio_read (which completes before the next command runs: see AioRead).</summary>
    private static bool Readv(IoSession s, GetOpt o) => VectoredRead(s, o, "readv", "readv");

    private static bool VectoredRead(IoSession s, GetOpt o, string name, string failVerb)
    {
        if (o.Positionals.Count < 2)
        {
            return Usage(s, Cmd(name));
        }

        if (!ParseNumber(s, o.Positionals[0], out long offset) || !ParseLengths(s, o.Positionals, out long count))
        {
            return false;
        }

        byte? pattern = null;
        if (o.Has('P'))
        {
            if (!ParsePattern(s, o.Value('P')!, out byte p))
            {
                return false;
            }

            pattern = p;
        }

        if (!InRange(s, offset, count))
        {
            s.Out.WriteLine($"{failVerb} failed: {Eio}");
            return false;
        }

        byte[] buffer = new byte[count];
        var sw = Stopwatch.StartNew();
        s.Node!.Read(offset, buffer);
        TimeSpan t = sw.Elapsed;
        bool ok = true;
        if (pattern != null && !Verify(buffer, pattern.Value))
        {
            s.Out.WriteLine($"Pattern verification failed at offset {offset}, {count} bytes");
            ok = false;
        }

        if (o.Has('q'))
        {
            return ok;
        }

        if (o.Has('v'))
        {
            s.Out.Write(IoFormat.HexDump(buffer, offset));
        }

        s.Out.Write(IoFormat.Report("read", t, offset, count, count, 1, o.Has('C')));
        return ok;
    }

    /// <summary>Sums the lengths after the offset, as the iovec commands do.</summary>
    private static bool ParseLengths(IoSession s, List<string> positionals, out long total)
    {
        total = 0;
        for (int i = 1; i < positionals.Count; i++)
        {
            if (!ParseLength(s, positionals[i], out long n))
            {
                return false;
            }

            total += n;
        }

        if (total > IoFormat.MaxRequestBytes)
        {
            s.Out.WriteLine($"length cannot exceed {IoFormat.MaxRequestBytes}, given {total}");
            return false;
        }

        return true;
    }

    // ---- write ----------------------------------------------------------------------------------

    private static bool Write(IoSession s, GetOpt o)
    {
        if (o.Has('b'))
        {
            return Unsupported(s, "write", "-b (VM state)");
        }

        bool zero = o.Has('z');
        if ((zero ? 1 : 0) + (o.Has('P') ? 1 : 0) + (o.Has('s') ? 1 : 0) > 1)
        {
            s.Out.WriteLine("Only one of -z, -P, and -s can be specified at the same time");
            return false;
        }

        if (o.Has('u') && !zero)
        {
            s.Out.WriteLine("-u requires -z to be specified");
            return false;
        }

        if (o.Has('c') && zero)
        {
            s.Out.WriteLine("Cannot use -c with -z");
            return false;
        }

        if (o.Has('n'))
        {
            return Unsupported(s, "write", "-n (no fallback for write zeroes)");
        }

        if (o.Positionals.Count != 2)
        {
            return Usage(s, Cmd("write"));
        }

        if (!ParseNumber(s, o.Positionals[0], out long offset) || !ParseLength(s, o.Positionals[1], out long count))
        {
            return false;
        }

        byte pattern = DefaultWritePattern;
        if (o.Has('P') && !ParsePattern(s, o.Value('P')!, out pattern))
        {
            return false;
        }

        byte[]? data = null;
        if (!zero)
        {
            data = new byte[count];
            if (o.Has('s'))
            {
                if (!ReadSource(s, o.Value('s')!, data))
                {
                    return false;
                }
            }
            else
            {
                data.AsSpan().Fill(pattern);
            }
        }

        if (!InRange(s, offset, count))
        {
            s.Out.WriteLine($"write failed: {Eio}");
            return false;
        }

        var sw = Stopwatch.StartNew();
        if (zero)
        {
            s.Node!.WriteZeroes(offset, count);
        }
        else if (o.Has('c'))
        {
            if (!WriteCompressed(s, offset, data!))
            {
                return false;
            }
        }
        else
        {
            s.Node!.Write(offset, data);
        }

        AfterWrite(s, o.Has('f'));
        TimeSpan t = sw.Elapsed;
        if (!o.Has('q'))
        {
            s.Out.Write(IoFormat.Report("wrote", t, offset, count, count, 1, o.Has('C')));
        }

        return true;
    }

    /// <summary>-f (FUA) and write-through cache modes make the data stable before the reply.</summary>
    private static void AfterWrite(IoSession s, bool fua)
    {
        if (fua || s.Options.WriteThrough)
        {
            s.Node!.Flush();
        }
    }

    private static bool ReadSource(IoSession s, string path, byte[] data)
    {
        try
        {
            using FileStream f = File.OpenRead(path);
            if (f.ReadAtLeast(data, data.Length, throwOnEndOfStream: false) < data.Length)
            {
                s.Out.WriteLine($"Failed to read enough data from source file {path}");
                return false;
            }

            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            s.Out.WriteLine($"Failed to open source file {path}: {e.Message}");
            return false;
        }
    }

    /// <summary>-c: whole qcow2 clusters written compressed (the tail cluster may be short).</summary>
    private static bool WriteCompressed(IoSession s, long offset, byte[] data)
    {
        if (s.Node is not Qcow2Node q)
        {
            s.Out.WriteLine("write failed: Operation not supported");
            return false;
        }

        int cs = q.ClusterSize;
        if (offset % cs != 0 || (data.Length % cs != 0 && offset + data.Length != q.Size))
        {
            s.Out.WriteLine("write failed: Invalid argument");
            return false;
        }

        byte[] cluster = new byte[cs];
        for (long done = 0; done < data.Length; done += cs)
        {
            int n = (int)Math.Min(cs, data.Length - done);
            Array.Clear(cluster);
            data.AsSpan((int)done, n).CopyTo(cluster);
            q.WriteCompressed((offset + done) / cs, cluster);
        }

        return true;
    }

    private static bool Writev(IoSession s, GetOpt o)
    {
        if (o.Positionals.Count < 2)
        {
            return Usage(s, Cmd("writev"));
        }

        return VectoredWrite(s, o, "writev");
    }

    private static bool VectoredWrite(IoSession s, GetOpt o, string failVerb)
    {
        if (!ParseNumber(s, o.Positionals[0], out long offset) || !ParseLengths(s, o.Positionals, out long count))
        {
            return false;
        }

        byte pattern = DefaultWritePattern;
        if (o.Has('P') && !ParsePattern(s, o.Value('P')!, out pattern))
        {
            return false;
        }

        if (!InRange(s, offset, count))
        {
            s.Out.WriteLine($"{failVerb} failed: {Eio}");
            return false;
        }

        var sw = Stopwatch.StartNew();
        if (o.Has('z'))
        {
            s.Node!.WriteZeroes(offset, count);
        }
        else
        {
            byte[] data = new byte[count];
            data.AsSpan().Fill(pattern);
            s.Node!.Write(offset, data);
        }

        AfterWrite(s, o.Has('f'));
        TimeSpan t = sw.Elapsed;
        if (!o.Has('q'))
        {
            s.Out.Write(IoFormat.Report("wrote", t, offset, count, count, 1, o.Has('C')));
        }

        return true;
    }

    // ---- aio ------------------------------------------------------------------------------------

    // Colo's block nodes complete requests synchronously, so an aio request has finished (and
    // printed its completion) before the next command starts; aio_flush then has nothing to wait
    // for. As in QEMU, a failed aio request is reported but does not change the exit status.

    private static bool AioRead(IoSession s, GetOpt o)
    {
        if (o.Has('i'))
        {
            return Unsupported(s, "aio_read", "-i (invalid accounting)");
        }

        if (o.Positionals.Count < 2)
        {
            return Usage(s, Cmd("aio_read"));
        }

        // Argument errors fail the command (and the exit status); only the I/O itself is "async".
        if (!ParseNumber(s, o.Positionals[0], out _) || !ParseLengths(s, o.Positionals, out _))
        {
            return false;
        }

        try
        {
            _ = VectoredRead(s, o, "aio_read", "readv");
        }
        catch (BlockException e)
        {
            s.Out.WriteLine($"readv failed: {e.Message}");
        }

        return true;
    }

    private static bool AioWrite(IoSession s, GetOpt o)
    {
        if (o.Has('i'))
        {
            return Unsupported(s, "aio_write", "-i (invalid accounting)");
        }

        if (o.Has('z') && o.Has('P'))
        {
            s.Out.WriteLine("-z and -P cannot be specified at the same time");
            return false;
        }

        if (o.Has('u') && !o.Has('z'))
        {
            s.Out.WriteLine("-u requires -z to be specified");
            return false;
        }

        if (o.Positionals.Count < 2)
        {
            return Usage(s, Cmd("aio_write"));
        }

        if (o.Has('z') && o.Positionals.Count != 2)
        {
            s.Out.WriteLine("-z supports only a single length parameter");
            return false;
        }

        if (!ParseNumber(s, o.Positionals[0], out _) || !ParseLengths(s, o.Positionals, out _))
        {
            return false;
        }

        try
        {
            _ = VectoredWrite(s, o, "aio_write");
        }
        catch (BlockException e)
        {
            s.Out.WriteLine($"aio_write failed: {e.Message}");
        }

        return true;
    }

    // ---- discard, flush, truncate -----------------------------------------------------------------

    private static bool Discard(IoSession s, GetOpt o)
    {
        if (o.Positionals.Count != 2)
        {
            return Usage(s, Cmd("discard"));
        }

        if (!ParseNumber(s, o.Positionals[0], out long offset) || !ParseLength(s, o.Positionals[1], out long count))
        {
            return false;
        }

        if (!InRange(s, offset, count))
        {
            s.Out.WriteLine($"discard failed: {Eio}");
            return false;
        }

        var sw = Stopwatch.StartNew();
        s.Node!.Discard(offset, count);
        TimeSpan t = sw.Elapsed;
        if (!o.Has('q'))
        {
            s.Out.Write(IoFormat.Report("discard", t, offset, count, count, 1, o.Has('C')));
        }

        return true;
    }

    private static bool Flush(IoSession s, GetOpt o)
    {
        if (!s.Options.NoFlush)
        {
            s.Node!.Flush();
        }

        return true;
    }

    private static bool Truncate(IoSession s, GetOpt o)
    {
        if (o.Has('m') && o.Value('m') != "off")
        {
            return Unsupported(s, "truncate", $"preallocation mode '{o.Value('m')}'");
        }

        if (o.Positionals.Count != 1)
        {
            return Usage(s, Cmd("truncate"));
        }

        if (!ParseNumber(s, o.Positionals[0], out long size))
        {
            return false;
        }

        try
        {
            s.Node!.Truncate(size);
            return true;
        }
        catch (BlockException e)
        {
            s.Error($"qemu-io: {e.Message}");
            return false;
        }
    }

    // ---- queries --------------------------------------------------------------------------------

    private static bool Length(IoSession s, GetOpt o)
    {
        s.Out.WriteLine(IoFormat.Size(s.Node!.Size));
        return true;
    }

    private static bool Info(IoSession s, GetOpt o)
    {
        BlockNode node = s.Node!;
        long clusterSize = 0;
        long vmStateOffset = 0;
        if (node is Qcow2Node q)
        {
            // The VM state area starts after the guest area, rounded up to what one L1 entry maps.
            clusterSize = q.ClusterSize;
            long perL1 = clusterSize * (clusterSize / 8);
            vmStateOffset = (q.Size + perL1 - 1) / perL1 * perL1;
        }

        s.Out.WriteLine($"format name: {node.DriverName}");
        s.Out.WriteLine($"cluster size: {IoFormat.Size(clusterSize)}");
        s.Out.WriteLine($"vm state offset: {IoFormat.Size(vmStateOffset)}");
        if (node is Qcow2Node qn)
        {
            Qcow2Header h = qn.Header;
            s.Out.WriteLine("Format specific information:");
            s.Out.WriteLine($"    compat: {(h.Version >= 3 ? "1.1" : "0.10")}");
            s.Out.WriteLine($"    compression type: {(h.CompressionType == 1 ? "zstd" : "zlib")}");
            if (h.Version >= 3)
            {
                s.Out.WriteLine($"    lazy refcounts: {Bool((h.CompatibleFeatures & Qcow2Header.CompatLazyRefcounts) != 0)}");
            }

            s.Out.WriteLine($"    refcount bits: {1 << h.RefcountOrder}");
            if (h.Version >= 3)
            {
                s.Out.WriteLine($"    corrupt: {Bool(qn.IsCorrupt)}");
                s.Out.WriteLine("    extended l2: false");
            }
        }

        return true;
    }

    private static string Bool(bool b) => b ? "true" : "false";

    /// <summary>
    /// Allocation in the top image alone: qcow2 clusters with data, compressed data or the zero
    /// flag count as allocated; a raw image (or any other node) is allocated throughout.
    /// </summary>
    private static IEnumerable<(long Offset, long Length, bool Allocated)> Extents(BlockNode node, long offset, long end)
    {
        if (node is not Qcow2Node q)
        {
            if (end > offset)
            {
                yield return (offset, end - offset, true);
            }

            yield break;
        }

        long cs = q.ClusterSize;
        long runStart = offset;
        bool? runAlloc = null;
        for (long pos = offset; pos < end;)
        {
            long next = Math.Min(end, (pos / cs + 1) * cs);
            bool alloc = q.GetClusterStatus(pos / cs) != Qcow2ClusterStatus.Unallocated;
            if (runAlloc != null && alloc != runAlloc)
            {
                yield return (runStart, pos - runStart, runAlloc.Value);
                runStart = pos;
            }

            runAlloc = alloc;
            pos = next;
        }

        if (runAlloc != null)
        {
            yield return (runStart, end - runStart, runAlloc.Value);
        }
    }

    private static bool Map(IoSession s, GetOpt o)
    {
        foreach ((long off, long len, bool alloc) in Extents(s.Node!, 0, s.Node!.Size))
        {
            s.Out.WriteLine($"{IoFormat.Size(len)} (0x{len:x}) bytes {(alloc ? "    allocated" : "not allocated")} at offset {IoFormat.Size(off)} (0x{off:x})");
        }

        return true;
    }

    private static bool Alloc(IoSession s, GetOpt o)
    {
        if (!ParseNumber(s, o.Positionals[0], out long offset))
        {
            return false;
        }

        long count = 512;
        if (o.Positionals.Count > 1 && !ParseNumber(s, o.Positionals[1], out count))
        {
            return false;
        }

        long end = Math.Min(s.Node!.Size, offset + count);
        long allocated = 0;
        foreach ((_, long len, bool alloc) in Extents(s.Node, offset, end))
        {
            allocated += alloc ? len : 0;
        }

        s.Out.WriteLine($"{allocated}/{count} bytes allocated at offset {IoFormat.Size(offset)}");
        return true;
    }

    // ---- session --------------------------------------------------------------------------------

    private static bool Open(IoSession s, GetOpt o)
    {
        foreach (char c in "sCkd")
        {
            if (o.Has(c))
            {
                return Unsupported(s, "open", $"-{c}");
            }
        }

        string cache = o.Has('n') ? "none" : "writeback";
        if (o.Has('t'))
        {
            cache = o.Value('t')!;
            if (!OpenOptions.CacheModes.Contains(cache))
            {
                s.Error($"qemu-io: Invalid cache option: {cache}");
                return false;
            }
        }

        if (o.Positionals.Count > 1)
        {
            return Usage(s, Cmd("open"));
        }

        bool imageOpts = o.Has('o');
        string? spec = imageOpts ? o.Value('o') + (o.Positionals.Count == 1 ? $",file.filename={o.Positionals[0]}" : "") : o.Positionals.FirstOrDefault();
        if (spec == null)
        {
            return Usage(s, Cmd("open"));
        }

        if (imageOpts && !spec.Contains("driver=", StringComparison.Ordinal))
        {
            // With -o and a path but no driver, the format is probed as for a plain open.
            return s.Open(o.Positionals[0], new OpenOptions(null, false, o.Has('r'), cache));
        }

        return s.Open(spec, new OpenOptions(null, imageOpts, o.Has('r'), cache));
    }

    private static bool Close(IoSession s, GetOpt o)
    {
        s.Close();
        return true;
    }

    private static bool Quit(IoSession s, GetOpt o)
    {
        s.Quit = true;
        return true;
    }

    private static bool Sleep(IoSession s, GetOpt o)
    {
        if (!long.TryParse(o.Positionals[0], NumberStyles.None, CultureInfo.InvariantCulture, out long ms))
        {
            s.Out.WriteLine($"Invalid value for milliseconds: {o.Positionals[0]}");
            return false;
        }

        s.Out.Flush();
        Thread.Sleep(TimeSpan.FromMilliseconds(ms)); // the command's whole purpose is to wait
        return true;
    }

    private static bool Help(IoSession s, GetOpt o)
    {
        if (o.Positionals.Count == 1)
        {
            IoCommand? c = Find(o.Positionals[0]);
            if (c == null)
            {
                s.Out.WriteLine($"command {o.Positionals[0]} not found");
                return false;
            }

            s.Out.WriteLine(OneLine(c));
            s.Out.WriteLine();
            return true;
        }

        foreach (IoCommand c in All)
        {
            s.Out.WriteLine(OneLine(c));
        }

        s.Out.WriteLine();
        s.Out.WriteLine("Use 'help commandname' for extended help.");
        return true;
    }

    private static bool Abort(IoSession s, GetOpt o)
    {
        s.Out.Flush();
        s.Err.Flush();
        // The point is to die as a crash would, without closing the image; FailFast ends in abort(3).
        Environment.FailFast("qemu-io: abort command");
        return false;
    }
}
