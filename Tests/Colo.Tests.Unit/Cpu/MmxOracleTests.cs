using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// The host-CPU oracle for MMX, the SSE/SSE2 forms on MM registers, the CVT*PI* conversions and MASKMOVQ/MASKMOVDQU.
/// The prelude runs FNINIT and LDMXCSR, loads XMM0–7 and MM0–7 from random window bytes; the epilogue stores
/// XMM0–7 and an FXSAVE image (so the MMX aliasing shows: TOP, the abridged tags, the all-ones exponents of written
/// registers, x87 values seen through MM registers). GPRs and the window must agree with the host bit for bit.
/// Bodies address memory through ESI and use 32-bit registers unless marked 64-bit only, so every other case also
/// runs on the interpreter in 32-bit protected mode against the same host result.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class MmxOracleTests
{
    private const int RunsPerCase = 24;
    private const int Window = 1024;
    private const int MxcsrDefaultAt = 0x3FC;
    /// <summary>MXCSR the prelude loads (cases may pick another rounding mode).</summary>
    private const int MxcsrInputAt = 0x3F8;
    private const int MmIn = 0x180;
    private const int FxImage = 0x200;
    /// <summary>RDI for MASKMOVQ/MASKMOVDQU: window + 0xC0.</summary>
    private const int MaskTarget = 0xC0;

    private NativeOracle? _oracle;
    private GuestHarness? _guest;

    /// <summary>A case: its body, an input fix-up, and whether it uses 64-bit-only registers or forms.</summary>
    public sealed record MmxCase(string Name, Action<Assembler> Body, Action<byte[], Random>? Fix = null, bool LongOnly = false)
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

    private static AssemblerRegisterXMM Xmm(int i) => i switch
    {
        0 => xmm0, 1 => xmm1, 2 => xmm2, 3 => xmm3, 4 => xmm4, 5 => xmm5, 6 => xmm6, _ => xmm7,
    };

    private static AssemblerRegisterMM Mm(int i) => i switch
    {
        0 => mm0, 1 => mm1, 2 => mm2, 3 => mm3, 4 => mm4, 5 => mm5, 6 => mm6, _ => mm7,
    };

    private static byte[] Build(int bitness, Action<Assembler> body)
    {
        var a = new Assembler(bitness);
        // FNINIT keeps the register contents: zero all eight so empty registers read the same on both sides.
        a.fninit();
        for (int i = 0; i < 8; i++)
        {
            a.fldz();
        }
        a.fninit();
        a.ldmxcsr(__dword_ptr[esi + MxcsrInputAt]);
        for (int i = 0; i < 8; i++)
        {
            a.movdqu(Xmm(i), __xmmword_ptr[esi + i * 16]);
        }
        body(a);
        for (int i = 0; i < 8; i++)
        {
            a.movdqu(__xmmword_ptr[esi + 0x100 + i * 16], Xmm(i));
        }
        a.fxsave(__[esi + FxImage]);
        // Leave the host's x87 and MXCSR as the runtime expects them.
        a.fninit();
        a.ldmxcsr(__dword_ptr[esi + MxcsrDefaultAt]);
        return GuestHarness.Assemble(a, bitness == 64 ? 0 : GuestHarness.CodeAddress);
    }

    /// <summary>Loads MM0–7 from the window (a separate step so cases can put x87 state in front of it).</summary>
    private static void LoadMm(Assembler a)
    {
        for (int i = 0; i < 8; i++)
        {
            a.movq(Mm(i), __qword_ptr[esi + MmIn + i * 8]);
        }
    }

    [TestCaseSource(nameof(Cases))]
    [TestCaseSource(nameof(LegacyX87Cases))]
    public void Instruction_MatchesHostCpu(MmxCase c)
    {
        if (_oracle is null)
        {
            Assert.Ignore("native oracle unavailable (not x86-64, or the fixed data mapping was refused)");
        }
        GuestHarness g = _guest!;
        var rng = new Random(c.Name.Length * 7919 + c.Name[0] * 31 + c.Name[^1]);
        byte[] code64 = Build(64, c.Body);
        byte[]? code32 = c.LongOnly ? null : Build(32, c.Body);
        _oracle.Load(code64);

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
            inputs[7] = NativeOracle.DataAddress + MaskTarget;
            inputs[16] = 2;
            rng.NextBytes(data);
            if (run % 4 == 1)
            {
                // Equal and boundary lanes, so comparisons, min/max and saturation see ties and edges.
                data.AsSpan(MmIn, 8).CopyTo(data.AsSpan(MmIn + 8));
                data.AsSpan(MmIn + 16, 8).Fill(0x80);
                data.AsSpan(MmIn + 24, 8).Fill(0x7F);
                data.AsSpan(0x80, 16).Fill(0x80);
            }
            BitConverter.GetBytes(0x1F80u).CopyTo(data, MxcsrInputAt);
            c.Fix?.Invoke(data, rng);
            BitConverter.GetBytes(0x1F80u).CopyTo(data, MxcsrDefaultAt);

            data.CopyTo(_oracle.Data);
            inputs.CopyTo(native, 0);
            _oracle.Run(native);
            byte[] nativeData = _oracle.Data[..Window].ToArray();

            RunGuest(g, 64, code64, inputs, data);
            Compare(g, $"{c.Name} run {run}", native, nativeData, 64);
            if (code32 is not null)
            {
                RunGuest(g, 32, code32, inputs, data);
                Compare(g, $"{c.Name} run {run} (32-bit)", native, nativeData, 32);
            }
        }
    }

    private static void RunGuest(GuestHarness g, int bitness, byte[] code, ulong[] inputs, byte[] data)
    {
        g.Memory.Write(GuestHarness.CodeAddress, [.. code, 0xF4]);
        g.Memory.Write(NativeOracle.DataAddress, data);
        g.State.SetFlatLongMode(GuestHarness.CodeAddress, GuestHarness.StackTop);
        if (bitness == 32)
        {
            g.State.Efer = 0;
            g.State.Cr0 = 0x11;
            for (int i = 0; i < 6; i++)
            {
                g.State.Segments[i].Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | (i == 1 ? 0xB : 3));
            }
        }
        g.State.Cr4 = (bitness == 64 ? X86CpuState.Cr4Pae : 0) | X86CpuState.Cr4Osfxsr | X86CpuState.Cr4Osxmmexcpt;
        for (int i = 0; i < 16; i++)
        {
            if (i != 4)
            {
                g.State.Gpr[i] = inputs[i];
            }
        }
        g.State.Rflags = inputs[16];
        VcpuExit exit = g.Vcpu.Run();
        Assert.That(exit, Is.EqualTo(VcpuExit.Halted), $"{bitness}-bit: exit {exit}, exception {g.State.ExceptionVector} at RIP {g.State.Rip:X}");
    }

    private static void Compare(GuestHarness g, string context, ulong[] native, byte[] nativeData, int bitness)
    {
        int gprs = bitness == 64 ? 16 : 8;
        ulong mask = bitness == 64 ? ulong.MaxValue : uint.MaxValue;
        for (int i = 0; i < gprs; i++)
        {
            if (i != 4 && ((g.State.Gpr[i] ^ native[i]) & mask) != 0)
            {
                Assert.Fail($"{context}: {(Register)((int)Register.RAX + i)} interpreter {g.State.Gpr[i]:X} host {native[i]:X}");
            }
        }
        byte[] guestData = new byte[Window];
        g.Memory.Read(NativeOracle.DataAddress, guestData);
        byte[] expected = (byte[])nativeData.Clone();
        // FOP/FIP/FDP (not tracked), MXCSR_MASK, XMM8–15 (host values, and 32-bit FXSAVE leaves them out).
        foreach ((int start, int length) in new[] { (FxImage + 6, 18), (FxImage + 28, 4), (FxImage + 288, 128) })
        {
            guestData.AsSpan(start, length).Clear();
            expected.AsSpan(start, length).Clear();
        }
        for (int i = 0; i < Window; i++)
        {
            if (guestData[i] != expected[i])
            {
                Assert.Fail($"{context}: window byte 0x{i:X} interpreter {guestData[i]:X2} host {expected[i]:X2}");
            }
        }
    }

    private static MemoryOperand Mem(int disp) => new(Register.ESI, disp, 1);

    public static IEnumerable<MmxCase> Cases()
    {
        yield return new("movd/movq/movntq", a =>
        {
            LoadMm(a);
            a.movd(mm1, eax);
            a.movd(ecx, mm2);
            a.movd(mm3, __dword_ptr[esi + 0x88]);
            a.movd(__dword_ptr[esi + 0xC3], mm4);
            a.movq(mm7, mm0);
            a.movq(__qword_ptr[esi + 0xC8], mm5);
            a.movq(mm6, __qword_ptr[esi + 0x91]);
            a.movntq(__qword_ptr[esi + 0xD0], mm3);
            a.movd(edx, mm7);
        });
        yield return new("movq r64", a =>
        {
            LoadMm(a);
            a.movq(mm5, rdx);
            a.movq(rbx, mm6);
            a.movq(r9, mm5);
        }, LongOnly: true);

        foreach (string name in new[]
        {
            "pxor", "por", "pand", "pandn", "pcmpeqb", "pcmpeqw", "pcmpeqd", "pcmpgtb", "pcmpgtw", "pcmpgtd",
            "paddb", "paddw", "paddd", "paddq", "psubb", "psubw", "psubd", "psubq",
            "paddusb", "paddusw", "psubusb", "psubusw", "paddsb", "paddsw", "psubsb", "psubsw",
            "pmullw", "pmulhw", "pmulhuw", "pmaddwd", "pmuludq", "psadbw", "pavgb", "pavgw",
            "pminub", "pmaxub", "pminsw", "pmaxsw", "punpckhbw", "punpckhwd", "punpckhdq",
            "packsswb", "packssdw", "packuswb", "punpcklbw", "punpcklwd", "punpckldq",
        })
        {
            string suffix = name.StartsWith("punpckl", StringComparison.Ordinal) ? "_mm_mmm32" : "_mm_mmm64";
            Code code = Enum.Parse<Code>(char.ToUpperInvariant(name[0]) + name[1..] + suffix);
            yield return new(name, a =>
            {
                LoadMm(a);
                a.AddInstruction(Instruction.Create(code, Register.MM1, Register.MM2));
                a.AddInstruction(Instruction.Create(code, Register.MM0, Register.MM0));
                a.AddInstruction(Instruction.Create(code, Register.MM3, Register.MM4));
                a.AddInstruction(Instruction.Create(code, Register.MM5, Mem(0x83)));
            });
        }

        foreach (int count in new[] { 0, 1, 7, 15, 16, 31, 33, 63, 64, 200 })
        {
            byte n = (byte)count;
            yield return new($"mmx shift imm {count}", a =>
            {
                LoadMm(a);
                a.AddInstruction(Instruction.Create(Code.Psllw_mm_imm8, Register.MM0, n));
                a.AddInstruction(Instruction.Create(Code.Pslld_mm_imm8, Register.MM1, n));
                a.AddInstruction(Instruction.Create(Code.Psllq_mm_imm8, Register.MM2, n));
                a.AddInstruction(Instruction.Create(Code.Psrlw_mm_imm8, Register.MM3, n));
                a.AddInstruction(Instruction.Create(Code.Psrld_mm_imm8, Register.MM4, n));
                a.AddInstruction(Instruction.Create(Code.Psrlq_mm_imm8, Register.MM5, n));
                a.AddInstruction(Instruction.Create(Code.Psraw_mm_imm8, Register.MM6, n));
                a.AddInstruction(Instruction.Create(Code.Psrad_mm_imm8, Register.MM7, n));
            });
        }
        yield return new("mmx shift by mm/m64", a =>
        {
            LoadMm(a);
            a.psllw(mm0, mm7);
            a.pslld(mm1, mm7);
            a.psllq(mm2, mm6);
            a.psrlw(mm3, mm6);
            a.psrld(mm4, __qword_ptr[esi + 0x80]);
            a.psrlq(mm5, __qword_ptr[esi + 0x88]);
            a.psraw(mm0, __qword_ptr[esi + 0x80]);
            a.psrad(mm1, mm7);
        }, (d, r) =>
        {
            foreach (int at in new[] { MmIn + 7 * 8, MmIn + 6 * 8, 0x80, 0x88 })
            {
                BitConverter.GetBytes(r.Next(4) == 0 ? (ulong)r.NextInt64() : (ulong)r.Next(70)).CopyTo(d, at);
            }
        });

        foreach (byte imm in new byte[] { 0x1B, 0xE4, 0x00, 0xB1, 0x4E })
        {
            yield return new($"pshufw {imm:X2}", a =>
            {
                LoadMm(a);
                a.pshufw(mm1, mm2, imm);
                a.pshufw(mm3, __qword_ptr[esi + 0x85], imm);
                a.pshufw(mm4, mm4, imm);
            });
        }
        yield return new("pinsrw/pextrw/pmovmskb mm", a =>
        {
            LoadMm(a);
            a.pinsrw(mm1, eax, 3);
            a.pinsrw(mm2, __word_ptr[esi + 0x86], 6);
            a.pextrw(ecx, mm3, 1);
            a.pextrw(edx, mm4, 6);
            a.pmovmskb(ebx, mm5);
        });
        yield return new("pmovmskb/pextrw r64", a =>
        {
            LoadMm(a);
            a.pmovmskb(r10, mm5);
            a.pextrw(r11, mm2, 2);
        }, LongOnly: true);
        yield return new("maskmovq", a =>
        {
            LoadMm(a);
            a.maskmovq(mm1, mm2);
        });
        yield return new("maskmovdqu", a => a.maskmovdqu(xmm1, xmm2));
        yield return new("movq2dq/movdq2q", a =>
        {
            LoadMm(a);
            a.movq2dq(xmm1, mm2);
            a.movdq2q(mm3, xmm4);
            a.movq2dq(xmm5, mm3);
        });

        // ---- conversions: float lanes from a mix of specials and values near integers, random rounding mode ----
        yield return new("cvtpi2ps/cvtpi2pd", a =>
        {
            LoadMm(a);
            a.cvtpi2ps(xmm1, mm2);
            a.cvtpi2ps(xmm3, __qword_ptr[esi + 0x84]);
            a.cvtpi2pd(xmm4, mm5);
            a.cvtpi2pd(xmm6, __qword_ptr[esi + 0x8C]);
            a.stmxcsr(__dword_ptr[esi + 0xF0]);
        }, FixFloats);
        yield return new("cvtps2pi/cvttps2pi", a =>
        {
            LoadMm(a);
            a.cvtps2pi(mm1, xmm2);
            a.cvtps2pi(mm3, __qword_ptr[esi + 0x80]);
            a.cvttps2pi(mm4, xmm5);
            a.cvttps2pi(mm6, __qword_ptr[esi + 0x88]);
            a.stmxcsr(__dword_ptr[esi + 0xF0]);
        }, FixFloats);
        yield return new("cvtpd2pi/cvttpd2pi", a =>
        {
            LoadMm(a);
            a.cvtpd2pi(mm1, xmm2);
            a.cvtpd2pi(mm3, __xmmword_ptr[esi + 0x90]);
            a.cvttpd2pi(mm4, xmm5);
            a.cvttpd2pi(mm6, __xmmword_ptr[esi + 0xA0]);
            a.stmxcsr(__dword_ptr[esi + 0xF0]);
        }, FixDoubles);
        yield return new("cvtpi2ps from memory without mmx transition", a =>
        {
            a.fld1();
            a.cvtpi2ps(xmm1, __qword_ptr[esi + 0x84]);
        }, FixFloats);

        // ---- the x87 aliasing: values pushed before MMX, TOP != 0 at entry, EMMS, x87 after MMX ----
        yield return new("x87 stack then mmx", a =>
        {
            a.fld1();
            a.fldpi();
            a.fldl2e();
            a.movq(__qword_ptr[esi + 0xC0], mm5);
            a.movq(__qword_ptr[esi + 0xC8], mm6);
            a.movq(__qword_ptr[esi + 0xD0], mm7);
            a.paddb(mm0, mm7);
        });
        yield return new("x87 stack then mmx write", a =>
        {
            a.fldz();
            a.fld1();
            a.movd(mm2, eax);
            a.fnstsw(ax);
        });
        yield return new("mmx then emms then x87", a =>
        {
            LoadMm(a);
            a.emms();
            a.fld1();
            a.fstp(__qword_ptr[esi + 0xC0]);
            a.fnstsw(ax);
        });
        yield return new("mmx then x87 without emms", a =>
        {
            LoadMm(a);
            a.fld1();
            a.fnstsw(ax);
            a.fstp(__tword_ptr[esi + 0xC0]);
            a.fld(__tword_ptr[esi + MmIn]);
        });
        yield return new("x87 reads an mm register", a =>
        {
            LoadMm(a);
            a.fninit();
            a.movq(mm0, __qword_ptr[esi + MmIn + 8]);
            a.fld(st0);
            a.fstp(__tword_ptr[esi + 0xC0]);
            a.fnstsw(ax);
        });
    }

    /// <summary>The 8087/287 control encodings are no-ops, waiting or not, even with an exception pending.</summary>
    public static IEnumerable<MmxCase> LegacyX87Cases()
    {
        yield return new("fneni/fndisi/fnsetpm", a =>
        {
            a.fld1();
            a.fneni();
            a.fndisi();
            a.fnsetpm();
            a.feni();
            a.fdisi();
            a.fsetpm();
            a.fnstsw(ax);
        });
    }

    private static readonly uint[] SpecialSingles =
    [
        0x0000_0000, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7FA0_0000, 0x0000_0001, 0x4F00_0000,
        0xCF00_0000, 0x4EFF_FFFF, 0xCF00_0001, 0x3F00_0000, 0x3FC0_0000, 0xBFC0_0000, 0x4020_0000,
    ];

    private static uint RandomSingle(Random r) => r.Next(3) switch
    {
        0 => SpecialSingles[r.Next(SpecialSingles.Length)],
        1 => BitConverter.SingleToUInt32Bits((float)((r.NextDouble() - 0.5) * Math.Pow(2, r.Next(40)))),
        _ => (uint)r.Next() ^ ((uint)r.Next(2) << 31),
    };

    private static ulong RandomDouble(Random r) => r.Next(3) switch
    {
        0 => BitConverter.DoubleToUInt64Bits(BitConverter.UInt32BitsToSingle(SpecialSingles[r.Next(SpecialSingles.Length)])),
        1 => BitConverter.DoubleToUInt64Bits((r.NextDouble() - 0.5) * Math.Pow(2, r.Next(40))),
        _ => (ulong)r.NextInt64() ^ ((ulong)r.Next(2) << 63),
    };

    private static void FixMxcsr(byte[] d, Random r) => BitConverter.GetBytes(0x1F80u | ((uint)r.Next(4) << 13)).CopyTo(d, MxcsrInputAt);

    private static void FixFloats(byte[] d, Random r)
    {
        for (int at = 0; at < 0x100; at += 4)
        {
            BitConverter.GetBytes(RandomSingle(r)).CopyTo(d, at);
        }
        FixMxcsr(d, r);
    }

    private static void FixDoubles(byte[] d, Random r)
    {
        for (int at = 0; at < 0x100; at += 8)
        {
            BitConverter.GetBytes(RandomDouble(r)).CopyTo(d, at);
        }
        FixMxcsr(d, r);
    }
}
