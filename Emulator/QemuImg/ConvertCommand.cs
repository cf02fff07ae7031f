using System.CommandLine;
using Colo.Block;
using Colo.Block.Qcow2;

namespace Colo.QemuImg;

/// <summary>qemu-img convert [-f fmt] [-O output_fmt] [-o options] [-p] [-q] [-c] [-n] src dst</summary>
internal static class ConvertCommand
{
    private const int ChunkSize = 2 << 20;
    private const int SparseBlock = 4096; // QEMU's default -S 4k

    public static Command Build()
    {
        var format = new Option<string?>("-f");
        var outFormat = new Option<string>("-O") { DefaultValueFactory = _ => "raw" };
        var opts = new Option<string[]>("-o");
        var progress = new Option<bool>("-p");
        var quiet = new Option<bool>("-q");
        var compress = new Option<bool>("-c");
        var noCreate = new Option<bool>("-n");
        var forceShare = new Option<bool>("-U", "--force-share");
        var files = new Argument<string[]>("files") { Arity = new ArgumentArity(2, 2) };
        var cmd = new Command("convert", "Convert an image to another format") { format, outFormat, opts, progress, quiet, compress, noCreate, forceShare, files };
        cmd.SetAction(r => Run(
            r.GetValue(format), r.GetValue(outFormat)!, r.GetValue(opts) ?? [], r.GetValue(progress) && !r.GetValue(quiet),
            r.GetValue(compress), r.GetValue(noCreate), r.GetValue(files)!));
        return cmd;
    }

    private static int Run(string? fmt, string outFmt, string[] opts, bool progress, bool compress, bool noCreate, string[] files)
    {
        string src = files[0];
        string dst = files[1];
        using BlockNode source = Open(src, fmt, readOnly: true);
        if (!noCreate)
        {
            CreateCommand.CreateImage(outFmt, null, null, opts, quiet: true, unsafeBacking: true, dst, source.Size);
        }

        using BlockNode target = Open(dst, outFmt, readOnly: false);
        if (compress && target is not Qcow2Node)
        {
            throw new QemuImgException("Compression not supported for this file format");
        }

        if (noCreate && target.Size < source.Size)
        {
            throw new QemuImgException("output file is smaller than input file");
        }

        var p = new Progress(progress);
        var buf = new byte[ChunkSize];
        long size = source.Size;
        for (long off = 0; off < size; off += ChunkSize)
        {
            int n = (int)Math.Min(ChunkSize, size - off);
            Span<byte> chunk = buf.AsSpan(0, n);
            source.Read(off, chunk);
            if (compress)
            {
                WriteCompressed((Qcow2Node)target, off, chunk);
            }
            else
            {
                WriteNonZero(target, off, chunk, noCreate);
            }

            p.Report((off + n) * 100.0 / size);
        }

        target.Flush();
        p.Done();
        return 0;
    }

    /// <summary>Compresses each non-zero cluster of the chunk (ChunkSize is a multiple of every cluster size).</summary>
    private static void WriteCompressed(Qcow2Node target, long offset, ReadOnlySpan<byte> chunk)
    {
        int cs = target.ClusterSize;
        Span<byte> cluster = new byte[cs];
        for (int pos = 0; pos < chunk.Length; pos += cs)
        {
            ReadOnlySpan<byte> part = chunk.Slice(pos, Math.Min(cs, chunk.Length - pos));
            if (!part.ContainsAnyExcept((byte)0))
            {
                continue;
            }

            cluster.Clear();
            part.CopyTo(cluster);
            target.WriteCompressed((offset + pos) / cs, cluster);
        }
    }

    /// <summary>Writes only the 4 KiB blocks holding data, so the target stays sparse.</summary>
    private static void WriteNonZero(BlockNode target, long offset, ReadOnlySpan<byte> chunk, bool existingTarget)
    {
        int pos = 0;
        while (pos < chunk.Length)
        {
            int len = Math.Min(SparseBlock, chunk.Length - pos);
            bool zero = !chunk.Slice(pos, len).ContainsAnyExcept((byte)0);
            int run = len;
            while (pos + run < chunk.Length)
            {
                int next = Math.Min(SparseBlock, chunk.Length - pos - run);
                if (chunk.Slice(pos + run, next).ContainsAnyExcept((byte)0) == zero)
                {
                    break;
                }

                run += next;
            }

            if (!zero)
            {
                target.Write(offset + pos, chunk.Slice(pos, run));
            }
            else if (existingTarget)
            {
                target.WriteZeroes(offset + pos, run);
            }

            pos += run;
        }
    }

    internal static BlockNode Open(string filename, string? fmt, bool readOnly)
    {
        try
        {
            return BlockImage.Open(filename, fmt, readOnly);
        }
        catch (BlockException e)
        {
            throw new QemuImgException($"Could not open '{filename}': {e.Message}");
        }
    }
}
