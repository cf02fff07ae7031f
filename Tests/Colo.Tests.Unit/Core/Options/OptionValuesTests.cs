using Colo.Core.Options;

namespace Colo.Tests.Unit.Core.Options;

[TestFixture]
public sealed class OptionValuesTests
{
    [TestCase("on", true)]
    [TestCase("yes", true)]
    [TestCase("true", true)]
    [TestCase("off", false)]
    [TestCase("no", false)]
    [TestCase("false", false)]
    public void ParseBool_AcceptsQemuSpellings(string text, bool expected)
    {
        Assert.That(OptionValues.ParseBool("x", text), Is.EqualTo(expected));
    }

    [Test]
    public void ParseBool_Other_FailsWithQemuText()
    {
        Assert.That(() => OptionValues.ParseBool("server", "maybe"), Throws.TypeOf<OptionsException>().With.Message.EqualTo("Parameter 'server' expects 'on' or 'off'"));
    }

    [TestCase("0", 0UL)]
    [TestCase("512", 512UL)]
    [TestCase("1k", 1024UL)]
    [TestCase("1K", 1024UL)]
    [TestCase("10G", 10UL << 30)]
    [TestCase("2T", 2UL << 40)]
    [TestCase("1.5M", 3UL << 19)]
    [TestCase("16E", null)]
    [TestCase("abc", null)]
    [TestCase("-1", null)]
    [TestCase("1X", null)]
    [TestCase("1MB", null)]
    [TestCase("", null)]
    public void TryParseSize_Suffixes(string text, ulong? expected)
    {
        bool ok = OptionValues.TryParseSize(text, 'B', out ulong size);
        Assert.That(ok ? size : (ulong?)null, Is.EqualTo(expected));
    }

    [Test]
    public void TryParseSize_DefaultSuffix_AppliesToBareNumbers()
    {
        Assert.That(OptionValues.TryParseSize("512", 'M', out ulong size) ? size : 0, Is.EqualTo(512UL << 20));
    }

    [Test]
    public void ParseSize_Bad_GivesQemuTextWithSuffixHelp()
    {
        Assert.That(() => OptionValues.ParseSize("size", "abc"), Throws.TypeOf<OptionsException>().With.Message.EqualTo(
            "Parameter 'size' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively."));
    }

    [TestCase("32768", 32768L)]
    [TestCase("-5", -5L)]
    [TestCase("0x10", 16L)]
    [TestCase("010", 8L)]
    [TestCase("9223372036854775807", long.MaxValue)]
    [TestCase("-9223372036854775808", long.MinValue)]
    public void ParseInt64_Forms(string text, long expected)
    {
        Assert.That(OptionValues.ParseInt64("n", text), Is.EqualTo(expected));
    }

    [TestCase("abc")]
    [TestCase("9223372036854775808")]
    [TestCase("08")]
    [TestCase("")]
    public void ParseInt64_Bad_GivesQemuText(string text)
    {
        Assert.That(() => OptionValues.ParseInt64("poll-max-ns", text), Throws.TypeOf<OptionsException>().With.Message.EqualTo("Parameter 'poll-max-ns' expects an int64 value"));
    }
}
