using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// IRET and RETF in 32-bit protected mode: same level (syslinux's interrupt stubs end in IRETD), to a 16-bit code
/// segment, and to an outer privilege level (SS:ESP popped, data segments the new CPL may not use nulled).
/// </summary>
[TestFixture]
public sealed class ProtectedModeReturnTests
{
    private const ulong Gdt = 0x7F00;
    private const ulong Idt = 0x7000;
    private const ulong Tss = 0x6000;
    private const ulong Ring0Stack = 0x70000;
    private const ulong Ring3Stack = 0x80000;
    private const ulong Counter = 0x50000;
    private const ushort Code32 = 0x08;
    private const ushort Data32 = 0x10;
    private const ushort User3Code = 0x1B;
    private const ushort User3Data = 0x23;
    private const ushort Code16 = 0x28;

    /// <summary>Flat 32-bit protected mode at CPL 0 with a GDT of ring-0/ring-3 flat segments and a 16-bit code segment.</summary>
    private static void Flat32(GuestHarness g, ulong rip)
    {
        g.WriteU64(Gdt, 0);
        g.WriteU64(Gdt + 0x08, 0x00CF_9A00_0000_FFFF);
        g.WriteU64(Gdt + 0x10, 0x00CF_9200_0000_FFFF);
        g.WriteU64(Gdt + 0x18, 0x00CF_FA00_0000_FFFF);
        g.WriteU64(Gdt + 0x20, 0x00CF_F200_0000_FFFF);
        g.WriteU64(Gdt + 0x28, 0x0000_9A00_0000_FFFF);
        g.State.Reset();
        g.State.Cr0 = 0x11;
        g.State.Gdtr = new DescriptorTableRegister { Base = Gdt, Limit = 0x2F };
        g.State.Idtr = new DescriptorTableRegister { Base = Idt, Limit = 0x42 * 8 - 1 };
        for (int i = 0; i < 6; i++)
        {
            g.State.Segments[i] = new SegmentRegister { Selector = Data32, Limit = 0xFFFF_FFFF, Attributes = SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | 3 };
        }
        g.State.Segments[(int)SegmentIndex.Cs] = new SegmentRegister { Selector = Code32, Limit = 0xFFFF_FFFF, Attributes = SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | 0xB };
        g.State.Tr = new SegmentRegister { Selector = 0x30, Base = Tss, Limit = 0x67, Attributes = SegmentRegister.P | 0xB };
        g.Memory.Write(Tss + 4, BitConverter.GetBytes((uint)Ring0Stack));
        g.Memory.Write(Tss + 8, BitConverter.GetBytes((ushort)Data32));
        g.State.Rip = rip;
        g.State.Gpr[4] = 0x90000;
    }

    /// <summary>A 32-bit interrupt gate (DPL <paramref name="dpl"/>) for <paramref name="vector"/> to a ring-0 handler.</summary>
    private static void Gate(GuestHarness g, int vector, ulong handler, int dpl)
    {
        ulong type = 0x8EUL | ((ulong)dpl << 5);
        g.WriteU64(Idt + (ulong)vector * 8, (handler & 0xFFFF) | ((ulong)Code32 << 16) | (type << 40) | ((handler >> 16) << 48));
    }

    private static uint ReadU32(GuestHarness g, ulong address) => (uint)g.ReadU64(address);

    [Test]
    public void Iretd_FromInterruptGate_ReturnsAndRestoresIf()
    {
        using var g = new GuestHarness();
        Gate(g, 0x40, 0x41000, 0);
        g.Memory.Write(0x41000, GuestHarness.Assemble(32, 0x41000, a =>
        {
            a.pushad();
            a.inc(__dword_ptr[Counter]);
            a.pushfd();
            a.pop(__dword_ptr[Counter + 4]);
            a.popad();
            a.iretd();
        }));
        g.Memory.Write(0x40000, GuestHarness.Assemble(32, 0x40000, a =>
        {
            a.sti();
            a.nop();
            a.mov(ecx, 0x11);
            a.@int(0x40);
            a.mov(edx, 0x22);
            a.hlt();
        }));
        Flat32(g, 0x40000);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), g.Vcpu.InternalErrorDetail);
        Assert.Multiple(() =>
        {
            Assert.That(ReadU32(g, Counter), Is.EqualTo(1u), "handler ran once");
            Assert.That(ReadU32(g, Counter + 4) & X86CpuState.FlagIf, Is.Zero, "the interrupt gate cleared IF");
            Assert.That(g.State.Rflags & X86CpuState.FlagIf, Is.Not.Zero, "IRETD restored IF");
            Assert.That(g.State.Gpr[2], Is.EqualTo(0x22UL), "resumed after INT");
            Assert.That(g.State.Gpr[1], Is.EqualTo(0x11UL));
            Assert.That(g.State.Gpr[4], Is.EqualTo(0x90000UL), "IRETD popped the frame");
            Assert.That(g.State.Segments[(int)SegmentIndex.Cs].Selector, Is.EqualTo(Code32));
        });
    }

    [Test]
    public void Iretw_To16BitCodeSegment_SwitchesOperandSize()
    {
        using var g = new GuestHarness();
        byte[] code16 = GuestHarness.Assemble(16, 0x2000, a =>
        {
            a.mov(eax, 0);
            a.mov(bx, 0x99);
            a.push(ax);
            a.hlt();
        });
        g.Memory.Write(0x42000, code16);
        g.Memory.Write(0x40000, GuestHarness.Assemble(32, 0x40000, a =>
        {
            a.mov(ax, 0x0002);
            a.push(ax);
            a.mov(ax, Code16);
            a.push(ax);
            a.mov(ax, 0x2000);
            a.push(ax);
            a.iret();
        }));
        Flat32(g, 0x40000);
        // The 16-bit segment has base 0: point it at 0x40000 so offset 0x2000 is 0x42000.
        g.WriteU64(Gdt + 0x28, 0x0000_9A04_0000_FFFF);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), g.Vcpu.InternalErrorDetail);
        Assert.Multiple(() =>
        {
            ref SegmentRegister cs = ref g.State.Segments[(int)SegmentIndex.Cs];
            Assert.That(cs.Selector, Is.EqualTo(Code16));
            Assert.That(cs.Base, Is.EqualTo(0x40000UL));
            Assert.That(cs.Attributes & SegmentRegister.DB, Is.Zero, "16-bit code");
            Assert.That(g.State.Gpr[3] & 0xFFFF, Is.EqualTo(0x99UL));
            Assert.That(g.State.Gpr[4], Is.EqualTo(0x90000UL - 2), "IRETW popped 6 bytes, then a 16-bit PUSH took 2");
            Assert.That(g.State.Rip, Is.EqualTo(0x2000UL + (ulong)code16.Length));
        });
    }

    /// <summary>Ring-3 code at 0x43000 raises INT 0x41 (DPL 3) whose ring-0 handler halts, so the test sees both stacks.</summary>
    private static void Ring3RoundTrip(GuestHarness g)
    {
        Gate(g, 0x41, 0x41000, 3);
        g.Memory.Write(0x41000, GuestHarness.Assemble(32, 0x41000, a => a.hlt()));
        g.Memory.Write(0x43000, GuestHarness.Assemble(32, 0x43000, a =>
        {
            a.mov(eax, 0x33);
            a.@int(0x41);
        }));
    }

    private static void AssertRing3Frame(GuestHarness g, ulong userEsp)
    {
        // The gate switched to the TSS's ring-0 stack and pushed SS, ESP, EFLAGS, CS, EIP of the ring-3 code.
        ulong frame = Ring0Stack - 20;
        Assert.Multiple(() =>
        {
            Assert.That(g.State.Gpr[0], Is.EqualTo(0x33UL), "ring-3 code ran");
            Assert.That(g.State.Gpr[4], Is.EqualTo(frame));
            Assert.That(ReadU32(g, frame + 4), Is.EqualTo((uint)User3Code), "CS at ring 3");
            Assert.That(ReadU32(g, frame + 12), Is.EqualTo((uint)userEsp), "ring-3 ESP");
            Assert.That(ReadU32(g, frame + 16), Is.EqualTo((uint)User3Data), "ring-3 SS");
            Assert.That(g.State.Segments[(int)SegmentIndex.Ds].Selector, Is.Zero, "the ring-0 DS was nulled on the way out");
            Assert.That(g.State.Segments[(int)SegmentIndex.Ds].Attributes, Is.Zero);
        });
    }

    [Test]
    public void Iretd_ToOuterLevel_PopsStackAndNullsPrivilegedSegments()
    {
        using var g = new GuestHarness();
        Ring3RoundTrip(g);
        g.Memory.Write(0x40000, GuestHarness.Assemble(32, 0x40000, a =>
        {
            a.push(User3Data);
            a.push((int)Ring3Stack);
            a.push(0x0202);
            a.push(User3Code);
            a.push(0x43000);
            a.iretd();
        }));
        Flat32(g, 0x40000);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), g.Vcpu.InternalErrorDetail);
        AssertRing3Frame(g, Ring3Stack);
        Assert.That(ReadU32(g, Ring0Stack - 12) & X86CpuState.FlagIf, Is.Not.Zero, "ring 3 ran with the IF IRETD set");
    }

    [Test]
    public void Retf_ToOuterLevelWithImmediate_ReleasesParametersOnBothStacks()
    {
        using var g = new GuestHarness();
        Ring3RoundTrip(g);
        g.Memory.Write(0x40000, GuestHarness.Assemble(32, 0x40000, a =>
        {
            a.push(User3Data);
            a.push((int)Ring3Stack - 8);
            a.push(0x1111);
            a.push(0x2222);
            a.push(User3Code);
            a.push(0x43000);
            a.retf(8);
        }));
        Flat32(g, 0x40000);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), g.Vcpu.InternalErrorDetail);
        AssertRing3Frame(g, Ring3Stack);
    }

    [Test]
    public void Iretd_ToMorePrivilegedSelector_RaisesGeneralProtection()
    {
        using var g = new GuestHarness();
        g.Memory.Write(0x40000, GuestHarness.Assemble(32, 0x40000, a =>
        {
            a.push(User3Data);
            a.push((int)Ring3Stack);
            a.push(0x0002);
            a.push(User3Code);
            a.push(0x43000);
            a.iretd();
        }));
        Ring3RoundTrip(g);
        g.Memory.Write(0x43000, GuestHarness.Assemble(32, 0x43000, a =>
        {
            // At ring 3: IRETD to ring 0 (CS.RPL < CPL) must fault with the selector as error code.
            a.push(0x0002);
            a.push(Code32);
            a.push(0x44000);
            a.iretd();
        }));
        Gate(g, 13, 0x41000, 0);
        Flat32(g, 0x40000);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), g.Vcpu.InternalErrorDetail);
        // #GP frame on the ring-0 stack: error code, EIP, CS, EFLAGS, ESP, SS.
        ulong frame = Ring0Stack - 24;
        Assert.Multiple(() =>
        {
            Assert.That(g.State.Gpr[4], Is.EqualTo(frame));
            Assert.That(ReadU32(g, frame), Is.EqualTo((uint)Code32), "error code names the selector");
            Assert.That(ReadU32(g, frame + 4), Is.EqualTo(0x43000u + 2 + 2 + 5), "EIP of the faulting IRETD");
            Assert.That(ReadU32(g, frame + 16), Is.EqualTo((uint)(Ring3Stack - 12)), "the faulting IRETD left ESP as it was");
        });
    }
}
