using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>16-bit real mode, 32-bit protected mode and the transitions between them and long mode.</summary>
[TestFixture]
public sealed class ModeTests
{
    private const ushort GdtAddress = 0x7F00;
    private const ulong Pml4 = 0x30000;

    private static void RealMode(GuestHarness g, ushort cs, ushort ip)
    {
        g.State.Reset();
        ref SegmentRegister c = ref g.State.Segments[(int)SegmentIndex.Cs];
        c.Selector = cs;
        c.Base = (ulong)cs << 4;
        g.State.Rip = ip;
        g.State.Gpr[4] = 0x8000;
        g.State.Gpr[2] = 0;
    }

    [Test]
    public void RealMode_SegmentedAddressingStackAndStrings()
    {
        using var g = new GuestHarness();
        g.Memory.Write(0x10000, GuestHarness.Assemble(16, 0, a =>
        {
            a.mov(ax, 0x2000);
            a.mov(ds, ax);
            a.mov(__word_ptr[0x10], 0x1234);
            a.mov(bx, __word_ptr[0x10]);
            a.add(bx, 1);
            a.push(bx);
            a.pop(cx);
            a.mov(si, 0x10);
            a.lodsw();
            a.mov(dx, ds);
            a.hlt();
        }));
        RealMode(g, 0x1000, 0);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        byte[] word = new byte[2];
        g.Memory.Read(0x20010, word);
        Assert.Multiple(() =>
        {
            Assert.That(BitConverter.ToUInt16(word), Is.EqualTo(0x1234));
            Assert.That(g.State.Gpr[1] & 0xFFFF, Is.EqualTo(0x1235UL));
            Assert.That(g.State.Gpr[0] & 0xFFFF, Is.EqualTo(0x1234UL));
            Assert.That(g.State.Gpr[2] & 0xFFFF, Is.EqualTo(0x2000UL));
            Assert.That(g.State.Gpr[6] & 0xFFFF, Is.EqualTo(0x12UL));
            Assert.That(g.State.Rip, Is.EqualTo((ulong)g.State.Rip & 0xFFFF), "IP stays 16-bit");
        });
    }

    [Test]
    public void RealMode_DivideError_VectorsThroughIvtAndIretReturns()
    {
        using var g = new GuestHarness();
        // IVT[0] = 0x0000:0x0600, a handler that reports and skips the 2-byte DIV.
        g.Memory.Write(0, [0x00, 0x06, 0x00, 0x00]);
        g.Memory.Write(0x600, GuestHarness.Assemble(16, 0x600, a =>
        {
            a.mov(al, 0);
            a.@out(0xF4, al);
            a.mov(bp, sp);
            a.add(__word_ptr[bp], 2);
            a.iret();
        }));
        g.Memory.Write(0x7C00, GuestHarness.Assemble(16, 0x7C00, a =>
        {
            a.xor(bx, bx);
            a.div(bl);
            a.mov(cx, 0x77);
            a.hlt();
        }));
        RealMode(g, 0, 0x7C00);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.Io.PortWrites.Single().Port, Is.EqualTo((ushort)0xF4));
            Assert.That(g.State.Gpr[1] & 0xFFFF, Is.EqualTo(0x77UL), "resumed after the DIV");
            Assert.That(g.State.Gpr[4] & 0xFFFF, Is.EqualTo(0x8000UL), "IRET popped the frame");
        });
    }

    [Test]
    public void RealMode_LoadFarPointer_SetsSegmentAndRegister()
    {
        // syslinux's boot sector: lfs si, [0x78] (the INT 1Eh diskette parameter pointer), then les/lss/lds.
        using var g = new GuestHarness();
        g.Memory.Write(0x78, [0x34, 0x12, 0x00, 0xF0]);
        g.Memory.Write(0x80, [0x78, 0x56, 0x00, 0x20, 0x00, 0x7E, 0x00, 0x10, 0xEF, 0xBE, 0x00, 0x30]);
        g.Memory.Write(0x7C00, GuestHarness.Assemble(16, 0x7C00, a =>
        {
            a.xor(ax, ax);
            a.mov(ds, ax);
            a.lfs(si, __dword_ptr[0x78]);
            a.les(di, __dword_ptr[0x80]);
            a.lss(sp, __dword_ptr[0x84]);
            a.lds(bx, __dword_ptr[0x88]);
            a.hlt();
        }));
        RealMode(g, 0, 0x7C00);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.State.Gpr[6] & 0xFFFF, Is.EqualTo(0x1234UL));
            Assert.That(g.State.Segments[(int)SegmentIndex.Fs].Base, Is.EqualTo(0xF0000UL));
            Assert.That(g.State.Gpr[7] & 0xFFFF, Is.EqualTo(0x5678UL));
            Assert.That(g.State.Segments[(int)SegmentIndex.Es].Selector, Is.EqualTo((ushort)0x2000));
            Assert.That(g.State.Gpr[4] & 0xFFFF, Is.EqualTo(0x7E00UL));
            Assert.That(g.State.Segments[(int)SegmentIndex.Ss].Base, Is.EqualTo(0x10000UL));
            Assert.That(g.State.Gpr[3] & 0xFFFF, Is.EqualTo(0xBEEFUL));
            Assert.That(g.State.Segments[(int)SegmentIndex.Ds].Selector, Is.EqualTo((ushort)0x3000));
        });
    }

    [Test]
    public void RealMode_PushadPopad_SaveAndRestoreEveryRegister()
    {
        // syslinux's MBR brackets its disk reads with PUSHAD/POPAD (66 60 / 66 61 in 16-bit code).
        using var g = new GuestHarness();
        g.Memory.Write(0x7C00, GuestHarness.Assemble(16, 0x7C00, a =>
        {
            a.mov(eax, 0x11111111);
            a.mov(ecx, 0x22222222);
            a.mov(edx, 0x33333333);
            a.mov(ebx, 0x44444444);
            a.mov(ebp, 0x55555555);
            a.mov(esi, 0x66666666);
            a.mov(edi, 0x77777777);
            a.pushad();
            a.pusha();
            a.xor(eax, eax);
            a.xor(ecx, ecx);
            a.xor(edx, edx);
            a.xor(ebx, ebx);
            a.xor(ebp, ebp);
            a.xor(esi, esi);
            a.xor(edi, edi);
            a.popa();
            a.mov(di, 0x1234);
            a.popad();
            a.hlt();
        }));
        RealMode(g, 0, 0x7C00);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.State.Gpr[0] & 0xFFFF_FFFF, Is.EqualTo(0x11111111UL));
            Assert.That(g.State.Gpr[1] & 0xFFFF_FFFF, Is.EqualTo(0x22222222UL));
            Assert.That(g.State.Gpr[3] & 0xFFFF_FFFF, Is.EqualTo(0x44444444UL));
            Assert.That(g.State.Gpr[7] & 0xFFFF_FFFF, Is.EqualTo(0x77777777UL), "POPAD restores the 32-bit EDI");
            Assert.That(g.State.Gpr[4] & 0xFFFF, Is.EqualTo(0x8000UL), "the stack is balanced");
            // PUSHAD's image: EAX at the top (highest address) ... EDI at the bottom; the SP slot holds SP before it.
            Assert.That(g.ReadU64(0x8000 - 4) & 0xFFFF_FFFF, Is.EqualTo(0x11111111UL));
            Assert.That(g.ReadU64(0x8000 - 20) & 0xFFFF_FFFF, Is.EqualTo(0x8000UL), "stored ESP");
            Assert.That(g.ReadU64(0x8000 - 32) & 0xFFFF_FFFF, Is.EqualTo(0x77777777UL));
        });
    }

    [Test]
    public void RealMode_FarCallAndRetf_SwitchCodeSegments()
    {
        using var g = new GuestHarness();
        g.Memory.Write(0x20000 + 0x40, GuestHarness.Assemble(16, 0x40, a =>
        {
            a.mov(ax, cs);
            a.retf(2);
        }));
        g.Memory.Write(0x7C00, GuestHarness.Assemble(16, 0x7C00, a =>
        {
            a.push(0x5555);
            a.call(0x2000, 0x40);
            a.mov(bx, cs);
            a.hlt();
        }));
        RealMode(g, 0, 0x7C00);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.State.Gpr[0] & 0xFFFF, Is.EqualTo(0x2000UL), "CS inside the far procedure");
            Assert.That(g.State.Gpr[3] & 0xFFFF, Is.Zero, "CS restored by RETF");
            Assert.That(g.State.Gpr[4] & 0xFFFF, Is.EqualTo(0x8000UL), "RETF imm16 released the argument");
        });
    }

    [Test]
    public void ProtectedMode32_FlatCode_RunsWithThirtyTwoBitOperands()
    {
        using var g = new GuestHarness();
        g.Memory.Write(0x40000, GuestHarness.Assemble(32, 0x40000, a =>
        {
            Label fn = a.CreateLabel();
            Label top = a.CreateLabel();
            a.mov(ecx, 10);
            a.xor(eax, eax);
            a.Label(ref top);
            a.call(fn);
            a.loop(top);
            a.mov(__dword_ptr[0x50000], eax);
            a.hlt();
            a.Label(ref fn);
            a.push(ecx);
            a.add(eax, __dword_ptr[esp]);
            a.pop(edx);
            a.ret();
        }));
        g.State.SetFlatLongMode(0x40000, 0x90000);
        g.State.Efer = 0;
        g.State.Cr0 = 0x11;
        g.State.Cr4 = 0;
        for (int i = 0; i < 6; i++)
        {
            g.State.Segments[i].Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | (i == 1 ? 0xB : 3));
        }
        g.State.Gpr[4] = 0xFFFF_0000_0009_0000;
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        Assert.Multiple(() =>
        {
            Assert.That(g.ReadU64(0x50000) & 0xFFFF_FFFF, Is.EqualTo(55UL));
            Assert.That(g.State.Gpr[4], Is.EqualTo(0xFFFF_0000_0009_0000), "ESP arithmetic leaves RSP's upper half alone");
        });
    }

    [Test]
    public void Boot_RealToProtectedToLongMode_ReachesSixtyFourBitCode()
    {
        using var g = new GuestHarness();
        g.WriteU64(GdtAddress, 0);
        g.WriteU64(GdtAddress + 0x08, 0x00CF_9A00_0000_FFFF);
        g.WriteU64(GdtAddress + 0x10, 0x00CF_9200_0000_FFFF);
        g.WriteU64(GdtAddress + 0x18, 0x00AF_9A00_0000_FFFF);
        g.Memory.Write(0x7E00, [0x1F, 0x00, GdtAddress & 0xFF, GdtAddress >> 8, 0, 0]);
        g.WriteU64(Pml4, (Pml4 + 0x1000) | 3);
        g.WriteU64(Pml4 + 0x1000, (Pml4 + 0x2000) | 3);
        for (ulong i = 0; i < 8; i++)
        {
            g.WriteU64(Pml4 + 0x2000 + i * 8, (i << 21) | 0x83);
        }
        g.Memory.Write(0x7C00, GuestHarness.Assemble(16, 0x7C00, a =>
        {
            a.cli();
            a.AddInstruction(Instruction.Create(Code.Lgdt_m1632_16, new MemoryOperand(Register.None, 0x7E00, 2)));
            a.mov(eax, cr0);
            a.or(eax, 1);
            a.mov(cr0, eax);
            a.AddInstruction(Instruction.CreateBranch(Code.Jmp_ptr1616, 0x08, 0x8000));
        }));
        g.Memory.Write(0x8000, GuestHarness.Assemble(32, 0x8000, a =>
        {
            a.mov(ax, 0x10);
            a.mov(ds, ax);
            a.mov(es, ax);
            a.mov(ss, ax);
            a.mov(esp, 0x9F000);
            a.mov(eax, cr4);
            a.or(eax, 0x20);
            a.mov(cr4, eax);
            a.mov(eax, (uint)Pml4);
            a.mov(cr3, eax);
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.or(eax, 0x100);
            a.wrmsr();
            a.mov(eax, cr0);
            a.or(eax, 0x8000_0000);
            a.mov(cr0, eax);
            a.AddInstruction(Instruction.CreateBranch(Code.Jmp_ptr1632, 0x18, 0x9000));
        }));
        g.Memory.Write(0x9000, GuestHarness.Assemble(64, 0x9000, a =>
        {
            // Reload CS with a far return, as kernels do after switching GDTs.
            Label reloaded = a.CreateLabel();
            a.push(0x18);
            a.lea(rax, __[reloaded]);
            a.push(rax);
            a.AddInstruction(Instruction.Create(Code.Retfq));
            a.Label(ref reloaded);
            a.mov(rax, 0x1_2345_6789UL);
            a.push(rax);
            a.pop(rbx);
            a.@out(0xF4, al);
            a.hlt();
        }));
        RealMode(g, 0, 0x7C00);
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), g.Vcpu.InternalErrorDetail);
        Assert.Multiple(() =>
        {
            Assert.That(g.Io.PortWrites.Single(), Is.EqualTo(((ushort)0xF4, 0x89UL, 1)));
            Assert.That(g.State.Gpr[3], Is.EqualTo(0x1_2345_6789UL));
            Assert.That(g.State.Efer & X86CpuState.EferLma, Is.Not.Zero, "long mode active");
            Assert.That(g.State.Segments[(int)SegmentIndex.Cs].Selector, Is.EqualTo((ushort)0x18));
            Assert.That(g.State.Gpr[4], Is.EqualTo(0x9F000UL));
        });
    }
}
