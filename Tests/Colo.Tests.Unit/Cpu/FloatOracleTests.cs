using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// The host-CPU oracle for SSE/SSE2/SSE3 floating point and x87 arithmetic: XMM0–7 are loaded from window bytes
/// filled with special values (±0, denormals, infinities, QNaN/SNaN, extremes, near-ties, random normals), MXCSR is
/// loaded with every exception masked and a random rounding mode/DAZ/FTZ, the case runs, and the results, MXCSR (its
/// sticky flags), the x87 status word, RFLAGS and the GPRs must match the host bit for bit.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class FloatOracleTests
{
    /// <summary>Runs per case; COLO_FP_RUNS raises it for a longer soak.</summary>
    private static readonly int RunsPerCase = int.TryParse(Environment.GetEnvironmentVariable("COLO_FP_RUNS"), out int n) ? n : 64;
    private const int Window = 1024;
    private const int MxcsrDefaultAt = 0x3FC;
    /// <summary>The MXCSR each run starts with, and where the case's final MXCSR is stored.</summary>
    private const int MxcsrInAt = 0x3F0;
    private const int MxcsrOutAt = 0x3F4;
    /// <summary>x87: the FCW each run loads, and where FSW is stored at the end.</summary>
    private const int FcwInAt = 0x3E0;
    private const int FswOutAt = 0x3E2;
    private const int EnvOutAt = 0x380;
    /// <summary>MXCSR 0x1FA0 (defaults with PE already set), which selects the interpreter's host-arithmetic fast path.</summary>
    private const int MxcsrFastAt = 0x3F8;

    private NativeOracle? _oracle;
    private GuestHarness? _guest;

    /// <summary>Element kind the window is filled with: 4 singles, 8 doubles, 10 x87 extended (at 16-byte strides).</summary>
    public enum Lanes
    {
        Single,
        Double,
        Int32,
        Extended,
    }

    public sealed record FloatCase(string Name, Lanes Kind, Action<Assembler> Body, bool X87 = false, (int Start, int Length)[]? Ignore = null)
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

    private static byte[] Build(FloatCase c)
    {
        var a = new Assembler(64);
        for (int i = 0; i < 8; i++)
        {
            a.movdqu(Xmm(i), __xmmword_ptr[rsi + i * 16]);
        }
        a.ldmxcsr(__dword_ptr[rsi + MxcsrInAt]);
        a.fninit();
        a.fldcw(__word_ptr[rsi + FcwInAt]);
        c.Body(a);
        a.stmxcsr(__dword_ptr[rsi + MxcsrOutAt]);
        a.fnstsw(__word_ptr[rsi + FswOutAt]);
        if (c.X87)
        {
            // The tag word (and control/status again) through FNSTENV; its pointer fields are ignored.
            a.fnstenv(__[rsi + EnvOutAt]);
        }
        for (int i = 0; i < 8; i++)
        {
            a.movdqu(__xmmword_ptr[rsi + 0x100 + i * 16], Xmm(i));
        }
        a.fninit();
        a.ldmxcsr(__dword_ptr[rsi + MxcsrDefaultAt]);
        return GuestHarness.Assemble(a, 0);
    }

    internal static AssemblerRegisterXMM Xmm(int i) => i switch
    {
        0 => xmm0, 1 => xmm1, 2 => xmm2, 3 => xmm3, 4 => xmm4, 5 => xmm5, 6 => xmm6, 7 => xmm7,
        8 => xmm8, 9 => xmm9, 10 => xmm10, 11 => xmm11, 12 => xmm12, 13 => xmm13, 14 => xmm14, _ => xmm15,
    };

    // ---------------- operand generation ----------------

    private static uint Single(Random r)
    {
        uint sign = (uint)r.Next(2) << 31;
        uint frac = (uint)r.Next() & 0x7F_FFFF;
        return r.Next(16) switch
        {
            0 => sign,
            1 => sign | (frac == 0 ? 1 : frac), // denormal
            2 => sign | 0x7F80_0000, // infinity
            3 => sign | 0x7FC0_0000 | (frac & 0x3F_FFFF), // QNaN
            4 => sign | 0x7F80_0000 | (frac & 0x3F_FFFF) | 1, // SNaN
            5 => sign | 0x0080_0000 | (r.Next(2) == 0 ? 0u : frac), // smallest normals
            6 => sign | 0x7F7F_FFFF ^ (frac & 3), // near the largest
            7 => sign | 0x3F80_0000, // 1.0
            8 => sign | ((uint)r.Next(1, 20) << 23) | frac, // tiny normals (products underflow)
            9 => sign | ((uint)r.Next(230, 255) << 23) | frac, // huge (products overflow)
            10 => sign | ((uint)r.Next(120, 135) << 23) | (frac & 0x7F_F000), // short significands: exact results
            11 => sign | ((uint)r.Next(100, 155) << 23) | (frac | 0x7F_FF00), // long runs of ones: rounding carries
            12 => sign | ((uint)r.Next(0x96, 0x9F) << 23) | frac, // around 2^23..2^31: integer boundaries
            _ => sign | ((uint)r.Next(1, 255) << 23) | frac,
        };
    }

    private static ulong Double(Random r)
    {
        ulong sign = (ulong)r.Next(2) << 63;
        ulong frac = (ulong)r.NextInt64() & 0xF_FFFF_FFFF_FFFF;
        return r.Next(16) switch
        {
            0 => sign,
            1 => sign | (frac == 0 ? 1 : frac >> r.Next(52)),
            2 => sign | 0x7FF0_0000_0000_0000,
            3 => sign | 0x7FF8_0000_0000_0000 | (frac & 0x7_FFFF_FFFF_FFFF),
            4 => sign | 0x7FF0_0000_0000_0000 | (frac & 0x7_FFFF_FFFF_FFFF) | 1,
            5 => sign | 0x0010_0000_0000_0000 | (r.Next(2) == 0 ? 0 : frac),
            6 => sign | 0x7FEF_FFFF_FFFF_FFFF ^ (frac & 3),
            7 => sign | 0x3FF0_0000_0000_0000,
            8 => sign | ((ulong)r.Next(1, 60) << 52) | frac,
            9 => sign | ((ulong)r.Next(1990, 2047) << 52) | frac,
            10 => sign | ((ulong)r.Next(1000, 1090) << 52) | (frac & 0xF_FFFF_0000_0000),
            11 => sign | ((ulong)r.Next(990, 1100) << 52) | frac | 0xF_FFFF_FFF0_0000,
            12 => sign | ((ulong)r.Next(1023, 1023 + 64) << 52) | frac, // integer-conversion range and beyond
            13 => sign | ((ulong)r.Next(0x3A0, 0x3B0) << 52) | frac, // converts to single denormals
            _ => sign | ((ulong)r.Next(1, 2047) << 52) | frac,
        };
    }

    private static int Int32(Random r) => r.Next(4) switch
    {
        0 => r.Next(-100, 100),
        1 => int.MinValue + r.Next(3),
        2 => int.MaxValue - r.Next(3),
        _ => r.Next(int.MinValue, int.MaxValue) >> r.Next(31),
    };

    /// <summary>An 80-bit extended value: zeros, denormals, extremes, infinities, NaNs, ordinary values, rare unnormals.</summary>
    private static void Extended(Random r, byte[] d, int at)
    {
        ulong sig = (ulong)r.NextInt64() | (1UL << 63);
        int sign = r.Next(2) << 15;
        int exp = r.Next(12) switch
        {
            0 => 0,
            1 => 1,
            2 => 0x7FFE,
            3 => 0x7FFF,
            4 => r.Next(0x3FFF - 70, 0x3FFF + 70),
            5 => r.Next(0x3FFF - 3, 0x3FFF + 3),
            _ => r.Next(0x3F00, 0x4100),
        };
        if (exp == 0)
        {
            sig = r.Next(3) == 0 ? 0 : sig >> r.Next(1, 64);
        }
        else if (exp == 0x7FFF && r.Next(3) == 0)
        {
            sig = 1UL << 63; // infinity
        }
        else if (r.Next(32) == 0)
        {
            sig &= ~(1UL << 63); // unnormal / pseudo-NaN: an invalid operand
        }
        else if (r.Next(4) == 0)
        {
            sig &= ~0xFFFF_FFFFUL; // short significand: exact sums and products
        }
        BitConverter.GetBytes(sig).CopyTo(d, at);
        BitConverter.GetBytes((ushort)(sign | exp)).CopyTo(d, at + 8);
    }

    /// <summary>Fills XMM0–7 inputs and the memory operand area (window 0..0xFF) with lanes of one kind.</summary>
    private static void Fill(byte[] d, Lanes kind, Random r)
    {
        for (int at = 0; at < 0x100; at += kind == Lanes.Double ? 8 : 4)
        {
            switch (kind)
            {
                case Lanes.Single:
                    BitConverter.GetBytes(Single(r)).CopyTo(d, at);
                    break;
                case Lanes.Double:
                    BitConverter.GetBytes(Double(r)).CopyTo(d, at);
                    break;
                case Lanes.Int32:
                    BitConverter.GetBytes(Int32(r)).CopyTo(d, at);
                    break;
                case Lanes.Extended when at % 16 == 0:
                    Extended(r, d, at);
                    break;
                default:
                    break;
            }
        }
        // Near-equal partners: lanes of XMM1 and the memory operand copy XMM2's/XMM3's lanes with low bits changed,
        // so subtraction cancels and comparisons see ties.
        if (r.Next(3) == 0)
        {
            for (int i = 0; i < 16; i += 4)
            {
                uint v = BitConverter.ToUInt32(d, 0x20 + i) ^ (uint)r.Next(kind == Lanes.Double && i % 8 == 0 ? 0x10000 : 4);
                BitConverter.GetBytes(v).CopyTo(d, 0x10 + i);
                BitConverter.GetBytes(BitConverter.ToUInt32(d, 0x30 + i) ^ (uint)r.Next(2)).CopyTo(d, 0x80 + i);
            }
        }
    }

    /// <summary>MXCSR with every exception masked, random rounding, DAZ and FTZ, no flags set.</summary>
    private static uint RandomMxcsr(Random r, int run) => 0x1F80u | ((uint)(run & 3) << 13) | (r.Next(4) == 0 ? 0x40u : 0) | (r.Next(4) == 0 ? 0x8000u : 0);

    [TestCaseSource(nameof(Cases))]
    public void Instruction_MatchesHostCpu(FloatCase c)
    {
        if (_oracle is null)
        {
            Assert.Ignore("native oracle unavailable (not x86-64, or the fixed data mapping was refused)");
        }
        GuestHarness g = _guest!;
        var rng = new Random(StableSeed(c.Name));
        byte[] code = Build(c);
        _oracle.Load(code);
        g.Memory.Write(GuestHarness.CodeAddress, [.. code, 0xF4]);

        var inputs = new ulong[17];
        var native = new ulong[17];
        var data = new byte[Window];
        for (int run = 0; run < RunsPerCase; run++)
        {
            for (int i = 0; i < 16; i++)
            {
                inputs[i] = rng.Next(3) == 0 ? (ulong)rng.NextInt64() : (ulong)(long)Int32(rng);
            }
            inputs[4] = 0;
            inputs[6] = NativeOracle.DataAddress;
            inputs[16] = 2;
            rng.NextBytes(data);
            Fill(data, c.Kind, rng);
            BitConverter.GetBytes(RandomMxcsr(rng, run)).CopyTo(data, MxcsrInAt);
            // x87: every exception masked, random rounding and precision control.
            BitConverter.GetBytes((ushort)(0x007F | ((run & 3) << 10) | ((rng.Next(4) switch { 0 => 0, 1 => 2, _ => 3 }) << 8))).CopyTo(data, FcwInAt);
            BitConverter.GetBytes(0x1F80u).CopyTo(data, MxcsrDefaultAt);
            BitConverter.GetBytes(0x1FA0u).CopyTo(data, MxcsrFastAt);

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

            string context = $"{c.Name} run {run} (MXCSR in {BitConverter.ToUInt32(data, MxcsrInAt):X}, FCW {BitConverter.ToUInt16(data, FcwInAt):X})";
            for (int i = 0; i < 16; i++)
            {
                if (i != 4 && g.State.Gpr[i] != native[i])
                {
                    Assert.Fail($"{context}: {(Register)((int)Register.RAX + i)} interpreter {g.State.Gpr[i]:X} host {native[i]:X}");
                }
            }
            const ulong arith = 0x8D5;
            if ((g.State.Rflags & arith) != (native[16] & arith))
            {
                Assert.Fail($"{context}: RFLAGS interpreter {g.State.Rflags & arith:X} host {native[16] & arith:X}");
            }
            byte[] guestData = new byte[Window];
            g.Memory.Read(NativeOracle.DataAddress, guestData);
            foreach ((int start, int length) in (c.Ignore ?? []).Concat(c.X87 ? [(EnvOutAt + 12, 16)] : []))
            {
                guestData.AsSpan(start, length).Clear();
                nativeData.AsSpan(start, length).Clear();
            }
            for (int i = 0; i < Window; i++)
            {
                if (guestData[i] != nativeData[i])
                {
                    int lane = i & ~7;
                    Assert.Fail($"{context}: window byte 0x{i:X} interpreter {guestData[i]:X2} host {nativeData[i]:X2}; "
                        + $"qword at 0x{lane:X}: interpreter {BitConverter.ToUInt64(guestData, lane):X16} host {BitConverter.ToUInt64(nativeData, lane):X16}; "
                        + $"inputs {Hex(data, 0, 0x90)}");
                }
            }
        }
    }

    private static string Hex(byte[] d, int at, int n)
    {
        var parts = new List<string>();
        for (int i = at; i < at + n; i += 8)
        {
            parts.Add(BitConverter.ToUInt64(d, i).ToString("X16"));
        }
        return string.Join(' ', parts);
    }

    private static int StableSeed(string s)
    {
        int h = 17;
        foreach (char ch in s)
        {
            h = h * 31 + ch;
        }
        return h;
    }

    private static readonly MemoryOperand Mem = new(Register.RSI, 0x80, 1);

    private static FloatCase Packed(string name, Lanes kind, string suffix, int? imm = null)
    {
        Code code = Enum.Parse<Code>(name + suffix);
        return new($"{name.ToLowerInvariant()}{(imm is null ? "" : $" {imm}")}", kind, a =>
        {
            if (imm is int i)
            {
                a.AddInstruction(Instruction.Create(code, Register.XMM1, Register.XMM2, i));
                a.AddInstruction(Instruction.Create(code, Register.XMM0, Register.XMM0, i));
                a.AddInstruction(Instruction.Create(code, Register.XMM3, Mem, i));
                a.AddInstruction(Instruction.Create(code, Register.XMM4, Register.XMM5, i));
            }
            else
            {
                a.AddInstruction(Instruction.Create(code, Register.XMM1, Register.XMM2));
                a.AddInstruction(Instruction.Create(code, Register.XMM0, Register.XMM0));
                a.AddInstruction(Instruction.Create(code, Register.XMM3, Mem));
                a.AddInstruction(Instruction.Create(code, Register.XMM4, Register.XMM5));
                a.AddInstruction(Instruction.Create(code, Register.XMM6, Register.XMM7));
            }
        });
    }

    public static IEnumerable<FloatCase> Cases()
    {
        foreach (string op in new[] { "Add", "Sub", "Mul", "Div", "Min", "Max", "Sqrt" })
        {
            yield return Packed(op + "ps", Lanes.Single, "_xmm_xmmm128");
            yield return Packed(op + "ss", Lanes.Single, "_xmm_xmmm32");
            yield return Packed(op + "pd", Lanes.Double, "_xmm_xmmm128");
            yield return Packed(op + "sd", Lanes.Double, "_xmm_xmmm64");
        }
        for (int p = 0; p < 8; p++)
        {
            yield return Packed("Cmpps", Lanes.Single, "_xmm_xmmm128_imm8", p);
            yield return Packed("Cmpss", Lanes.Single, "_xmm_xmmm32_imm8", p);
            yield return Packed("Cmppd", Lanes.Double, "_xmm_xmmm128_imm8", p);
            yield return Packed("Cmpsd", Lanes.Double, "_xmm_xmmm64_imm8", p);
        }
        foreach (string op in new[] { "Add", "Sub", "Mul", "Div" })
        {
            foreach ((string suffix, Lanes kind, string form) in new[] { ("ps", Lanes.Single, "_xmm_xmmm128"), ("ss", Lanes.Single, "_xmm_xmmm32"), ("pd", Lanes.Double, "_xmm_xmmm128"), ("sd", Lanes.Double, "_xmm_xmmm64") })
            {
                FloatCase inner = Packed(op + suffix, kind, form);
                yield return new($"{inner.Name} (PE already set)", kind, a =>
                {
                    a.ldmxcsr(__dword_ptr[rsi + MxcsrFastAt]);
                    inner.Body(a);
                });
            }
        }
        foreach (string op in new[] { "Addsubps", "Haddps", "Hsubps" })
        {
            yield return Packed(op, Lanes.Single, "_xmm_xmmm128");
        }
        foreach (string op in new[] { "Addsubpd", "Haddpd", "Hsubpd" })
        {
            yield return Packed(op, Lanes.Double, "_xmm_xmmm128");
        }
        yield return Packed("Unpcklps", Lanes.Single, "_xmm_xmmm128");
        yield return Packed("Unpckhps", Lanes.Single, "_xmm_xmmm128");
        yield return Packed("Unpcklpd", Lanes.Double, "_xmm_xmmm128");
        yield return Packed("Unpckhpd", Lanes.Double, "_xmm_xmmm128");
        foreach (int imm in new[] { 0x1B, 0xE4, 0x4E, 0x00, 0xFF })
        {
            yield return Packed("Shufps", Lanes.Single, "_xmm_xmmm128_imm8", imm);
        }
        for (int imm = 0; imm < 4; imm++)
        {
            yield return Packed("Shufpd", Lanes.Double, "_xmm_xmmm128_imm8", imm);
        }
        yield return new("movddup/movshdup/movsldup", Lanes.Single, a =>
        {
            a.movddup(xmm1, xmm2);
            a.movddup(xmm3, __qword_ptr[rsi + 0x84]);
            a.movshdup(xmm4, xmm5);
            a.movsldup(xmm6, __xmmword_ptr[rsi + 0x80]);
        });
        foreach ((string name, Lanes kind) in new[] { ("comiss", Lanes.Single), ("ucomiss", Lanes.Single), ("comisd", Lanes.Double), ("ucomisd", Lanes.Double) })
        {
            Code rr = Enum.Parse<Code>(char.ToUpperInvariant(name[0]) + name[1..] + (kind == Lanes.Single ? "_xmm_xmmm32" : "_xmm_xmmm64"));
            yield return new(name, kind, a =>
            {
                a.AddInstruction(Instruction.Create(rr, Register.XMM1, Register.XMM2));
                a.pushfq();
                a.pop(rax);
                a.and(rax, 0x8D5);
                a.AddInstruction(Instruction.Create(rr, Register.XMM3, Mem));
                a.pushfq();
                a.pop(rcx);
                a.and(rcx, 0x8D5);
                a.AddInstruction(Instruction.Create(rr, Register.XMM4, Register.XMM4));
            });
        }

        // ---- conversions ----
        yield return new("cvtsi2ss/sd", Lanes.Int32, a =>
        {
            a.cvtsi2ss(xmm1, eax);
            a.cvtsi2ss(xmm2, rcx);
            a.cvtsi2sd(xmm3, edx);
            a.cvtsi2sd(xmm4, rbx);
            a.cvtsi2ss(xmm5, __dword_ptr[rsi + 0x80]);
            a.cvtsi2sd(xmm6, __qword_ptr[rsi + 0x88]);
        });
        yield return new("cvt(t)ss2si", Lanes.Single, a =>
        {
            a.cvtss2si(eax, xmm1);
            a.cvtss2si(rcx, xmm2);
            a.cvttss2si(edx, xmm3);
            a.cvttss2si(rbx, __dword_ptr[rsi + 0x84]);
            a.cvtss2si(r8, __dword_ptr[rsi + 0x88]);
        });
        yield return new("cvt(t)sd2si", Lanes.Double, a =>
        {
            a.cvtsd2si(eax, xmm1);
            a.cvtsd2si(rcx, xmm2);
            a.cvttsd2si(edx, xmm3);
            a.cvttsd2si(rbx, __qword_ptr[rsi + 0x80]);
            a.cvtsd2si(r8, __qword_ptr[rsi + 0x88]);
        });
        yield return new("cvtss2sd/cvtps2pd", Lanes.Single, a =>
        {
            a.cvtss2sd(xmm1, xmm2);
            a.cvtss2sd(xmm3, __dword_ptr[rsi + 0x84]);
            a.cvtps2pd(xmm4, xmm5);
            a.cvtps2pd(xmm6, __qword_ptr[rsi + 0x88]);
        });
        yield return new("cvtsd2ss/cvtpd2ps", Lanes.Double, a =>
        {
            a.cvtsd2ss(xmm1, xmm2);
            a.cvtsd2ss(xmm3, __qword_ptr[rsi + 0x88]);
            a.cvtpd2ps(xmm4, xmm5);
            a.cvtpd2ps(xmm6, __xmmword_ptr[rsi + 0x80]);
        });
        yield return new("cvtdq2ps/cvtdq2pd", Lanes.Int32, a =>
        {
            a.cvtdq2ps(xmm1, xmm2);
            a.cvtdq2ps(xmm3, __xmmword_ptr[rsi + 0x80]);
            a.cvtdq2pd(xmm4, xmm5);
            a.cvtdq2pd(xmm6, __qword_ptr[rsi + 0x88]);
        });
        yield return new("cvt(t)ps2dq", Lanes.Single, a =>
        {
            a.cvtps2dq(xmm1, xmm2);
            a.cvttps2dq(xmm3, __xmmword_ptr[rsi + 0x80]);
            a.cvttps2dq(xmm4, xmm5);
        });
        yield return new("cvt(t)pd2dq", Lanes.Double, a =>
        {
            a.cvtpd2dq(xmm1, xmm2);
            a.cvttpd2dq(xmm3, __xmmword_ptr[rsi + 0x80]);
            a.cvttpd2dq(xmm4, xmm5);
        });
        foreach (FloatCase x in X87Cases())
        {
            yield return x;
        }
    }

    private static MemoryOperand M(int offset) => new(Register.RSI, offset, 1);

    private static void Emit(Assembler a, string code, params object[] ops)
    {
        Code c = Enum.Parse<Code>(code);
        Instruction ins = ops.Length switch
        {
            0 => Instruction.Create(c),
            1 => ops[0] is MemoryOperand m ? Instruction.Create(c, m) : Instruction.Create(c, (Register)ops[0]),
            _ => Instruction.Create(c, (Register)ops[0], (Register)ops[1]),
        };
        a.AddInstruction(ins);
    }

    /// <summary>x87 cases: every result is stored as m80 (or m32/m64/integers) in the window; FSW and the tag word are compared.</summary>
    private static IEnumerable<FloatCase> X87Cases()
    {
        foreach (Lanes kind in new[] { Lanes.Double, Lanes.Extended })
        {
            string k = kind == Lanes.Double ? "m64" : "m80";
            foreach (string op in new[] { "Fadd", "Fsub", "Fsubr", "Fmul", "Fdiv", "Fdivr" })
            {
                string iop = "Fi" + op[1..];
                yield return new($"{op.ToLowerInvariant()} {k}", kind, a =>
                {
                    if (kind == Lanes.Double)
                    {
                        a.fld(__qword_ptr[rsi]);
                        a.fld(__qword_ptr[rsi + 8]);
                    }
                    else
                    {
                        a.fld(__tword_ptr[rsi]);
                        a.fld(__tword_ptr[rsi + 0x10]);
                    }
                    Emit(a, op + "_st0_sti", Register.ST0, Register.ST1);
                    Emit(a, op + "_sti_st0", Register.ST1, Register.ST0);
                    Emit(a, op + "_m64fp", M(0x28));
                    Emit(a, op + "_m32fp", M(0x34));
                    Emit(a, iop + "_m32int", M(0x44));
                    Emit(a, iop + "_m16int", M(0x52));
                    Emit(a, op + "p_sti_st0", Register.ST1, Register.ST0);
                    a.fstp(__tword_ptr[rsi + 0x200]);
                }, X87: true);
            }
            yield return new($"fld/fst/fist {k}", kind, a =>
            {
                if (kind == Lanes.Double)
                {
                    a.fld(__qword_ptr[rsi]);
                }
                else
                {
                    a.fld(__tword_ptr[rsi]);
                }
                a.fst(__dword_ptr[rsi + 0x200]);
                a.fst(__qword_ptr[rsi + 0x208]);
                a.fist(__dword_ptr[rsi + 0x210]);
                a.fist(__word_ptr[rsi + 0x214]);
                a.fisttp(__qword_ptr[rsi + 0x218]);
                a.fld(kind == Lanes.Double ? __qword_ptr[rsi + 8] : __tword_ptr[rsi + 0x10]);
                a.fistp(__qword_ptr[rsi + 0x220]);
                a.fld(__dword_ptr[rsi + 0x24]);
                a.fisttp(__dword_ptr[rsi + 0x228]);
                a.fld(kind == Lanes.Double ? __qword_ptr[rsi + 0x28] : __tword_ptr[rsi + 0x20]);
                a.fisttp(__word_ptr[rsi + 0x22C]);
                a.fld(kind == Lanes.Double ? __qword_ptr[rsi + 0x38] : __tword_ptr[rsi + 0x30]);
                a.fistp(__word_ptr[rsi + 0x22E]);
                a.fld(kind == Lanes.Double ? __qword_ptr[rsi + 0x40] : __tword_ptr[rsi + 0x40]);
                a.fistp(__dword_ptr[rsi + 0x230]);
                a.fld(kind == Lanes.Double ? __qword_ptr[rsi + 0x48] : __tword_ptr[rsi + 0x50]);
                a.fld(st0);
                a.fstp(__tword_ptr[rsi + 0x240]);
                a.fstp(__dword_ptr[rsi + 0x250]);
                a.fld(kind == Lanes.Double ? __qword_ptr[rsi + 0x58] : __tword_ptr[rsi + 0x60]);
                a.fstp(__qword_ptr[rsi + 0x258]);
                a.fld(__dword_ptr[rsi + 0x64]);
                a.fstp(__tword_ptr[rsi + 0x260]);
            }, X87: true);
            yield return new($"compares {k}", kind, a =>
            {
                if (kind == Lanes.Double)
                {
                    a.fld(__qword_ptr[rsi + 8]);
                    a.fld(__qword_ptr[rsi]);
                }
                else
                {
                    a.fld(__tword_ptr[rsi + 0x10]);
                    a.fld(__tword_ptr[rsi]);
                }
                a.fcom(st0, st1);
                a.fnstsw(__word_ptr[rsi + 0x200]);
                a.fucom(st0, st1);
                a.fnstsw(__word_ptr[rsi + 0x202]);
                a.fcom(__qword_ptr[rsi + 0x28]);
                a.fnstsw(__word_ptr[rsi + 0x204]);
                a.fcom(__dword_ptr[rsi + 0x34]);
                a.fnstsw(__word_ptr[rsi + 0x206]);
                a.ficom(__dword_ptr[rsi + 0x44]);
                a.fnstsw(__word_ptr[rsi + 0x208]);
                a.ficom(__word_ptr[rsi + 0x52]);
                a.fnstsw(__word_ptr[rsi + 0x20A]);
                a.ftst();
                a.fnstsw(__word_ptr[rsi + 0x20C]);
                a.fxam();
                a.fnstsw(__word_ptr[rsi + 0x20E]);
                a.fcomi(st0, st1);
                a.pushfq();
                a.pop(rax);
                a.and(rax, 0x8D5);
                a.fucomi(st0, st1);
                a.pushfq();
                a.pop(rcx);
                a.and(rcx, 0x8D5);
                a.fcomp(st0, st1);
                a.fnstsw(__word_ptr[rsi + 0x210]);
                a.fld(kind == Lanes.Double ? __qword_ptr[rsi + 0x58] : __tword_ptr[rsi + 0x60]);
                a.fucompp();
                a.fnstsw(__word_ptr[rsi + 0x212]);
                a.fld(kind == Lanes.Double ? __qword_ptr[rsi + 0x60] : __tword_ptr[rsi + 0x70]);
                a.fld(kind == Lanes.Double ? __qword_ptr[rsi + 0x68] : __tword_ptr[rsi + 0x80]);
                a.fld(kind == Lanes.Double ? __qword_ptr[rsi + 0x70] : __tword_ptr[rsi + 0x90]);
                a.fcomip(st0, st1);
                a.pushfq();
                a.pop(rdx);
                a.and(rdx, 0x8D5);
                a.fucomip(st0, st1);
                a.pushfq();
                a.pop(rbx);
                a.and(rbx, 0x8D5);
                a.fcompp();
                a.fnstsw(__word_ptr[rsi + 0x214]);
                a.fld(kind == Lanes.Double ? __qword_ptr[rsi + 0x78] : __tword_ptr[rsi + 0xA0]);
                a.fxam();
                a.fnstsw(__word_ptr[rsi + 0x216]);
                a.ffree(st0);
                a.fxam();
                a.fnstsw(__word_ptr[rsi + 0x218]);
                a.fincstp();
            }, X87: true);
            foreach (string op in new[] { "fsqrt", "fabs", "fchs", "frndint", "fxtract", "fscale", "fprem", "fprem1" })
            {
                yield return new($"{op} {k}", kind, a =>
                {
                    if (kind == Lanes.Double)
                    {
                        a.fld(__qword_ptr[rsi + 8]);
                        a.fld(__qword_ptr[rsi]);
                    }
                    else
                    {
                        a.fld(__tword_ptr[rsi + 0x10]);
                        a.fld(__tword_ptr[rsi]);
                    }
                    Emit(a, char.ToUpperInvariant(op[0]) + op[1..]);
                    a.fstp(__tword_ptr[rsi + 0x200]);
                    a.fstp(__tword_ptr[rsi + 0x210]);
                    a.fstp(__tword_ptr[rsi + 0x220]);
                }, X87: true);
            }
        }
        yield return new("fbld/fbstp", Lanes.Double, a =>
        {
            // BCD round trips through values of every size, then stores of random doubles (range, NaN, rounding).
            a.fld(__qword_ptr[rsi]);
            a.fbstp(__tword_ptr[rsi + 0x200]);
            a.fld(__qword_ptr[rsi + 8]);
            a.fbstp(__tword_ptr[rsi + 0x210]);
            a.fbld(__tword_ptr[rsi + 0x200]);
            a.fstp(__tword_ptr[rsi + 0x220]);
            a.fild(__qword_ptr[rsi + 0x10]);
            a.fbstp(__tword_ptr[rsi + 0x230]);
            a.fbld(__tword_ptr[rsi + 0x230]);
            a.fbstp(__tword_ptr[rsi + 0x240]);
        }, X87: true);
        yield return new("constants", Lanes.Double, a =>
        {
            a.fld1();
            a.fldz();
            a.fldpi();
            a.fldl2e();
            a.fldl2t();
            a.fldlg2();
            a.fldln2();
            for (int i = 0; i < 7; i++)
            {
                a.fstp(__tword_ptr[rsi + 0x200 + i * 16]);
            }
        }, X87: true);
        yield return new("fxch/fincstp/ffree/fcmov", Lanes.Double, a =>
        {
            a.fld(__qword_ptr[rsi]);
            a.fld(__qword_ptr[rsi + 8]);
            a.fld(__qword_ptr[rsi + 0x10]);
            a.fxch(st0, st2);
            a.fincstp();
            a.fdecstp();
            a.cmp(eax, ecx);
            a.fcmovb(st0, st1);
            a.fcmove(st0, st2);
            a.fcmovnbe(st0, st1);
            a.fcmovu(st0, st2);
            a.ffree(st1);
            a.fstp(__tword_ptr[rsi + 0x200]);
            a.fstp(__tword_ptr[rsi + 0x210]);
            a.fxch(st0, st1);
            a.fstp(__tword_ptr[rsi + 0x220]);
            a.fstp(__tword_ptr[rsi + 0x230]);
        }, X87: true);
        yield return new("stack overflow and underflow", Lanes.Double, a =>
        {
            for (int i = 0; i < 9; i++)
            {
                a.fld(__qword_ptr[rsi + i * 8]);
            }
            a.fnstsw(__word_ptr[rsi + 0x2F0]);
            for (int i = 0; i < 9; i++)
            {
                a.fstp(__tword_ptr[rsi + 0x200 + i * 16]);
            }
            a.fadd(st0, st1);
            a.fst(__qword_ptr[rsi + 0x2A0]);
        }, X87: true);
        yield return new("fnsave/frstor/fnstenv/fldenv", Lanes.Double, a =>
        {
            // Empty registers keep stale contents that FNSAVE shows: make them the same (zero) on both sides.
            for (int i = 0; i < 8; i++)
            {
                a.fldz();
            }
            for (int i = 0; i < 8; i++)
            {
                a.fstp(st0);
            }
            a.fld(__qword_ptr[rsi]);
            a.fld(__qword_ptr[rsi + 8]);
            a.fnsave(__[rsi + 0x200]);
            a.fld1();
            a.frstor(__[rsi + 0x200]);
            a.fnstenv(__[rsi + 0x280]);
            a.fldenv(__[rsi + 0x280]);
            a.faddp(st1, st0);
            a.fstp(__tword_ptr[rsi + 0x2A0]);
            a.fnstenv(__[rsi + 0x2C0]);
        }, X87: true, Ignore: [(0x20C, 16), (0x28C, 16), (0x2CC, 16)]);
        yield return new("16-bit fnsave/frstor/fnstenv/fldenv", Lanes.Double, a =>
        {
            for (int i = 0; i < 8; i++)
            {
                a.fldz();
            }
            for (int i = 0; i < 8; i++)
            {
                a.fstp(st0);
            }
            a.fld(__qword_ptr[rsi]);
            a.fld(__qword_ptr[rsi + 8]);
            Emit(a, "Fnsave_m94byte", M(0x200));
            a.fld1();
            Emit(a, "Frstor_m94byte", M(0x200));
            Emit(a, "Fnstenv_m14byte", M(0x280));
            Emit(a, "Fldenv_m14byte", M(0x280));
            a.fdivp(st1, st0);
            a.fstp(__tword_ptr[rsi + 0x2A0]);
            Emit(a, "Fnstenv_m14byte", M(0x2C0));
        }, X87: true, Ignore: [(0x206, 8), (0x286, 8), (0x2C6, 8)]);
    }
}
