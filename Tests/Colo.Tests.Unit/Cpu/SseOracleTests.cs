using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// The host-CPU oracle for x87 control, MXCSR, FXSAVE/FXRSTOR and SSE/SSE2 data movement and integer ops: XMM0–7
/// are loaded from random window bytes, the case runs, XMM0–7 are stored back into the window, and GPRs plus the
/// 1 KiB window must agree between the host and the interpreter.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class SseOracleTests
{
    private const int RunsPerCase = 24;
    private const int Window = 1024;
    /// <summary>Window offset of a dword holding 0x1F80, which every case's epilogue reloads into MXCSR.</summary>
    private const int MxcsrDefaultAt = 0x3FC;

    private NativeOracle? _oracle;
    private GuestHarness? _guest;

    /// <summary>A case: the instructions between prelude and epilogue, an input fix-up, and window bytes the host may fill differently.</summary>
    public sealed record SseCase(string Name, Action<Assembler> Body, Action<byte[], Random>? Fix = null, (int Start, int Length)[]? Ignore = null)
    {
        public override string ToString() => Name;
    }

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

    private static byte[] Build(Action<Assembler> body)
    {
        var a = new Assembler(64);
        for (int i = 0; i < 8; i++)
        {
            a.movdqu(Xmm(i), __xmmword_ptr[rsi + i * 16]);
        }
        body(a);
        for (int i = 0; i < 8; i++)
        {
            a.movdqu(__xmmword_ptr[rsi + 0x100 + i * 16], Xmm(i));
        }
        // Leave the host's x87 and MXCSR as the runtime expects them.
        a.fninit();
        a.ldmxcsr(__dword_ptr[rsi + MxcsrDefaultAt]);
        return GuestHarness.Assemble(a, 0);
    }

    private static AssemblerRegisterXMM Xmm(int i) => i switch
    {
        0 => xmm0, 1 => xmm1, 2 => xmm2, 3 => xmm3, 4 => xmm4, 5 => xmm5, 6 => xmm6, 7 => xmm7,
        8 => xmm8, 9 => xmm9, 10 => xmm10, 11 => xmm11, 12 => xmm12, 13 => xmm13, 14 => xmm14, _ => xmm15,
    };

    [TestCaseSource(nameof(Cases))]
    public void Instruction_MatchesHostCpu(SseCase c)
    {
        if (_oracle is null)
        {
            Assert.Ignore("native oracle unavailable (not x86-64, or the fixed data mapping was refused)");
        }
        GuestHarness g = _guest!;
        var rng = new Random(c.Name.Length * 7919 + c.Name[0] * 31 + c.Name[^1]);
        byte[] code = Build(c.Body);
        _oracle.Load(code);
        g.Memory.Write(GuestHarness.CodeAddress, [.. code, 0xF4]);

        var inputs = new ulong[17];
        var native = new ulong[17];
        var data = new byte[Window];
        for (int run = 0; run < RunsPerCase; run++)
        {
            for (int i = 0; i < 16; i++)
            {
                inputs[i] = (ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 63);
            }
            inputs[4] = 0;
            inputs[6] = NativeOracle.DataAddress;
            inputs[16] = 2;
            rng.NextBytes(data);
            if (run % 4 == 1)
            {
                // Equal and boundary lanes, so comparisons and min/max see ties.
                data.AsSpan(0, 16).CopyTo(data.AsSpan(16));
                data.AsSpan(0x80, 16).Fill(0x80);
            }
            c.Fix?.Invoke(data, rng);
            BitConverter.GetBytes(0x1F80u).CopyTo(data, MxcsrDefaultAt);

            data.CopyTo(_oracle.Data);
            inputs.CopyTo(native, 0);
            _oracle.Run(native);
            byte[] nativeData = _oracle.Data[..Window].ToArray();

            g.Memory.Write(NativeOracle.DataAddress, data);
            g.State.SetFlatLongMode(GuestHarness.CodeAddress, GuestHarness.StackTop);
            g.State.Cr4 |= X86CpuState.Cr4Osfxsr | X86CpuState.Cr4Osxmmexcpt;
            for (int i = 0; i < 16; i++)
            {
                if (i != 4)
                {
                    g.State.Gpr[i] = inputs[i];
                }
            }
            g.State.Rflags = inputs[16];
            VcpuExit exit = g.Vcpu.Run();
            Assert.That(exit, Is.EqualTo(VcpuExit.Halted), $"{c.Name}: exit {exit}, exception {g.State.ExceptionVector} at RIP {g.State.Rip:X}");

            string context = $"{c.Name} run {run}";
            for (int i = 0; i < 16; i++)
            {
                if (i != 4 && g.State.Gpr[i] != native[i])
                {
                    Assert.Fail($"{context}: {(Register)((int)Register.RAX + i)} interpreter {g.State.Gpr[i]:X} host {native[i]:X}");
                }
            }
            byte[] guestData = new byte[Window];
            g.Memory.Read(NativeOracle.DataAddress, guestData);
            foreach ((int start, int length) in c.Ignore ?? [])
            {
                guestData.AsSpan(start, length).Clear();
                nativeData.AsSpan(start, length).Clear();
            }
            for (int i = 0; i < Window; i++)
            {
                if (guestData[i] != nativeData[i])
                {
                    Assert.Fail($"{context}: window byte 0x{i:X} interpreter {guestData[i]:X2} host {nativeData[i]:X2}");
                }
            }
        }
    }

    private static readonly MemoryOperand Aligned = new(Register.RSI, 0x80, 1);
    private static AssemblerMemoryOperand A => __xmmword_ptr[rsi + 0x80];

    public static IEnumerable<SseCase> Cases()
    {
        // ---- data movement ----
        yield return new("movaps", a => { a.movaps(xmm1, xmm2); a.movaps(xmm3, A); a.movaps(__xmmword_ptr[rsi + 0xC0], xmm4); });
        yield return new("movapd", a => { a.movapd(xmm1, xmm2); a.movapd(xmm3, A); a.movapd(__xmmword_ptr[rsi + 0xC0], xmm4); });
        yield return new("movdqa", a => { a.movdqa(xmm1, xmm2); a.movdqa(xmm3, A); a.movdqa(__xmmword_ptr[rsi + 0xC0], xmm4); });
        yield return new("movups", a => { a.movups(xmm1, xmm2); a.movups(xmm3, __xmmword_ptr[rsi + 0x83]); a.movups(__xmmword_ptr[rsi + 0xC5], xmm4); });
        yield return new("movupd", a => { a.movupd(xmm1, __xmmword_ptr[rsi + 0x89]); a.movupd(__xmmword_ptr[rsi + 0xC1], xmm4); });
        yield return new("movdqu", a => { a.movdqu(xmm1, __xmmword_ptr[rsi + 0x8F]); a.movdqu(__xmmword_ptr[rsi + 0xC7], xmm4); });
        yield return new("movntdq", a => { a.movntdq(__xmmword_ptr[rsi + 0xC0], xmm4); a.movntps(__xmmword_ptr[rsi + 0xD0], xmm5); a.movntpd(__xmmword_ptr[rsi + 0xE0], xmm6); });
        yield return new("movss", a => { a.movss(xmm1, xmm2); a.movss(xmm3, __dword_ptr[rsi + 0x84]); a.movss(__dword_ptr[rsi + 0xC1], xmm4); });
        yield return new("movsd", a => { a.movsd(xmm1, xmm2); a.movsd(xmm3, __qword_ptr[rsi + 0x84]); a.movsd(__qword_ptr[rsi + 0xC1], xmm4); });
        yield return new("movd", a => { a.movd(xmm1, eax); a.movd(ecx, xmm2); a.movd(xmm3, __dword_ptr[rsi + 0x88]); a.movd(__dword_ptr[rsi + 0xC3], xmm4); });
        yield return new("movq", a => { a.movq(xmm5, rdx); a.movq(rbx, xmm6); a.movq(xmm7, xmm0); a.movq(__qword_ptr[rsi + 0xC8], xmm1); a.movq(xmm2, __qword_ptr[rsi + 0x90]); });
        yield return new("movlps/movhps", a => { a.movlps(xmm1, __qword_ptr[rsi + 0x84]); a.movhps(xmm2, __qword_ptr[rsi + 0x8C]); a.movlps(__qword_ptr[rsi + 0xC0], xmm3); a.movhps(__qword_ptr[rsi + 0xC9], xmm4); });
        yield return new("movlpd/movhpd", a => { a.movlpd(xmm1, __qword_ptr[rsi + 0x84]); a.movhpd(xmm2, __qword_ptr[rsi + 0x8C]); a.movlpd(__qword_ptr[rsi + 0xC0], xmm3); a.movhpd(__qword_ptr[rsi + 0xC9], xmm4); });
        yield return new("movhlps/movlhps", a => { a.movhlps(xmm1, xmm2); a.movlhps(xmm3, xmm4); });
        yield return new("pmovmskb/movmskps/movmskpd", a => { a.pmovmskb(eax, xmm1); a.pmovmskb(r9, xmm5); a.movmskps(ecx, xmm2); a.movmskpd(rdx, xmm3); });

        // ---- two-operand packed ops: register and aligned memory source ----
        foreach (string name in new[]
        {
            "pxor", "por", "pand", "pandn", "xorps", "xorpd", "orps", "orpd", "andps", "andpd", "andnps", "andnpd",
            "pcmpeqb", "pcmpeqw", "pcmpeqd", "pcmpgtb", "pcmpgtw", "pcmpgtd",
            "paddb", "paddw", "paddd", "paddq", "psubb", "psubw", "psubd", "psubq",
            "pminub", "pmaxub", "pminsw", "pmaxsw", "pmullw",
            "punpcklbw", "punpcklwd", "punpckldq", "punpcklqdq", "punpckhbw", "punpckhwd", "punpckhdq", "punpckhqdq",
            "paddusb", "paddusw", "psubusb", "psubusw", "paddsb", "paddsw", "psubsb", "psubsw",
            "pmulhw", "pmulhuw", "pmaddwd", "pmuludq", "psadbw", "pavgb", "pavgw", "packsswb", "packssdw", "packuswb",
        })
        {
            Code rr = Enum.Parse<Code>(char.ToUpperInvariant(name[0]) + name[1..] + "_xmm_xmmm128");
            yield return new(name, a =>
            {
                a.AddInstruction(Instruction.Create(rr, Register.XMM1, Register.XMM2));
                a.AddInstruction(Instruction.Create(rr, Register.XMM0, Register.XMM0));
                a.AddInstruction(Instruction.Create(rr, Register.XMM3, Aligned));
            });
        }

        yield return new("pinsrw/pextrw", a =>
        {
            a.pinsrw(xmm1, eax, 3);
            a.pinsrw(xmm2, __word_ptr[rsi + 0x86], 7);
            a.pextrw(ecx, xmm3, 5);
            a.pextrw(rdx, xmm4, 0);
        });

        // ---- shuffles ----
        foreach (byte imm in new byte[] { 0x1B, 0xE4, 0x00, 0xB1, 0x4E })
        {
            yield return new($"pshufd/lw/hw {imm:X2}", a =>
            {
                a.pshufd(xmm1, xmm2, imm);
                a.pshufd(xmm3, A, imm);
                a.pshuflw(xmm4, xmm5, imm);
                a.pshufhw(xmm6, A, imm);
            });
        }

        // ---- shifts: immediate counts (in range and beyond the element), and counts from a register ----
        foreach (int count in new[] { 0, 1, 7, 15, 16, 31, 33, 63, 64, 200 })
        {
            byte n = (byte)count;
            yield return new($"shift imm {count}", a =>
            {
                a.psllw(xmm0, n);
                a.pslld(xmm1, n);
                a.psllq(xmm2, n);
                a.psrlw(xmm3, n);
                a.psrld(xmm4, n);
                a.psrlq(xmm5, n);
                a.psraw(xmm6, n);
                a.psrad(xmm7, n);
            });
        }
        yield return new("shift by xmm", a =>
        {
            a.psllw(xmm0, xmm7);
            a.pslld(xmm1, xmm7);
            a.psrlq(xmm2, xmm7);
            a.psraw(xmm3, xmm7);
            a.psrad(xmm4, A);
            a.psrld(xmm5, A);
        }, (d, r) =>
        {
            // Counts mostly below the element width, sometimes above 2^32 (the whole quadword counts).
            BitConverter.GetBytes(r.Next(4) == 0 ? (ulong)r.NextInt64() : (ulong)r.Next(70)).CopyTo(d, 0x70);
            BitConverter.GetBytes(r.Next(4) == 0 ? (ulong)r.NextInt64() : (ulong)r.Next(40)).CopyTo(d, 0x80);
        });
        foreach (byte n in new byte[] { 0, 1, 5, 8, 15, 16, 255 })
        {
            yield return new($"pslldq/psrldq {n}", a => { a.pslldq(xmm1, n); a.psrldq(xmm2, n); });
        }

        // ---- x87 control and MXCSR ----
        yield return new("fninit/fnstsw/fnstcw/fldcw", a =>
        {
            a.fninit();
            a.fnstsw(ax);
            a.fnstcw(__word_ptr[rsi + 0xC0]);
            a.fldcw(__word_ptr[rsi + 0x80]);
            a.fnstcw(__word_ptr[rsi + 0xC2]);
            a.fnstsw(__word_ptr[rsi + 0xC4]);
        }, (d, r) => BitConverter.GetBytes((ushort)(0x037F ^ (r.Next() & 0x0F00))).CopyTo(d, 0x80));
        yield return new("stmxcsr/ldmxcsr", a =>
        {
            // The host's sticky flags depend on what the runtime computed before; start from the reset value.
            a.ldmxcsr(__dword_ptr[rsi + MxcsrDefaultAt]);
            a.stmxcsr(__dword_ptr[rsi + 0xC0]);
            a.ldmxcsr(__dword_ptr[rsi + 0x80]);
            a.stmxcsr(__dword_ptr[rsi + 0xC4]);
        }, (d, r) => BitConverter.GetBytes(0x1F80u | ((uint)r.Next() & 0xE07F)).CopyTo(d, 0x80));

        // ---- FXRSTOR then FXSAVE, 64-bit and legacy formats ----
        yield return new("fxrstor64/fxsave64", a =>
        {
            a.fxrstor64(__[rsi + 0x200]);
            a.paddb(xmm9, xmm9);
            a.fxsave64(__[rsi]);
        }, FixImage, [(28, 4)]);
        yield return new("fxrstor/fxsave", a =>
        {
            a.fxrstor(__[rsi + 0x200]);
            a.fxsave(__[rsi]);
        }, FixImage, [(28, 4)]);
    }

    /// <summary>A valid FXRSTOR image at window offset 0x200: sane FCW/MXCSR, no pending x87 exception, zero pointers.</summary>
    private static void FixImage(byte[] d, Random r)
    {
        Span<byte> img = d.AsSpan(0x200, 512);
        BitConverter.GetBytes((ushort)(0x037F ^ (r.Next() & 0x0F00))).CopyTo(img);
        BitConverter.GetBytes((ushort)(r.Next() & 0x3800)).CopyTo(img[2..]);
        img.Slice(5, 19).Clear();
        BitConverter.GetBytes(0x1F80u | ((uint)r.Next() & 0xE07F)).CopyTo(img[24..]);
        for (int i = 0; i < 8; i++)
        {
            img.Slice(32 + i * 16 + 10, 6).Clear();
        }
    }
}
