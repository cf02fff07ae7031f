using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>Behaviour the host oracle cannot show: exceptions and their delivery, I/O, paging, code invalidation.</summary>
[TestFixture]
public sealed class InterpreterTests
{
    private const ulong GdtAddress = 0x1000;
    private const ulong IdtAddress = 0x2000;
    private const ulong HandlerAddress = 0x20000;
    private const ushort DebugExitPort = 0xF4;

    /// <summary>Flat GDT plus an IDT whose every vector runs <c>mov al, vector; out 0xF4, al; hlt</c>.</summary>
    private static void InstallIdt(GuestHarness g) => g.InstallReportingIdt(GdtAddress, IdtAddress, HandlerAddress, 80, DebugExitPort);

    private static ulong OffsetOf(byte[] code, params byte[] pattern) => (ulong)code.AsSpan().IndexOf(pattern);

    [Test]
    public void Nmi_WakesAHaltWithInterruptsOff_ThroughVector2_AndBlocksTheNextUntilIret()
    {
        const ulong nmiHandler = 0x40000;
        const ulong counter = 0x30000;
        using var g = new GuestHarness();
        byte[] main = GuestHarness.Assemble(64, GuestHarness.CodeAddress, a =>
        {
            a.cli();
            a.hlt();
            a.nop();
            a.hlt();
        });
        g.Load64(main);
        InstallIdt(g);
        g.Memory.Write(nmiHandler, GuestHarness.Assemble(64, nmiHandler, a =>
        {
            a.inc(__qword_ptr[counter]);
            a.hlt();
            a.iretq();
        }));
        g.WriteU64(IdtAddress + 2 * 16, (nmiHandler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | (((nmiHandler >> 16) & 0xFFFF) << 48));
        g.WriteU64(IdtAddress + 2 * 16 + 8, nmiHandler >> 32);

        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), "CLI; HLT halts for good");
        g.Vcpu.InjectNmi();
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), "the NMI handler halts");
        Assert.That(g.ReadU64(counter), Is.EqualTo(1UL), "vector 2 ran");
        Assert.That(g.State.NmiBlocked, Is.True);
        // A second NMI inside the handler waits for its IRETQ, then arrives before main's NOP.
        g.Vcpu.InjectNmi();
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.ReadU64(counter), Is.EqualTo(2UL), "the second NMI ran");
            Assert.That(g.ReadU64(g.State.Gpr[4]), Is.EqualTo(GuestHarness.CodeAddress + 2), "taken after IRETQ, at main's NOP (not nested in the handler)");
        });
    }

    [Test]
    public void UnknownMsr_ReadsZero_AndWritesAreDropped_AsQemuTcg()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(ecx, 0xC001_1234);
            a.mov(eax, 0x1111);
            a.mov(edx, 0x2222);
            a.wrmsr();
            a.mov(eax, 0x3333);
            a.mov(edx, 0x4444);
            a.rdmsr();
            a.hlt();
        });
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.State.Gpr[0], Is.Zero, "EAX");
            Assert.That(g.State.Gpr[2], Is.Zero, "EDX");
        });
    }

    [Test]
    public void Div_InRange_Divides()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(eax, 0x59);
            a.mov(ebx, 0x33);
            a.div(bl);
            a.hlt();
        });
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.State.Gpr[0], Is.EqualTo((ulong)((0x59 % 0x33) << 8 | 1)));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Div_ByZeroOrOverflow_DeliversDivideErrorAtFaultingInstruction(bool overflow)
    {
        using var g = new GuestHarness();
        byte[] code = GuestHarness.Assemble(64, GuestHarness.CodeAddress, a =>
        {
            a.mov(rdx, overflow ? 5 : 0);
            a.mov(eax, 7);
            a.mov(ecx, overflow ? 2 : 0);
            a.div(rcx);
            a.hlt();
        });
        g.Load64(code);
        InstallIdt(g);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.Io.PortWrites, Is.EqualTo(new[] { (DebugExitPort, 0UL, 1) }));
        ulong divAddress = GuestHarness.CodeAddress + OffsetOf(code, 0x48, 0xF7, 0xF1);
        Assert.Multiple(() =>
        {
            Assert.That(g.ReadU64(g.State.Gpr[4]), Is.EqualTo(divAddress), "pushed RIP is the faulting DIV");
            Assert.That(g.ReadU64(g.State.Gpr[4] + 8), Is.EqualTo(0x08UL), "pushed CS");
            Assert.That(g.State.Gpr[4], Is.EqualTo(GuestHarness.StackTop - 40), "no error code for #DE");
            Assert.That(g.State.Gpr[0] & 0xFFFF_FFFF_FFFF_FF00, Is.EqualTo(7UL & ~0xFFUL), "RAX unchanged but AL");
        });
    }

    [Test]
    public void Idiv_MinByMinusOne_RaisesDivideError()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(eax, 0x8000_0000);
            a.cdq();
            a.mov(ecx, -1);
            a.idiv(ecx);
            a.hlt();
        });
        InstallIdt(g);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.Io.PortWrites.Single().Value, Is.EqualTo(0UL));
    }

    /// <summary>Instructions that exist but are not implemented yet must raise #UD, never run as no-ops.</summary>
    [TestCase("ud2")]
    [TestCase("ssse3 pshufb")]
    [TestCase("ssse3 pabsw mm")]
    [TestCase("syscall")]
    public void UnimplementedOrInvalid_RaisesInvalidOpcode(string which)
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(ebx, 1);
            switch (which)
            {
                case "ud2":
                    a.ud2();
                    break;
                case "ssse3 pshufb":
                    a.pshufb(xmm0, xmm1);
                    break;
                case "ssse3 pabsw mm":
                    a.pabsw(mm0, mm1);
                    break;
                default:
                    a.syscall();
                    break;
            }
            a.mov(ebx, 2);
            a.hlt();
        });
        InstallIdt(g);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.Io.PortWrites.Single().Value, Is.EqualTo(6UL), "#UD");
            Assert.That(g.State.Gpr[3], Is.EqualTo(1UL), "nothing after the faulting instruction ran");
        });
    }

    [Test]
    public void Fault_WithoutUsableIdt_TripleFaultsToShutdown()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.ud2();
        });
        g.State.Idtr = new DescriptorTableRegister { Base = 0, Limit = 0 };
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Shutdown));
        Assert.That(g.State.ExceptionPending, Is.True);
        Assert.That(g.State.ExceptionVector, Is.EqualTo(8), "the last exception was #DF");
    }

    [Test]
    public void OutToDebugExitPort_IsSeenByTheBus_AndHltHalts()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(eax, 0x31);
            a.@out((byte)DebugExitPort, al);
            a.mov(dx, 0x3F8);
            a.mov(al, (byte)'A');
            a.@out(dx, al);
            a.mov(dx, 0x510);
            a.mov(eax, 0x1234_5678);
            a.@out(dx, eax);
            a.@in(ax, dx);
            a.hlt();
        });
        g.Io.PortReadValue = 0xBEEF;
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.Io.PortWrites, Is.EqualTo(new[] { ((ushort)0xF4, 0x31UL, 1), ((ushort)0x3F8, 0x41UL, 1), ((ushort)0x510, 0x1234_5678UL, 4) }));
            Assert.That(g.Io.PortReads, Is.EqualTo(new[] { ((ushort)0x510, 2) }));
            Assert.That(g.State.Gpr[0], Is.EqualTo(0x1234_BEEFUL));
            Assert.That(g.State.Halted, Is.True);
        });
    }

    [Test]
    public void Cpuid_ReportsQemu64VendorAndLongMode()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.xor(eax, eax);
            a.cpuid();
            a.mov(r8d, ebx);
            a.mov(r9d, edx);
            a.mov(r10d, ecx);
            a.mov(eax, 0x8000_0001);
            a.cpuid();
            a.hlt();
        });
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Span<byte> vendor = stackalloc byte[12];
        BitConverter.TryWriteBytes(vendor, (uint)g.State.Gpr[8]);
        BitConverter.TryWriteBytes(vendor[4..], (uint)g.State.Gpr[9]);
        BitConverter.TryWriteBytes(vendor[8..], (uint)g.State.Gpr[10]);
        Assert.That(System.Text.Encoding.ASCII.GetString(vendor), Is.EqualTo("AuthenticAMD"));
        Assert.That(g.State.Gpr[2] & (1UL << 29), Is.Not.Zero, "LM");
    }

    [Test]
    public void Rdtsc_CountsRetiredInstructions()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.rdtsc();
            a.mov(r8d, eax);
            a.nop();
            a.nop();
            a.rdtsc();
            a.hlt();
        });
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.State.Gpr[0] - g.State.Gpr[8], Is.EqualTo(4UL));
    }

    [Test]
    public void StoreIntoTheRunningBlock_IsSeenByTheNextInstruction()
    {
        using var g = new GuestHarness();
        byte[] Build(ulong patch) => GuestHarness.Assemble(64, GuestHarness.CodeAddress, a =>
        {
            a.mov(rbx, patch);
            a.mov(__byte_ptr[rbx], 0x2A);
            a.mov(eax, 0x1111_1111);
            a.hlt();
        });
        byte[] probe = Build(0x1_0000_0000);
        byte[] code = Build(GuestHarness.CodeAddress + OffsetOf(probe, 0xB8, 0x11, 0x11, 0x11, 0x11) + 1);
        g.Load64(code);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.State.Gpr[0], Is.EqualTo(0x1111_112AUL));
    }

    [Test]
    public void LoaderWriteOverDecodedCode_IsSeenOnTheNextRun()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(eax, 1);
            a.hlt();
        });
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.State.Gpr[0], Is.EqualTo(1UL));
        g.Load64(a =>
        {
            a.mov(eax, 2);
            a.hlt();
        });
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.State.Gpr[0], Is.EqualTo(2UL));
    }

    [Test]
    public void Kick_BeforeRun_ReturnsKicked()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            Label top = a.CreateLabel();
            a.Label(ref top);
            a.jmp(top);
        });
        g.Vcpu.Kick();
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Kicked));
    }

    [Test]
    public void Kick_FromAnotherThread_StopsAnEndlessLoop()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            Label top = a.CreateLabel();
            a.Label(ref top);
            a.inc(rax);
            a.jmp(top);
        });
        using var kicker = new Timer(_ => g.Vcpu.Kick(), null, 50, Timeout.Infinite);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Kicked));
        Assert.That(g.State.Gpr[0], Is.GreaterThan(0UL));
    }

    [Test]
    public void RepMovsb_LongCopy_CompletesAcrossSlices()
    {
        using var g = new GuestHarness();
        byte[] source = new byte[20000];
        new Random(1).NextBytes(source);
        g.Memory.Write(0x100000, source);
        g.Load64(a =>
        {
            a.mov(esi, 0x100000);
            a.mov(edi, 0x200000);
            a.mov(ecx, source.Length);
            a.rep.movsb();
            a.hlt();
        });
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        byte[] copy = new byte[source.Length];
        g.Memory.Read(0x200000, copy);
        Assert.That(copy, Is.EqualTo(source));
        Assert.That(g.State.Gpr[1], Is.Zero);
    }

    // ---- paging ----------------------------------------------------------------------------------------------------

    private const ulong Pml4 = 0x30000;

    /// <summary>Identity map of the first 16 MiB with 2 MiB pages; 6–8 MiB absent, 8–10 MiB read-only, 10–12 MiB NX.</summary>
    private static void BuildPageTables(GuestHarness g)
    {
        g.WriteU64(Pml4, (Pml4 + 0x1000) | 3);
        g.WriteU64(Pml4 + 0x1000, (Pml4 + 0x2000) | 3);
        for (ulong i = 0; i < 8; i++)
        {
            ulong entry = (i << 21) | 0x83;
            if (i == 3)
            {
                entry = 0;
            }
            else if (i == 4)
            {
                entry &= ~2UL;
            }
            else if (i == 5)
            {
                entry |= 1UL << 63;
            }
            g.WriteU64(Pml4 + 0x2000 + i * 8, entry);
        }
    }

    [TestCase("read absent", 0x600010UL, 0x0UL)]
    [TestCase("write absent", 0x600010UL, 0x2UL)]
    [TestCase("write read-only", 0x800020UL, 0x3UL)]
    [TestCase("execute NX", 0xA00000UL, 0x11UL)]
    public void Paging_Violation_RaisesPageFaultWithErrorCodeAndCr2(string kind, ulong address, ulong errorCode)
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(rbx, address);
            switch (kind)
            {
                case "read absent":
                    a.mov(rax, __qword_ptr[rbx]);
                    break;
                case "execute NX":
                    a.jmp(rbx);
                    break;
                default:
                    a.mov(__qword_ptr[rbx], rax);
                    break;
            }
            a.hlt();
        });
        BuildPageTables(g);
        InstallIdt(g);
        g.State.Cr3 = Pml4;
        g.State.Cr0 |= X86CpuState.Cr0Pg | (1UL << 16);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.Io.PortWrites.Single().Value, Is.EqualTo(14UL), "#PF");
            Assert.That(g.State.Cr2, Is.EqualTo(address));
            Assert.That(g.ReadU64(g.State.Gpr[4]), Is.EqualTo(errorCode), "error code");
        });
    }

    [TestCase(false)]
    [TestCase(true)]
    public void UserModeFault_IsDeliveredThroughSupervisorOnlyTablesAndStack(bool twice)
    {
        // The IDT, GDT, TSS, handlers and ring-0 stack live in a supervisor-only 2 MiB page; only the user code's
        // page is user-accessible. Delivery from CPL 3 reads and writes them with supervisor rights (Intel SDM
        // "implicit supervisor-mode accesses"), and leaves no supervisor translation usable at CPL 3 afterwards.
        const ulong user = 0x200000;
        const ulong tss = 0x50000;
        const ulong ring0Stack = 0x80000;
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.push(0x1B);
            a.push(0x3FF000);
            a.push(0x2);
            a.push(0x23);
            a.mov(rax, user);
            a.push(rax);
            a.iretq();
        });
        g.Memory.Write(user, GuestHarness.Assemble(64, user, a =>
        {
            a.mov(rbx, GdtAddress);
            a.mov(rax, __qword_ptr[rbx]);
            a.ud2();
        }));
        g.WriteU64(Pml4, (Pml4 + 0x1000) | 7);
        g.WriteU64(Pml4 + 0x1000, (Pml4 + 0x2000) | 7);
        g.WriteU64(Pml4 + 0x2000, 0x83);
        g.WriteU64(Pml4 + 0x2000 + 8, user | 0x87);
        InstallIdt(g);
        g.WriteU64(GdtAddress + 0x18, 0x00CF_F200_0000_FFFF);
        g.WriteU64(GdtAddress + 0x20, 0x00AF_FA00_0000_FFFF);
        g.State.Gdtr = new DescriptorTableRegister { Base = GdtAddress, Limit = 0x27 };
        g.WriteU64(tss + 4, ring0Stack);
        g.State.Tr = new SegmentRegister { Selector = 0x28, Base = tss, Limit = 0x67, Attributes = SegmentRegister.P | 0xB };
        g.State.Cr3 = Pml4;
        g.State.Cr0 |= X86CpuState.Cr0Pg | (1UL << 16);
        if (twice)
        {
            // A supervisor read of the GDT's page first, so a stale supervisor translation would be around.
            g.Memory.Write(GuestHarness.CodeAddress - 16, GuestHarness.Assemble(64, GuestHarness.CodeAddress - 16, a =>
            {
                a.mov(rbx, GdtAddress);
                a.mov(rax, __qword_ptr[rbx]);
            }));
            g.State.Rip = GuestHarness.CodeAddress - 16;
        }
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.Io.PortWrites.Single().Value, Is.EqualTo(14UL), "the user read of the GDT page is a #PF, delivered");
            Assert.That(g.State.Cr2, Is.EqualTo(GdtAddress));
            Assert.That(g.ReadU64(ring0Stack - 48), Is.EqualTo(5UL), "error code: present, read, user");
            Assert.That(g.ReadU64(ring0Stack - 40), Is.EqualTo(user + 10), "faulting RIP");
            Assert.That(g.ReadU64(ring0Stack - 32), Is.EqualTo(0x23UL), "user CS");
            Assert.That(g.ReadU64(ring0Stack - 16), Is.EqualTo(0x3FF000UL), "user RSP");
            Assert.That(g.State.Cpl, Is.Zero);
        });
    }

    [Test]
    public void Paging_Access_SetsAccessedAndDirtyBits()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.mov(rbx, 0x400000);
            a.mov(rax, __qword_ptr[rbx]);
            a.mov(rbx, 0xE00000);
            a.mov(__qword_ptr[rbx], rax);
            a.hlt();
        });
        BuildPageTables(g);
        g.State.Cr3 = Pml4;
        g.State.Cr0 |= X86CpuState.Cr0Pg;
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        ulong readPde = g.ReadU64(Pml4 + 0x2000 + 2 * 8);
        ulong writtenPde = g.ReadU64(Pml4 + 0x2000 + 7 * 8);
        Assert.Multiple(() =>
        {
            Assert.That(readPde & 0x60, Is.EqualTo(0x20UL), "read: A set, D clear");
            Assert.That(writtenPde & 0x60, Is.EqualTo(0x60UL), "write: A and D set");
        });
    }

    // ---- software and external interrupts, system calls ---------------------------------------------------------

    [Test]
    public void IntN_DeliversWithReturnAddressAfterTheInstruction()
    {
        using var g = new GuestHarness();
        byte[] code = GuestHarness.Assemble(64, GuestHarness.CodeAddress, a =>
        {
            a.@int(0x30);
            a.hlt();
        });
        g.Load64(code);
        InstallIdt(g);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.Io.PortWrites.Single().Value, Is.EqualTo(0x30UL));
        Assert.That(g.ReadU64(g.State.Gpr[4]), Is.EqualTo(GuestHarness.CodeAddress + 2));
    }

    [Test]
    public void SysretThenSyscall_RoundTripsThroughRingThree()
    {
        using var g = new GuestHarness();
        const ulong user = GuestHarness.CodeAddress + 0x100;
        const ulong kernelEntry = GuestHarness.CodeAddress + 0x200;
        g.Memory.Write(GuestHarness.CodeAddress, GuestHarness.Assemble(64, GuestHarness.CodeAddress, a =>
        {
            a.mov(rcx, user);
            a.mov(r11, 0x2);
            a.sysretq();
        }));
        g.Memory.Write(user, GuestHarness.Assemble(64, user, a =>
        {
            a.mov(eax, 7);
            a.syscall();
        }));
        g.Memory.Write(kernelEntry, GuestHarness.Assemble(64, kernelEntry, a =>
        {
            a.mov(r8, rcx);
            a.@out(0xF4, al);
            a.hlt();
        }));
        g.State.SetFlatLongMode(GuestHarness.CodeAddress, GuestHarness.StackTop);
        g.State.Efer |= 1;
        g.State.Star = (0x10UL << 48) | (0x08UL << 32);
        g.State.Lstar = kernelEntry;
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.Io.PortWrites.Single().Value, Is.EqualTo(7UL));
            Assert.That(g.State.Gpr[8], Is.EqualTo(user + 7), "RCX holds the return address");
            Assert.That(g.State.Segments[(int)SegmentIndex.Cs].Selector, Is.EqualTo((ushort)0x08));
            Assert.That(g.State.Cpl, Is.Zero);
        });
    }

    [Test]
    public void HltInRingThree_RaisesGeneralProtection()
    {
        using var g = new GuestHarness();
        g.Memory.Write(GuestHarness.CodeAddress, GuestHarness.Assemble(64, GuestHarness.CodeAddress, a =>
        {
            a.mov(rcx, GuestHarness.CodeAddress + 0x100);
            a.mov(r11, 0x2);
            a.sysretq();
        }));
        g.Memory.Write(GuestHarness.CodeAddress + 0x100, [0xF4]);
        g.State.SetFlatLongMode(GuestHarness.CodeAddress, GuestHarness.StackTop);
        InstallIdt(g);
        g.WriteU64(GdtAddress + 24, 0x00CF_F200_0000_FFFF);
        g.WriteU64(GdtAddress + 32, 0x00AF_FA00_0000_FFFF);
        g.State.Gdtr.Limit = 39;
        g.State.Tr.Base = 0x3000;
        g.WriteU64(0x3000 + 4, GuestHarness.StackTop - 0x1000);
        g.State.Efer |= 1;
        g.State.Star = (0x10UL << 48) | (0x08UL << 32);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.Io.PortWrites.Single().Value, Is.EqualTo(13UL));
            Assert.That(g.State.Gpr[4], Is.EqualTo(GuestHarness.StackTop - 0x1000 - 48), "stack switched to TSS.RSP0, frame with error code");
            Assert.That(g.ReadU64(g.State.Gpr[4] + 16), Is.EqualTo(0x23UL), "pushed user CS");
        });
    }

    private sealed class OneShotInterrupts(byte vector) : IInterruptSource
    {
        private bool _delivered;

        public bool TryAcknowledge(out byte v)
        {
            v = vector;
            if (_delivered)
            {
                return false;
            }
            _delivered = true;
            return true;
        }
    }

    [Test]
    public void ExternalInterrupt_IsTakenOnlyWhenIfIsSet()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            // Several blocks run with IF clear first: the pending request must wait for STI.
            Label next = a.CreateLabel();
            a.mov(ecx, 3);
            a.nop();
            a.jmp(next);
            a.Label(ref next);
            a.mov(ebx, 1);
            a.sti();
            Label spin = a.CreateLabel();
            a.Label(ref spin);
            a.jmp(spin);
        });
        InstallIdt(g);
        g.Vcpu.Interrupts = new OneShotInterrupts(0x40);
        g.Vcpu.NotifyInterruptRequest();
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.Io.PortWrites.Single().Value, Is.EqualTo(0x40UL));
            Assert.That(g.State.Gpr[3], Is.EqualTo(1UL), "not taken before STI");
            Assert.That(g.State.Rflags & X86CpuState.FlagIf, Is.Zero, "interrupt gate cleared IF");
        });
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Sti_AndMovSs_HoldInterruptsOffForOneInstruction(bool movSs)
    {
        using var g = new GuestHarness();
        byte[] code = GuestHarness.Assemble(64, GuestHarness.CodeAddress, a =>
        {
            a.mov(eax, 0x10);
            a.sti();
            if (movSs)
            {
                // STI's shadow covers MOV SS, whose own shadow covers the next instruction.
                a.mov(ss, ax);
            }
            // Interrupts are looked at between blocks: the shadowed MOV and the JMP form one block.
            Label next = a.CreateLabel();
            a.mov(ebx, 1);
            a.jmp(next);
            a.Label(ref next);
            a.mov(ecx, 2);
            a.hlt();
        });
        g.Load64(code);
        InstallIdt(g);
        g.Vcpu.Interrupts = new OneShotInterrupts(0x42);
        g.Vcpu.NotifyInterruptRequest();
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        ulong afterJmp = GuestHarness.CodeAddress + OffsetOf(code, 0xBB, 0x01, 0, 0, 0) + 7;
        Assert.Multiple(() =>
        {
            Assert.That(g.Io.PortWrites.Single().Value, Is.EqualTo(0x42UL));
            Assert.That(g.ReadU64(g.State.Gpr[4]), Is.EqualTo(afterJmp), "not taken before the shadowed instruction ran");
            Assert.That(g.State.Gpr[3], Is.EqualTo(1UL));
            Assert.That(g.State.Gpr[1] & 0xFF, Is.Not.EqualTo(2UL));
        });
    }

    [Test]
    public void Hlt_WithInterruptsEnabled_SleepsUntilAnInterruptRequest()
    {
        using var g = new GuestHarness();
        g.Load64(a =>
        {
            a.sti();
            a.hlt();
            a.mov(ebx, 2);
            a.hlt();
        });
        InstallIdt(g);
        g.Vcpu.Interrupts = new OneShotInterrupts(0x41);
        using var timer = new Timer(_ => g.Vcpu.NotifyInterruptRequest(), null, 50, Timeout.Infinite);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.Io.PortWrites.Single().Value, Is.EqualTo(0x41UL));
        Assert.That(g.ReadU64(g.State.Gpr[4]), Is.EqualTo(GuestHarness.CodeAddress + 2), "return address is after the HLT");
    }

    // ---- allocation --------------------------------------------------------------------------------------------------

    [Test]
    public void MillionInstructions_AllocateNothing()
    {
        using var g = new GuestHarness();
        byte[] code = GuestHarness.Assemble(64, GuestHarness.CodeAddress, a =>
        {
            Label top = a.CreateLabel();
            a.mov(ecx, 200_000);
            a.Label(ref top);
            a.add(rax, rcx);
            a.mov(__qword_ptr[rsp - 8], rax);
            a.xor(rdx, __qword_ptr[rsp - 8]);
            a.dec(ecx);
            a.jnz(top);
            a.hlt();
        });
        g.Load64(code);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), "warm-up");
        g.State.SetFlatLongMode(GuestHarness.CodeAddress, GuestHarness.StackTop);
        ulong before = g.Vcpu.InstructionCount;
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        VcpuExit exit = g.Vcpu.Run();
        long delta = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Assert.That(exit, Is.EqualTo(VcpuExit.Halted));
        Assert.That(g.Vcpu.InstructionCount - before, Is.GreaterThanOrEqualTo(1_000_000UL));
        Assert.That(delta, Is.Zero);
    }
}
