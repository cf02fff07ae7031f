using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// IN/OUT/INS/OUTS at CPL &gt; IOPL consult the TSS I/O permission bitmap (SDM vol. 1 19.5.2, Linux's ioperm): every
/// bit of the accessed ports must be clear, both bitmap bytes read must lie inside the TSS limit, else #GP(0).
/// Ring-3 code runs the access and then HLT, whose own #GP(0) shows the access passed.
/// </summary>
[TestFixture]
public sealed class IoPermissionTests
{
    private const ulong Gdt = 0x2000;
    private const ulong Idt = 0x3000;
    private const ulong Handlers = 0x4000;
    private const ulong Tss = 0x6000;
    private const ulong Code = 0x10000;
    private const byte ReportPort = 0x99;
    private const ulong BitmapOffset = 0x68;

    private static void Setup(GuestHarness g, byte[] code, int iopl, uint tssLimit, params ushort[] allowed)
    {
        g.WriteU64(Gdt, 0);
        g.WriteU64(Gdt + 0x08, 0x00CF_9A00_0000_FFFF);
        g.WriteU64(Gdt + 0x10, 0x00CF_9200_0000_FFFF);
        g.WriteU64(Gdt + 0x18, 0x00CF_FA00_0000_FFFF);
        g.WriteU64(Gdt + 0x20, 0x00CF_F200_0000_FFFF);
        for (int v = 0; v < 32; v++)
        {
            ulong handler = Handlers + (ulong)v * 16;
            byte vector = (byte)v;
            g.Memory.Write(handler, GuestHarness.Assemble(32, handler, a =>
            {
                a.mov(al, vector);
                a.@out(ReportPort, al);
                a.hlt();
            }));
            g.WriteU64(Idt + (ulong)v * 8, (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | ((handler >> 16) << 48));
        }
        // Bitmap: all ports denied but the allowed ones, plus the trailing all-ones byte.
        byte[] bitmap = new byte[0x2001];
        Array.Fill(bitmap, (byte)0xFF);
        foreach (ushort port in allowed)
        {
            bitmap[port >> 3] &= (byte)~(1 << (port & 7));
        }
        g.Memory.Write(Tss, new byte[0x68]);
        g.Memory.Write(Tss + 4, BitConverter.GetBytes(0x70000u));
        g.Memory.Write(Tss + 8, BitConverter.GetBytes((ushort)0x10));
        g.Memory.Write(Tss + 0x66, BitConverter.GetBytes((ushort)BitmapOffset));
        g.Memory.Write(Tss + BitmapOffset, bitmap);
        g.Memory.Write(Code, code);
        g.State.SetFlatLongMode(Code, 0x90000);
        g.State.Efer = 0;
        g.State.Cr0 = 0x11;
        g.State.Cr4 = 0;
        g.State.Gdtr = new DescriptorTableRegister { Base = Gdt, Limit = 0x27 };
        g.State.Idtr = new DescriptorTableRegister { Base = Idt, Limit = 32 * 8 - 1 };
        for (int i = 0; i < 6; i++)
        {
            g.State.Segments[i] = new SegmentRegister
            {
                Selector = i == 1 ? (ushort)0x1B : (ushort)0x23,
                Limit = 0xFFFF_FFFF,
                Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | (3 << 5) | (i == 1 ? 0xB : 3)),
            };
        }
        g.State.Tr = new SegmentRegister { Selector = 0x28, Base = Tss, Limit = tssLimit, Attributes = SegmentRegister.P | 0xB };
        g.State.Rflags = 2 | ((ulong)iopl << 12);
    }

    /// <summary>Runs; returns the EIP the #GP (the only exception expected) was raised at, relative to the code.</summary>
    private static long RunToGp(GuestHarness g)
    {
        g.Io.PortWrites.Clear();
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), $"exception {g.State.ExceptionVector}");
        var reports = g.Io.PortWrites.Where(w => w.Port == ReportPort).Select(w => w.Value).ToList();
        Assert.That(reports, Is.EqualTo(new[] { 13UL }), "one #GP");
        byte[] frame = new byte[8];
        g.Memory.Read(0x70000 - 24, frame); // SS, ESP, EFLAGS, CS, EIP, error code
        Assert.That(BitConverter.ToUInt32(frame, 0), Is.Zero, "error code 0");
        return BitConverter.ToUInt32(frame, 4) - (long)Code;
    }

    private static (byte[] Code, long AccessOffset, long HltOffset) Build(Action<Assembler> access, Action<Assembler>? prologue = null)
    {
        var a = new Assembler(32);
        prologue?.Invoke(a);
        var at = a.CreateLabel();
        a.Label(ref at);
        access(a);
        a.hlt();
        byte[] code = GuestHarness.Assemble(a, Code);
        var decoder = Decoder.Create(32, code, Code);
        var list = new List<Instruction>();
        while (decoder.IP < Code + (ulong)code.Length)
        {
            list.Add(decoder.Decode());
        }
        int prologueCount = 0;
        if (prologue is not null)
        {
            var p = new Assembler(32);
            prologue(p);
            prologueCount = p.Instructions.Count;
        }
        return (code, (long)(list[prologueCount].IP - Code), (long)(list[^1].IP - Code));
    }

    [TestCase("in al, 0x61", true)]
    [TestCase("in al, 0x60", false)]
    [TestCase("out 0x61, al", true)]
    [TestCase("out dx, ax (0x61, 0x62 denied)", false)]
    [TestCase("out dx, ax (0x61, 0x62)", true)]
    [TestCase("in eax, dx (0x3FE..0x401, across a bitmap byte)", true)]
    [TestCase("in eax, dx (0x3FE..0x401, 0x401 denied)", false)]
    [TestCase("rep outsb (0x61)", true)]
    [TestCase("rep insb (0x60)", false)]
    public void Cpl3_BelowIopl_UsesTheBitmap(string form, bool passes)
    {
        using var g = new GuestHarness();
        ushort[] allowed = form switch
        {
            "out dx, ax (0x61, 0x62)" => [0x61, 0x62],
            "in eax, dx (0x3FE..0x401, across a bitmap byte)" => [0x3FE, 0x3FF, 0x400, 0x401],
            "in eax, dx (0x3FE..0x401, 0x401 denied)" => [0x3FE, 0x3FF, 0x400],
            _ => [0x61],
        };
        ushort dx16 = form.Contains("0x3FE", StringComparison.Ordinal) ? (ushort)0x3FE : form.Contains("0x60", StringComparison.Ordinal) ? (ushort)0x60 : (ushort)0x61;
        (byte[] code, long accessOffset, long hltOffset) = Build(a =>
        {
            switch (form)
            {
                case "in al, 0x61": a.@in(al, 0x61); break;
                case "in al, 0x60": a.@in(al, 0x60); break;
                case "out 0x61, al": a.@out(0x61, al); break;
                case var f when f.StartsWith("out dx, ax", StringComparison.Ordinal): a.@out(dx, ax); break;
                case var f when f.StartsWith("in eax, dx", StringComparison.Ordinal): a.@in(eax, dx); break;
                case "rep outsb (0x61)": a.rep.outsb(); break;
                case "rep insb (0x60)": a.rep.insb(); break;
            }
        }, a =>
        {
            a.mov(edx, dx16);
            a.mov(ecx, 3);
            a.mov(esi, 0x50000);
            a.mov(edi, 0x50000);
        });
        Setup(g, code, iopl: 0, tssLimit: (uint)(BitmapOffset + 0x2000), allowed);
        long eip = RunToGp(g);
        Assert.That(eip, Is.EqualTo(passes ? hltOffset : accessOffset), passes ? "the access passed, HLT faulted" : "the access faulted");
        int writes = g.Io.PortWrites.Count(w => w.Port != ReportPort);
        if (form.StartsWith("rep outsb", StringComparison.Ordinal))
        {
            Assert.That(writes, Is.EqualTo(3), "three bytes out");
        }
        if (!passes)
        {
            Assert.That(writes, Is.Zero, "nothing reached a denied port");
        }
    }

    [Test]
    public void Cpl3_AtIopl3_IgnoresTheBitmap()
    {
        using var g = new GuestHarness();
        (byte[] code, _, long hltOffset) = Build(a => a.@in(al, 0x60));
        Setup(g, code, iopl: 3, tssLimit: (uint)(BitmapOffset + 0x2000));
        Assert.That(RunToGp(g), Is.EqualTo(hltOffset));
    }

    [Test]
    public void BitmapBeyondTheTssLimit_Faults()
    {
        using var g = new GuestHarness();
        (byte[] code, long accessOffset, _) = Build(a => a.@in(al, 0x61));
        // Port 0x61's byte is at bitmap offset 0xC, i.e. TSS offset 0x74; the two bytes read need a limit of 0x75.
        Setup(g, code, iopl: 0, tssLimit: 0x74, 0x61);
        Assert.That(RunToGp(g), Is.EqualTo(accessOffset));
        using var g2 = new GuestHarness();
        (code, _, long hltOffset) = Build(a => a.@in(al, 0x61));
        Setup(g2, code, iopl: 0, tssLimit: 0x75, 0x61);
        Assert.That(RunToGp(g2), Is.EqualTo(hltOffset));
    }
}
