using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// Segment limit and type checks on data accesses (SDM vol. 3 5.3–5.4, vol. 2 "Protected Mode Exceptions" of MOV,
/// PUSH, POP, STOS): limits of expand-up and expand-down segments (B bit for the upper bound), read-only data, code
/// segments (execute-only and readable), null selectors, SS-based accesses raising #SS(0), real mode's 64 KiB limit
/// and unreal mode, and non-canonical addresses in 64-bit mode (#GP(0), #SS(0) through RSP/RBP).
/// Each fault is reported by a handler that writes its vector to port 0x80; the pushed error code and EIP are read
/// from the handler's stack.
/// </summary>
[TestFixture]
public sealed class SegmentCheckTests
{
    private const ulong Gdt = 0x2000;
    private const ulong Idt = 0x3000;
    private const ulong Handlers = 0x4000;
    private const ulong CodeBase = 0x10000;
    private const byte Port = 0x80;

    private const ushort FlatCode = 0x08;
    private const ushort FlatData = 0x10;
    private const ushort Limited = 0x18;      // base 0x20000, limit 0xFFF, read/write
    private const ushort ReadOnly = 0x20;     // base 0x20000, limit 0xFFFF, read-only
    private const ushort ExpandDown32 = 0x28; // base 0, limit 0xFFF, expand-down, B=1: offsets 0x1000..0xFFFFFFFF
    private const ushort ReadableCode = 0x38; // code, readable, base 0x20000
    private const ushort ExpandDown16 = 0x40; // base 0x20000, limit 0xFFF, expand-down, B=0: offsets 0x1000..0xFFFF
    private const ushort SmallStack = 0x48;   // base 0x30000, limit 0x1FFF, read/write, B=1

    private static ulong Descriptor(ulong baseAddress, uint limit, uint type, bool big, bool granular = false)
    {
        ulong d = (limit & 0xFFFF) | ((baseAddress & 0xFF_FFFF) << 16) | ((ulong)(type | 0x90) << 40)
            | ((ulong)((limit >> 16) & 0xF) << 48) | ((baseAddress >> 24) << 56);
        if (big)
        {
            d |= 1UL << 54;
        }
        if (granular)
        {
            d |= 1UL << 55;
        }
        return d;
    }

    private static void WriteGdt(GuestHarness g)
    {
        g.WriteU64(Gdt, 0);
        g.WriteU64(Gdt + FlatCode, 0x00CF_9A00_0000_FFFF);
        g.WriteU64(Gdt + FlatData, 0x00CF_9200_0000_FFFF);
        g.WriteU64(Gdt + Limited, Descriptor(0x20000, 0xFFF, 0x3, big: true));
        g.WriteU64(Gdt + ReadOnly, Descriptor(0x20000, 0xFFFF, 0x1, big: true));
        g.WriteU64(Gdt + ExpandDown32, Descriptor(0, 0xFFF, 0x7, big: true));
        g.WriteU64(Gdt + ReadableCode, Descriptor(0x20000, 0xFFFF, 0xB, big: true));
        g.WriteU64(Gdt + ExpandDown16, Descriptor(0x20000, 0xFFF, 0x7, big: false));
        g.WriteU64(Gdt + SmallStack, Descriptor(0x30000, 0x1FFF, 0x3, big: true));
    }

    /// <summary>Flat 32-bit protected mode at CPL 0 with reporting handlers for vectors 0–31 (32-bit interrupt gates).</summary>
    private static void Protected32(GuestHarness g, byte[] code)
    {
        WriteGdt(g);
        for (int v = 0; v < 32; v++)
        {
            ulong handler = Handlers + (ulong)v * 16;
            byte vector = (byte)v;
            g.Memory.Write(handler, GuestHarness.Assemble(32, handler, a =>
            {
                a.mov(al, vector);
                a.@out(Port, al);
                a.hlt();
            }));
            g.WriteU64(Idt + (ulong)v * 8, (handler & 0xFFFF) | ((ulong)FlatCode << 16) | (0x8EUL << 40) | ((handler >> 16) << 48));
        }
        g.Memory.Write(CodeBase, code);
        g.State.SetFlatLongMode(CodeBase, GuestHarness.StackTop);
        g.State.Efer = 0;
        g.State.Cr0 = 0x11;
        g.State.Cr4 = 0x200; // OSFXSR, for the SSE case
        g.State.Gdtr = new DescriptorTableRegister { Base = Gdt, Limit = 0x4F };
        g.State.Idtr = new DescriptorTableRegister { Base = Idt, Limit = 32 * 8 - 1 };
        for (int i = 0; i < 6; i++)
        {
            g.State.Segments[i] = new SegmentRegister
            {
                Selector = i == 1 ? FlatCode : FlatData,
                Limit = 0xFFFF_FFFF,
                Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | (i == 1 ? 0xB : 3)),
            };
        }
        g.State.Gpr[4] = GuestHarness.StackTop;
        g.State.Rflags = 2;
    }

    private const ushort UserCode = 0x50 | 3;
    private const ushort UserSmallStack = 0x58 | 3;
    private const ulong Tss = 0x6000;

    /// <summary>CPL 3 with SS a ring-3 stack of limit 0x1FFF at 0x30000 (ESP 0x1000); faults switch to the TSS's ring-0 stack.</summary>
    private static void Ring3OnSmallStack(GuestHarness g)
    {
        g.WriteU64(Gdt + 0x50, 0x00CF_FA00_0000_FFFF);
        g.WriteU64(Gdt + 0x58, Descriptor(0x30000, 0x1FFF, 0x3, big: true) | (3UL << 45));
        g.State.Gdtr = new DescriptorTableRegister { Base = Gdt, Limit = 0x5F };
        g.State.Segments[(int)SegmentIndex.Cs] = new SegmentRegister { Selector = UserCode, Limit = 0xFFFF_FFFF, Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | (3 << 5) | 0xB) };
        g.State.Segments[(int)SegmentIndex.Ss] = new SegmentRegister { Selector = UserSmallStack, Base = 0x30000, Limit = 0x1FFF, Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.DB | (3 << 5) | 3) };
        g.State.Gpr[4] = 0x1000;
        g.State.Tr = new SegmentRegister { Selector = 0x48, Base = Tss, Limit = 0x67, Attributes = SegmentRegister.P | 0xB };
        g.Memory.Write(Tss + 4, BitConverter.GetBytes(0x70000u));
        g.Memory.Write(Tss + 8, BitConverter.GetBytes((ushort)FlatData));
    }

    /// <summary>The 32-bit code of a case: load the segment under test, set registers, then the access.</summary>
    private static byte[] Case32(Action<Assembler> body) => GuestHarness.Assemble(32, CodeBase, a =>
    {
        body(a);
        a.mov(ecx, 0x600D);
        a.hlt();
    });

    private static void LoadSeg(Assembler a, AssemblerRegisterSegment seg, ushort selector)
    {
        a.mov(eax, (uint)selector);
        a.mov(seg, ax);
    }

    /// <summary>Runs to HLT; returns the reported vector (or -1) and, for a fault, the pushed error code and EIP.</summary>
    private static (int Vector, uint Error, uint Eip) RunAndReport(GuestHarness g, bool errorCode = true)
    {
        g.Io.PortWrites.Clear();
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), $"exception {g.State.ExceptionVector} pending={g.State.ExceptionPending} at {g.State.Rip:X}");
        if (g.Io.PortWrites.Count == 0)
        {
            return (-1, 0, 0);
        }
        Assert.That(g.Io.PortWrites, Has.Count.EqualTo(1), "one exception");
        ulong sp = g.State.Segments[(int)SegmentIndex.Ss].Base + (g.State.Gpr[4] & uint.MaxValue);
        byte[] frame = new byte[8];
        g.Memory.Read(sp, frame);
        uint error = errorCode ? BitConverter.ToUInt32(frame, 0) : 0;
        uint eip = BitConverter.ToUInt32(frame, errorCode ? 4 : 0);
        return ((int)g.Io.PortWrites[0].Value, error, eip);
    }

    private static readonly Dictionary<string, (Action<Assembler> Body, int Vector)> Cases32 = new()
    {
        // Expand-up limit 0xFFF: the last byte of the access must lie at or below the limit.
        ["limited: dword at limit-3 reads"] = (a => { LoadSeg(a, ds, Limited); a.mov(eax, __dword_ptr[0xFFC]); }, -1),
        ["limited: dword at limit-2 faults"] = (a => { LoadSeg(a, ds, Limited); a.mov(eax, __dword_ptr[0xFFD]); }, 13),
        ["limited: byte store at limit"] = (a => { LoadSeg(a, es, Limited); a.mov(__byte_ptr.es[0xFFF], 1); }, -1),
        ["limited: word store past limit"] = (a => { LoadSeg(a, es, Limited); a.mov(__word_ptr.es[0xFFF], 1); }, 13),
        ["limited: add to memory past limit"] = (a => { LoadSeg(a, fs, Limited); a.mov(ebx, 0x2000); a.add(__dword_ptr.fs[ebx], eax); }, 13),
        ["limited: lock inc past limit"] = (a => { LoadSeg(a, gs, Limited); a.@lock.inc(__dword_ptr.gs[0x1000]); }, 13),
        ["limited: bts with a register bit offset past limit"] = (a => { LoadSeg(a, ds, Limited); a.mov(ebx, 0x8000); a.bts(__dword_ptr[0], ebx); }, 13),
        ["limited: bts with a register bit offset inside"] = (a => { LoadSeg(a, ds, Limited); a.mov(ebx, 0x7FE0); a.bts(__dword_ptr[0], ebx); }, -1),
        ["limited: movdqu past limit"] = (a => { LoadSeg(a, ds, Limited); a.movdqu(xmm0, __xmmword_ptr[0xFF8]); }, 13),
        ["limited: fld qword past limit"] = (a => { LoadSeg(a, ds, Limited); a.fld(__qword_ptr[0xFFC]); }, 13),
        ["limited: lgdt-sized far pointer past limit"] = (a => { LoadSeg(a, ds, Limited); a.lfs(ebx, __fword_ptr[0xFFC]); }, 13),
        // Read-only data: reads pass, writes (and read-modify-writes) fault.
        ["read-only: read"] = (a => { LoadSeg(a, ds, ReadOnly); a.mov(eax, __dword_ptr[0x100]); }, -1),
        ["read-only: write"] = (a => { LoadSeg(a, ds, ReadOnly); a.mov(__dword_ptr[0x100], eax); }, 13),
        ["read-only: inc"] = (a => { LoadSeg(a, ds, ReadOnly); a.inc(__dword_ptr[0x100]); }, 13),
        ["read-only: stosb"] = (a => { LoadSeg(a, es, ReadOnly); a.mov(edi, 0x100); a.stosb(); }, 13),
        ["read-only: cmp reads"] = (a => { LoadSeg(a, ds, ReadOnly); a.cmp(__dword_ptr[0x100], 5); }, -1),
        // Expand-down: offsets above the limit are valid, up to 4 GiB (B=1) or 64 KiB (B=0).
        ["expand-down 32: at limit faults"] = (a => { LoadSeg(a, ds, ExpandDown32); a.mov(eax, __byte_ptr[0xFFF]); }, 13),
        ["expand-down 32: above limit reads"] = (a => { LoadSeg(a, ds, ExpandDown32); a.mov(eax, __dword_ptr[0x1000]); }, -1),
        ["expand-down 32: straddling the limit faults"] = (a => { LoadSeg(a, ds, ExpandDown32); a.mov(eax, __dword_ptr[0xFFE]); }, 13),
        ["expand-down 16: word at 0xFFFE reads"] = (a => { LoadSeg(a, ds, ExpandDown16); a.mov(ax, __word_ptr[0xFFFE]); }, -1),
        ["expand-down 16: dword at 0xFFFE faults"] = (a => { LoadSeg(a, ds, ExpandDown16); a.mov(eax, __dword_ptr[0xFFFE]); }, 13),
        ["expand-down 16: above 64 KiB faults"] = (a => { LoadSeg(a, ds, ExpandDown16); a.mov(eax, __dword_ptr[0x10000]); }, 13),
        // Code segments: execute-only cannot be read, readable code cannot be written.
        ["code: execute-only read through CS"] = (a => a.mov(eax, __dword_ptr.cs[0x50000]), 13),
        ["code: readable read"] = (a => { LoadSeg(a, es, ReadableCode); a.mov(eax, __dword_ptr.es[0x10]); }, -1),
        ["code: readable write"] = (a => { LoadSeg(a, es, ReadableCode); a.mov(__dword_ptr.es[0x10], eax); }, 13),
        ["code: write through a CS override"] = (a => a.mov(__dword_ptr.cs[0x50000], eax), 13),
        ["code: read through a CS override"] = (a => a.mov(eax, __dword_ptr.cs[0x50000]), -1),
        // A null selector loads (in DS/ES/FS/GS) but any access through it faults.
        ["null: read through DS"] = (a => { a.xor(eax, eax); a.mov(ds, ax); a.mov(eax, __dword_ptr[0x100]); }, 13),
        ["null: write through GS"] = (a => { a.xor(eax, eax); a.mov(gs, ax); a.mov(__dword_ptr.gs[0x100], eax); }, 13),
        ["null: movsd from DS"] = (a => { a.xor(eax, eax); a.mov(ds, ax); a.mov(esi, 0x100); a.mov(edi, 0x50000); a.movsd(); }, 13),
        // SS-based accesses: #SS(0) for limit violations (explicit [EBP] operands, PUSH, POP, CALL). These run at CPL 3
        // on a small ring-3 stack, so the fault's frame goes to the TSS's ring-0 stack rather than the faulting one.
        ["stack: [ebp] past limit"] = (a => { a.mov(ebp, 0x1FFE); a.mov(eax, __dword_ptr[ebp]); }, 12),
        ["stack: [ebp] inside"] = (a => { a.mov(ebp, 0x1FFC); a.mov(eax, __dword_ptr[ebp]); }, -1),
        ["stack: pop past limit"] = (a => { a.mov(esp, 0x1FFE); a.pop(eax); }, 12),
        ["stack: pop at limit-3"] = (a => { a.mov(esp, 0x1FFC); a.pop(eax); }, -1),
        ["stack: push past limit"] = (a => { a.mov(esp, 0x2002); a.push(eax); }, 12),
        ["stack: push word past limit"] = (a => { a.mov(esp, 0x2001); a.push(ax); }, 12),
        ["stack: push inside"] = (a => { a.mov(esp, 0x2000); a.push(eax); }, -1),
        ["stack: call past limit"] = (a => { a.mov(esp, 0x2003); var l = a.CreateLabel(); a.call(l); a.Label(ref l); }, 12),
        ["stack: ds override of [ebp] is not SS"] = (a => { a.mov(ebp, 0x1FFE); a.mov(eax, __dword_ptr.ds[ebp + 0x100000]); }, -1),
    };

    public static IEnumerable<string> Names32() => Cases32.Keys;

    [TestCaseSource(nameof(Names32))]
    public void Protected32_DataAccess_IsChecked(string name)
    {
        using var g = new GuestHarness();
        (Action<Assembler> body, int vector) = Cases32[name];
        byte[] code = Case32(body);
        Protected32(g, code);
        // The faulting instruction is the last one before "mov ecx, 0x600D".
        var decoder = Decoder.Create(32, code, CodeBase);
        ulong faultEip = 0;
        ulong previous = 0;
        while (decoder.IP < CodeBase + (ulong)code.Length)
        {
            Instruction i = decoder.Decode();
            if (i.Code == Code.Mov_r32_imm32 && i.Immediate32 == 0x600D)
            {
                faultEip = previous;
                break;
            }
            previous = i.IP;
        }
        if (name.StartsWith("stack:", StringComparison.Ordinal))
        {
            Ring3OnSmallStack(g);
        }
        if (name.Contains("execute-only", StringComparison.Ordinal))
        {
            // Execute-only code cannot be loaded into a data segment register, only reached through CS.
            g.State.Segments[(int)SegmentIndex.Cs].Attributes = (ushort)((g.State.Segments[(int)SegmentIndex.Cs].Attributes & ~0xF) | 0x9);
        }
        (int reported, uint error, uint eip) = RunAndReport(g);
        if (vector < 0 && name.StartsWith("stack:", StringComparison.Ordinal))
        {
            // At CPL 3 the closing HLT itself raises #GP(0): the access passed when that is the only fault.
            Assert.That(reported, Is.EqualTo(13), name);
            Assert.That(eip, Is.EqualTo((uint)(CodeBase + (ulong)code.Length - 1)), "the #GP is the HLT's");
            Assert.That(g.State.Gpr[1] & 0xFFFF, Is.EqualTo(0x600DUL), "ran to the end");
            return;
        }
        Assert.That(reported, Is.EqualTo(vector), name);
        if (vector >= 0)
        {
            Assert.Multiple(() =>
            {
                Assert.That(error, Is.Zero, "error code 0");
                Assert.That(eip, Is.EqualTo((uint)faultEip), "the fault is reported at the access");
                Assert.That(g.State.Gpr[1] & 0xFFFF, Is.Not.EqualTo(0x600DUL), "the instruction after it did not run");
            });
        }
        else
        {
            Assert.That(g.State.Gpr[1], Is.EqualTo(0x600DUL), "ran to the end");
        }
    }

    /// <summary>A REP STOSD that runs into ES's limit stops at the first element past it, restartable: ECX and EDI count the stored ones.</summary>
    [Test]
    public void RepStos_IntoTheLimit_FaultsAtTheFirstElementOutside()
    {
        using var g = new GuestHarness();
        byte[] code = Case32(a =>
        {
            LoadSeg(a, es, Limited);
            a.mov(ecx, 0x500);
            a.xor(edi, edi);
            a.mov(eax, 0x11223344);
            a.rep.stosd();
        });
        Protected32(g, code);
        (int vector, uint error, _) = RunAndReport(g);
        Assert.Multiple(() =>
        {
            Assert.That(vector, Is.EqualTo(13));
            Assert.That(error, Is.Zero);
            Assert.That(g.State.Gpr[7] & uint.MaxValue, Is.EqualTo(0x1000UL), "EDI at the first element past the limit");
            Assert.That(g.State.Gpr[1] & uint.MaxValue, Is.EqualTo(0x100UL), "ECX counts the elements left");
            Assert.That(g.ReadU64(0x20FF8), Is.EqualTo(0x1122334411223344UL), "the elements inside were stored");
            Assert.That(g.ReadU64(0x21000), Is.Zero, "nothing past the limit");
        });
    }

    /// <summary>Flat segments keep the fast path: nothing is checked and a 4 GiB-limit access anywhere works.</summary>
    [Test]
    public void FlatSegments_AreNotChecked()
    {
        using var g = new GuestHarness();
        byte[] code = Case32(a =>
        {
            a.mov(ebx, 0x50000);
            a.mov(__dword_ptr[ebx], 0x1234);
            a.mov(eax, __dword_ptr[ebx]);
            a.push(eax);
            a.pop(edx);
        });
        Protected32(g, code);
        (int vector, _, _) = RunAndReport(g);
        Assert.Multiple(() =>
        {
            Assert.That(vector, Is.EqualTo(-1));
            Assert.That(g.State.Gpr[2], Is.EqualTo(0x1234UL));
        });
    }

    /// <summary>Real mode: an IVT handler per vector at 0x4000 + 16 v reports the vector; CS:IP of the fault is on the stack.</summary>
    private static void RealMode(GuestHarness g, byte[] code, uint dataLimit = 0xFFFF)
    {
        for (int v = 0; v < 32; v++)
        {
            ulong handler = Handlers + (ulong)v * 16;
            byte vector = (byte)v;
            g.Memory.Write(handler, GuestHarness.Assemble(16, handler & 0xF, a =>
            {
                a.mov(al, vector);
                a.@out(Port, al);
                a.hlt();
            }));
            // IVT entry: offset (handler & 0xF), segment handler >> 4.
            g.Memory.Write((ulong)v * 4, BitConverter.GetBytes((uint)((handler & 0xF) | ((handler >> 4) << 16))));
        }
        g.Memory.Write(CodeBase, code);
        g.State.Reset();
        g.State.Idtr = new DescriptorTableRegister { Base = 0, Limit = 0x3FF };
        g.State.Segments[(int)SegmentIndex.Cs] = new SegmentRegister { Selector = (ushort)(CodeBase >> 4), Base = CodeBase, Limit = 0xFFFF, Attributes = SegmentRegister.S | SegmentRegister.P | 0xB };
        foreach (int i in new[] { 0, 2, 3, 4, 5 })
        {
            g.State.Segments[i] = new SegmentRegister { Selector = 0x2000, Base = 0x20000, Limit = i == 3 ? dataLimit : 0xFFFF, Attributes = SegmentRegister.S | SegmentRegister.P | 3 };
        }
        g.State.Rip = 0;
        g.State.Gpr[4] = 0xFF00;
        g.State.Rflags = 2;
    }

    [TestCase("word at 0xFFFF", 13)]
    [TestCase("byte at 0xFFFF", -1)]
    [TestCase("dword at 0xFFFC", -1)]
    [TestCase("a32 offset above 64 KiB", 13)]
    [TestCase("[bp] word at 0xFFFF", 12)]
    [TestCase("unreal: a32 offset above 64 KiB", -1)]
    public void RealMode_64KiBLimit_IsChecked(string form, int vector)
    {
        using var g = new GuestHarness();
        byte[] code = GuestHarness.Assemble(16, 0, a =>
        {
            switch (form)
            {
                case "word at 0xFFFF": a.mov(ax, __word_ptr[0xFFFF]); break;
                case "byte at 0xFFFF": a.mov(al, __byte_ptr[0xFFFF]); break;
                case "dword at 0xFFFC": a.mov(eax, __dword_ptr[0xFFFC]); break;
                case "a32 offset above 64 KiB" or "unreal: a32 offset above 64 KiB": a.mov(ebx, 0x10000); a.mov(eax, __dword_ptr[ebx]); break;
                case "[bp] word at 0xFFFF": a.mov(bp, 0xFFFF); a.mov(ax, __word_ptr[bp]); break;
            }
            a.mov(cx, 0x600D);
            a.hlt();
        });
        RealMode(g, code, form.StartsWith("unreal", StringComparison.Ordinal) ? 0xFFFF_FFFF : 0xFFFF);
        (int reported, _, _) = RunAndReport(g, errorCode: false);
        Assert.That(reported, Is.EqualTo(vector), form);
        Assert.That((g.State.Gpr[1] & 0xFFFF) == 0x600D, Is.EqualTo(vector < 0), "the code after the access ran only without a fault");
    }

    /// <summary>64-bit mode: no limits, but a non-canonical address is #GP(0), or #SS(0) when it is SS-based (RSP/RBP, PUSH/POP).</summary>
    [TestCase("mov rax, [rbx]", 13)]
    [TestCase("mov rax, [rbp]", 12)]
    [TestCase("mov [rsp+8], rax", 12)]
    [TestCase("push rax", 12)]
    [TestCase("pop rax", 12)]
    [TestCase("mov rax, [rbx] canonical", -1)]
    public void LongMode_NonCanonical_RaisesGpOrSs(string form, int vector)
    {
        using var g = new GuestHarness();
        const ulong gdt = 0x1000, idt = 0x2000, handlers = 0x3000;
        const ulong bad = 0x0000_8000_0000_0000;
        g.Load64(a =>
        {
            switch (form)
            {
                case "mov rax, [rbx]": a.mov(rbx, bad); a.mov(rax, __qword_ptr[rbx]); break;
                case "mov rax, [rbp]": a.mov(rbp, bad); a.mov(rax, __qword_ptr[rbp]); break;
                case "mov [rsp+8], rax": a.mov(rsi, rsp); a.mov(rsp, bad); a.mov(__qword_ptr[rsp + 8], rax); a.mov(rsp, rsi); break;
                case "push rax": a.mov(rsi, rsp); a.mov(rsp, bad + 8); a.push(rax); a.mov(rsp, rsi); break;
                case "pop rax": a.mov(rsi, rsp); a.mov(rsp, bad); a.pop(rax); a.mov(rsp, rsi); break;
                case "mov rax, [rbx] canonical": a.mov(rbx, 0x50000); a.mov(rax, __qword_ptr[rbx]); break;
            }
            a.mov(ecx, 0x600D);
            a.hlt();
        });
        g.InstallReportingIdt(gdt, idt, handlers, 32, Port);
        // #SS and #GP go through IST1, a good stack, as the faulting RSP may be the bad one.
        const ulong tss = 0x6000;
        g.WriteU64(gdt + 24, 0x0000_8900_0000_0067 | ((tss & 0xFF_FFFF) << 16));
        g.WriteU64(gdt + 32, 0);
        g.State.Gdtr = new DescriptorTableRegister { Base = gdt, Limit = 39 };
        g.State.Tr = new SegmentRegister { Selector = 24, Base = tss, Limit = 0x67, Attributes = SegmentRegister.P | 0xB };
        g.WriteU64(tss + 0x24, 0xE0000);
        foreach (int v in new[] { 12, 13 })
        {
            ulong lo = g.ReadU64(idt + (ulong)v * 16);
            g.WriteU64(idt + (ulong)v * 16, lo | (1UL << 32));
        }
        g.Io.PortWrites.Clear();
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), $"exception {g.State.ExceptionVector}");
        int reported = g.Io.PortWrites.Count == 0 ? -1 : (int)g.Io.PortWrites[0].Value;
        Assert.That(reported, Is.EqualTo(vector), form);
        if (vector >= 0)
        {
            Assert.That(g.ReadU64(0xE0000 - 48), Is.Zero, "error code 0");
        }
    }
}
