using Colo.Core.Options;

namespace Colo.Tests.Unit.Core.Options;

[TestFixture]
public sealed class KeyValParserTests
{
    [Test]
    public void Parse_ImpliedFirstKey_TakesBareValue()
    {
        KeyValList list = KeyValParser.Parse("tap,id=hn0,vhost=off,helper=/usr/lib/qemu/qemu-bridge-helper", "type");
        Assert.That(list.Pairs, Is.EqualTo(new[]
        {
            KeyValuePair.Create("type", "tap"),
            KeyValuePair.Create("id", "hn0"),
            KeyValuePair.Create("vhost", "off"),
            KeyValuePair.Create("helper", "/usr/lib/qemu/qemu-bridge-helper"),
        }));
    }

    [Test]
    public void Parse_DoubledComma_IsLiteralComma()
    {
        KeyValList list = KeyValParser.Parse("file=/tmp/a,,b.qcow2,if=none", null);
        Assert.Multiple(() =>
        {
            Assert.That(list["file"], Is.EqualTo("/tmp/a,b.qcow2"));
            Assert.That(list["if"], Is.EqualTo("none"));
        });
    }

    [Test]
    public void Parse_DoubledCommaInImpliedValue_IsLiteralComma()
    {
        KeyValList list = KeyValParser.Parse("a,,b,id=x", "qom-type");
        Assert.That(list["qom-type"], Is.EqualTo("a,b"));
    }

    [Test]
    public void Parse_ValueMayContainEquals()
    {
        KeyValList list = KeyValParser.Parse("append=console=ttyS0 root=/dev/sda", null);
        Assert.That(list["append"], Is.EqualTo("console=ttyS0 root=/dev/sda"));
    }

    [Test]
    public void Parse_ShortFormBooleans_MeanOnAndOff_WithDeprecationWarning()
    {
        var warnings = new List<string>();
        KeyValParser.WarningSink = warnings.Add;
        try
        {
            KeyValList list = KeyValParser.Parse("socket,id=mirror0,host=0.0.0.0,port=9003,server,nowait", "backend");
            Assert.Multiple(() =>
            {
                Assert.That(list["server"], Is.EqualTo("on"));
                Assert.That(list["wait"], Is.EqualTo("off"));
                Assert.That(warnings, Has.Count.EqualTo(2));
                Assert.That(warnings[0], Does.StartWith("short-form boolean option 'server' deprecated"));
            });
        }
        finally
        {
            KeyValParser.WarningSink = null;
        }
    }

    [Test]
    public void Parse_BareWordNotInKnownFlags_Fails()
    {
        var flags = new HashSet<string> { "server", "wait" };
        Assert.That(() => KeyValParser.Parse("socket,bogus", "backend", flags),
            Throws.TypeOf<OptionsException>().With.Message.EqualTo("Expected '=' after parameter 'bogus'"));
    }

    [Test]
    public void Parse_Help_IsRecognised()
    {
        Assert.That(KeyValParser.Parse("rtl8139,help", "driver")["help"], Is.EqualTo("on"));
    }

    [Test]
    public void Parse_EmptyKey_Fails()
    {
        Assert.That(() => KeyValParser.Parse("a=1,=2", null), Throws.TypeOf<OptionsException>());
    }

    [Test]
    public void Parse_TrailingComma_IsIgnored()
    {
        Assert.That(KeyValParser.Parse("a=1,", null).Pairs, Has.Count.EqualTo(1));
    }

    [Test]
    public void Parse_RepeatedKey_LastWins()
    {
        Assert.That(KeyValParser.Parse("a=1,a=2", null)["a"], Is.EqualTo("2"));
    }

    [Test]
    public void Parse_RandomTexts_NeverThrowAnythingButOptionsException()
    {
        var random = new Random(1234);
        const string alphabet = "ab=,.0 \\'\"";
        for (int i = 0; i < 5000; i++)
        {
            char[] text = new char[random.Next(0, 24)];
            for (int j = 0; j < text.Length; j++)
            {
                text[j] = alphabet[random.Next(alphabet.Length)];
            }
            try
            {
                KeyValList list = KeyValParser.Parse(new string(text), random.Next(2) == 0 ? "type" : null);
                _ = list.ToTree();
            }
            catch (OptionsException)
            {
            }
        }
    }
}
