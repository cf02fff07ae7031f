using ZstdSharp;

namespace Colo.Block.Qcow2;

/// <summary>zstd-type compressed clusters (compression_type = 1).</summary>
internal static class Qcow2Zstd
{
    /// <summary>
    /// Decompresses one cluster. The stored range is sector-rounded, so bytes after the frame are
    /// padding; streaming stops once the cluster is full and never parses them as a second frame.
    /// </summary>
    public static int Decompress(Span<byte> src, byte[] dest)
    {
        try
        {
            using var ms = new MemoryStream(src.ToArray(), writable: false);
            using var ds = new DecompressionStream(ms);
            // Stop once the cluster is full: what follows the stream is sector padding.
            return ds.ReadAtLeast(dest, dest.Length, throwOnEndOfStream: false);
        }
        catch (ZstdException)
        {
            return -1;
        }
    }
}
