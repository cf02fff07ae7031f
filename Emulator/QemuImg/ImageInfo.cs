using System.Text;
using System.Text.Json;
using Colo.Block;
using Colo.Block.File;
using Colo.Block.Qcow2;

namespace Colo.QemuImg;

/// <summary>What "qemu-img info" reports for one image (QEMU's ImageInfo).</summary>
internal sealed record ImageInfo(
    string Filename,
    string Format,
    long VirtualSize,
    long ActualSize,
    int? ClusterSize,
    string? BackingFilename,
    string? FullBackingFilename,
    string? BackingFormat,
    bool DirtyFlag,
    Qcow2Header? Qcow2,
    IReadOnlyList<Qcow2Snapshot> Snapshots)
{
    public static ImageInfo Of(string filename, BlockNode node)
    {
        long actual = FileNode.GetAllocatedSize(filename);
        if (node is Qcow2Node q)
        {
            Qcow2Header h = q.Header;
            string? full = h.BackingFile != null ? BlockImage.CombinePath(filename, h.BackingFile) : null;
            return new ImageInfo(filename, "qcow2", q.Size, actual, q.ClusterSize, h.BackingFile, full, h.BackingFormat, q.IsDirty, h, q.ReadSnapshots());
        }

        return new ImageInfo(filename, node.DriverName, node.Size, actual, null, null, null, null, false, null, []);
    }

    public string ToHuman()
    {
        var sb = new StringBuilder();
        sb.Append($"image: {Filename}\n");
        sb.Append($"file format: {Format}\n");
        sb.Append($"virtual size: {SizeFormat.Human(VirtualSize)} ({VirtualSize} bytes)\n");
        sb.Append($"disk size: {SizeFormat.Human(ActualSize)}\n");
        if (ClusterSize != null)
        {
            sb.Append($"cluster_size: {ClusterSize}\n");
        }

        if (BackingFilename != null)
        {
            sb.Append($"backing file: {BackingFilename}");
            if (FullBackingFilename != BackingFilename)
            {
                sb.Append($" (actual path: {FullBackingFilename})");
            }

            sb.Append('\n');
            if (BackingFormat != null)
            {
                sb.Append($"backing file format: {BackingFormat}\n");
            }
        }

        if (DirtyFlag)
        {
            sb.Append("cleanly shut down: no\n");
        }

        if (Snapshots.Count > 0)
        {
            sb.Append("Snapshot list:\n");
            sb.Append($"{"ID",-9} {"TAG",-16} {"VM SIZE",8} {"DATE",19} {"VM CLOCK",12} {"ICOUNT",10}\n");
            foreach (Qcow2Snapshot s in Snapshots)
            {
                string date = DateTimeOffset.FromUnixTimeSeconds(s.DateSec).ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture);
                ulong secs = s.VmClockNsec / 1_000_000_000;
                string clock = $"{secs / 3600:D2}:{secs / 60 % 60:D2}:{secs % 60:D2}.{s.VmClockNsec / 1_000_000 % 1000:D3}";
                string icount = s.Icount?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "";
                sb.Append($"{s.Id,-9} {s.Name,-16} {SizeFormat.Human((long)s.VmStateSize),8} {date,19} {clock,12} {icount,10}\n");
            }
        }

        if (Qcow2 != null)
        {
            Qcow2Header h = Qcow2;
            sb.Append("Format specific information:\n");
            sb.Append($"    compat: {(h.Version >= 3 ? "1.1" : "0.10")}\n");
            sb.Append($"    compression type: {(h.CompressionType == 1 ? "zstd" : "zlib")}\n");
            if (h.Version >= 3)
            {
                sb.Append($"    lazy refcounts: {Bool((h.CompatibleFeatures & Qcow2Header.CompatLazyRefcounts) != 0)}\n");
            }

            sb.Append($"    refcount bits: {1 << h.RefcountOrder}\n");
            if (h.Version >= 3)
            {
                sb.Append($"    corrupt: {Bool((h.IncompatibleFeatures & Qcow2Header.IncompatCorrupt) != 0)}\n");
                sb.Append("    extended l2: false\n");
            }
        }

        return sb.ToString();
    }

    private static string Bool(bool b) => b ? "true" : "false";

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        if (Snapshots.Count > 0)
        {
            w.WriteStartArray("snapshots");
            foreach (Qcow2Snapshot s in Snapshots)
            {
                w.WriteStartObject();
                if (s.Icount != null)
                {
                    w.WriteNumber("icount", s.Icount.Value);
                }

                w.WriteNumber("vm-clock-nsec", s.VmClockNsec % 1_000_000_000);
                w.WriteString("name", s.Name);
                w.WriteNumber("date-sec", s.DateSec);
                w.WriteNumber("date-nsec", s.DateNsec);
                w.WriteNumber("vm-clock-sec", s.VmClockNsec / 1_000_000_000);
                w.WriteString("id", s.Id);
                w.WriteNumber("vm-state-size", s.VmStateSize);
                w.WriteEndObject();
            }

            w.WriteEndArray();
        }

        if (BackingFormat != null && BackingFilename != null)
        {
            w.WriteString("backing-filename-format", BackingFormat);
        }

        w.WriteNumber("virtual-size", VirtualSize);
        w.WriteString("filename", Filename);
        if (ClusterSize != null)
        {
            w.WriteNumber("cluster-size", ClusterSize.Value);
        }

        w.WriteString("format", Format);
        w.WriteNumber("actual-size", ActualSize);
        if (Qcow2 != null)
        {
            Qcow2Header h = Qcow2;
            w.WriteStartObject("format-specific");
            w.WriteString("type", "qcow2");
            w.WriteStartObject("data");
            w.WriteString("compat", h.Version >= 3 ? "1.1" : "0.10");
            w.WriteString("compression-type", h.CompressionType == 1 ? "zstd" : "zlib");
            if (h.Version >= 3)
            {
                w.WriteBoolean("lazy-refcounts", (h.CompatibleFeatures & Qcow2Header.CompatLazyRefcounts) != 0);
            }

            w.WriteNumber("refcount-bits", 1 << h.RefcountOrder);
            if (h.Version >= 3)
            {
                w.WriteBoolean("corrupt", (h.IncompatibleFeatures & Qcow2Header.IncompatCorrupt) != 0);
                w.WriteBoolean("extended-l2", false);
            }

            w.WriteEndObject();
            w.WriteEndObject();
        }

        if (BackingFilename != null)
        {
            w.WriteString("full-backing-filename", FullBackingFilename);
            w.WriteString("backing-filename", BackingFilename);
        }

        w.WriteBoolean("dirty-flag", DirtyFlag);
        w.WriteEndObject();
    }
}
