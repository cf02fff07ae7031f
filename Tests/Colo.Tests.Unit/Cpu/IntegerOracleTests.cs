using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// The correctness oracle: each instruction form runs on the host CPU and on the interpreter with the same random
/// registers, flags and memory, and all GPRs (but RSP), the defined arithmetic flags, DF and the data window must
/// agree. Flags the architecture leaves undefined for that instruction (and operand values) are masked.
/// A case whose instructions use only the eight legacy registers and memory through RSI is re-encoded for 32-bit
/// protected mode (memory through ESI, flat segments) and 16-bit protected mode (memory through SI, DS/ES based at
/// the data window, 66h/67h where the operand needs it) and compared with the same host result: those encodings
/// mean the same there, and the data address fits 32 bits with a zero low word.
/// Each case also runs with the second tier compiling every block at its first execution (fixture argument true).
/// </summary>
[TestFixture(false)]
[TestFixture(true)]
[NonParallelizable]
public sealed class IntegerOracleTests(bool tier2)
{
    private const int RunsPerCase = 40;
    private const int Window = 256;
    // Where real-mode runs keep the data window (DS = ES = 0x2000).
    private const ulong RealModeData = 0x20000;
    private const ulong Cf = 1, Pf = 4, Af = 0x10, Zf = 0x40, Sf = 0x80, Of = 0x800, Df = 0x400;
    private const ulong Compared = Cf | Pf | Af | Zf | Sf | Of | Df;
    private static readonly MemoryOperand Mem = new(Register.RSI, 32, 1);

    private NativeOracle? _oracle;
    private GuestHarness? _guest;

    /// <summary>One instruction form: bytes, flags undefined for it (fixed or from the inputs), input constraints.</summary>
    public sealed record OracleCase(string Name, byte[] Code, ulong Undefined, Func<ulong[], ulong>? DynamicUndefined = null, Action<ulong[], byte[], Random>? Fix = null)
    {
        /// <summary>Assembler body for cases re-assembled per bitness (string instructions), instead of re-encoding <see cref="Code"/>.</summary>
        public Action<Assembler>? Body { get; init; }

        public override string ToString() => Name;
    }

    [OneTimeSetUp]
    public void SetUp()
    {
        _oracle = NativeOracle.TryCreate();
        // Guest RAM must cover the oracle's fixed data address so pointers agree on both sides.
        _guest = new GuestHarness(NativeOracle.DataAddress + 0x10_0000);
        _guest.Vcpu.Tier2Threshold = tier2 ? 0 : -1;
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        _oracle?.Dispose();
        _guest?.Dispose();
    }

    [TestCaseSource(nameof(Cases))]
    public void Instruction_MatchesHostCpu(OracleCase c)
    {
        if (_oracle is null)
        {
            Assert.Ignore("native oracle unavailable (not x86-64, or the fixed data mapping was refused)");
        }
        GuestHarness g = _guest!;
        TestContext.Progress.WriteLine("oracle: " + c.Name);
        var rng = new Random(StableSeed(c.Name));
        _oracle.Load(c.Code);
        byte[] guestCode = [.. c.Code, 0xF4];
        byte[]? code32 = ForBitness(c, 32);
        byte[]? code16 = ForBitness(c, 16);

        var inputs = new ulong[17];
        var native = new ulong[17];
        var data = new byte[Window];
        for (int run = 0; run < RunsPerCase; run++)
        {
            for (int i = 0; i < 16; i++)
            {
                inputs[i] = RandomValue(rng);
            }
            inputs[4] = 0;
            inputs[6] = NativeOracle.DataAddress;
            inputs[16] = ((ulong)rng.NextInt64() & (Cf | Pf | Af | Zf | Sf | Of)) | 2;
            rng.NextBytes(data);
            c.Fix?.Invoke(inputs, data, rng);

            data.CopyTo(_oracle.Data);
            inputs.CopyTo(native, 0);
            _oracle.Run(native);
            byte[] nativeData = _oracle.Data[..Window].ToArray();

            g.Memory.Write(GuestHarness.CodeAddress, guestCode);
            g.Memory.Write(NativeOracle.DataAddress, data);
            g.State.SetFlatLongMode(GuestHarness.CodeAddress, GuestHarness.StackTop);
            for (int i = 0; i < 16; i++)
            {
                if (i != 4)
                {
                    g.State.Gpr[i] = inputs[i];
                }
            }
            g.State.Rflags = inputs[16];
            VcpuExit exit = g.Vcpu.Run();
            Assert.That(exit, Is.EqualTo(VcpuExit.Halted), $"{c.Name}: exit {exit}, exception {g.State.ExceptionVector} pending={g.State.ExceptionPending} at RIP {g.State.Rip:X}");

            string context = $"{c.Name} run {run} inputs [{string.Join(' ', inputs.Select(v => v.ToString("X")))}]";
            for (int i = 0; i < 16; i++)
            {
                if (i != 4 && g.State.Gpr[i] != native[i])
                {
                    Assert.Fail($"{context}: {(Register)((int)Register.RAX + i)} interpreter {g.State.Gpr[i]:X} host {native[i]:X}");
                }
            }
            ulong undefined = c.Undefined | (c.DynamicUndefined?.Invoke(inputs) ?? 0);
            ulong mask = Compared & ~undefined;
            if ((g.State.Rflags & mask) != (native[16] & mask))
            {
                Assert.Fail($"{context}: flags interpreter {g.State.Rflags & mask:X} host {native[16] & mask:X} (mask {mask:X})");
            }
            byte[] guestData = new byte[Window];
            g.Memory.Read(NativeOracle.DataAddress, guestData);
            Assert.That(guestData, Is.EqualTo(nativeData), $"{context}: data window differs");

            if (code32 is not null)
            {
                RunLegacy(g, 32, code32, inputs, data, c.Name);
                CompareLegacy(g, $"{context} (32-bit)", native, nativeData, mask);
            }
            if (code16 is not null)
            {
                RunLegacy(g, 16, code16, inputs, data, c.Name);
                CompareLegacy(g, $"{context} (16-bit)", native, nativeData, mask);
                RunLegacy(g, 16, code16, inputs, data, c.Name, real: true);
                CompareLegacy(g, $"{context} (real mode)", native, nativeData, mask, RealModeData);
            }
        }
    }

    /// <summary>
    /// The case's code for 32- or 16-bit mode, or null when it needs a 64-bit-only register, operand or instruction
    /// (or memory other than [RSI+disp]).
    /// </summary>
    private static byte[]? ForBitness(OracleCase c, int bitness)
    {
        if (c.Body is not null)
        {
            try
            {
                return GuestHarness.Assemble(bitness, 0, c.Body);
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException)
            {
                return null;
            }
        }
        var decoder = Decoder.Create(64, c.Code);
        var list = new List<Instruction>();
        while (decoder.IP < (ulong)c.Code.Length)
        {
            Instruction ins = decoder.Decode();
            if (ins.IsInvalid || !Relocate(ref ins, bitness))
            {
                return null;
            }
            list.Add(ins);
        }
        using var stream = new MemoryStream();
        if (!BlockEncoder.TryEncode(bitness, new InstructionBlock(new StreamCodeWriter(stream), list, 0), out _, out _))
        {
            return null;
        }
        return stream.ToArray();
    }

    /// <summary>Rewrites [RSI+disp] to ESI/SI; refuses registers beyond the legacy eight, 64-bit ones and other memory forms.</summary>
    private static bool Relocate(ref Instruction ins, int bitness)
    {
        for (int i = 0; i < ins.OpCount; i++)
        {
            switch (ins.GetOpKind(i))
            {
                case OpKind.Register:
                    Register r = ins.GetOpRegister(i);
                    if (r.IsGPR64() || (r.IsGPR() && r.GetNumber() >= 8 && !r.IsGPR8()) || (r.IsGPR8() && r >= Register.SPL))
                    {
                        return false;
                    }
                    break;
                case OpKind.Memory:
                    if (ins.MemoryBase != Register.RSI || ins.MemoryIndex != Register.None || ins.MemoryDisplacement64 > 0x7F)
                    {
                        return false;
                    }
                    ins.MemoryBase = bitness == 32 ? Register.ESI : Register.SI;
                    ins.MemoryDisplSize = 1;
                    break;
                case OpKind.Immediate8 or OpKind.Immediate8_2nd or OpKind.Immediate16 or OpKind.Immediate32 or OpKind.Immediate8to16
                    or OpKind.Immediate8to32 or OpKind.Immediate8to64 or OpKind.Immediate32to64:
                    break;
                default:
                    return false;
            }
        }
        return true;
    }

    /// <summary>
    /// Runs the case in 32-bit protected mode (flat), 16-bit protected mode (CS based at the code, DS/ES at the
    /// data window so [SI+disp] and the string registers' low words address it like the host's RSI/RDI), or real mode
    /// (the 16-bit code, with the data window copied below 1 MiB).
    /// </summary>
    private static void RunLegacy(GuestHarness g, int bitness, byte[] code, ulong[] inputs, byte[] data, string name, bool real = false)
    {
        g.Memory.Write(GuestHarness.CodeAddress, [.. code, 0xF4]);
        g.Memory.Write(real ? RealModeData : NativeOracle.DataAddress, data);
        g.State.SetFlatLongMode(GuestHarness.CodeAddress, GuestHarness.StackTop);
        g.State.Efer = 0;
        g.State.Cr0 = 0x11;
        g.State.Cr4 = 0;
        for (int i = 0; i < 16; i++)
        {
            g.State.Gpr[i] = i < 8 && i != 4 ? inputs[i] & uint.MaxValue : 0;
        }
        if (bitness == 32)
        {
            g.State.Gpr[4] = GuestHarness.StackTop;
            for (int i = 0; i < 6; i++)
            {
                g.State.Segments[i].Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | (i == 1 ? 0xB : 3));
            }
        }
        else
        {
            g.State.Rip = 0;
            g.State.Gpr[4] = 0xFFF0;
            for (int i = 0; i < 6; i++)
            {
                bool window = i is (int)SegmentIndex.Ds or (int)SegmentIndex.Es;
                g.State.Segments[i] = new SegmentRegister
                {
                    Selector = (ushort)(i == 1 ? 0x18 : 0x20),
                    Base = i == 1 ? GuestHarness.CodeAddress : window ? NativeOracle.DataAddress : 0,
                    Limit = 0xFFFF,
                    Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | (i == 1 ? 0xB : 3)),
                };
            }
        }
        if (real)
        {
            // Real mode: the same 16-bit code at CS 0x1000, the data window at DS = ES = 0x2000 (the oracle's data
            // address lies above 1 MiB), 64 KiB limits, so the segment limit checks are in force as on hardware.
            g.State.Cr0 = 0x10;
            for (int i = 0; i < 6; i++)
            {
                ushort selector = i == 1 ? (ushort)(GuestHarness.CodeAddress >> 4) : i is (int)SegmentIndex.Ds or (int)SegmentIndex.Es ? (ushort)(RealModeData >> 4) : (ushort)0;
                g.State.Segments[i] = new SegmentRegister
                {
                    Selector = selector,
                    Base = (ulong)selector << 4,
                    Limit = 0xFFFF,
                    Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | (i == 1 ? 0xB : 3)),
                };
            }
        }
        g.State.Rflags = inputs[16];
        VcpuExit exit = g.Vcpu.Run();
        Assert.That(exit, Is.EqualTo(VcpuExit.Halted), $"{name} ({(real ? "real mode" : $"{bitness}-bit")}): exit {exit}, exception {g.State.ExceptionVector} pending={g.State.ExceptionPending} at RIP {g.State.Rip:X}");
    }

    /// <summary>Compares the low 32 bits of the legacy GPRs (but ESP), the defined flags and the data window.</summary>
    private static void CompareLegacy(GuestHarness g, string context, ulong[] native, byte[] nativeData, ulong flagMask, ulong dataAddress = NativeOracle.DataAddress)
    {
        for (int i = 0; i < 8; i++)
        {
            if (i != 4 && ((g.State.Gpr[i] ^ native[i]) & uint.MaxValue) != 0)
            {
                Assert.Fail($"{context}: {(Register)((int)Register.EAX + i)} interpreter {g.State.Gpr[i] & uint.MaxValue:X} host {native[i] & uint.MaxValue:X}");
            }
        }
        if ((g.State.Rflags & flagMask) != (native[16] & flagMask))
        {
            Assert.Fail($"{context}: flags interpreter {g.State.Rflags & flagMask:X} host {native[16] & flagMask:X} (mask {flagMask:X})");
        }
        byte[] guestData = new byte[Window];
        g.Memory.Read(dataAddress, guestData);
        Assert.That(guestData, Is.EqualTo(nativeData), $"{context}: data window differs");
    }

    /// <summary>Guards the re-encoding: the legacy-mode runs must keep covering the cases they are meant to cover.</summary>
    [Test]
    public void LegacyModes_CoverTheNon64BitCases()
    {
        var cases = Cases().Select(d => (OracleCase)d.Arguments[0]!).ToList();
        var in32 = cases.Where(c => ForBitness(c, 32) is not null).Select(c => c.Name).ToHashSet();
        var in16 = cases.Where(c => ForBitness(c, 16) is not null).Select(c => c.Name).ToHashSet();
        TestContext.Progress.WriteLine($"oracle cases: {cases.Count}, also in 32-bit mode: {in32.Count}, in 16-bit mode: {in16.Count}");
        Assert.Multiple(() =>
        {
            foreach (string name in new[] { "Add rm16,r16 (mem)", "Adc rm32,r32 (mem)", "Sbb rm8,r8 (reg)", "Xor ah,ch", "Div rm32 (mem)", "Idiv rm16 (reg)",
                "Shld m16,r16,cl", "Bts m32,r32 (mem, signed offset)", "Cmovle r16,rm16", "lock Cmpxchg8b m64", "rep movsd DF=1", "repne scasb DF=0", "Cwd", "Cdq",
                "seq loop sum (legacy regs)", "seq cmp jcc chain (legacy regs)", "seq push pop rotate (legacy regs)", "seq enter leave (legacy regs)",
                "seq call ret imm (legacy regs)" })
            {
                Assert.That(in32, Does.Contain(name), "32-bit");
                Assert.That(in16, Does.Contain(name), "16-bit");
            }
            foreach (string name in new[] { "Add rm64,r64 (reg)", "Add sil,r9b", "Mov r64,imm64", "Cdqe", "Movsxd r64,rm32 (reg)", "rep movsq DF=0", "Bswap r32", "lock Cmpxchg16b m128" })
            {
                Assert.That(in32, Does.Not.Contain(name), "64-bit only");
            }
            Assert.That(in32, Has.Count.GreaterThan(cases.Count / 2));
            Assert.That(in16, Is.EquivalentTo(in32), "every 32-bit case also runs in 16-bit code");
        });
    }

    /// <summary>
    /// Divide faults in 32- and 16-bit protected mode: #DE (vector 0, no error code) through a 32-bit interrupt gate,
    /// with the faulting instruction's offset and the code selector pushed and the destination registers untouched;
    /// INTO, whose #OF (vector 4) is a trap past the instruction; and BOUND, whose #BR (vector 5) is a fault at it.
    /// </summary>
    [TestCase(32, "div ecx (zero)")]
    [TestCase(32, "idiv ecx (overflow)")]
    [TestCase(32, "div cl (zero)")]
    [TestCase(16, "div cx (zero)")]
    [TestCase(16, "idiv cx (overflow)")]
    [TestCase(16, "div cl (quotient overflow)")]
    [TestCase(16, "div ecx (zero)")]
    [TestCase(32, "into (OF=1)")]
    [TestCase(16, "into (OF=1)")]
    [TestCase(32, "into (OF=0)")]
    [TestCase(16, "into (OF=0)")]
    [TestCase(32, "bound (above)")]
    [TestCase(16, "bound (above)")]
    [TestCase(32, "bound (within)")]
    [TestCase(16, "bound (within)")]
    public void Fault_InLegacyModes_IsDelivered(int bitness, string form)
    {
        GuestHarness g = _guest!;
        const ulong gdt = 0x2000, idt = 0x3000, handlers = 0x4000;
        const byte port = 0x80;
        g.WriteU64(gdt, 0);
        g.WriteU64(gdt + 8, 0x00CF_9A00_0000_FFFF);
        g.WriteU64(gdt + 16, 0x00CF_9200_0000_FFFF);
        g.WriteU64(gdt + 24, 0x0000_9A01_0000_FFFF);
        g.WriteU64(gdt + 32, 0x0000_9200_0000_FFFF);
        for (int v = 0; v < 32; v++)
        {
            ulong handler = handlers + (ulong)v * 16;
            byte vector = (byte)v;
            g.Memory.Write(handler, GuestHarness.Assemble(32, handler, a =>
            {
                a.mov(al, vector);
                a.@out(port, al);
                a.hlt();
            }));
            g.WriteU64(idt + (ulong)v * 8, (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | ((handler >> 16) << 48));
        }
        byte[] code = GuestHarness.Assemble(bitness, 0, a =>
        {
            a.mov(eax, form.StartsWith("idiv", StringComparison.Ordinal) ? 0x8000_8000 : 0x1234_5678);
            a.mov(edx, form.Contains("overflow", StringComparison.Ordinal) ? -1 : 0x0000_0003);
            a.mov(ecx, form.Contains("overflow", StringComparison.Ordinal) ? -1 : 0x0100);
            if (form.StartsWith("idiv ecx", StringComparison.Ordinal))
            {
                a.mov(eax, 0x8000_0000);
            }
            switch (form)
            {
                case "div ecx (zero)": a.xor(ecx, ecx); a.div(ecx); break;
                case "idiv ecx (overflow)": a.idiv(ecx); break;
                case "div cl (zero)": a.div(cl); break;
                case "div cx (zero)": a.xor(ecx, ecx); a.div(cx); break;
                case "idiv cx (overflow)": a.idiv(cx); break;
                case "div cl (quotient overflow)": a.mov(cl, 1); a.div(cl); break;
                case "into (OF=1)": a.add(eax, 0x6DCB_A988); a.into(); break;
                case "into (OF=0)": a.add(eax, 1); a.into(); break;
                // Bounds [-3, 20] at 0x5000; EBX/BX 15 is inside them, EAX/AX 0x5678 above.
                case "bound (above)" when bitness == 32: a.mov(__dword_ptr[0x5000], -3); a.mov(__dword_ptr[0x5004], 20); a.bound(eax, __dword_ptr[0x5000]); break;
                case "bound (above)": a.mov(__word_ptr[0x5000], -3); a.mov(__word_ptr[0x5002], 20); a.bound(ax, __dword_ptr[0x5000]); break;
                case "bound (within)" when bitness == 32: a.mov(__dword_ptr[0x5000], -3); a.mov(__dword_ptr[0x5004], 20); a.mov(ebx, 15); a.bound(ebx, __qword_ptr[0x5000]); break;
                case "bound (within)": a.mov(__word_ptr[0x5000], -3); a.mov(__word_ptr[0x5002], 20); a.mov(bx, 15); a.bound(bx, __dword_ptr[0x5000]); break;
            }
            a.hlt();
        });
        var decoder = Decoder.Create(bitness, code);
        ulong faultOffset = 0;
        while (decoder.IP < (ulong)code.Length)
        {
            Instruction i = decoder.Decode();
            if (i.Mnemonic is Mnemonic.Div or Mnemonic.Idiv or Mnemonic.Bound)
            {
                faultOffset = i.IP;
            }
            else if (i.Mnemonic == Mnemonic.Into)
            {
                // #OF is a trap: the pushed EIP is the next instruction.
                faultOffset = i.NextIP;
            }
        }
        ulong codeBase = bitness == 32 ? GuestHarness.CodeAddress : 0x10000;
        g.Memory.Write(codeBase, code);
        g.Io.PortWrites.Clear();
        g.State.SetFlatLongMode(codeBase, GuestHarness.StackTop);
        g.State.Efer = 0;
        g.State.Cr0 = 0x11;
        g.State.Cr4 = 0;
        g.State.Gdtr = new DescriptorTableRegister { Base = gdt, Limit = 39 };
        g.State.Idtr = new DescriptorTableRegister { Base = idt, Limit = 32 * 8 - 1 };
        ushort codeSelector;
        if (bitness == 32)
        {
            codeSelector = 0x08;
            for (int i = 0; i < 6; i++)
            {
                g.State.Segments[i] = new SegmentRegister
                {
                    Selector = (ushort)(i == 1 ? 0x08 : 0x10),
                    Limit = 0xFFFF_FFFF,
                    Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | SegmentRegister.G | SegmentRegister.DB | (i == 1 ? 0xB : 3)),
                };
            }
        }
        else
        {
            codeSelector = 0x18;
            g.State.Rip = 0;
            for (int i = 0; i < 6; i++)
            {
                g.State.Segments[i] = new SegmentRegister
                {
                    Selector = (ushort)(i == 1 ? 0x18 : 0x20),
                    Base = i == 1 ? 0x10000UL : 0,
                    Limit = 0xFFFF,
                    Attributes = (ushort)(SegmentRegister.S | SegmentRegister.P | (i == 1 ? 0xB : 3)),
                };
            }
            g.State.Gpr[4] = 0xFF00;
        }
        ulong stackBefore = g.State.Gpr[4];
        ulong expectedEax = form switch
        {
            "idiv ecx (overflow)" => 0x8000_0000UL,
            "idiv cx (overflow)" => 0x8000_8000UL,
            "into (OF=1)" => 0x1234_5678UL + 0x6DCB_A988UL,
            "into (OF=0)" => 0x1234_5679UL,
            _ => 0x1234_5678UL,
        };
        ulong expectedVector = form.StartsWith("into", StringComparison.Ordinal) ? 4UL : form.StartsWith("bound", StringComparison.Ordinal) ? 5UL : 0UL;
        g.State.Rflags = 2;
        Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted), $"exception {g.State.ExceptionVector} at RIP {g.State.Rip:X}");
        if (form is "into (OF=0)" or "bound (within)")
        {
            Assert.That(g.Io.PortWrites, Is.Empty, "INTO with OF clear does nothing");
            Assert.That(g.State.Gpr[0] & uint.MaxValue, Is.EqualTo(expectedEax));
            return;
        }
        Assert.That(g.Io.PortWrites.Select(w => w.Value), Is.EqualTo(new[] { expectedVector }), "one exception, the expected vector");
        ulong sp = g.State.Gpr[4] & uint.MaxValue;
        byte[] frame = new byte[12];
        g.Memory.Read(sp, frame);
        Assert.Multiple(() =>
        {
            Assert.That(sp, Is.EqualTo(stackBefore - 12), "EIP, CS, EFLAGS and no error code");
            Assert.That(BitConverter.ToUInt32(frame, 0), Is.EqualTo((uint)(faultOffset + (bitness == 32 ? codeBase : 0))), "pushed EIP is the faulting divide");
            Assert.That(BitConverter.ToUInt32(frame, 4) & 0xFFFF, Is.EqualTo((uint)codeSelector), "pushed CS");
            // The handler's MOV AL, vector overwrites AL only.
            Assert.That(g.State.Gpr[0] & 0xFFFF_FF00, Is.EqualTo(expectedEax & 0xFFFF_FF00), "dividend untouched");
        });
    }

    private static int StableSeed(string s)
    {
        int h = 17;
        foreach (char ch in s)
        {
            h = unchecked(h * 31 + ch);
        }
        return h;
    }

    private static readonly ulong[] Boundaries =
    [
        0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
        0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, ulong.MaxValue,
    ];

    private static ulong RandomValue(Random rng) => rng.Next(4) switch
    {
        0 => Boundaries[rng.Next(Boundaries.Length)],
        1 => Boundaries[rng.Next(Boundaries.Length)] ^ (ulong)rng.Next(4),
        2 => (ulong)rng.Next(-300, 300),
        _ => (ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 63),
    };

    // ---- case construction -----------------------------------------------------------------------------------------

    private static byte[] Encode(params Instruction[] instructions)
    {
        using var stream = new MemoryStream();
        var encoder = Encoder.Create(64, new StreamCodeWriter(stream));
        ulong ip = 0;
        foreach (Instruction ins in instructions)
        {
            ip += encoder.Encode(ins, ip);
        }
        return stream.ToArray();
    }

    private static bool TryCode(string name, out Code code) => Enum.TryParse(name, out code);

    private static Register RmReg(int w) => w switch { 8 => Register.DL, 16 => Register.DX, 32 => Register.EDX, _ => Register.RDX };

    private static Register RegReg(int w) => w switch { 8 => Register.BL, 16 => Register.BX, 32 => Register.EBX, _ => Register.RBX };

    private static Register Acc(int w) => w switch { 8 => Register.AL, 16 => Register.AX, 32 => Register.EAX, _ => Register.RAX };

    private static readonly int[] Widths = [8, 16, 32, 64];

    private static int ImmBits(int w) => w == 64 ? 32 : w;

    private static int RandomImm(Random rng, int bits) => bits switch
    {
        8 => rng.Next(-128, 128),
        16 => rng.Next(-32768, 32768),
        _ => rng.Next(int.MinValue, int.MaxValue),
    };

    private static IEnumerable<OracleCase> Binary(string op, ulong undefined, Random rng)
    {
        foreach (int w in Widths)
        {
            Register a = RmReg(w);
            Register b = RegReg(w);
            if (TryCode($"{op}_rm{w}_r{w}", out Code rmr))
            {
                yield return new($"{op} rm{w},r{w} (reg)", Encode(Instruction.Create(rmr, a, b)), undefined);
                yield return new($"{op} rm{w},r{w} (same reg)", Encode(Instruction.Create(rmr, a, a)), undefined);
                yield return new($"{op} rm{w},r{w} (mem)", Encode(Instruction.Create(rmr, Mem, b)), undefined);
            }
            if (TryCode($"{op}_r{w}_rm{w}", out Code rrm))
            {
                yield return new($"{op} r{w},rm{w} (reg)", Encode(Instruction.Create(rrm, b, a)), undefined);
                yield return new($"{op} r{w},rm{w} (mem)", Encode(Instruction.Create(rrm, b, Mem)), undefined);
            }
            foreach (int immBits in new[] { ImmBits(w), 8 }.Distinct())
            {
                if (TryCode($"{op}_rm{w}_imm{immBits}", out Code rmi))
                {
                    for (int k = 0; k < 2; k++)
                    {
                        int imm = RandomImm(rng, immBits);
                        yield return new($"{op} rm{w},imm{immBits} {imm} (reg)", Encode(Instruction.Create(rmi, a, imm)), undefined);
                        yield return new($"{op} rm{w},imm{immBits} {imm} (mem)", Encode(Instruction.Create(rmi, Mem, imm)), undefined);
                    }
                }
            }
            string acc = w switch { 8 => "AL", 16 => "AX", 32 => "EAX", _ => "RAX" };
            if (TryCode($"{op}_{acc}_imm{ImmBits(w)}", out Code acci))
            {
                int imm = RandomImm(rng, ImmBits(w));
                yield return new($"{op} {acc},imm {imm}", Encode(Instruction.Create(acci, Acc(w), imm)), undefined);
            }
        }
        if (TryCode($"{op}_rm8_r8", out Code high))
        {
            yield return new($"{op} ah,ch", Encode(Instruction.Create(high, Register.AH, Register.CH)), undefined);
            yield return new($"{op} dh,al", Encode(Instruction.Create(high, Register.DH, Register.AL)), undefined);
            yield return new($"{op} sil,r9b", Encode(Instruction.Create(high, Register.SIL, Register.R9L)), undefined);
        }
    }

    private static IEnumerable<OracleCase> Unary(string op, ulong undefined, Action<ulong[], byte[], Random, int, bool>? fix = null)
    {
        foreach (int w in Widths)
        {
            if (!TryCode($"{op}_rm{w}", out Code code))
            {
                continue;
            }
            int width = w;
            yield return new($"{op} rm{w} (reg)", Encode(Instruction.Create(code, RegReg(w))), undefined, null,
                fix is null ? null : (r, d, rng) => fix(r, d, rng, width, false));
            yield return new($"{op} rm{w} (mem)", Encode(Instruction.Create(code, Mem)), undefined, null,
                fix is null ? null : (r, d, rng) => fix(r, d, rng, width, true));
        }
    }

    private static ulong Mask(int w) => w == 64 ? ulong.MaxValue : (1UL << w) - 1;

    private static ulong SignExtend(ulong v, int w) => w == 64 ? v : (ulong)((long)(v << (64 - w)) >> (64 - w));

    /// <summary>Keeps DIV/IDIV inputs in range so the host does not fault (faults are tested separately).</summary>
    private static void FixDivide(ulong[] r, byte[] d, Random rng, int w, bool mem, bool signed)
    {
        ulong divisor = (mem ? BitConverter.ToUInt64(d, 32) : r[3]) & Mask(w);
        if (divisor == 0)
        {
            divisor = (ulong)rng.Next(1, 100);
            if (mem)
            {
                BitConverter.GetBytes(divisor).AsSpan(0, w / 8).CopyTo(d.AsSpan(32));
            }
            else
            {
                r[3] = (r[3] & ~Mask(w)) | divisor;
            }
        }
        if (!signed)
        {
            if (w == 8)
            {
                ulong ah = ((r[0] >> 8) & 0xFF) % divisor;
                r[0] = (r[0] & ~0xFF00UL) | (ah << 8);
            }
            else
            {
                ulong high = (r[2] & Mask(w)) % divisor;
                r[2] = (r[2] & ~Mask(w)) | high;
            }
            return;
        }
        ulong low = (w == 8 ? r[0] & 0xFF : r[0] & Mask(w));
        if (SignExtend(divisor, w) == ulong.MaxValue && low == (1UL << (w - 1)))
        {
            low--;
            r[0] = (r[0] & ~Mask(w)) | low;
        }
        ulong highPart = (long)SignExtend(low, w) < 0 ? Mask(w) : 0;
        if (w == 8)
        {
            r[0] = (r[0] & ~0xFF00UL) | ((highPart & 0xFF) << 8);
        }
        else
        {
            r[2] = (r[2] & ~Mask(w)) | highPart;
        }
    }

    private static ulong ShiftUndefined(string op, int w, ulong rawCount)
    {
        ulong count = rawCount & (w == 64 ? 63UL : 31UL);
        if (count == 0)
        {
            return 0;
        }
        ulong u = count == 1 ? 0 : Of;
        switch (op)
        {
            case "Shl" or "Sal" or "Shr" or "Sar":
                u |= Af;
                if ((int)count >= w)
                {
                    u |= Cf | Of;
                }
                break;
            case "Shld" or "Shrd":
                u |= Af;
                break;
        }
        return u;
    }

    private static IEnumerable<OracleCase> Shifts(string op)
    {
        foreach (int w in Widths)
        {
            int width = w;
            if (TryCode($"{op}_rm{w}_1", out Code one))
            {
                yield return new($"{op} rm{w},1", Encode(Instruction.Create(one, RmReg(w), 1)), ShiftUndefined(op, w, 1));
            }
            if (TryCode($"{op}_rm{w}_CL", out Code cl))
            {
                yield return new($"{op} rm{w},cl (reg)", Encode(Instruction.Create(cl, RmReg(w), Register.CL)), 0, r => ShiftUndefined(op, width, r[1] & 0xFF),
                    (r, d, rng) => r[1] = (ulong)rng.Next(0, 70));
                yield return new($"{op} rm{w},cl (mem)", Encode(Instruction.Create(cl, Mem, Register.CL)), 0, r => ShiftUndefined(op, width, r[1] & 0xFF),
                    (r, d, rng) => r[1] = (ulong)rng.Next(0, 70));
            }
            if (TryCode($"{op}_rm{w}_imm8", out Code imm))
            {
                foreach (int n in new[] { 0, 1, 2, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63 })
                {
                    yield return new($"{op} rm{w},{n}", Encode(Instruction.Create(imm, RmReg(w), n)), ShiftUndefined(op, w, (ulong)n));
                }
                yield return new($"{op} rm{w},5 (mem)", Encode(Instruction.Create(imm, Mem, 5)), ShiftUndefined(op, w, 5));
            }
        }
    }

    private static IEnumerable<OracleCase> DoubleShifts(string op)
    {
        foreach (int w in new[] { 16, 32, 64 })
        {
            int width = w;
            int maxCount = w == 16 ? 16 : 64;
            if (TryCode($"{op}_rm{w}_r{w}_CL", out Code cl))
            {
                yield return new($"{op} rm{w},r{w},cl", Encode(Instruction.Create(cl, RmReg(w), RegReg(w), Register.CL)), 0, r => ShiftUndefined(op, width, r[1] & 0xFF),
                    (r, d, rng) => r[1] = (ulong)rng.Next(0, maxCount + 1));
                yield return new($"{op} m{w},r{w},cl", Encode(Instruction.Create(cl, Mem, RegReg(w), Register.CL)), 0, r => ShiftUndefined(op, width, r[1] & 0xFF),
                    (r, d, rng) => r[1] = (ulong)rng.Next(0, maxCount + 1));
            }
            if (TryCode($"{op}_rm{w}_r{w}_imm8", out Code imm))
            {
                foreach (int n in new[] { 0, 1, 3, 8, 15, 16, 31, 40, 63 })
                {
                    if (w == 16 && n > 16)
                    {
                        continue;
                    }
                    yield return new($"{op} rm{w},r{w},{n}", Encode(Instruction.Create(imm, RmReg(w), RegReg(w), n)), ShiftUndefined(op, w, (ulong)n));
                }
            }
        }
    }

    private static readonly string[] ConditionNames = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];

    public static IEnumerable<TestCaseData> Cases()
    {
        var rng = new Random(4);
        var all = new List<OracleCase>();
        foreach (string op in new[] { "Add", "Adc", "Sub", "Sbb", "Cmp" })
        {
            all.AddRange(Binary(op, 0, rng));
        }
        foreach (string op in new[] { "And", "Or", "Xor", "Test" })
        {
            all.AddRange(Binary(op, Af, rng));
        }
        all.AddRange(Binary("Mov", 0, rng));
        all.Add(new("Mov r64,imm64", Encode(Instruction.Create(Code.Mov_r64_imm64, Register.R11, 0x1234_5678_9ABC_DEF0UL)), 0));
        foreach (string op in new[] { "Inc", "Dec", "Neg", "Not" })
        {
            all.AddRange(Unary(op, 0));
        }
        all.AddRange(Unary("Mul", Sf | Zf | Af | Pf));
        all.AddRange(Unary("Imul", Sf | Zf | Af | Pf));
        all.AddRange(Unary("Div", Compared & ~Df, (r, d, rng, w, mem) => FixDivide(r, d, rng, w, mem, signed: false)));
        all.AddRange(Unary("Idiv", Compared & ~Df, (r, d, rng, w, mem) => FixDivide(r, d, rng, w, mem, signed: true)));
        foreach (int w in new[] { 16, 32, 64 })
        {
            Code rr = Enum.Parse<Code>($"Imul_r{w}_rm{w}");
            all.Add(new($"Imul r{w},rm{w} (reg)", Encode(Instruction.Create(rr, RegReg(w), RmReg(w))), Sf | Zf | Af | Pf));
            all.Add(new($"Imul r{w},rm{w} (mem)", Encode(Instruction.Create(rr, RegReg(w), Mem)), Sf | Zf | Af | Pf));
            foreach (int immBits in new[] { ImmBits(w), 8 })
            {
                Code ri = Enum.Parse<Code>($"Imul_r{w}_rm{w}_imm{immBits}");
                int imm = RandomImm(rng, immBits);
                all.Add(new($"Imul r{w},rm{w},imm{immBits} {imm}", Encode(Instruction.Create(ri, RegReg(w), RmReg(w), imm)), Sf | Zf | Af | Pf));
                all.Add(new($"Imul r{w},m{w},imm{immBits} {imm}", Encode(Instruction.Create(ri, RegReg(w), Mem, imm)), Sf | Zf | Af | Pf));
            }
        }
        foreach (string op in new[] { "Rol", "Ror", "Rcl", "Rcr", "Shl", "Sal", "Shr", "Sar" })
        {
            all.AddRange(Shifts(op));
        }
        all.AddRange(DoubleShifts("Shld"));
        all.AddRange(DoubleShifts("Shrd"));
        foreach (string op in new[] { "Bt", "Bts", "Btr", "Btc" })
        {
            foreach (int w in new[] { 16, 32, 64 })
            {
                Code rr = Enum.Parse<Code>($"{op}_rm{w}_r{w}");
                Code ri = Enum.Parse<Code>($"{op}_rm{w}_imm8");
                ulong u = Of | Sf | Af | Pf;
                all.Add(new($"{op} rm{w},r{w} (reg)", Encode(Instruction.Create(rr, RmReg(w), RegReg(w))), u));
                all.Add(new($"{op} m{w},r{w} (mem, signed offset)", Encode(Instruction.Create(rr, Mem, RegReg(w))), u, null,
                    (r, d, rng) => r[3] = (ulong)rng.Next(-256, 512)));
                int bit = rng.Next(0, 256);
                all.Add(new($"{op} rm{w},{bit}", Encode(Instruction.Create(ri, RmReg(w), bit)), u));
                all.Add(new($"{op} m{w},{bit}", Encode(Instruction.Create(ri, Mem, bit)), u));
            }
        }
        foreach (string op in new[] { "Bsf", "Bsr" })
        {
            foreach (int w in new[] { 16, 32, 64 })
            {
                Code code = Enum.Parse<Code>($"{op}_r{w}_rm{w}");
                all.Add(new($"{op} r{w},rm{w}", Encode(Instruction.Create(code, RegReg(w), RmReg(w))), Cf | Of | Sf | Af | Pf, null,
                    (r, d, rng) => { if (rng.Next(4) == 0) { r[2] = 0; } }));
                all.Add(new($"{op} r{w},m{w}", Encode(Instruction.Create(code, RegReg(w), Mem)), Cf | Of | Sf | Af | Pf));
            }
        }
        foreach ((string op, int dst, int src) in new[] { ("Movzx", 16, 8), ("Movzx", 32, 8), ("Movzx", 64, 8), ("Movzx", 32, 16), ("Movzx", 64, 16),
            ("Movsx", 16, 8), ("Movsx", 32, 8), ("Movsx", 64, 8), ("Movsx", 32, 16), ("Movsx", 64, 16), ("Movsxd", 64, 32) })
        {
            Code code = Enum.Parse<Code>($"{op}_r{dst}_rm{src}");
            all.Add(new($"{op} r{dst},rm{src} (reg)", Encode(Instruction.Create(code, RegReg(dst), RmReg(src))), 0));
            all.Add(new($"{op} r{dst},m{src} (mem)", Encode(Instruction.Create(code, RegReg(dst), Mem)), 0));
        }
        foreach (string cc in ConditionNames)
        {
            string name = char.ToUpperInvariant(cc[0]) + cc[1..];
            all.Add(new($"Set{cc} rm8", Encode(Instruction.Create(Enum.Parse<Code>($"Set{cc}_rm8"), Register.DL)), 0));
            all.Add(new($"Set{cc} m8", Encode(Instruction.Create(Enum.Parse<Code>($"Set{cc}_rm8"), Mem)), 0));
            foreach (int w in new[] { 16, 32, 64 })
            {
                all.Add(new($"Cmov{cc} r{w},rm{w}", Encode(Instruction.Create(Enum.Parse<Code>($"Cmov{cc}_r{w}_rm{w}"), RegReg(w), RmReg(w))), 0));
            }
            all.Add(new($"Cmov{cc} r32,m32", Encode(Instruction.Create(Enum.Parse<Code>($"Cmov{cc}_r32_rm32"), RegReg(32), Mem)), 0));
            _ = name;
        }
        foreach (int w in Widths)
        {
            Code xchg = Enum.Parse<Code>($"Xchg_rm{w}_r{w}");
            Code cmpxchg = Enum.Parse<Code>($"Cmpxchg_rm{w}_r{w}");
            Code xadd = Enum.Parse<Code>($"Xadd_rm{w}_r{w}");
            int width = w;
            all.Add(new($"Xchg rm{w},r{w}", Encode(Instruction.Create(xchg, RmReg(w), RegReg(w))), 0));
            all.Add(new($"Xchg m{w},r{w}", Encode(Instruction.Create(xchg, Mem, RegReg(w))), 0));
            all.Add(new($"Xadd rm{w},r{w}", Encode(Instruction.Create(xadd, RmReg(w), RegReg(w))), 0));
            all.Add(new($"Xadd m{w},r{w}", Encode(Instruction.Create(xadd, Mem, RegReg(w))), 0));
            all.Add(new($"Xadd rm{w},r{w} (same)", Encode(Instruction.Create(xadd, RmReg(w), RmReg(w))), 0));
            all.Add(new($"Cmpxchg rm{w},r{w}", Encode(Instruction.Create(cmpxchg, RmReg(w), RegReg(w))), 0, null,
                (r, d, rng) => { if (rng.Next(2) == 0) { r[0] = r[2]; } }));
            all.Add(new($"Cmpxchg m{w},r{w}", Encode(Instruction.Create(cmpxchg, Mem, RegReg(w))), 0, null,
                (r, d, rng) => { if (rng.Next(2) == 0) { r[0] = BitConverter.ToUInt64(d, 32); } }));
            all.Add(new($"lock Cmpxchg m{w},r{w}", Encode(WithLock(Instruction.Create(cmpxchg, Mem, RegReg(w)))), 0, null,
                (r, d, rng) => { if (rng.Next(2) == 0) { r[0] = BitConverter.ToUInt64(d, 32); } }));
            _ = width;
        }
        all.Add(new("lock Cmpxchg8b m64", Encode(WithLock(Instruction.Create(Code.Cmpxchg8b_m64, Mem))), 0, null,
            (r, d, rng) => { if (rng.Next(2) == 0) { r[0] = BitConverter.ToUInt32(d, 32); r[2] = BitConverter.ToUInt32(d, 36); } }));
        all.Add(new("lock Cmpxchg16b m128", Encode(WithLock(Instruction.Create(Code.Cmpxchg16b_m128, Mem))), 0, null,
            (r, d, rng) => { if (rng.Next(2) == 0) { r[0] = BitConverter.ToUInt64(d, 32); r[2] = BitConverter.ToUInt64(d, 40); } }));
        all.Add(new("Movnti m64,r64", Encode(Instruction.Create(Code.Movnti_m64_r64, Mem, Register.RBX)), 0));
        all.Add(new("fences and cache hints", GuestHarness.Assemble(64, 0, a =>
        {
            a.mfence();
            a.lfence();
            a.sfence();
            a.prefetcht0(__[rsi]);
            a.clflush(__[rsi]);
            a.add(rax, rbx);
        }), 0));
        all.Add(new("lock add m32,r32", Encode(WithLock(Instruction.Create(Code.Add_rm32_r32, Mem, Register.EBX))), 0));
        all.Add(new("Bswap r32", Encode(Instruction.Create(Code.Bswap_r32, Register.R10D)), 0));
        all.Add(new("Bswap r64", Encode(Instruction.Create(Code.Bswap_r64, Register.R10)), 0));
        foreach (Code code in new[] { Code.Cbw, Code.Cwde, Code.Cdqe, Code.Cwd, Code.Cdq, Code.Cqo, Code.Lahf, Code.Sahf, Code.Clc, Code.Stc, Code.Cmc, Code.Nopd })
        {
            all.Add(new(code.ToString(), Encode(Instruction.Create(code)), 0));
        }
        all.Add(new("Lea r64,[rbx+rcx*4+12]", Encode(Instruction.Create(Code.Lea_r64_m, Register.R8, new MemoryOperand(Register.RBX, Register.RCX, 4, 0x12, 1))), 0));
        all.Add(new("Lea r32,[rbx+rcx*8-5]", Encode(Instruction.Create(Code.Lea_r32_m, Register.R8D, new MemoryOperand(Register.RBX, Register.RCX, 8, -5, 1))), 0));
        all.Add(new("Lea r16,[rbx+rcx]", Encode(Instruction.Create(Code.Lea_r16_m, Register.R8W, new MemoryOperand(Register.RBX, Register.RCX, 1, 0, 0))), 0));
        all.Add(new("Lea r64,[ebx+ecx*2+7]", Encode(Instruction.Create(Code.Lea_r64_m, Register.R8, new MemoryOperand(Register.EBX, Register.ECX, 2, 7, 1))), 0));
        all.AddRange(StringCases());
        all.AddRange(SequenceCases());
        foreach (OracleCase c in all)
        {
            yield return new TestCaseData(c).SetName(c.Name.Replace('.', '_').Replace(',', ';').Replace('(', '[').Replace(')', ']'));
        }
    }

    private static Instruction WithLock(Instruction i)
    {
        i.HasLockPrefix = true;
        return i;
    }

    private static IEnumerable<OracleCase> StringCases()
    {
        var kinds = new (string Name, Action<Assembler> Emit)[]
        {
            ("movsb", a => a.movsb()), ("movsw", a => a.movsw()), ("movsd", a => a.movsd()), ("movsq", a => a.movsq()),
            ("stosb", a => a.stosb()), ("stosw", a => a.stosw()), ("stosd", a => a.stosd()), ("stosq", a => a.stosq()),
            ("lodsb", a => a.lodsb()), ("lodsq", a => a.lodsq()),
            ("cmpsb", a => a.cmpsb()), ("cmpsd", a => a.cmpsd()), ("scasb", a => a.scasb()), ("scasq", a => a.scasq()),
        };
        foreach ((string name, Action<Assembler> emit) in kinds)
        {
            bool compares = name.StartsWith("cmps", StringComparison.Ordinal) || name.StartsWith("scas", StringComparison.Ordinal);
            string[] prefixes = compares ? ["", "repe", "repne"] : ["", "rep"];
            foreach (string prefix in prefixes)
            {
                foreach (bool down in new[] { false, true })
                {
                    Action<Assembler> body = a =>
                    {
                        if (down)
                        {
                            a.std();
                        }
                        Assembler p = prefix switch { "rep" => a.rep, "repe" => a.repe, "repne" => a.repne, _ => a };
                        emit(p);
                        a.cld();
                    };
                    yield return new($"{prefix} {name} {(down ? "DF=1" : "DF=0")}".Trim(), GuestHarness.Assemble(64, 0, body), 0, null, (r, d, rng) =>
                    {
                        r[6] = NativeOracle.DataAddress + 64 + (ulong)rng.Next(0, 32);
                        r[7] = NativeOracle.DataAddress + 160 + (ulong)rng.Next(0, 16);
                        r[1] = (ulong)rng.Next(0, 9);
                        // Few distinct byte values so REPE/REPNE stop at varying points.
                        for (int i = 0; i < d.Length; i++)
                        {
                            d[i] = (byte)rng.Next(0, 2);
                        }
                        r[0] = (ulong)rng.Next(0, 2) * 0x0101_0101_0101_0101UL;
                    })
                    { Body = body };
                }
            }
        }
    }

    /// <summary>Short sequences with branches and the stack: flags flowing through jcc, loops, call/ret, push/pop.</summary>
    private static IEnumerable<OracleCase> SequenceCases()
    {
        yield return new("seq loop sum", GuestHarness.Assemble(64, 0, a =>
        {
            Label top = a.CreateLabel();
            Label done = a.CreateLabel();
            a.and(rcx, 15);
            a.xor(eax, eax);
            a.jrcxz(done);
            a.Label(ref top);
            a.add(rax, rcx);
            a.loop(top);
            a.Label(ref done);
            a.nop();
        }), 0);
        yield return new("seq call ret push pop", GuestHarness.Assemble(64, 0, a =>
        {
            Label fn = a.CreateLabel();
            Label end = a.CreateLabel();
            a.push(rbx);
            a.push(0x1234);
            a.call(fn);
            a.pop(rdx);
            a.pop(r9);
            a.jmp(end);
            a.Label(ref fn);
            a.lea(r8, __[rdx + rbx * 2]);
            a.pushfq();
            a.pop(r10);
            // IF is set on the host and clear in the guest: compare the status flags only.
            a.and(r10, 0xCD5);
            a.ret();
            a.Label(ref end);
            a.nop();
        }), 0);
        yield return new("seq cmp jcc chain", GuestHarness.Assemble(64, 0, a =>
        {
            Label l1 = a.CreateLabel();
            Label l2 = a.CreateLabel();
            a.cmp(rax, rbx);
            a.jl(l1);
            a.inc(r8);
            a.Label(ref l1);
            a.cmp(ecx, edx);
            a.jbe(l2);
            a.dec(r9);
            a.Label(ref l2);
            a.test(sil, 3);
            a.setnp(r10b);
            a.sbb(r11, r12);
        }), 0);
        // The same flows in the legacy eight registers, assembled per mode (LOOP/JECXZ count in RCX, ECX or CX: the
        // count is masked small, so all three agree).
        Action<Assembler> loopSum = a =>
        {
            Label top = a.CreateLabel();
            Label done = a.CreateLabel();
            a.and(ecx, 15);
            a.xor(eax, eax);
            switch (a.Bitness)
            {
                case 64: a.jrcxz(done); break;
                case 32: a.jecxz(done); break;
                default: a.jcxz(done); break;
            }
            a.Label(ref top);
            a.add(eax, ecx);
            a.loop(top);
            a.Label(ref done);
            a.adc(edx, ebx);
        };
        yield return new("seq loop sum (legacy regs)", GuestHarness.Assemble(64, 0, loopSum), 0) { Body = loopSum };
        Action<Assembler> jccChain = a =>
        {
            Label l1 = a.CreateLabel();
            Label l2 = a.CreateLabel();
            a.cmp(eax, ebx);
            a.jl(l1);
            a.inc(ebp);
            a.Label(ref l1);
            a.cmp(cx, dx);
            a.jbe(l2);
            a.dec(edi);
            a.Label(ref l2);
            a.test(bl, 3);
            a.setnp(dh);
            a.sbb(eax, ecx);
        };
        yield return new("seq cmp jcc chain (legacy regs)", GuestHarness.Assemble(64, 0, jccChain), 0) { Body = jccChain };
        // Stack sequences in every mode: 64-bit code moves RBX/RCX/RDX, 32- and 16-bit code EBX/ECX/EDX (a 16-bit
        // PUSH of a 32-bit register takes 4 bytes), so the low 32 bits the legacy runs compare agree with the host's.
        // The stack width differs (RSP/ESP/SP, 8/4/2-byte CALL frames) but what the registers see does not.
        Action<Assembler> pushPop = a =>
        {
            if (a.Bitness == 64)
            {
                a.push(rbx);
                a.push(rcx);
                a.push(rdx);
                a.pop(rax);
                a.pop(rbx);
                a.pop(rcx);
            }
            else
            {
                a.push(ebx);
                a.push(ecx);
                a.push(edx);
                a.pop(eax);
                a.pop(ebx);
                a.pop(ecx);
            }
            a.xor(eax, ebx);
        };
        yield return new("seq push pop rotate (legacy regs)", GuestHarness.Assemble(64, 0, pushPop), 0) { Body = pushPop };
        Action<Assembler> enterLeave = a =>
        {
            // ENTER 16,0 and 16,1 (level 1 pushes the new frame pointer too); locals through [rBP-n]; LEAVE restores rBP.
            for (int level = 0; level < 2; level++)
            {
                a.enter(16, (byte)level);
                switch (a.Bitness)
                {
                    case 64: a.mov(__qword_ptr[rbp - 8 * (level + 1) - 8], rcx); a.add(ecx, __dword_ptr[rbp - 8 * (level + 1) - 8]); break;
                    case 32: a.mov(__dword_ptr[ebp - 4 * (level + 1) - 4], ecx); a.add(ecx, __dword_ptr[ebp - 4 * (level + 1) - 4]); break;
                    default: a.mov(__dword_ptr[bp - 2 * (level + 1) - 4], ecx); a.add(ecx, __dword_ptr[bp - 2 * (level + 1) - 4]); break;
                }
                a.leave();
            }
            a.adc(eax, ebp);
        };
        yield return new("seq enter leave (legacy regs)", GuestHarness.Assemble(64, 0, enterLeave), 0) { Body = enterLeave };
        Action<Assembler> callRetImm = a =>
        {
            // CALL, then RET imm16 releasing the two pushed arguments: the sentinel below them pops back into EAX.
            Label fn = a.CreateLabel();
            Label end = a.CreateLabel();
            if (a.Bitness == 64)
            {
                a.push(rbx);
                a.push(rcx);
                a.push(rdx);
            }
            else
            {
                a.push(ebx);
                a.push(ecx);
                a.push(edx);
            }
            a.call(fn);
            if (a.Bitness == 64)
            {
                a.pop(rax);
            }
            else
            {
                a.pop(eax);
            }
            a.jmp(end);
            a.Label(ref fn);
            a.add(edx, ecx);
            a.ret((ushort)(a.Bitness == 64 ? 16 : 8));
            a.Label(ref end);
            a.sub(eax, edx);
        };
        yield return new("seq call ret imm (legacy regs)", GuestHarness.Assemble(64, 0, callRetImm), 0) { Body = callRetImm };
        yield return new("seq popf", GuestHarness.Assemble(64, 0, a =>
        {
            a.and(rbx, 0xCD5);
            a.push(rbx);
            a.popfq();
            a.adc(rax, rcx);
        }), 0);
    }
}
