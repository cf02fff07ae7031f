using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// Debug exceptions (SDM vol. 3 17.3): TF single-step traps (not after the POPF that sets TF, held off by MOV SS, none
/// for INT n), INT1/ICEBP, DR0–DR3 instruction breakpoints (faults, resumed with RF) and data breakpoints (traps by
/// R/W and LEN), with DR6's BS and B0–B3. A #DB handler logs the pushed RIP and DR6 and sets RF in the frame.
/// </summary>
[TestFixture]
public sealed class DebugTests
{
    private const ulong Gdt = 0x1000;
    private const ulong Idt = 0x2000;
    private const ulong Handlers = 0x30000;
    private const ulong DbHandler = 0x38000;
    private const ulong IntHandler = 0x38800;
    private const ulong Count = 0x40000;
    private const ulong Log = 0x40100;
    private const ulong Dr6Log = 0x40800;
    private const ulong Variable = 0x41000;
    private const ushort Port = 0x80;

    private static void Gate(GuestHarness g, int vector, ulong handler)
    {
        g.WriteU64(Idt + (ulong)vector * 16, (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | (((handler >> 16) & 0xFFFF) << 48));
        g.WriteU64(Idt + (ulong)vector * 16 + 8, handler >> 32);
    }

    /// <summary>64-bit guest: <paramref name="emit"/> at the code address, a logging #DB handler and an IRETQ-only INT 0x40.</summary>
    private static List<Instruction> Setup(GuestHarness g, Action<Assembler> emit)
    {
        byte[] code = GuestHarness.Assemble(64, GuestHarness.CodeAddress, emit);
        g.Load64(code);
        g.InstallReportingIdt(Gdt, Idt, Handlers, 0x41, Port);
        g.Memory.Write(DbHandler, GuestHarness.Assemble(64, DbHandler, a =>
        {
            a.push(rax);
            a.push(rbx);
            a.mov(rax, __qword_ptr[Count]);
            a.mov(rbx, __qword_ptr[rsp + 16]);
            a.mov(__qword_ptr[rax * 8 + (long)Log], rbx);
            a.mov(rbx, dr6);
            a.mov(__qword_ptr[rax * 8 + (long)Dr6Log], rbx);
            a.inc(__qword_ptr[Count]);
            // Resume past an instruction breakpoint; harmless after a trap. DR6 is cleared for the next report.
            a.or(__qword_ptr[rsp + 32], 0x10000);
            a.xor(ebx, ebx);
            a.mov(dr6, rbx);
            a.pop(rbx);
            a.pop(rax);
            a.iretq();
        }));
        g.Memory.Write(IntHandler, GuestHarness.Assemble(64, IntHandler, a => a.iretq()));
        Gate(g, 1, DbHandler);
        Gate(g, 0x40, IntHandler);
        var decoder = Decoder.Create(64, code, GuestHarness.CodeAddress);
        var list = new List<Instruction>();
        while (decoder.IP < GuestHarness.CodeAddress + (ulong)code.Length)
        {
            list.Add(decoder.Decode());
        }
        return list;
    }

    private static List<ulong> RunAndLog(GuestHarness g, out List<ulong> dr6)
    {
        g.Io.PortWrites.Clear();
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), $"exception {g.State.ExceptionVector} at {g.State.Rip:X}");
        Assert.That(g.Io.PortWrites, Is.Empty, "no other exception");
        int n = (int)g.ReadU64(Count);
        var log = new List<ulong>();
        dr6 = [];
        for (int i = 0; i < n; i++)
        {
            log.Add(g.ReadU64(Log + (ulong)i * 8));
            dr6.Add(g.ReadU64(Dr6Log + (ulong)i * 8));
        }
        return log;
    }

    private static ulong After(List<Instruction> code, Func<Instruction, bool> which) => code.First(which).NextIP;

    [Test]
    public void TrapFlag_StepsEachInstructionAfterThePopfThatSetsIt()
    {
        using var g = new GuestHarness();
        List<Instruction> code = Setup(g, a =>
        {
            a.pushfq();
            a.or(__qword_ptr[rsp], 0x100);
            a.popfq();
            a.mov(eax, 1);
            a.mov(ecx, ss);
            a.mov(ss, ecx);
            a.mov(edx, 3);
            a.@int(0x40);
            a.mov(esi, 4);
            a.pushfq();
            a.and(__qword_ptr[rsp], ~0x100);
            a.popfq();
            a.mov(edi, 5);
            a.hlt();
        });
        List<ulong> log = RunAndLog(g, out List<ulong> dr6);
        ulong[] expected =
        [
            After(code, i => i.Code == Code.Mov_r32_imm32 && i.Immediate32 == 1),
            After(code, i => i.Mnemonic == Mnemonic.Mov && i.Op0Register == Register.ECX),
            // Not after MOV SS: its trap waits for the next instruction. None after INT 0x40 either; the handler's
            // IRETQ restores TF, so the instruction after it traps.
            After(code, i => i.Code == Code.Mov_r32_imm32 && i.Immediate32 == 3),
            After(code, i => i.Code == Code.Mov_r32_imm32 && i.Immediate32 == 4),
            code.First(i => i.Mnemonic == Mnemonic.Pushfq && i.IP > code[3].IP).NextIP,
            code.First(i => i.Mnemonic == Mnemonic.And).NextIP,
            // The POPF that clears TF still traps: TF was set when it began.
            code.Last(i => i.Mnemonic == Mnemonic.Popfq).NextIP,
        ];
        Assert.Multiple(() =>
        {
            Assert.That(log, Is.EqualTo(expected), "single-step trap RIPs");
            Assert.That(dr6.All(d => (d & (1UL << 14)) != 0), Is.True, "DR6.BS on every step");
            Assert.That(g.State.Gpr[7], Is.EqualTo(5UL), "ran to the end");
            Assert.That(g.State.Rflags & X86CpuState.FlagTf, Is.Zero);
        });
    }

    [Test]
    public void Int1_RaisesDebugTrapPastTheInstruction()
    {
        using var g = new GuestHarness();
        List<Instruction> code = Setup(g, a =>
        {
            a.mov(eax, 1);
            a.int1();
            a.mov(eax, 2);
            a.hlt();
        });
        List<ulong> log = RunAndLog(g, out List<ulong> dr6);
        Assert.Multiple(() =>
        {
            Assert.That(log, Is.EqualTo(new[] { After(code, i => i.Mnemonic == Mnemonic.Int1) }));
            Assert.That(dr6[0] & 0x400F, Is.Zero, "ICEBP sets no DR6 status bit");
            Assert.That(g.State.Gpr[0], Is.EqualTo(2UL));
        });
    }

    [Test]
    public void InstructionBreakpoint_FaultsBeforeEachExecution_AndRfResumes()
    {
        using var g = new GuestHarness();
        List<Instruction> code = Setup(g, a =>
        {
            var loop = a.CreateLabel();
            a.mov(ecx, 3);
            a.xor(eax, eax);
            a.Label(ref loop);
            a.add(eax, 7);
            a.dec(ecx);
            a.jnz(loop);
            a.hlt();
        });
        ulong target = code.First(i => i.Mnemonic == Mnemonic.Add).IP;
        g.State.Dr0 = target;
        g.State.Dr7 = 0x401; // L0 with RW0 = LEN0 = 00 (execution); breakpoint 1 is not enabled
        g.State.Dr1 = code.First(i => i.Mnemonic == Mnemonic.Hlt).IP; // L1 is not set: must not fire
        List<ulong> log = RunAndLog(g, out List<ulong> dr6);
        Assert.Multiple(() =>
        {
            Assert.That(log, Is.EqualTo(new[] { target, target, target }), "a fault at the ADD on every iteration");
            Assert.That(dr6.All(d => (d & 0xF) == 1 && (d & (1UL << 14)) == 0), Is.True, "B0 only");
            Assert.That(g.State.Gpr[0], Is.EqualTo(21UL), "each ADD ran once after its breakpoint");
        });
    }

    [TestCase(1, 3, "mov dword [var], 5", true)]
    [TestCase(1, 3, "mov eax, dword [var]", false)]
    [TestCase(3, 3, "mov eax, dword [var]", true)]
    [TestCase(1, 0, "mov byte [var+1], 5", false)]
    [TestCase(1, 1, "mov byte [var+1], 5", true)]
    [TestCase(1, 2, "mov qword [var], rax (LEN 8 at var+4)", true)]
    [TestCase(3, 3, "push to the watched slot", true)]
    public void DataBreakpoint_TrapsAfterTheAccess(int rw, int len, string form, bool fires)
    {
        using var g = new GuestHarness();
        List<Instruction> code = Setup(g, a =>
        {
            if (form.StartsWith("push", StringComparison.Ordinal))
            {
                a.mov(rsi, rsp);
                a.mov(rsp, Variable + 8);
                a.push(rax);
                a.mov(rsp, rsi);
            }
            else
            {
                switch (form)
                {
                    case "mov dword [var], 5": a.mov(__dword_ptr[Variable], 5); break;
                    case "mov eax, dword [var]": a.mov(eax, __dword_ptr[Variable]); break;
                    case "mov byte [var+1], 5": a.mov(__byte_ptr[Variable + 1], 5); break;
                    default: a.mov(__qword_ptr[Variable], rax); break;
                }
                a.nop();
            }
            a.hlt();
        });
        g.State.Dr2 = form.Contains("var+4", StringComparison.Ordinal) ? Variable + 4 : Variable;
        g.State.Dr7 = 0x400 | (1UL << 5) | ((ulong)rw << 24) | ((ulong)len << 26); // G2, RW2, LEN2
        List<ulong> log = RunAndLog(g, out List<ulong> dr6);
        Instruction access = form.StartsWith("push", StringComparison.Ordinal) ? code.First(i => i.Mnemonic == Mnemonic.Push) : code[0];
        Assert.That(log, Is.EqualTo(fires ? new[] { access.NextIP } : Array.Empty<ulong>()), "a trap past the access");
        if (fires)
        {
            Assert.That(dr6[0] & 0x400F, Is.EqualTo(4UL), "B2 only");
        }
    }
}
