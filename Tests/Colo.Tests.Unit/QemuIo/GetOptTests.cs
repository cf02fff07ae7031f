using Colo.QemuIo;

namespace Colo.Tests.Unit.QemuIo;

/// <summary>glibc getopt behaviour inside qemu-io commands: permutation, clusters, values, errors.</summary>
[TestFixture]
public sealed class GetOptTests
{
    [Test]
    public void OptionsAfterPositionals_AndClusters_AndAttachedValues()
    {
        GetOpt o = GetOpt.Parse("read", ["0", "-qv", "64k", "-P0xab"], "qvP:", out string? error)!;
        Assert.Multiple(() =>
        {
            Assert.That(error, Is.Null);
            Assert.That(o.Positionals, Is.EqualTo(new[] { "0", "64k" }));
            Assert.That(o.Has('q') && o.Has('v'), Is.True);
            Assert.That(o.Value('P'), Is.EqualTo("0xab"));
        });
    }

    [Test]
    public void DoubleDash_EndsOptions()
    {
        GetOpt o = GetOpt.Parse("read", ["--", "-1", "2"], "q", out _)!;
        Assert.That(o.Positionals, Is.EqualTo(new[] { "-1", "2" }));
    }

    [TestCase(new[] { "0", "-1" }, "read: invalid option -- '1'")]
    [TestCase(new[] { "-x" }, "read: invalid option -- 'x'")]
    [TestCase(new[] { "0", "1", "-P" }, "read: option requires an argument -- 'P'")]
    public void Errors_UseGetoptText(string[] args, string message)
    {
        Assert.Multiple(() =>
        {
            Assert.That(GetOpt.Parse("read", args, "qP:", out string? error), Is.Null);
            Assert.That(error, Is.EqualTo(message));
        });
    }
}
