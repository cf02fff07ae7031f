using Colo.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Colo.Tests.Unit.Cpu;

/// <summary>
/// F2XM1, FYL2X, FYL2XP1, FPTAN, FPATAN, FSIN, FCOS and FSINCOS against the host x87. The interpreter evaluates them in
/// double precision, so results (stored as m64) must agree within a few double ulps (absolute near zeros), not bitwise.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class X87TranscendentalTests
{
    private const int Runs = 200;
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

    /// <summary>A function case: operands at window 0 (ST0) and 8 (ST1), results stored as m64 from 0x100 on.</summary>
    public sealed record Case(string Name, Func<Random, double> X, Func<Random, double> Y, Action<Assembler> Op, int Results)
    {
        public override string ToString() => Name;
    }

    private static double Uniform(Random r, double lo, double hi) => lo + (hi - lo) * r.NextDouble();

    public static IEnumerable<Case> Cases()
    {
        yield return new("fsin", r => Uniform(r, -1000, 1000), r => 0, a => a.fsin(), 1);
        yield return new("fcos", r => Uniform(r, -1000, 1000), r => 0, a => a.fcos(), 1);
        yield return new("fsincos", r => Uniform(r, -10, 10), r => 0, a => a.fsincos(), 2);
        yield return new("fptan", r => Uniform(r, -1.5, 1.5), r => 0, a => a.fptan(), 2);
        yield return new("f2xm1", r => Uniform(r, -1, 1) * Math.Pow(2, -r.Next(40)), r => 0, a => a.f2xm1(), 1);
        yield return new("fyl2x", r => Math.Pow(2, Uniform(r, -100, 100)), r => Uniform(r, -5, 5), a => a.fyl2x(), 1);
        yield return new("fyl2xp1", r => Uniform(r, -0.29, 0.29) * Math.Pow(2, -r.Next(30)), r => Uniform(r, -5, 5), a => a.fyl2xp1(), 1);
        yield return new("fpatan", r => Uniform(r, -10, 10), r => Uniform(r, -10, 10), a => a.fpatan(), 1);
    }

    [TestCaseSource(nameof(Cases))]
    public void Function_AgreesWithHostWithinDoublePrecision(Case c)
    {
        if (_oracle is null)
        {
            Assert.Ignore("native oracle unavailable (not x86-64, or the fixed data mapping was refused)");
        }
        var a = new Assembler(64);
        a.fninit();
        a.fld(__qword_ptr[rsi + 8]);
        a.fld(__qword_ptr[rsi]);
        c.Op(a);
        for (int i = 0; i < 2; i++)
        {
            a.fstp(__qword_ptr[rsi + 0x100 + i * 8]);
        }
        a.fninit();
        byte[] code = GuestHarness.Assemble(a, 0);
        _oracle.Load(code);
        GuestHarness g = _guest!;
        g.Memory.Write(GuestHarness.CodeAddress, [.. code, 0xF4]);
        var rng = new Random(c.Name.GetHashCode(StringComparison.Ordinal) & 0xFFFF);
        var regs = new ulong[17];
        var data = new byte[0x200];
        for (int run = 0; run < Runs; run++)
        {
            double x = c.X(rng);
            double y = c.Y(rng);
            data.AsSpan().Clear();
            BitConverter.GetBytes(x).CopyTo(data, 0);
            BitConverter.GetBytes(y).CopyTo(data, 8);
            Array.Clear(regs);
            regs[6] = NativeOracle.DataAddress;
            regs[16] = 2;
            data.CopyTo(_oracle.Data);
            _oracle.Run(regs);
            byte[] host = _oracle.Data[..0x200].ToArray();

            g.Memory.Write(NativeOracle.DataAddress, data);
            g.State.SetFlatLongMode(GuestHarness.CodeAddress, GuestHarness.StackTop);
            g.State.Gpr[6] = NativeOracle.DataAddress;
            Assert.That(g.Vcpu.Run(), Is.EqualTo(VcpuExit.Halted));
            byte[] mine = new byte[0x200];
            g.Memory.Read(NativeOracle.DataAddress, mine);
            for (int i = 0; i < c.Results; i++)
            {
                double h = BitConverter.ToDouble(host, 0x100 + i * 8);
                double m = BitConverter.ToDouble(mine, 0x100 + i * 8);
                double tolerance = 1e-15 * Math.Max(Math.Abs(h), c.Name is "fsin" or "fcos" or "fsincos" ? 1.0 : double.Epsilon);
                Assert.That(Math.Abs(h - m), Is.LessThanOrEqualTo(tolerance), $"{c.Name}({x:R}, {y:R}) result {i}: host {h:R} interpreter {m:R}");
            }
        }
    }
}
