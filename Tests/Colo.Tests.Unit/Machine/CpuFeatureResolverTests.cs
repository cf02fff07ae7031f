using Colo.Core.Cpu;
using Colo.Cpu.Interpreter;
using Colo.Machine;

namespace Colo.Tests.Unit.Machine;

/// <summary><c>-cpu</c> feature settings, with the texts QEMU 7.2 prints for the same command lines.</summary>
[TestFixture]
public sealed class CpuFeatureResolverTests
{
    private static CpuidFeatures Resolve(string model, List<string> warnings, params (string Key, string Value)[] settings) =>
        CpuFeatureResolver.Resolve(model, "tcg", settings.Select(s => new KeyValuePair<string, string>(s.Key, s.Value)),
            InterpreterVcpu.SupportedFeatures, warnings.Add);

    [Test]
    public void Qemu64_WithKvmclock_IsTheModelsWords()
    {
        var warnings = new List<string>();
        Assert.That(Resolve("qemu64", warnings, ("kvmclock", "on")), Is.EqualTo(CpuidFeatures.Qemu64));
        Assert.That(warnings, Is.Empty);
    }

    [Test]
    public void MinusFeature_ClearsItsBit_AndAliasesAreAccepted()
    {
        var warnings = new List<string>();
        CpuidFeatures f = Resolve("qemu64", warnings, ("-sse3", "off"), ("lahf_lm", "off"));
        Assert.Multiple(() =>
        {
            Assert.That(f.Leaf1Ecx & 1, Is.Zero, "pni (sse3) off");
            Assert.That(f.Ext1Ecx & 1, Is.Zero, "lahf-lm off");
            Assert.That(f.Leaf1Edx, Is.EqualTo(CpuidFeatures.Qemu64.Leaf1Edx));
        });
    }

    [Test]
    public void UnsupportedFeature_IsDroppedWithQemusWarning_AndFatalWithEnforce()
    {
        var warnings = new List<string>();
        CpuidFeatures f = Resolve("qemu64", warnings, ("+x2apic", "on"));
        Assert.That(f, Is.EqualTo(CpuidFeatures.Qemu64));
        Assert.That(warnings, Is.EqualTo(new[] { "warning: TCG doesn't support requested feature: CPUID.01H:ECX.x2apic [bit 21]" }));
        var e = Assert.Throws<StartupException>(() => Resolve("qemu64", [], ("+x2apic", "on"), ("enforce", "on")));
        Assert.That(e!.Message, Is.EqualTo("TCG doesn't support requested features"));
    }

    [TestCase("foo", "bar", "can't apply global qemu64-x86_64-cpu.foo=bar: Property 'qemu64-x86_64-cpu.foo' not found")]
    [TestCase("+foo", "on", "Property 'qemu64-x86_64-cpu.foo' not found")]
    [TestCase("sse3", "maybe", "can't apply global qemu64-x86_64-cpu.sse3=maybe: Parameter 'sse3' expects 'on' or 'off'")]
    public void BadSettings_AreStartupErrorsWithQemusTexts(string key, string value, string message)
    {
        var e = Assert.Throws<StartupException>(() => Resolve("qemu64", [], (key, value)));
        Assert.That(e!.Message, Is.EqualTo(message));
    }

    [Test]
    public void Host_NeedsKvm_AndModelsNotBuiltSaySo()
    {
        Assert.That(Assert.Throws<StartupException>(() => Resolve("host", []))!.Message, Is.EqualTo("CPU model 'host' requires KVM or HVF"));
        Assert.That(Assert.Throws<StartupException>(() => Resolve("kvm64", []))!.Message, Does.Contain("kvm64").And.Contain("not built yet"));
    }
}
