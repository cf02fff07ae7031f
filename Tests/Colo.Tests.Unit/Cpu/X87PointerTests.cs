using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// x87 FIP/FDP/FOP (SDM vol. 1 8.1.8–8.1.10): the last non-control x87 instruction's address, memory operand and
/// opcode, as FNSTENV (28- and 14-byte forms) and FXSAVE64 store them, compared with the host CPU. The sequences
/// rebase FIP on their own address (LEA RBX, [RIP]) and clear FCS (the host's user CS differs from the guest's), so
/// the stored images compare byte for byte. On AMD hosts FXSAVE stores the pointers only while an unmasked exception
/// is pending (without one it stores zeros where Intel, and this model, store the values), so FXSAVE is compared
/// with an exception pending only; the model's FXSAVE without one is checked against its own FNSTENV.
/// </summary>
[TestFixture]
public sealed class X87PointerTests
{
    private const int Env = 64;     // FNSTENV image at [rsi+64]
    private const int Fx = 512;     // FXSAVE64 image at [rsi+512] (16-byte aligned)
    private const int FxCopy = 128; // its first 24 bytes copied to [rsi+128], FIP rebased

    private NativeOracle? _oracle;
    private GuestHarness? _guest;

    [OneTimeSetUp]
    public void SetUp()
    {
        _oracle = NativeOracle.TryCreate();
        _guest = new GuestHarness(NativeOracle.DataAddress + 0x10_0000);
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        _oracle?.Dispose();
        _guest?.Dispose();
    }

    private static readonly Dictionary<string, Action<Assembler>> Bodies = new()
    {
        ["fld m64; fadd m64"] = a => { a.fld(__qword_ptr[rsi]); a.fadd(__qword_ptr[rsi + 8]); },
        ["register op after a memory op"] = a => { a.fld(__qword_ptr[rsi]); a.fld1(); a.faddp(st1, st0); },
        ["fild m16"] = a => a.fild(__word_ptr[rsi + 16]),
        ["REX-prefixed fld [r8]"] = a => { a.mov(r8, rsi); a.fld(__qword_ptr[r8]); },
        ["fstp m80"] = a => { a.fld1(); a.fstp(__tword_ptr[rsi + 32]); },
        ["fxch"] = a => { a.fld1(); a.fldz(); a.fxch(st0, st1); },
        ["fnstcw does not count"] = a => { a.fld(__qword_ptr[rsi + 8]); a.fnstcw(__word_ptr[rsi + 48]); },
        ["fldenv restores"] = a =>
        {
            // An image with FIP/FOP/FDP set by hand (FIP 0x40 past RBX, so it rebases to 0x40), loaded and stored again.
            a.fld(__qword_ptr[rsi]);
            a.fnstenv(__[rsi + 256]);
            a.mov(__dword_ptr[rsi + 256 + 12], ebx);
            a.add(__dword_ptr[rsi + 256 + 12], 0x40);
            a.mov(__dword_ptr[rsi + 256 + 16], 0x0123_0000);
            a.mov(__dword_ptr[rsi + 256 + 20], 0x0BAD_F00D);
            a.fldenv(__[rsi + 256]);
            a.mov(__dword_ptr[rsi + 256 + 12], 0);
        },
    };

    public static IEnumerable<string> Names() => Bodies.Keys;

    /// <summary>fninit; lea rbx,[rip]; body; fnstenv (28 or 14 bytes); FIP rebased; FCS cleared; (FXSAVE64 copy); fninit.</summary>
    private static byte[] Sequence(string name, bool shortForm, bool pendingFxsave)
    {
        var a = new Assembler(64);
        a.fninit();
        a.db(0x48, 0x8D, 0x1D, 0, 0, 0, 0); // lea rbx, [rip]: RBX = the address of what follows
        if (pendingFxsave)
        {
            // An unmasked invalid operation (0/0 with IM clear) leaves ES set: AMD's FXSAVE stores the pointers then.
            a.mov(__word_ptr[rsi + 48], 0x037E);
            a.fldcw(__word_ptr[rsi + 48]);
            a.fldz();
            a.fld(__qword_ptr[rsi + 24]);
            a.fdivp(st1, st0);
        }
        else
        {
            Bodies[name](a);
        }
        if (pendingFxsave)
        {
            // Before FNSTENV, which masks every exception (and on AMD hosts then clears ES).
            a.fxsave64(__[rsi + Fx]);
            a.mov(rax, __qword_ptr[rsi + Fx]);
            a.mov(__qword_ptr[rsi + FxCopy], rax);
            a.mov(rax, __qword_ptr[rsi + Fx + 8]);
            a.sub(rax, rbx);
            a.mov(__qword_ptr[rsi + FxCopy + 8], rax);
            a.mov(rax, __qword_ptr[rsi + Fx + 16]);
            a.mov(__qword_ptr[rsi + FxCopy + 16], rax);
        }
        if (shortForm)
        {
            a.db(0x66);
            a.fnstenv(__[rsi + Env]);
            a.sub(__word_ptr[rsi + Env + 6], bx);
            a.mov(__word_ptr[rsi + Env + 8], 0);
        }
        else
        {
            a.fnstenv(__[rsi + Env]);
            a.sub(__dword_ptr[rsi + Env + 12], ebx);
            a.mov(__word_ptr[rsi + Env + 16], 0);
        }
        a.fninit();
        return GuestHarness.Assemble(a, 0);
    }

    private static byte[] InitialData()
    {
        byte[] data = new byte[NativeOracle.DataSize];
        BitConverter.GetBytes(1.5).CopyTo(data, 0);
        BitConverter.GetBytes(2.25).CopyTo(data, 8);
        BitConverter.GetBytes((short)7).CopyTo(data, 16);
        BitConverter.GetBytes(0.0).CopyTo(data, 24);
        return data;
    }

    private (byte[] Host, byte[] Guest) RunBoth(byte[] code)
    {
        if (_oracle is null)
        {
            Assert.Ignore("native oracle unavailable (not x86-64, or the fixed data mapping was refused)");
        }
        byte[] data = InitialData();
        Span<ulong> regs = stackalloc ulong[17];
        regs[6] = NativeOracle.DataAddress;
        regs[16] = 2;
        data.CopyTo(_oracle!.Data);
        _oracle.Load(code);
        _oracle.Run(regs);
        byte[] host = _oracle.Data.ToArray();

        GuestHarness g = _guest!;
        g.Memory.Write(NativeOracle.DataAddress, data);
        g.Load64([.. code, 0xF4]);
        g.State.Cr4 |= 0x200; // OSFXSR, for FXSAVE
        // FNSTENV stores DS as FDS: null, as in the host's 64-bit user mode.
        g.State.Segments[(int)SegmentIndex.Ds].Selector = 0;
        g.State.Gpr[6] = NativeOracle.DataAddress;
        g.State.Rflags = 2;
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), $"exception {g.State.ExceptionVector} at {g.State.Rip:X}");
        byte[] guest = new byte[NativeOracle.DataSize];
        g.Memory.Read(NativeOracle.DataAddress, guest);
        return (host, guest);
    }

    [TestCaseSource(nameof(Names))]
    public void Fnstenv_MatchesHostCpu(string name)
    {
        foreach (bool shortForm in new[] { false, true })
        {
            (byte[] host, byte[] guest) = RunBoth(Sequence(name, shortForm, pendingFxsave: false));
            int length = shortForm ? 14 : 28;
            Assert.That(guest.AsSpan(Env, length).ToArray(), Is.EqualTo(host.AsSpan(Env, length).ToArray()),
                $"{name} ({length}-byte FNSTENV): host {Convert.ToHexString(host, Env, length)}, interpreter {Convert.ToHexString(guest, Env, length)}");
            Assert.That(guest.AsSpan(0, Env).ToArray(), Is.EqualTo(host.AsSpan(0, Env).ToArray()), $"{name}: stored data");
        }
    }

    [Test]
    public void Fxsave64_WithAnExceptionPending_MatchesHostCpu()
    {
        (byte[] host, byte[] guest) = RunBoth(Sequence("", shortForm: false, pendingFxsave: true));
        Assert.Multiple(() =>
        {
            Assert.That(guest.AsSpan(FxCopy, 24).ToArray(), Is.EqualTo(host.AsSpan(FxCopy, 24).ToArray()),
                $"FXSAVE64 header: host {Convert.ToHexString(host, FxCopy, 24)}, interpreter {Convert.ToHexString(guest, FxCopy, 24)}");
            Assert.That(guest.AsSpan(Env, 28).ToArray(), Is.EqualTo(host.AsSpan(Env, 28).ToArray()), "FNSTENV with the exception pending");
        });
    }

    /// <summary>The model's FXSAVE64 stores the pointers with no exception pending too (Intel's behaviour).</summary>
    [Test]
    public void Fxsave64_WithoutPendingException_StoresThePointers()
    {
        using var g = new GuestHarness(NativeOracle.DataAddress + 0x10_0000);
        g.Load64(a =>
        {
            a.fninit();
            a.fld(__qword_ptr[rsi + 8]);
            a.fxsave64(__[rsi + Fx]);
            a.hlt();
        });
        g.State.Cr4 |= 0x200;
        g.State.Gpr[6] = NativeOracle.DataAddress;
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
        byte[] header = new byte[24];
        g.Memory.Read(NativeOracle.DataAddress + Fx, header);
        Assert.Multiple(() =>
        {
            Assert.That(BitConverter.ToUInt16(header, 6), Is.EqualTo((ushort)0x546), "FOP of fld qword [rsi+8] (DD 46 08)");
            Assert.That(BitConverter.ToUInt64(header, 8), Is.EqualTo(GuestHarness.CodeAddress + 2), "FIP: the FLD after the 2-byte FNINIT");
            Assert.That(BitConverter.ToUInt64(header, 16), Is.EqualTo(NativeOracle.DataAddress + 8), "FDP");
        });
    }
}
