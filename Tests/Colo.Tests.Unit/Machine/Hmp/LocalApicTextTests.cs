using Colo.Devices.Interrupt;
using Colo.Machine.Hmp;

namespace Colo.Tests.Unit.Machine.Hmp;

/// <summary><c>info lapic</c> against QEMU 7.2's own dumps (captured from Debian's qemu-system-x86_64 -accel tcg).</summary>
[TestFixture]
public sealed class LocalApicTextTests
{
    private static LocalApicState State(uint svr, uint[] lvt, uint divide, uint initial, uint icrLow, uint icrHigh, byte tpr = 0) =>
        new(0, 0xFEE00900, tpr, 0, 0xFFFF_FFFF, svr, new uint[8], new uint[8], new uint[8], 0, icrLow, icrHigh, lvt, initial, divide, 0, false);

    [Test]
    public void ResetState_MatchesQemusDump()
    {
        // qemu-system-x86_64 -M pc -nodefaults -S, then "info lapic".
        LocalApicState s = State(0xFF, [0x10000, 0x10000, 0x10000, 0x10000, 0x10000, 0x10000], 0, 0, 0, 0);
        string expected =
            "dumping local APIC state for CPU 0 \n\n" +
            "LVT0\t 0x00010000 active-hi edge  masked                      Fixed  (vec 0)\n" +
            "LVT1\t 0x00010000 active-hi edge  masked                      Fixed  (vec 0)\n" +
            "LVTPC\t 0x00010000 active-hi edge  masked                      Fixed  (vec 0)\n" +
            "LVTERR\t 0x00010000 active-hi edge  masked                      Fixed  (vec 0)\n" +
            "LVTTHMR\t 0x00010000 active-hi edge  masked                      Fixed  (vec 0)\n" +
            "LVTT\t 0x00010000 active-hi edge  masked         one-shot     Fixed  (vec 0)\n" +
            "Timer\t DCR=0x0 (divide by 2) initial_count = 0 current_count = 0\n" +
            "SPIV\t 0x000000ff APIC disabled, focus=off, spurious vec 255\n" +
            "ICR\t 0x00000000 physical edge de-assert no-shorthand\n" +
            "ICR2\t 0x00000000 cpu 0 (APIC ID)\n" +
            "ESR\t 0x00000000\n" +
            "ISR\t (none)\n" +
            "IRR\t (none)\n" +
            "\n" +
            "APR 0x00 TPR 0x00 DFR 0x0f LDR 0x00 PPR 0x00\n";
        Assert.That(LocalApicText.Format(0, s, 0), Is.EqualTo(expected));
    }

    [Test]
    public void ProgrammedTimerLintsAndSelfIpi_MatchQemusDump()
    {
        // The state the multiboot interrupt test kernel leaves: LINT0 ExtINT, LINT1 NMI, one-shot timer on 0x50.
        LocalApicState s = State(0x1FF, [0x50, 0x10000, 0x10000, 0x700, 0x400, 0x10000], 0xB, 100_000, 0x4_0052, 0);
        string expected =
            "dumping local APIC state for CPU 0 \n\n" +
            "LVT0\t 0x00000700 active-hi edge                              ExtINT (vec 0)\n" +
            "LVT1\t 0x00000400 active-hi edge                              NMI   \n" +
            "LVTPC\t 0x00010000 active-hi edge  masked                      Fixed  (vec 0)\n" +
            "LVTERR\t 0x00010000 active-hi edge  masked                      Fixed  (vec 0)\n" +
            "LVTTHMR\t 0x00010000 active-hi edge  masked                      Fixed  (vec 0)\n" +
            "LVTT\t 0x00000050 active-hi edge                 one-shot     Fixed  (vec 80)\n" +
            "Timer\t DCR=0xb (divide by 1) initial_count = 100000 current_count = 0\n" +
            "SPIV\t 0x000001ff APIC enabled, focus=off, spurious vec 255\n" +
            "ICR\t 0x00040052 physical edge de-assert self\n" +
            "ICR2\t 0x00000000\n" +
            "ESR\t 0x00000000\n" +
            "ISR\t (none)\n" +
            "IRR\t (none)\n" +
            "\n" +
            "APR 0x00 TPR 0x00 DFR 0x0f LDR 0x00 PPR 0x00\n";
        Assert.That(LocalApicText.Format(0, s, 0), Is.EqualTo(expected));
    }
}
