using Colo.Core.Cpu;
using Colo.Machine.Hmp;

namespace Colo.Tests.Unit.Machine.Hmp;

/// <summary><c>info registers</c> against QEMU 7.2's own dumps (captured from Debian's qemu-system-x86_64).</summary>
[TestFixture]
public sealed class CpuRegistersTextTests
{
    [Test]
    public void ResetState_MatchesQemusDump()
    {
        var s = default(X86CpuState);
        s.Reset();
        string expected = """

            CPU#0
            EAX=00000000 EBX=00000000 ECX=00000000 EDX=00060fb1
            ESI=00000000 EDI=00000000 EBP=00000000 ESP=00000000
            EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0
            ES =0000 00000000 0000ffff 00009300
            CS =f000 ffff0000 0000ffff 00009b00
            SS =0000 00000000 0000ffff 00009300
            DS =0000 00000000 0000ffff 00009300
            FS =0000 00000000 0000ffff 00009300
            GS =0000 00000000 0000ffff 00009300
            LDT=0000 00000000 0000ffff 00008200
            TR =0000 00000000 0000ffff 00008b00
            GDT=     00000000 0000ffff
            IDT=     00000000 0000ffff
            CR0=60000010 CR2=00000000 CR3=00000000 CR4=00000000
            DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 
            DR6=00000000ffff0ff0 DR7=0000000000000400
            EFER=0000000000000000
            FCW=037f FSW=0000 [ST=0] FTW=00 MXCSR=00001f80
            FPR0=0000000000000000 0000 FPR1=0000000000000000 0000
            FPR2=0000000000000000 0000 FPR3=0000000000000000 0000
            FPR4=0000000000000000 0000 FPR5=0000000000000000 0000
            FPR6=0000000000000000 0000 FPR7=0000000000000000 0000
            XMM00=0000000000000000 0000000000000000 XMM01=0000000000000000 0000000000000000
            XMM02=0000000000000000 0000000000000000 XMM03=0000000000000000 0000000000000000
            XMM04=0000000000000000 0000000000000000 XMM05=0000000000000000 0000000000000000
            XMM06=0000000000000000 0000000000000000 XMM07=0000000000000000 0000000000000000

            """;
        Assert.That(CpuRegistersText.Format(0, s), Is.EqualTo(expected.ReplaceLineEndings("\n")));
    }

    [Test]
    public void LongMode_UsesSixtyFourBitLayoutAndSegmentWords()
    {
        var s = default(X86CpuState);
        s.Reset();
        s.Efer = 0xD01;
        s.Cr0 = 0x80050033;
        s.Cr4 = 0x6f0;
        s.Cr3 = 0xfe10000;
        s.Rip = 0xffffffff914ebda3;
        s.Rflags = 0x287;
        s.Gpr[0] = 0x1000;
        s.Gpr[3] = 0xffff88fe4104db10; // RBX
        s.Gpr[4] = 0xffffffff92c03b50; // RSP
        s.Segments[(int)SegmentIndex.Cs] = new SegmentRegister { Selector = 0x10, Limit = 0xFFFF_FFFF, Attributes = 0xA09B };
        s.Segments[(int)SegmentIndex.Ss] = new SegmentRegister { Selector = 0x18, Limit = 0xFFFF_FFFF, Attributes = 0xC093 };
        s.Tr = new SegmentRegister { Selector = 0x40, Base = 0xfffffe0000003000, Limit = 0x4087, Attributes = 0x89 };
        s.Gdtr = new DescriptorTableRegister { Base = 0xfffffe0000001000, Limit = 0x7f };
        string text = CpuRegistersText.Format(0, s);
        Assert.Multiple(() =>
        {
            Assert.That(text, Does.Contain("RAX=0000000000001000 RBX=ffff88fe4104db10 RCX=0000000000000000 RDX=0000000000060fb1\n"));
            Assert.That(text, Does.Contain("RSI=0000000000000000 RDI=0000000000000000 RBP=0000000000000000 RSP=ffffffff92c03b50\n"));
            Assert.That(text, Does.Contain("RIP=ffffffff914ebda3 RFL=00000287 [--S--PC] CPL=0 II=0 A20=1 SMM=0 HLT=0\n"));
            Assert.That(text, Does.Contain("CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]\n"));
            Assert.That(text, Does.Contain("SS =0018 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\n"));
            Assert.That(text, Does.Contain("TR =0040 fffffe0000003000 00004087 00008900 DPL=0 TSS64-avl\n"));
            Assert.That(text, Does.Contain("GDT=     fffffe0000001000 0000007f\n"));
            Assert.That(text, Does.Contain("CR0=80050033 CR2=0000000000000000 CR3=000000000fe10000 CR4=000006f0\n"));
            Assert.That(text, Does.Contain("XMM14=0000000000000000 0000000000000000 XMM15=0000000000000000 0000000000000000\n"));
        });
    }
}
