using Colo.Core.Cpu;
using Colo.Cpu.Interpreter;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// LOCK-prefixed instructions are atomic across vCPU threads: two interpreter vCPUs on one guest RAM hammer the same
/// words, and no update may be lost. Without host atomics these lose increments (and a spin lock admits two owners)
/// as soon as the two threads overlap.
/// </summary>
[TestFixture]
public sealed class LockedAtomicityTests
{
    private const ulong Counter = 0x30000;
    private const ulong SpinLock = 0x30040;
    private const ulong Shared = 0x30080;
    private const int Iterations = 200_000;

    private static ulong CodeOf(int cpu) => 0x10000 + (ulong)cpu * 0x1000;

    private static ulong StackOf(int cpu) => 0x80000 + (ulong)cpu * 0x10000;

    /// <summary>Runs the same loop on two vCPUs at once, each on its own thread, until both halt.</summary>
    private static void RunOnTwoVcpus(GuestHarness g, Action<Assembler> body)
    {
        using var second = new InterpreterVcpu(1, g.Memory, g.Io);
        InterpreterVcpu[] cpus = [g.Vcpu, second];
        for (int i = 0; i < cpus.Length; i++)
        {
            ulong code = CodeOf(i);
            g.Memory.Write(code, GuestHarness.Assemble(64, code, a =>
            {
                Label top = a.CreateLabel();
                a.mov(ecx, Iterations);
                a.Label(ref top);
                a.nop(); // the body may start with a label of its own
                body(a);
                a.dec(ecx);
                a.jnz(top);
                a.hlt();
            }));
            cpus[i].State.SetFlatLongMode(code, StackOf(i));
        }
        using var start = new Barrier(2);
        var exits = new VcpuExit[2];
        Thread[] threads = cpus.Select((cpu, i) => new Thread(() =>
        {
            start.SignalAndWait();
            exits[i] = cpu.Run();
        })).ToArray();
        foreach (Thread t in threads)
        {
            t.Start();
        }
        // A lost lock release deadlocks both loops: stop them rather than hang the suite.
        bool finished = threads.All(t => t.Join(TimeSpan.FromSeconds(60)));
        if (!finished)
        {
            foreach (InterpreterVcpu cpu in cpus)
            {
                cpu.Kick();
            }
            foreach (Thread t in threads)
            {
                t.Join();
            }
        }
        Assert.That(finished, Is.True, "both vCPUs finish their loops (no lost lock release)");
        Assert.That(exits, Is.All.EqualTo(VcpuExit.Halted));
    }

    [Test]
    public void LockAdd_Xadd_Inc_OnOneWord_LoseNoUpdate()
    {
        using var g = new GuestHarness();
        RunOnTwoVcpus(g, a =>
        {
            a.@lock.inc(__qword_ptr[Counter]);
            a.mov(eax, 2);
            a.@lock.xadd(__dword_ptr[Counter + 8], eax);
            a.@lock.add(__word_ptr[Counter + 16], 3);
        });
        Assert.Multiple(() =>
        {
            Assert.That(g.ReadU64(Counter), Is.EqualTo(2UL * Iterations), "lock inc");
            Assert.That(g.ReadU64(Counter + 8), Is.EqualTo(4UL * Iterations), "lock xadd");
            Assert.That(g.ReadU64(Counter + 16) & 0xFFFF, Is.EqualTo((ulong)(6 * Iterations) & 0xFFFF), "lock add word");
        });
    }

    [Test]
    public void CmpxchgRetryLoop_LosesNoUpdate()
    {
        using var g = new GuestHarness();
        RunOnTwoVcpus(g, a =>
        {
            Label retry = a.CreateLabel();
            a.Label(ref retry);
            a.mov(eax, __dword_ptr[Counter]);
            a.lea(edx, __dword_ptr[rax + 1]);
            a.@lock.cmpxchg(__dword_ptr[Counter], edx);
            a.jnz(retry);
        });
        Assert.That(g.ReadU64(Counter) & 0xFFFF_FFFF, Is.EqualTo(2UL * Iterations));
    }

    [Test]
    public void BtsSpinLock_WithPlainStoreRelease_AdmitsOneOwnerAtATime()
    {
        using var g = new GuestHarness();
        RunOnTwoVcpus(g, a =>
        {
            // SeaBIOS's and Linux's shape: acquire with LOCK BTS, release with a plain store, and an unlocked
            // read-modify-write inside, which only mutual exclusion keeps exact.
            Label acquire = a.CreateLabel();
            a.Label(ref acquire);
            a.pause();
            a.@lock.bts(__dword_ptr[SpinLock], 0);
            a.jc(acquire);
            a.mov(rax, __qword_ptr[Shared]);
            a.inc(rax);
            a.mov(__qword_ptr[Shared], rax);
            a.mov(__dword_ptr[SpinLock], 0);
        });
        Assert.That(g.ReadU64(Shared), Is.EqualTo(2UL * Iterations));
    }

    // SeaBIOS keeps SMPLock in its own segment, RAM the PAM registers opened for reads and writes: locked ops there
    // must be atomic too, else its AP start-up deadlocks (a failed BTS wrote back over the BSP's release).
    private const ulong ShadowLock = 0xF0040;
    private const ulong ShadowShared = 0xF0080;

    private static GuestHarness ShadowSpinLockRun()
    {
        var g = new GuestHarness(legacyWindow: true);
        g.Memory.SetLegacyPage(0xF0000, Colo.Core.Memory.LegacyPageRead.Ram, writeRam: true);
        RunOnTwoVcpus(g, a =>
        {
            Label acquire = a.CreateLabel();
            a.Label(ref acquire);
            a.pause();
            a.@lock.bts(__dword_ptr[ShadowLock], 0);
            a.jc(acquire);
            a.mov(rax, __qword_ptr[ShadowShared]);
            a.inc(rax);
            a.mov(__qword_ptr[ShadowShared], rax);
            a.mov(__dword_ptr[ShadowLock], 0);
        });
        return g;
    }

    [Test]
    public void BtsSpinLock_InShadowedBiosRam_NeverDeadlocks()
    {
        // RunOnTwoVcpus asserts both loops finish: no release is lost.
        using GuestHarness g = ShadowSpinLockRun();
        Assert.That(g.ReadU64(ShadowShared), Is.InRange(1UL, 2UL * Iterations));
    }

    [Test]
    public void BtsSpinLock_InShadowedBiosRam_AdmitsOneOwnerAtATime()
    {
        using GuestHarness g = ShadowSpinLockRun();
        Assert.That(g.ReadU64(ShadowShared), Is.EqualTo(2UL * Iterations));
    }

    [Test]
    public void XchgSpinLock_AndCmpxchg8b_AreAtomic()
    {
        using var g = new GuestHarness();
        RunOnTwoVcpus(g, a =>
        {
            // XCHG with memory is locked without a prefix.
            Label acquire = a.CreateLabel();
            a.Label(ref acquire);
            a.mov(eax, 1);
            a.xchg(__dword_ptr[SpinLock], eax);
            a.test(eax, eax);
            a.jnz(acquire);
            a.inc(__qword_ptr[Shared]);
            a.mov(__dword_ptr[SpinLock], 0);
            // A 64-bit counter bumped with CMPXCHG8B.
            Label retry = a.CreateLabel();
            a.mov(eax, __dword_ptr[Counter]);
            a.mov(edx, __dword_ptr[Counter + 4]);
            a.Label(ref retry);
            a.mov(ebx, eax);
            a.add(ebx, 1);
            a.push(rcx);
            a.mov(ecx, edx);
            a.adc(ecx, 0);
            a.@lock.cmpxchg8b(__qword_ptr[Counter]);
            a.pop(rcx);
            a.jnz(retry);
        });
        Assert.Multiple(() =>
        {
            Assert.That(g.ReadU64(Shared), Is.EqualTo(2UL * Iterations), "xchg lock");
            Assert.That(g.ReadU64(Counter), Is.EqualTo(2UL * Iterations), "cmpxchg8b");
        });
    }
}
