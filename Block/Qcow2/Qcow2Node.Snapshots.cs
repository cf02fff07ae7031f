using System.Buffers.Binary;
using System.Text;

namespace Colo.Block.Qcow2;

/// <summary>One internal snapshot's table entry (docs/interop/qcow2.txt, "Snapshot table").</summary>
public sealed record Qcow2Snapshot(
    string Id,
    string Name,
    ulong L1TableOffset,
    uint L1Size,
    uint DateSec,
    uint DateNsec,
    ulong VmClockNsec,
    ulong VmStateSize,
    long? Icount);

public sealed partial class Qcow2Node
{
    /// <summary>Reads the snapshot table; a malformed table is refused, never read out of bounds.</summary>
    public IReadOnlyList<Qcow2Snapshot> ReadSnapshots()
    {
        var list = new List<Qcow2Snapshot>();
        long pos = (long)_header.SnapshotsOffset;
        long fileSize = _file.Size;
        Span<byte> fixedPart = stackalloc byte[40];
        for (uint i = 0; i < _header.NbSnapshots; i++)
        {
            if (pos + 40 > fileSize)
            {
                throw new BlockException("Snapshot table lies beyond the end of the image file");
            }

            _file.Read(pos, fixedPart);
            ulong l1Offset = BinaryPrimitives.ReadUInt64BigEndian(fixedPart);
            uint l1Size = BinaryPrimitives.ReadUInt32BigEndian(fixedPart[8..]);
            int idSize = BinaryPrimitives.ReadUInt16BigEndian(fixedPart[12..]);
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(fixedPart[14..]);
            uint dateSec = BinaryPrimitives.ReadUInt32BigEndian(fixedPart[16..]);
            uint dateNsec = BinaryPrimitives.ReadUInt32BigEndian(fixedPart[20..]);
            ulong vmClock = BinaryPrimitives.ReadUInt64BigEndian(fixedPart[24..]);
            ulong vmState = BinaryPrimitives.ReadUInt32BigEndian(fixedPart[32..]);
            uint extraSize = BinaryPrimitives.ReadUInt32BigEndian(fixedPart[36..]);
            if (extraSize > 1024)
            {
                throw new BlockException("Too much extra metadata in snapshot table entry");
            }

            var rest = new byte[extraSize + idSize + nameSize];
            if (pos + 40 + rest.Length > fileSize)
            {
                throw new BlockException("Snapshot table lies beyond the end of the image file");
            }

            _file.Read(pos + 40, rest);
            long? icount = null;
            if (extraSize >= 8)
            {
                vmState = BinaryPrimitives.ReadUInt64BigEndian(rest);
            }

            if (extraSize >= 24)
            {
                long ic = BinaryPrimitives.ReadInt64BigEndian(rest.AsSpan(16));
                icount = ic == -1 ? null : ic;
            }

            string id = Encoding.UTF8.GetString(rest, (int)extraSize, idSize);
            string name = Encoding.UTF8.GetString(rest, (int)extraSize + idSize, nameSize);
            list.Add(new Qcow2Snapshot(id, name, l1Offset, l1Size, dateSec, dateNsec, vmClock, vmState, icount));
            pos = (pos + 40 + rest.Length + 7) & ~7L;
        }

        return list;
    }
}
