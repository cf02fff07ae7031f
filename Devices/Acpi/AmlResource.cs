namespace Colo.Devices.Acpi;

/// <summary>
/// Resource descriptors (ACPI 6.4 section 6.4) for ResourceTemplate buffers: the small IO and IRQ forms, and the
/// large extended-interrupt and address-space forms the DSDT's <c>_CRS</c>/<c>_PRS</c> objects use.
/// </summary>
public static class AmlResource
{
    // Address space descriptor general flags (6.4.3.5.1): producer, positive decode, fixed minimum and maximum.
    private const byte ProducerMinMaxFixed = 0x0C;

    /// <summary>IO(Decode16, min, max, alignment, length).</summary>
    public static byte[] Io(ushort min, ushort max, byte alignment, byte length) =>
        [0x47, 0x01, (byte)min, (byte)(min >> 8), (byte)max, (byte)(max >> 8), alignment, length];

    /// <summary>IRQNoFlags() {irqs} (edge, active high, exclusive).</summary>
    public static byte[] IrqNoFlags(params int[] irqs)
    {
        ushort mask = 0;
        foreach (int irq in irqs)
        {
            mask |= (ushort)(1 << irq);
        }
        return [0x22, (byte)mask, (byte)(mask >> 8)];
    }

    /// <summary>Interrupt(ResourceConsumer, Level, ActiveHigh, Shared) {irqs}: the PCI link form.</summary>
    public static byte[] InterruptLevelHighShared(params uint[] irqs)
    {
        int length = 2 + 4 * irqs.Length;
        byte[] r = new byte[3 + length];
        r[0] = 0x89;
        r[1] = (byte)length;
        r[2] = (byte)(length >> 8);
        r[3] = 0x01 | 0x08; // consumer, level-triggered, active high, shared
        r[4] = (byte)irqs.Length;
        for (int i = 0; i < irqs.Length; i++)
        {
            BitConverterLe(r.AsSpan(5 + 4 * i), irqs[i], 4);
        }
        return r;
    }

    /// <summary>WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, length).</summary>
    public static byte[] WordBusNumber(ushort min, ushort max) => Word(2, 0, min, max);

    /// <summary>WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, length).</summary>
    public static byte[] WordIo(ushort min, ushort max) => Word(1, 0x03, min, max);

    /// <summary>DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable|NonCacheable, ReadWrite, ...).</summary>
    public static byte[] DWordMemory(uint min, uint max, bool cacheable)
    {
        byte[] r = new byte[3 + 0x17];
        r[0] = 0x87;
        r[1] = 0x17;
        r[3] = 0; // memory range
        r[4] = ProducerMinMaxFixed;
        r[5] = (byte)(cacheable ? 0x03 : 0x01); // read-write, cacheability in bits 2:1
        BitConverterLe(r.AsSpan(10), min, 4);
        BitConverterLe(r.AsSpan(14), max, 4);
        BitConverterLe(r.AsSpan(22), max - min + 1, 4);
        return r;
    }

    /// <summary>QWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite, ...).</summary>
    public static byte[] QWordMemory(ulong min, ulong max)
    {
        byte[] r = new byte[3 + 0x2B];
        r[0] = 0x8A;
        r[1] = 0x2B;
        r[3] = 0;
        r[4] = ProducerMinMaxFixed;
        r[5] = 0x03;
        BitConverterLe(r.AsSpan(14), min, 8);
        BitConverterLe(r.AsSpan(22), max, 8);
        BitConverterLe(r.AsSpan(38), max - min + 1, 8);
        return r;
    }

    private static byte[] Word(byte type, byte typeFlags, ushort min, ushort max)
    {
        byte[] r = new byte[3 + 0x0D];
        r[0] = 0x88;
        r[1] = 0x0D;
        r[3] = type;
        r[4] = ProducerMinMaxFixed;
        r[5] = typeFlags;
        BitConverterLe(r.AsSpan(8), min, 2);
        BitConverterLe(r.AsSpan(10), max, 2);
        BitConverterLe(r.AsSpan(14), (ulong)(max - min + 1), 2);
        return r;
    }

    private static void BitConverterLe(Span<byte> destination, ulong value, int size)
    {
        for (int i = 0; i < size; i++)
        {
            destination[i] = (byte)(value >> (8 * i));
        }
    }
}
