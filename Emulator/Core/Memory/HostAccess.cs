using System.Runtime.CompilerServices;

namespace Colo.Core.Memory;

/// <summary>
/// One host load or store of a guest access's size (1, 2, 4 or 8 bytes). Always a single instruction: a span copy
/// may move a word as two overlapping halves, which tears against another vCPU's store (or stores a released spin
/// lock twice). The host is little-endian like the guest.
/// </summary>
public static unsafe class HostAccess
{
    /// <summary>Loads <paramref name="size"/> bytes at <paramref name="p"/>, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Load(byte* p, int size) => size switch
    {
        1 => *p,
        2 => Unsafe.ReadUnaligned<ushort>(p),
        4 => Unsafe.ReadUnaligned<uint>(p),
        _ => Unsafe.ReadUnaligned<ulong>(p),
    };

    /// <summary>Stores the low <paramref name="size"/> bytes of <paramref name="value"/> at <paramref name="p"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(byte* p, int size, ulong value)
    {
        switch (size)
        {
            case 1:
                *p = (byte)value;
                break;
            case 2:
                Unsafe.WriteUnaligned(p, (ushort)value);
                break;
            case 4:
                Unsafe.WriteUnaligned(p, (uint)value);
                break;
            default:
                Unsafe.WriteUnaligned(p, value);
                break;
        }
    }
}
