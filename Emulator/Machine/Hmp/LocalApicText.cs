using System.Globalization;
using System.Text;
using Colo.Devices.Interrupt;

namespace Colo.Machine.Hmp;

/// <summary>
/// HMP <c>info lapic</c>: one local APIC's registers in QEMU 7.2's layout (LVT entries decoded, the timer, SPIV, ICR,
/// the in-service and request vectors, then the priority registers).
/// </summary>
public static class LocalApicText
{
    private static readonly string[] s_lvtNames = ["LVTT", "LVTTHMR", "LVTPC", "LVT0", "LVT1", "LVTERR"];

    // The order QEMU prints them in, as indexes into the LVT array (timer, thermal, perf, LINT0, LINT1, error).
    private static readonly int[] s_printOrder = [3, 4, 2, 5, 1, 0];

    private static readonly string[] s_deliveryModes = ["Fixed", "LowPri", "SMI", "(rsvd)", "NMI", "INIT", "(rsvd)", "ExtINT"];

    public static string Format(int cpu, LocalApicState s, uint currentCount)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"dumping local APIC state for CPU {cpu} \n\n");
        foreach (int i in s_printOrder)
        {
            AppendLvt(sb, s_lvtNames[i], s.Lvt[i], timer: i == 0);
        }
        uint dcr = s.DivideConfig;
        int shift = (int)(((dcr & 3) | ((dcr >> 1) & 4)) + 1) & 7;
        sb.Append(CultureInfo.InvariantCulture,
            $"Timer\t DCR=0x{dcr:x} (divide by {1u << shift}) initial_count = {s.InitialCount} current_count = {currentCount}\n");
        sb.Append(CultureInfo.InvariantCulture,
            $"SPIV\t 0x{s.Svr:x8} APIC {((s.Svr & 0x100) != 0 ? "enabled" : "disabled")}, focus={((s.Svr & 0x200) != 0 ? "on" : "off")}, spurious vec {s.Svr & 0xFF}\n");
        uint icr = s.IcrLow;
        string shorthand = ((icr >> 18) & 3) switch
        {
            0 => "no-shorthand",
            1 => "self",
            2 => "all-self",
            _ => "all",
        };
        bool logical = (icr & (1u << 11)) != 0;
        sb.Append(CultureInfo.InvariantCulture,
            $"ICR\t 0x{icr:x8} {(logical ? "logical" : "physical")} {((icr & (1u << 15)) != 0 ? "level" : "edge")} {((icr & (1u << 14)) != 0 ? "assert" : "de-assert")} {shorthand}\n");
        sb.Append(CultureInfo.InvariantCulture, $"ICR2\t 0x{s.IcrHigh:x8}");
        if (((icr >> 18) & 3) == 0)
        {
            uint dest = s.IcrHigh >> 24;
            sb.Append(logical ? string.Create(CultureInfo.InvariantCulture, $" mask {dest:x} (APIC ID)") : string.Create(CultureInfo.InvariantCulture, $" cpu {dest} (APIC ID)"));
        }
        sb.Append('\n');
        sb.Append(CultureInfo.InvariantCulture, $"ESR\t 0x{s.Esr:x8}\n");
        AppendVectors(sb, "ISR", s.Isr, null);
        AppendVectors(sb, "IRR", s.Irr, s.Tmr);
        int isr = Highest(s.Isr);
        uint ppr = (s.Tpr & 0xF0) >= (isr < 0 ? 0 : isr & 0xF0) ? s.Tpr : (uint)(isr & 0xF0);
        sb.Append(CultureInfo.InvariantCulture,
            $"\nAPR 0x{0:x2} TPR 0x{s.Tpr:x2} DFR 0x{s.Dfr >> 28:x2} LDR 0x{s.Ldr >> 24:x2} PPR 0x{ppr:x2}\n");
        return sb.ToString();
    }

    private static void AppendLvt(StringBuilder sb, string name, uint lvt, bool timer)
    {
        string mode = timer ? ((lvt >> 17) & 3) switch
        {
            0 => "one-shot",
            1 => "periodic",
            2 => "tsc-deadline",
            _ => "(rsvd)",
        } : "";
        uint delivery = timer ? 0 : (lvt >> 8) & 7;
        sb.Append(CultureInfo.InvariantCulture, $"{name}\t 0x{lvt:x8} {((lvt & (1u << 13)) != 0 ? "active-lo" : "active-hi")} ");
        sb.Append(((lvt & (1u << 15)) != 0 ? "level" : "edge").PadRight(5)).Append(' ');
        sb.Append(((lvt & (1u << 16)) != 0 ? "masked" : "").PadRight(6)).Append(' ');
        sb.Append(((lvt & (1u << 14)) != 0 ? "rem-irr" : "").PadRight(7)).Append(' ');
        sb.Append(mode.PadRight(12)).Append(' ');
        sb.Append(s_deliveryModes[delivery].PadRight(6));
        if (delivery is 0 or 1 or 7)
        {
            sb.Append(CultureInfo.InvariantCulture, $" (vec {lvt & 0xFF})");
        }
        sb.Append('\n');
    }

    private static void AppendVectors(StringBuilder sb, string name, uint[] bits, uint[]? level)
    {
        sb.Append(name).Append('\t');
        bool any = false;
        for (int v = 0; v < 256; v++)
        {
            if ((bits[v >> 5] & (1u << (v & 31))) != 0)
            {
                sb.Append(CultureInfo.InvariantCulture, $" {v}");
                if (level is not null && (level[v >> 5] & (1u << (v & 31))) != 0)
                {
                    sb.Append("(level)");
                }
                any = true;
            }
        }
        sb.Append(any ? "\n" : " (none)\n");
    }

    private static int Highest(uint[] bits)
    {
        for (int i = bits.Length - 1; i >= 0; i--)
        {
            if (bits[i] != 0)
            {
                return i * 32 + 31 - System.Numerics.BitOperations.LeadingZeroCount(bits[i]);
            }
        }
        return -1;
    }
}
