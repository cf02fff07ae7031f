using System.Diagnostics;
using Colo.Tests.EndToEnd.Infrastructure;
using Iced.Intel;
using static Colo.Tests.EndToEnd.Cpu.MultibootKernel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.EndToEnd.Cpu;

/// <summary>
/// Self-checking multiboot kernels (kvm-unit-tests style) booted with <c>-kernel</c> and <c>isa-debug-exit</c>:
/// mode transitions, paging and the TLB, exception vectors and error codes, interrupt delivery from the PIT/8259 and
/// the local APIC, SYSCALL/SYSRET and ring-3 faults, and INIT-SIPI start-up with atomic counting. Each kernel is run
/// on Colo's interpreter and, as the oracle for the kernel's own expectations, on Debian's QEMU 7.2 with
/// <c>-accel tcg</c>; both must exit with the pass status.
/// </summary>
[TestFixture]
[Category("Cpu")]
public sealed class MultibootKernelTests
{
    private const string RealQemu = "/usr/bin/qemu-system-x86_64";
    private const int PassStatus = (Pass << 1) | 1;

    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(2);

    public enum Emulator
    {
        Colo,
        Qemu,
    }

    [TestCase(Emulator.Colo)]
    [TestCase(Emulator.Qemu)]
    public void LongMode_PagingAccessedDirtyBits_AndTlbInvalidation(Emulator emulator)
    {
        var k = new MultibootKernel(64);
        k.Put64(Data + 0x1000, 0x1122_3344_5566_7788);
        k.Put64(Data + 0x2000, 0x99AA_BBCC_DDEE_FF00);
        k.Body(a =>
        {
            a.mov(eax, 0x8000_0001);
            a.cpuid();
            a.bt(edx, 29);
            FailUnless(a, (x, ok) => x.jc(ok), 2); // long mode advertised
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.bt(eax, 10);
            FailUnless(a, (x, ok) => x.jc(ok), 3); // EFER.LMA
            // Linear 0x400000 onto Data+0x1000.
            a.mov(rax, (ulong)(Data + 0x1000) | 7);
            a.mov(__qword_ptr[Pt], rax);
            a.invlpg(__[0x40_0000]);
            a.mov(rax, __qword_ptr[0x40_0000]);
            a.cmp(rax, __qword_ptr[Data + 0x1000]);
            FailUnless(a, (x, ok) => x.je(ok), 4);
            a.mov(rax, __qword_ptr[Pt]);
            a.bt(rax, 5);
            FailUnless(a, (x, ok) => x.jc(ok), 5); // accessed after a read
            a.bt(rax, 6);
            FailUnless(a, (x, ok) => x.jnc(ok), 6); // not dirty yet
            a.mov(__qword_ptr[0x40_0008], 0x55);
            a.mov(rax, __qword_ptr[Pt]);
            a.bt(rax, 6);
            FailUnless(a, (x, ok) => x.jc(ok), 7); // dirty after a write
            a.cmp(__qword_ptr[Data + 0x1008], 0x55);
            FailUnless(a, (x, ok) => x.je(ok), 8); // the write went through the alias
            // INVLPG drops the old translation.
            a.mov(rax, (ulong)(Data + 0x2000) | 7);
            a.mov(__qword_ptr[Pt], rax);
            a.invlpg(__[0x40_0000]);
            a.mov(rax, __qword_ptr[0x40_0000]);
            a.cmp(rax, __qword_ptr[Data + 0x2000]);
            FailUnless(a, (x, ok) => x.je(ok), 9);
            // So does a CR3 write.
            a.mov(rax, (ulong)(Data + 0x1000) | 7);
            a.mov(__qword_ptr[Pt], rax);
            a.mov(rax, cr3);
            a.mov(cr3, rax);
            a.mov(rax, __qword_ptr[0x40_0000]);
            a.cmp(rax, __qword_ptr[Data + 0x1000]);
            FailUnless(a, (x, ok) => x.je(ok), 10);
            // A 2 MiB page gets its accessed bit in the directory entry.
            a.mov(rax, __qword_ptr[Pd0 + 5 * 8]);
            a.btr(rax, 5);
            a.mov(__qword_ptr[Pd0 + 5 * 8], rax);
            a.invlpg(__[0xA0_0000]);
            a.mov(rax, __qword_ptr[0xA0_1000]);
            a.mov(rax, __qword_ptr[Pd0 + 5 * 8]);
            a.bt(rax, 5);
            FailUnless(a, (x, ok) => x.jc(ok), 11);
            Exit(a, Pass);
        });
        AssertPasses(k, emulator);
    }

    [TestCase(Emulator.Colo)]
    [TestCase(Emulator.Qemu)]
    public void PageFaults_ReportErrorCodeCr2AndFaultingRip(Emulator emulator)
    {
        var k = new MultibootKernel(64);
        k.Put(Data + 0x1000, [0xC3]); // ret, for the NX fetch
        k.Body(a =>
        {
            const uint page = 0x40_1000;
            byte check = 2;
            void ExpectFault(Action<Assembler> setPte, Action<Assembler> access, ulong errorCode, ulong cr2, bool fetch = false)
            {
                Label resume = a.CreateLabel(), at = a.CreateLabel();
                setPte(a);
                a.invlpg(__[page]);
                a.lea(rax, __[resume]);
                a.mov(__qword_ptr[Recover], rax);
                a.mov(__qword_ptr[ExcVector], 0xFF);
                a.Label(ref at);
                access(a);
                a.Label(ref resume);
                a.nop();
                Expect64(a, ExcVector, 14, check++);
                if (errorCode == 9)
                {
                    // RSVD with P: hardware sets P (the entries were present); QEMU 7.2's TCG leaves it clear.
                    a.mov(rax, __qword_ptr[ExcError]);
                    a.or(rax, 1);
                    a.cmp(rax, 9);
                    FailUnless(a, (x, ok) => x.je(ok), check++);
                }
                else
                {
                    Expect64(a, ExcError, errorCode, check++);
                }
                Expect64(a, ExcCr2, cr2, check++);
                if (fetch)
                {
                    a.mov(eax, (uint)cr2);
                }
                else
                {
                    a.lea(rax, __[at]);
                }
                a.cmp(rax, __qword_ptr[ExcRip]);
                FailUnless(a, (x, ok) => x.je(ok), check++); // the faulting instruction (or fetch target)
            }

            void SetPte(Assembler x, ulong pte)
            {
                x.mov(rax, pte);
                x.mov(__qword_ptr[Pt + 8], rax);
            }

            ExpectFault(x => SetPte(x, 0), x => x.mov(rax, __qword_ptr[page + 0x10]), 0, page + 0x10); // not present, read
            ExpectFault(x => SetPte(x, 0), x => x.mov(__qword_ptr[page + 0x18], 1), 2, page + 0x18); // not present, write
            ExpectFault(x => SetPte(x, (Data + 0x1000) | 5UL), x => x.mov(__dword_ptr[page + 0x20], 1), 3, page + 0x20); // read-only (CR0.WP)
            ExpectFault(x => SetPte(x, (Data + 0x1000) | 7UL | (1UL << 51)), x => x.mov(rax, __qword_ptr[page]), 9, page); // reserved bit
            ExpectFault(x => SetPte(x, (Data + 0x1000) | 7UL | (1UL << 63)), x =>
            {
                x.mov(eax, page);
                x.jmp(rax);
            }, 0x11, page, fetch: true); // NX fetch
            Exit(a, Pass);
        });
        AssertPasses(k, emulator);
    }

    [TestCase(Emulator.Colo)]
    [TestCase(Emulator.Qemu)]
    public void Exceptions_DeliverTheirVectorsAndErrorCodes(Emulator emulator)
    {
        var k = new MultibootKernel(64);
        k.Body(a =>
        {
            byte check = 2;
            void Expect(Action<Assembler> setup, Action<Assembler> raise, ulong vector, ulong? errorCode, bool trap = false)
            {
                Label resume = a.CreateLabel(), at = a.CreateLabel(), after = a.CreateLabel();
                a.lea(rax, __[resume]);
                a.mov(__qword_ptr[Recover], rax);
                a.mov(__qword_ptr[ExcVector], 0xFF);
                setup(a);
                a.Label(ref at);
                raise(a);
                a.Label(ref after);
                a.nop();
                a.Label(ref resume);
                a.nop();
                Expect64(a, ExcVector, vector, check++);
                if (errorCode is { } e)
                {
                    Expect64(a, ExcError, e, check++);
                }
                a.lea(rax, trap ? __[after] : __[at]);
                a.cmp(rax, __qword_ptr[ExcRip]);
                FailUnless(a, (x, ok) => x.je(ok), check++); // faults report their own RIP, traps the next one
            }

            Expect(x =>
            {
                x.xor(edx, edx);
                x.xor(ecx, ecx);
            }, x => x.div(ecx), 0, null); // #DE
            Expect(_ => { }, x => x.ud2(), 6, null);
            Expect(_ => { }, x => x.int3(), 3, null, trap: true);
            Expect(x => x.mov(rax, 0x8000_0000_0000_0000), x => x.mov(rbx, __qword_ptr[rax]), 13, 0); // non-canonical: #GP(0)
            Expect(x => x.mov(ax, 0x1000), x => x.mov(ds, ax), 13, 0x1000); // selector beyond the GDT limit: #GP(selector)
            Expect(x => x.mov(ax, NotPresentData), x => x.mov(ds, ax), 11, NotPresentData); // #NP(selector)
            // INT n delivers its vector and returns to the next instruction.
            a.mov(eax, __dword_ptr[Counters + 0x41 * 4]);
            a.@int(0x41);
            a.sub(eax, __dword_ptr[Counters + 0x41 * 4]);
            a.cmp(eax, -1);
            FailUnless(a, (x, ok) => x.je(ok), check++);
            Exit(a, Pass);
        });
        AssertPasses(k, emulator);
    }

    [TestCase(Emulator.Colo)]
    [TestCase(Emulator.Qemu)]
    public void Interrupts_FromThePitThrough8259_AndFromTheLocalApic_RespectingTpr(Emulator emulator)
    {
        var k = new MultibootKernel(64);
        k.Body(a =>
        {
            void Out(ushort port, byte value)
            {
                a.mov(al, value);
                a.@out((byte)port, al);
            }

            void WaitFor(int vector, uint count)
            {
                // Test with interrupts off, then STI;HLT: the STI shadow keeps the interrupt from landing between
                // the test and the HLT, which would then sleep for good.
                Label wait = a.CreateLabel(), done = a.CreateLabel();
                a.Label(ref wait);
                a.cli();
                a.cmp(__dword_ptr[Counters + (uint)vector * 4], count);
                a.jae(done);
                a.sti();
                a.hlt();
                a.jmp(wait);
                a.Label(ref done);
                a.sti();
            }

            // The firmware's (or no firmware's) set-up is not relied on: LAPIC on, LINT0 ExtINT, 8259s remapped.
            a.mov(ebx, 0xFEE0_0000);
            a.mov(__dword_ptr[rbx + 0xF0], 0x1FF);
            a.mov(__dword_ptr[rbx + 0x350], 0x700);
            a.mov(__dword_ptr[rbx + 0x360], 0x400);
            a.mov(__dword_ptr[rbx + 0x80], 0);
            Out(0x20, 0x11);
            Out(0x21, 0x20);
            Out(0x21, 0x04);
            Out(0x21, 0x01);
            Out(0xA0, 0x11);
            Out(0xA1, 0x28);
            Out(0xA1, 0x02);
            Out(0xA1, 0x01);
            Out(0x21, 0xFE);
            Out(0xA1, 0xFF);
            // PIT channel 0, rate generator, ~1 kHz: five ticks through IRQ0 → vector 0x20.
            Out(0x43, 0x34);
            Out(0x40, 0xA9);
            Out(0x40, 0x04);
            a.sti();
            WaitFor(0x20, 5);
            a.cli();
            Out(0x21, 0xFF);
            // LAPIC timer, one shot → vector 0x50, exactly once.
            a.mov(__dword_ptr[rbx + 0x3E0], 0xB);
            a.mov(__dword_ptr[rbx + 0x320], 0x50);
            a.mov(__dword_ptr[rbx + 0x380], 100_000);
            a.sti();
            WaitFor(0x50, 1);
            a.mov(ecx, 200_000);
            Label spin = a.CreateLabel();
            a.Label(ref spin);
            a.dec(ecx);
            a.jnz(spin);
            a.cmp(__dword_ptr[Counters + 0x50 * 4], 1);
            FailUnless(a, (x, ok) => x.je(ok), 2);
            // A self-IPI below the task priority waits until TPR drops.
            a.mov(__dword_ptr[rbx + 0x80], 0x60);
            a.mov(__dword_ptr[rbx + 0x310], 0);
            a.mov(__dword_ptr[rbx + 0x300], 0x4_0052);
            a.mov(ecx, 10_000);
            Label blocked = a.CreateLabel();
            a.Label(ref blocked);
            a.dec(ecx);
            a.jnz(blocked);
            a.cmp(__dword_ptr[Counters + 0x52 * 4], 0);
            FailUnless(a, (x, ok) => x.je(ok), 3);
            a.mov(__dword_ptr[rbx + 0x80], 0);
            WaitFor(0x52, 1);
            // One above it is taken at once.
            a.mov(__dword_ptr[rbx + 0x80], 0x40);
            a.mov(__dword_ptr[rbx + 0x300], 0x4_0053);
            WaitFor(0x53, 1);
            a.cli();
            a.cmp(__dword_ptr[Counters + 0x50 * 4], 1);
            FailUnless(a, (x, ok) => x.je(ok), 5);
            Exit(a, Pass);
        });
        AssertPasses(k, emulator);
    }

    [TestCase(Emulator.Colo)]
    [TestCase(Emulator.Qemu)]
    public void ModeTransitions_RealModeRoundTrip_LongModeCompatibilityMode_AndBack(Emulator emulator)
    {
        const uint realCode = 0x7000;
        const uint mailbox = 0x6F00;
        const uint back32 = Test + 0x1000;
        const uint long64 = Test + 0x2000;
        const uint compat32 = Test + 0x3000;
        const uint back64 = Test + 0x2800;
        const uint leave32 = Test + 0x3800;
        var k = new MultibootKernel(32);
        // Real-mode code runs below 64 KiB: assembled for 0x7000 and copied there by the test. Entered in 16-bit
        // protected mode, it clears PE, takes an IVT interrupt, does 16- and 32-bit arithmetic, segment:offset
        // addressing and stack work, and sets PE again.
        k.CodeAt(16, Blob, realCode, b =>
        {
            b.mov(ax, Data16);
            b.mov(ds, ax);
            b.mov(es, ax);
            b.mov(ss, ax);
            b.mov(eax, cr0);
            b.and(eax, 0x7FFF_FFFE);
            b.mov(cr0, eax);
            b.jmp(0, realCode + 0x40);
        });
        k.CodeAt(16, Blob + 0x40, realCode + 0x40, b =>
        {
            b.xor(ax, ax);
            b.mov(ds, ax);
            b.mov(es, ax);
            b.mov(ss, ax);
            b.mov(sp, 0x6800);
            b.lidt(__[mailbox + 0x80]);
            b.mov(__word_ptr[0x30 * 4], realCode + 0x100);
            b.mov(__word_ptr[0x30 * 4 + 2], 0);
            b.@int(0x30);
            b.mov(ax, 0x1234);
            b.add(ax, 0xEDCC);
            b.setc(__byte_ptr[mailbox + 1]);
            b.mov(__word_ptr[mailbox + 2], ax);
            b.mov(ax, 0x0650);
            b.mov(es, ax);
            b.mov(__byte_ptr.es[0x10], 0x77); // 0650:0010 is 0x6510
            b.mov(eax, 0x1234_5678);
            b.mov(__dword_ptr[mailbox + 4], eax);
            b.push(0xBEEF);
            b.pop(bx);
            b.mov(__word_ptr[mailbox + 8], bx);
            b.mov(__word_ptr[mailbox + 10], sp);
            b.cli();
            b.mov(eax, cr0);
            b.or(al, 1);
            b.mov(cr0, eax);
            b.db(0x66, 0xEA); // jmp dword Code32:back32
            b.dd(back32);
            b.dw(Code32);
        });
        k.CodeAt(16, Blob + 0x100, realCode + 0x100, b =>
        {
            b.mov(__byte_ptr[mailbox], 0x5A);
            b.iret();
        });
        k.Body(a =>
        {
            a.mov(__word_ptr[mailbox + 0x80], 0x3FF); // the real-mode IDTR: the IVT at 0
            a.mov(__dword_ptr[mailbox + 0x82], 0);
            a.mov(esi, Blob);
            a.mov(edi, realCode);
            a.mov(ecx, 0x200);
            a.rep.movsb();
            a.jmp(Code16, realCode);
        });
        k.Code(32, back32, a =>
        {
            a.mov(ax, DataSel);
            a.mov(ds, ax);
            a.mov(es, ax);
            a.mov(ss, ax);
            a.mov(esp, StackTop);
            a.lidt(__[IdtPointer32]);
            a.movzx(eax, __byte_ptr[mailbox]);
            a.cmp(eax, 0x5A);
            FailUnless(a, (x, ok) => x.je(ok), 2); // the IVT handler ran
            a.movzx(eax, __byte_ptr[mailbox + 1]);
            a.cmp(eax, 1);
            FailUnless(a, (x, ok) => x.je(ok), 3); // 0x1234 + 0xEDCC carries
            a.movzx(eax, __word_ptr[mailbox + 2]);
            a.test(eax, eax);
            FailUnless(a, (x, ok) => x.je(ok), 4);
            a.movzx(eax, __byte_ptr[0x6510]);
            a.cmp(eax, 0x77);
            FailUnless(a, (x, ok) => x.je(ok), 5); // segment * 16 + offset
            Expect32(a, mailbox + 4, 0x1234_5678, 6);
            a.movzx(eax, __word_ptr[mailbox + 8]);
            a.cmp(eax, 0xBEEF);
            FailUnless(a, (x, ok) => x.je(ok), 7);
            a.movzx(eax, __word_ptr[mailbox + 10]);
            a.cmp(eax, 0x6800);
            FailUnless(a, (x, ok) => x.je(ok), 8); // push/pop balanced, and IRET restored SP
            // Into long mode with our own code, not the kernel's entry.
            a.mov(eax, cr4);
            a.or(eax, 0x20);
            a.mov(cr4, eax);
            a.mov(eax, Pml4);
            a.mov(cr3, eax);
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.or(eax, 0x100);
            a.wrmsr();
            a.mov(eax, cr0);
            a.or(eax, 0x8000_0000);
            a.mov(cr0, eax);
            a.jmp(Code64, long64);
        });
        k.Code(64, long64, a =>
        {
            a.mov(rax, 0x1_0000_0000);
            a.shr(rax, 32);
            a.cmp(eax, 1);
            FailUnless(a, (x, ok) => x.je(ok), 9); // 64-bit operand size
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.bt(eax, 10);
            FailUnless(a, (x, ok) => x.jc(ok), 10); // LMA
            // Far return into a 32-bit code segment: compatibility mode.
            a.push(Code32);
            a.mov(eax, compat32);
            a.push(rax);
            a.db(0x48, 0xCB); // retfq
        });
        k.Code(32, compat32, a =>
        {
            a.mov(ax, cs);
            a.cmp(ax, Code32);
            FailUnless(a, (x, ok) => x.je(ok), 11);
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.bt(eax, 10);
            FailUnless(a, (x, ok) => x.jc(ok), 12); // still in long mode
            a.mov(eax, 0xFFFF_FFFF);
            a.inc(eax);
            FailUnless(a, (x, ok) => x.jz(ok), 13); // 32-bit wrap in compatibility mode
            a.jmp(Code64, back64);
        });
        k.Code(64, back64, a =>
        {
            // Leave long mode: back to compatibility mode, paging off (LMA drops), LME off.
            a.push(Code32);
            a.mov(eax, leave32);
            a.push(rax);
            a.db(0x48, 0xCB);
        });
        k.Code(32, leave32, a =>
        {
            a.mov(eax, cr0);
            a.btr(eax, 31);
            a.mov(cr0, eax);
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.bt(eax, 10);
            FailUnless(a, (x, ok) => x.jnc(ok), 14); // LMA cleared with paging
            a.btr(eax, 8);
            a.wrmsr();
            a.rdmsr();
            a.test(eax, 0x500);
            FailUnless(a, (x, ok) => x.jz(ok), 15);
            a.mov(eax, __dword_ptr[mailbox + 4]);
            a.cmp(eax, 0x1234_5678);
            FailUnless(a, (x, ok) => x.je(ok), 16); // flat protected mode again
            Exit(a, Pass);
        });
        AssertPasses(k, emulator);
    }

    [TestCase(Emulator.Colo)]
    [TestCase(Emulator.Qemu)]
    public void SyscallSysret_AndRing3Faults(Emulator emulator)
    {
        const uint user = Test + 0x800;
        const uint sysEntry = Test + 0x1000;
        const uint userStack = 0x1C_0000;
        const uint supervisorPage = 0x40_3000;
        var k = new MultibootKernel(64);
        k.Body(a =>
        {
            a.mov(ecx, 0xC000_0081); // STAR: SYSCALL CS=0x10/SS=0x18, SYSRET base 0x30 (SS 0x3B, CS 0x43)
            a.mov(edx, (0x30u << 16) | Code64);
            a.xor(eax, eax);
            a.wrmsr();
            a.mov(ecx, 0xC000_0082); // LSTAR
            a.mov(eax, sysEntry);
            a.xor(edx, edx);
            a.wrmsr();
            a.mov(ecx, 0xC000_0084); // FMASK
            a.mov(eax, 0x100);
            a.wrmsr();
            a.mov(rax, __qword_ptr[Pt + 3 * 8]);
            a.and(rax, ~4);
            a.mov(__qword_ptr[Pt + 3 * 8], rax); // a supervisor-only page
            a.invlpg(__[supervisorPage]);
            a.push(UserData | 3);
            a.push((int)userStack);
            a.push(0x2);
            a.push(UserCode64 | 3);
            a.mov(eax, user);
            a.push(rax);
            a.iretq();
        });
        k.Code(64, user, a =>
        {
            uint slot = Data + 0x100;
            void Fault(Action<Assembler> raise)
            {
                Label resume = a.CreateLabel(), at = a.CreateLabel();
                a.lea(rax, __[resume]);
                a.mov(__qword_ptr[Recover], rax);
                a.lea(rax, __[at]);
                a.mov(__qword_ptr[slot + 24], rax);
                a.Label(ref at);
                raise(a);
                a.Label(ref resume);
                a.mov(rax, __qword_ptr[ExcVector]);
                a.mov(__qword_ptr[slot], rax);
                a.mov(rax, __qword_ptr[ExcError]);
                a.mov(__qword_ptr[slot + 8], rax);
                a.mov(rax, __qword_ptr[ExcRip]);
                a.mov(__qword_ptr[slot + 16], rax);
                slot += 32;
            }

            Label afterSyscall = a.CreateLabel();
            a.mov(edi, 0);
            a.syscall();
            a.Label(ref afterSyscall);
            a.mov(__qword_ptr[Data + 0x10], rax);
            a.lea(rax, __[afterSyscall]);
            a.mov(__qword_ptr[Data + 0x18], rax);
            a.mov(ax, cs);
            a.mov(__word_ptr[Data + 0x20], ax);
            a.mov(ax, ss);
            a.mov(__word_ptr[Data + 0x22], ax);
            Fault(x => x.cli());                                          // 0x100: #GP(0), IOPL 0
            Fault(x => x.@in(al, 0x80));                                  // 0x120: #GP(0), no I/O bitmap
            Fault(x => x.mov(rax, __qword_ptr[supervisorPage + 8]));      // 0x140: #PF(U|P)
            Fault(x => x.mov(rax, cr0));                                  // 0x160: #GP(0), privileged
            Fault(x => x.@int(0x0D));                                     // 0x180: #GP(vector*8+2), gate DPL 0
            Fault(x => x.hlt());                                          // 0x1A0: #GP(0)
            a.mov(edi, 1);
            a.syscall();
        });
        k.Code(64, sysEntry, a =>
        {
            Label finished = a.CreateLabel();
            a.cmp(edi, 1);
            a.je(finished);
            a.mov(__qword_ptr[Data + 0x80], rcx);
            a.mov(__qword_ptr[Data + 0x88], r11);
            a.mov(ax, ss);
            a.mov(__word_ptr[Data + 0x90], ax);
            a.mov(ax, cs);
            a.mov(__word_ptr[Data + 0x92], ax);
            a.mov(eax, 0x77);
            a.sysretq();
            a.Label(ref finished);
            a.mov(rsp, StackTop);
            Expect64(a, Data + 0x10, 0x77, 2);
            a.mov(rax, __qword_ptr[Data + 0x18]);
            a.cmp(rax, __qword_ptr[Data + 0x80]);
            FailUnless(a, (x, ok) => x.je(ok), 3); // RCX = the return RIP
            Expect64(a, Data + 0x88, 0x2, 4);       // R11 = the user's RFLAGS
            a.movzx(eax, __word_ptr[Data + 0x90]);
            a.cmp(eax, DataSel);
            FailUnless(a, (x, ok) => x.je(ok), 5);
            a.movzx(eax, __word_ptr[Data + 0x92]);
            a.cmp(eax, Code64);
            FailUnless(a, (x, ok) => x.je(ok), 6);
            a.movzx(eax, __word_ptr[Data + 0x20]);
            a.cmp(eax, UserCode64 | 3);
            FailUnless(a, (x, ok) => x.je(ok), 7);  // SYSRET's CS
            a.movzx(eax, __word_ptr[Data + 0x22]);
            a.cmp(eax, UserData | 3);
            FailUnless(a, (x, ok) => x.je(ok), 8);  // and SS
            byte check = 9;
            (ulong Vector, ulong Error)[] faults = [(13, 0), (13, 0), (14, 5), (13, 0), (13, 0x0D * 8 + 2), (13, 0)];
            for (int i = 0; i < faults.Length; i++)
            {
                uint at = Data + 0x100 + (uint)i * 32;
                Expect64(a, at, faults[i].Vector, check++);
                if (faults[i].Error == 0x0D * 8 + 2)
                {
                    // The IDT-format error code is vector * 8 + 2 (SDM 6.13); QEMU 7.2's TCG reports vector * 16 + 2
                    // in long mode (the gate size). Either names the gate.
                    Label ok = a.CreateLabel();
                    a.mov(rax, __qword_ptr[at + 8]);
                    a.cmp(rax, 0x0D * 8 + 2);
                    a.je(ok);
                    a.cmp(rax, 0x0D * 16 + 2);
                    a.je(ok);
                    Exit(a, check);
                    a.Label(ref ok);
                    check++;
                }
                else
                {
                    Expect64(a, at + 8, faults[i].Error, check++);
                }
                a.mov(rax, __qword_ptr[at + 16]);
                a.cmp(rax, __qword_ptr[at + 24]);
                FailUnless(a, (x, ok) => x.je(ok), check++);
            }
            Exit(a, Pass);
        });
        AssertPasses(k, emulator);
    }

    [TestCase(Emulator.Colo)]
    [TestCase(Emulator.Qemu)]
    public void Smp_InitSipiStartsTheAp_AndLockedIncrementsFromBothCpusAddUp(Emulator emulator)
    {
        const uint trampoline = 0x8000;
        const uint counter = 0x9000;
        const uint apDone = 0x9004;
        const int iterations = 100_000;
        var k = new MultibootKernel(64);
        k.CodeAt(16, Blob, trampoline, b =>
        {
            Label loop = b.CreateLabel(), stop = b.CreateLabel();
            b.cli();
            b.xor(ax, ax);
            b.mov(ds, ax);
            b.mov(ss, ax);
            b.mov(sp, 0x7C00);
            b.mov(ecx, iterations);
            b.Label(ref loop);
            b.@lock.inc(__dword_ptr[counter]);
            b.dec(ecx);
            b.jnz(loop);
            b.@lock.inc(__byte_ptr[apDone]);
            b.Label(ref stop);
            b.cli();
            b.hlt();
            b.jmp(stop);
        });
        k.Body(a =>
        {
            Label loop = a.CreateLabel(), wait = a.CreateLabel(), started = a.CreateLabel();
            void Delay()
            {
                Label d = a.CreateLabel();
                a.mov(ecx, 10_000);
                a.Label(ref d);
                a.dec(ecx);
                a.jnz(d);
            }

            a.mov(__dword_ptr[counter], 0);
            a.mov(__dword_ptr[apDone], 0);
            a.mov(esi, Blob);
            a.mov(edi, trampoline);
            a.mov(ecx, 0x100);
            a.rep.movsb();
            a.mov(ebx, 0xFEE0_0000);
            a.mov(__dword_ptr[rbx + 0xF0], 0x1FF);
            a.mov(__dword_ptr[rbx + 0x310], 0x0100_0000); // APIC ID 1
            a.mov(__dword_ptr[rbx + 0x300], 0x4500);      // INIT
            Delay();
            a.mov(__dword_ptr[rbx + 0x310], 0x0100_0000);
            a.mov(__dword_ptr[rbx + 0x300], 0x4600 | (trampoline >> 12)); // SIPI
            Delay();
            a.mov(__dword_ptr[rbx + 0x310], 0x0100_0000);
            a.mov(__dword_ptr[rbx + 0x300], 0x4600 | (trampoline >> 12)); // the second SIPI is ignored by a running AP
            a.mov(ecx, iterations);
            a.Label(ref loop);
            a.@lock.inc(__dword_ptr[counter]);
            a.dec(ecx);
            a.jnz(loop);
            a.mov(rcx, 4_000_000_000);
            a.Label(ref wait);
            a.cmp(__byte_ptr[apDone], 0);
            a.jne(started);
            a.pause();
            a.dec(rcx);
            a.jnz(wait);
            Exit(a, 2); // the AP never finished
            a.Label(ref started);
            a.nop();
            Expect64(a, apDone, 1, 3);
            a.mov(eax, __dword_ptr[counter]);
            a.cmp(eax, 2 * iterations);
            FailUnless(a, (x, ok) => x.je(ok), 4);
            Exit(a, Pass);
        });
        AssertPasses(k, emulator, cpus: 2);
    }

    private static void AssertPasses(MultibootKernel kernel, Emulator emulator, int cpus = 1)
    {
        string dir = Directory.CreateTempSubdirectory("colo-mbk-").FullName;
        string path = Path.Combine(dir, "kernel.bin");
        string console = Path.Combine(dir, "debugcon.txt");
        bool passed = false; // a failed kernel stays on disk for a rerun by hand
        File.WriteAllBytes(path, kernel.Image);
        try
        {
            string binary = emulator == Emulator.Colo ? ColoBinaries.QemuSystem : RealQemu;
            if (emulator == Emulator.Qemu && !File.Exists(RealQemu))
            {
                Assert.Ignore($"{RealQemu} is not installed (tools/install-deps.sh installs qemu-system-x86)");
            }
            string[] args =
            [
                "-M", "pc", "-accel", "tcg", "-nodefaults", "-display", "none", "-m", "128", "-smp", cpus.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-no-reboot", "-kernel", path,
                "-debugcon", "file:" + console,
            ];
            var info = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
            foreach (string arg in args)
            {
                info.ArgumentList.Add(arg);
            }
            using Process p = Process.Start(info)!;
            Task<string> stderr = p.StandardError.ReadToEndAsync();
            Task<string> stdout = p.StandardOutput.ReadToEndAsync();
            if (!p.WaitForExit(RunTimeout))
            {
                p.Kill(entireProcessTree: true);
                Assert.Fail($"{emulator}: the kernel did not finish within {RunTimeout}; kept {path}");
            }
            int status = p.ExitCode;
            passed = status == PassStatus;
            Assert.That(status, Is.EqualTo(PassStatus), $"{emulator}: {Describe(status)}\ndebug console: {(File.Exists(console) ? File.ReadAllText(console) : "")}\nstderr: {stderr.Result}\nstdout: {stdout.Result}\nkept {path}");
        }
        finally
        {
            if (passed)
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private static string Describe(int status)
    {
        if ((status & 1) == 0)
        {
            return $"exit status {status} is not from isa-debug-exit";
        }
        int code = status >> 1;
        return code >= 0x40 && code < 0x60 ? $"unexpected exception, vector {code - 0x40}" : $"check {code} failed";
    }
}
