using System.Buffers.Binary;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.EndToEnd.Cpu;

/// <summary>
/// A self-checking multiboot (a.out kludge) test kernel in the style of kvm-unit-tests, assembled with Iced: a fixed
/// layout loaded at 1 MiB with a GDT, 32- and 64-bit IDTs whose stubs share one recording handler, identity page
/// tables and a TSS, an entry that leaves the firmware's state behind, and the test's own code. The kernel reports
/// through isa-debug-exit (port 0xF4): <see cref="Pass"/> when every check held, the number of the first failed check
/// (2–0x3F), or 0x40 + vector for an exception nobody expected. The process exit status is (value &lt;&lt; 1) | 1.
/// </summary>
internal sealed class MultibootKernel
{
    public const uint LoadBase = 0x100000;
    public const uint Entry = 0x101000;
    public const uint Gdt = 0x102000;
    public const uint GdtPointer = 0x102F00;
    public const uint IdtPointer32 = 0x102F10;
    public const uint IdtPointer64 = 0x102F20;
    public const uint Idt64 = 0x103000;
    public const uint Idt32 = 0x104000;
    public const uint Stubs64 = 0x105000;
    public const uint Stubs32 = 0x106000;
    public const uint Handler64 = 0x107000;
    public const uint Handler32 = 0x107800;
    /// <summary>Prints RAX (64-bit code) as hex and a newline on the debug console (port 0xE9), saving every register.</summary>
    public const uint PrintHex64 = 0x107C00;
    /// <summary>Prints EAX (32-bit code) likewise.</summary>
    public const uint PrintHex32 = 0x107E00;
    public const uint Pml4 = 0x108000;
    public const uint Pdpt = 0x109000;
    public const uint Pd0 = 0x10A000;
    public const uint Pd3 = 0x10B000;
    /// <summary>4 KiB page table for linear 0x400000–0x5FFFFF (identity, user, writable), for paging tests to edit.</summary>
    public const uint Pt = 0x10C000;
    public const uint Tss = 0x10E000;
    public const uint LongModeEntry = 0x10F000;
    /// <summary>Where the test's code starts (32- or 64-bit, per <see cref="Bitness"/>).</summary>
    public const uint Test = 0x110000;
    /// <summary>Room for code blobs the test copies elsewhere (real-mode code, AP trampolines).</summary>
    public const uint Blob = 0x118000;
    /// <summary>The test's data page(s), 64 KiB.</summary>
    public const uint Data = 0x120000;
    public const uint End = 0x130000;

    // The recording handler's mailbox, inside Data.
    public const uint Counters = Data + 0xA00; // one dword per vector
    public const uint ExcVector = Data + 0xF00;
    public const uint ExcError = Data + 0xF08;
    public const uint ExcCr2 = Data + 0xF10;
    public const uint ExcRip = Data + 0xF18;
    /// <summary>Set before an expected exception: the handler resumes there (once) instead of failing the test.</summary>
    public const uint Recover = Data + 0xF28;

    public const uint StackTop = 0x1F0000;
    public const uint Rsp0 = 0x1E0000;
    public const uint Ist1 = 0x1D0000;

    public const ushort DebugExitPort = 0xF4;
    public const ushort DebugConsolePort = 0xE9;
    public const byte Pass = 1;

    // Selectors; SYSCALL/SYSRET need kernel code64 + 8 = kernel data and user code32 + 8 = user data, + 16 = user code64.
    public const ushort Code32 = 0x08;
    public const ushort Code64 = 0x10;
    public const ushort DataSel = 0x18;
    public const ushort Code16 = 0x20;
    public const ushort Data16 = 0x28;
    public const ushort UserCode32 = 0x30;
    public const ushort UserData = 0x38;
    public const ushort UserCode64 = 0x40;
    public const ushort TssSel = 0x48;
    public const ushort NotPresentData = 0x58;

    private static readonly int[] s_withErrorCode = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];

    private readonly byte[] _image = new byte[End - LoadBase];

    /// <param name="bitness">32: the test runs in flat 32-bit protected mode; 64: in long mode with paging on.</param>
    public MultibootKernel(int bitness)
    {
        Bitness = bitness;
        WriteHeader();
        WriteGdt();
        WriteIdts();
        WritePageTables();
        WriteTss();
        WriteEntry();
        WriteHandlers();
        WritePrintHex();
    }

    public int Bitness { get; }

    public byte[] Image => _image;

    /// <summary>Assembles the test body at <see cref="Test"/>.</summary>
    public MultibootKernel Body(Action<Assembler> emit) => Code(Bitness, Test, emit);

    /// <summary>Assembles <paramref name="emit"/> for <paramref name="bitness"/> at <paramref name="address"/> inside the image.</summary>
    public MultibootKernel Code(int bitness, uint address, Action<Assembler> emit) => CodeAt(bitness, address, address, emit);

    /// <summary>Assembles code that runs at <paramref name="runAt"/> (where the test copies it) into the image at <paramref name="placeAt"/>.</summary>
    public MultibootKernel CodeAt(int bitness, uint placeAt, uint runAt, Action<Assembler> emit)
    {
        var a = new Assembler(bitness);
        emit(a);
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), runAt);
        Put(placeAt, stream.ToArray());
        return this;
    }

    public void Put(uint address, ReadOnlySpan<byte> bytes)
    {
        if (address < LoadBase || address + bytes.Length > End)
        {
            throw new ArgumentOutOfRangeException(nameof(address));
        }
        bytes.CopyTo(_image.AsSpan((int)(address - LoadBase)));
    }

    public void Put64(uint address, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        Put(address, b);
    }

    /// <summary>Ends the test with <paramref name="code"/> on the debug-exit port (clobbers AL).</summary>
    public static void Exit(Assembler a, byte code)
    {
        Label stop = a.CreateLabel();
        a.mov(al, code);
        a.@out((byte)DebugExitPort, al);
        a.Label(ref stop);
        a.cli();
        a.hlt();
        a.jmp(stop);
    }

    /// <summary>Jumps over a failure exit with <paramref name="code"/> when the flags say the check held.</summary>
    public static void FailUnless(Assembler a, Action<Assembler, Label> jumpIfOk, byte code)
    {
        Label ok = a.CreateLabel();
        jumpIfOk(a, ok);
        Exit(a, code);
        a.Label(ref ok);
    }

    /// <summary>
    /// Fails with <paramref name="code"/>, printing the value found, unless the qword at <paramref name="address"/>
    /// equals <paramref name="expected"/> (64-bit code; clobbers RAX, RBX).
    /// </summary>
    public static void Expect64(Assembler a, uint address, ulong expected, byte code)
    {
        Label ok = a.CreateLabel();
        a.mov(rax, __qword_ptr[address]);
        a.mov(rbx, expected);
        a.cmp(rax, rbx);
        a.je(ok);
        a.call(PrintHex64);
        Exit(a, code);
        a.Label(ref ok);
    }

    /// <summary>Fails with <paramref name="code"/>, printing the value found, unless the dword at <paramref name="address"/> equals <paramref name="expected"/> (32-bit code; clobbers EAX).</summary>
    public static void Expect32(Assembler a, uint address, uint expected, byte code)
    {
        Label ok = a.CreateLabel();
        a.mov(eax, __dword_ptr[address]);
        a.cmp(eax, expected);
        a.je(ok);
        a.call(PrintHex32);
        Exit(a, code);
        a.Label(ref ok);
    }

    private void WriteHeader()
    {
        const uint magic = 0x1BADB002;
        const uint flags = 1u << 16; // the address fields below are valid (a.out kludge)
        Span<byte> h = _image;
        BinaryPrimitives.WriteUInt32LittleEndian(h, magic);
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(h[8..], unchecked(0u - magic - flags));
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], LoadBase); // header_addr
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], LoadBase); // load_addr
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], 0);        // load_end_addr: the whole file
        BinaryPrimitives.WriteUInt32LittleEndian(h[24..], 0);        // bss_end_addr: none
        BinaryPrimitives.WriteUInt32LittleEndian(h[28..], Entry);
    }

    private void WriteGdt()
    {
        ulong[] gdt =
        [
            0,
            0x00CF_9A00_0000_FFFF, // 0x08 code32
            0x00AF_9A00_0000_FFFF, // 0x10 code64
            0x00CF_9200_0000_FFFF, // 0x18 data
            0x0000_9A00_0000_FFFF, // 0x20 code16, base 0, limit 64 KiB
            0x0000_9200_0000_FFFF, // 0x28 data16
            0x00CF_FA00_0000_FFFF, // 0x30 user code32
            0x00CF_F200_0000_FFFF, // 0x38 user data
            0x00AF_FA00_0000_FFFF, // 0x40 user code64
            TssLow(), 0,           // 0x48 TSS (16 bytes in long mode)
            0x00CF_1200_0000_FFFF, // 0x58 data, not present
        ];
        for (int i = 0; i < gdt.Length; i++)
        {
            Put64(Gdt + (uint)(8 * i), gdt[i]);
        }
        Span<byte> p = stackalloc byte[10];
        BinaryPrimitives.WriteUInt16LittleEndian(p, (ushort)(gdt.Length * 8 - 1));
        BinaryPrimitives.WriteUInt64LittleEndian(p[2..], Gdt);
        Put(GdtPointer, p);
        BinaryPrimitives.WriteUInt16LittleEndian(p, 256 * 8 - 1);
        BinaryPrimitives.WriteUInt64LittleEndian(p[2..], Idt32);
        Put(IdtPointer32, p);
        BinaryPrimitives.WriteUInt16LittleEndian(p, 256 * 16 - 1);
        BinaryPrimitives.WriteUInt64LittleEndian(p[2..], Idt64);
        Put(IdtPointer64, p);
    }

    private static ulong TssLow()
    {
        const ulong limit = 103, b = Tss;
        return (limit & 0xFFFF) | ((b & 0xFFFFFF) << 16) | (0x89UL << 40) | (((b >> 24) & 0xFF) << 56);
    }

    private void WriteIdts()
    {
        for (int v = 0; v < 256; v++)
        {
            // Vectors 3, 4 and 0x40–0x4F may be raised from ring 3 (INT3, INTO, INT n); the rest only by the CPU.
            byte dpl = v is 3 or 4 || (v & 0xF0) == 0x40 ? (byte)3 : (byte)0;
            byte type = (byte)(0x8E | (dpl << 5));
            ulong stub64 = Stubs64 + (ulong)v * 16;
            ulong gate64 = (stub64 & 0xFFFF) | ((ulong)Code64 << 16) | ((ulong)type << 40) | (((stub64 >> 16) & 0xFFFF) << 48);
            if (v == 8)
            {
                gate64 |= 1UL << 32; // #DF on IST1: a good stack even when RSP was the problem
            }
            Put64(Idt64 + (uint)(v * 16), gate64);
            Put64(Idt64 + (uint)(v * 16) + 8, stub64 >> 32);
            ulong stub32 = Stubs32 + (ulong)v * 16;
            Put64(Idt32 + (uint)(v * 8), (stub32 & 0xFFFF) | ((ulong)Code32 << 16) | ((ulong)type << 40) | (((stub32 >> 16) & 0xFFFF) << 48));

            bool error = s_withErrorCode.Contains(v);
            int vector = v;
            Code(64, (uint)stub64, a =>
            {
                if (!error)
                {
                    a.push(0);
                }
                a.push(vector); // push imm32 (sign-extended; vectors are < 2^31)
                a.jmp(Handler64);
            });
            Code(32, (uint)stub32, a =>
            {
                if (!error)
                {
                    a.push(0);
                }
                a.push(vector);
                a.jmp(Handler32);
            });
        }
    }

    private void WritePageTables()
    {
        const ulong rw = 0x07; // present, writable, user
        Put64(Pml4, Pdpt | rw);
        Put64(Pdpt, Pd0 | rw);
        Put64(Pdpt + 3 * 8, Pd3 | rw);
        for (uint i = 0; i < 512; i++)
        {
            Put64(Pd0 + i * 8, ((ulong)i << 21) | 0x87); // 2 MiB pages, identity
            Put64(Pd3 + i * 8, (0xC000_0000UL + ((ulong)i << 21)) | 0x9F); // uncached: APIC, IOAPIC, BIOS
            Put64(Pt + i * 8, (0x40_0000UL + ((ulong)i << 12)) | rw);
        }
        Put64(Pd0 + 2 * 8, Pt | rw);
    }

    private void WriteTss()
    {
        Put64(Tss + 4, Rsp0);
        Put64(Tss + 36, Ist1);
        Span<byte> iopb = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(iopb, 104); // no I/O bitmap: beyond the limit
        Put(Tss + 102, iopb);
    }

    private void WriteEntry()
    {
        // The firmware leaves 32-bit protected mode with interrupts off; its GDT and IDT are not ours to use.
        Code(32, Entry, a =>
        {
            a.cli();
            a.lgdt(__[GdtPointer]);
            a.jmp(Code32, Entry + 0x100);
        });
        Code(32, Entry + 0x100, a =>
        {
            a.mov(ax, DataSel);
            a.mov(ds, ax);
            a.mov(es, ax);
            a.mov(ss, ax);
            a.mov(fs, ax);
            a.mov(gs, ax);
            a.mov(esp, StackTop);
            a.lidt(__[IdtPointer32]);
            a.mov(eax, Bitness == 64 ? LongModeEntry : Test);
            a.jmp(eax);
        });
        Code(32, LongModeEntry, a =>
        {
            a.mov(eax, cr4);
            a.or(eax, 0x620); // PAE, OSFXSR, OSXMMEXCPT
            a.mov(cr4, eax);
            a.mov(eax, Pml4);
            a.mov(cr3, eax);
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.or(eax, 0x901); // LME, NXE, SCE
            a.wrmsr();
            a.mov(eax, cr0);
            a.or(eax, 0x8001_0001); // PG, WP, PE
            a.mov(cr0, eax);
            a.jmp(Code64, LongModeEntry + 0x100);
        });
        Code(64, LongModeEntry + 0x100, a =>
        {
            a.mov(ax, DataSel);
            a.mov(ds, ax);
            a.mov(es, ax);
            a.mov(ss, ax);
            a.mov(rsp, StackTop);
            a.lidt(__[IdtPointer64]);
            a.mov(ax, TssSel);
            a.ltr(ax);
            a.mov(eax, Test);
            a.jmp(rax);
        });
    }

    private void WriteHandlers()
    {
        // Stack on entry: vector, error code, then the CPU's frame (RIP, CS, RFLAGS, RSP, SS).
        Code(64, Handler64, a =>
        {
            Label external = a.CreateLabel(), unexpected = a.CreateLabel(), done = a.CreateLabel(), notPic = a.CreateLabel(), master = a.CreateLabel();
            a.push(rax);
            a.push(rbx);
            a.mov(rax, __qword_ptr[rsp + 16]);
            a.@lock.inc(__dword_ptr[rax * 4 + (int)Counters]);
            a.mov(__qword_ptr[ExcVector], rax);
            a.mov(rbx, __qword_ptr[rsp + 24]);
            a.mov(__qword_ptr[ExcError], rbx);
            a.mov(rbx, cr2);
            a.mov(__qword_ptr[ExcCr2], rbx);
            a.mov(rbx, __qword_ptr[rsp + 32]);
            a.mov(__qword_ptr[ExcRip], rbx);
            a.cmp(rax, 32);
            a.jae(external);
            a.mov(rbx, __qword_ptr[Recover]);
            a.test(rbx, rbx);
            a.jz(unexpected);
            a.mov(__qword_ptr[rsp + 32], rbx);
            a.mov(__qword_ptr[Recover], 0);
            a.jmp(done);
            a.Label(ref external);
            EndOfInterrupt(a, rax, notPic, master, done);
            a.Label(ref done);
            a.pop(rbx);
            a.pop(rax);
            a.add(rsp, 16);
            a.iretq();
            a.Label(ref unexpected);
            a.add(al, 0x40);
            a.@out((byte)DebugExitPort, al);
            a.hlt();
        });
        Code(32, Handler32, a =>
        {
            Label external = a.CreateLabel(), unexpected = a.CreateLabel(), done = a.CreateLabel(), notPic = a.CreateLabel(), master = a.CreateLabel();
            a.push(eax);
            a.push(ebx);
            a.mov(eax, __dword_ptr[esp + 8]);
            a.@lock.inc(__dword_ptr[eax * 4 + (int)Counters]);
            a.mov(__dword_ptr[ExcVector], eax);
            a.mov(ebx, __dword_ptr[esp + 12]);
            a.mov(__dword_ptr[ExcError], ebx);
            a.mov(ebx, cr2);
            a.mov(__dword_ptr[ExcCr2], ebx);
            a.mov(ebx, __dword_ptr[esp + 16]);
            a.mov(__dword_ptr[ExcRip], ebx);
            a.cmp(eax, 32);
            a.jae(external);
            a.mov(ebx, __dword_ptr[Recover]);
            a.test(ebx, ebx);
            a.jz(unexpected);
            a.mov(__dword_ptr[esp + 16], ebx);
            a.mov(__dword_ptr[Recover], 0);
            a.jmp(done);
            a.Label(ref external);
            EndOfInterrupt(a, eax, notPic, master, done);
            a.Label(ref done);
            a.pop(ebx);
            a.pop(eax);
            a.add(esp, 8);
            a.iretd();
            a.Label(ref unexpected);
            a.add(al, 0x40);
            a.@out((byte)DebugExitPort, al);
            a.hlt();
        });
    }

    private void WritePrintHex()
    {
        Code(64, PrintHex64, a =>
        {
            Label next = a.CreateLabel(), digit = a.CreateLabel();
            a.push(rcx);
            a.push(rdx);
            a.push(rax);
            a.mov(rdx, rax);
            a.mov(ecx, 16);
            a.Label(ref next);
            a.rol(rdx, 4);
            a.mov(eax, edx);
            a.and(eax, 0xF);
            a.add(al, (byte)'0');
            a.cmp(al, (byte)'9');
            a.jbe(digit);
            a.add(al, 'a' - '9' - 1);
            a.Label(ref digit);
            a.@out((byte)DebugConsolePort, al);
            a.dec(ecx);
            a.jnz(next);
            a.mov(al, (byte)'\n');
            a.@out((byte)DebugConsolePort, al);
            a.pop(rax);
            a.pop(rdx);
            a.pop(rcx);
            a.ret();
        });
        Code(32, PrintHex32, a =>
        {
            Label next = a.CreateLabel(), digit = a.CreateLabel();
            a.push(ecx);
            a.push(edx);
            a.push(eax);
            a.mov(edx, eax);
            a.mov(ecx, 8);
            a.Label(ref next);
            a.rol(edx, 4);
            a.mov(eax, edx);
            a.and(eax, 0xF);
            a.add(al, (byte)'0');
            a.cmp(al, (byte)'9');
            a.jbe(digit);
            a.add(al, 'a' - '9' - 1);
            a.Label(ref digit);
            a.@out((byte)DebugConsolePort, al);
            a.dec(ecx);
            a.jnz(next);
            a.mov(al, (byte)'\n');
            a.@out((byte)DebugConsolePort, al);
            a.pop(eax);
            a.pop(edx);
            a.pop(ecx);
            a.ret();
        });
    }

    // Vectors 0x20–0x2F come from the 8259s (remapped there by the tests), 0x50–0x5F from the local APIC.
    private static void EndOfInterrupt(Assembler a, AssemblerRegister64 vector, Label notPic, Label master, Label done) =>
        EndOfInterrupt(a, () => a.cmp(vector, 0x30), () => a.cmp(vector, 0x28), () => a.cmp(vector, 0x50), () => a.cmp(vector, 0x60),
            () => a.mov(__dword_ptr[rbx], 0), notPic, master, done);

    private static void EndOfInterrupt(Assembler a, AssemblerRegister32 vector, Label notPic, Label master, Label done) =>
        EndOfInterrupt(a, () => a.cmp(vector, 0x30), () => a.cmp(vector, 0x28), () => a.cmp(vector, 0x50), () => a.cmp(vector, 0x60),
            () => a.mov(__dword_ptr[ebx], 0), notPic, master, done);

    // The APIC's EOI register is written through EBX/RBX: as a 64-bit displacement 0xFEE000B0 would sign-extend.
    private static void EndOfInterrupt(Assembler a, Action below30, Action below28, Action below50, Action below60, Action writeEoi, Label notPic, Label master, Label done)
    {
        below30();
        a.jae(notPic);
        below28();
        a.jb(master);
        a.mov(al, 0x20);
        a.@out(0xA0, al);
        a.Label(ref master);
        a.mov(al, 0x20);
        a.@out(0x20, al);
        a.jmp(done);
        a.Label(ref notPic);
        below50();
        a.jb(done);
        below60();
        a.jae(done);
        a.mov(ebx, 0xFEE0_00B0);
        writeEoi();
    }
}
