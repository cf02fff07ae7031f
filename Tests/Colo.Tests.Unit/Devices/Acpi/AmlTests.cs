using Colo.Devices.Acpi;

namespace Colo.Tests.Unit.Devices.Acpi;

[TestFixture]
public sealed class AmlTests
{
    [Test]
    public void EisaId_PacksLettersAndDigitsAsAslDoes()
    {
        // iasl compiles EisaId("PNP0A03") to DWord 0x030AD041.
        Assert.That(Aml.EisaId("PNP0A03"), Is.EqualTo(new byte[] { 0x0C, 0x41, 0xD0, 0x0A, 0x03 }));
        Assert.That(Aml.EisaId("PNP0C0F"), Is.EqualTo(new byte[] { 0x0C, 0x41, 0xD0, 0x0C, 0x0F }));
    }

    [TestCase(0, new byte[] { 0x01 })]
    [TestCase(0x3E, new byte[] { 0x3F })]
    [TestCase(0x3F, new byte[] { 0x41, 0x04 })]
    [TestCase(0xFFD, new byte[] { 0x4F, 0xFF })]
    [TestCase(0xFFE, new byte[] { 0x81, 0x00, 0x01 })]
    public void PkgLength_CountsItsOwnBytes(int content, byte[] expected) =>
        Assert.That(Aml.PkgLength(content), Is.EqualTo(expected));

    [Test]
    public void NameString_EncodesRootDualAndMultiPaths()
    {
        Assert.That(Aml.NameString("LNKA"), Is.EqualTo("LNKA"u8.ToArray()));
        Assert.That(Aml.NameString("\\_SB.PCI0"), Is.EqualTo((byte[])[0x5C, 0x2E, .. "_SB_PCI0"u8]));
        Assert.That(Aml.NameString("PCI0.ISA.P40C"), Is.EqualTo((byte[])[0x2F, 3, .. "PCI0ISA_P40C"u8]));
        Assert.That(Aml.NameString("\\"), Is.EqualTo(new byte[] { 0x5C, 0x00 }));
    }

    [Test]
    public void Int_UsesTheShortestForm()
    {
        Assert.That(Aml.Int(0), Is.EqualTo(new byte[] { 0x00 }));
        Assert.That(Aml.Int(1), Is.EqualTo(new byte[] { 0x01 }));
        Assert.That(Aml.Int(0x0B), Is.EqualTo(new byte[] { 0x0A, 0x0B }));
        Assert.That(Aml.Int(0xFFFF), Is.EqualTo(new byte[] { 0x0B, 0xFF, 0xFF }));
        Assert.That(Aml.Int(0x10000), Is.EqualTo(new byte[] { 0x0C, 0x00, 0x00, 0x01, 0x00 }));
    }

    [Test]
    public void Name_Hid_MatchesIaslOutput()
    {
        // Name (_HID, EisaId ("PNP0A03")) as iasl emits it.
        Assert.That(Aml.Name("_HID", Aml.EisaId("PNP0A03")), Is.EqualTo(new byte[] { 0x08, 0x5F, 0x48, 0x49, 0x44, 0x0C, 0x41, 0xD0, 0x0A, 0x03 }));
    }

    [Test]
    public void Method_EncodesFlagsAndLength()
    {
        // Method (_STA, 0, NotSerialized) { Return (0x0B) }
        Assert.That(Aml.Method("_STA", 0, false, Aml.Return(Aml.Int(0x0B))),
            Is.EqualTo(new byte[] { 0x14, 0x09, 0x5F, 0x53, 0x54, 0x41, 0x00, 0xA4, 0x0A, 0x0B }));
    }

    [Test]
    public void Field_EncodesUnitsAndFlags()
    {
        // Field (P40C, ByteAcc, NoLock, Preserve) { PRQ0, 8 }
        Assert.That(Aml.Field("P40C", Aml.FieldAccess.Byte, ("PRQ0", 8)),
            Is.EqualTo((byte[])[0x5B, 0x81, 0x0B, .. "P40C"u8, 0x01, .. "PRQ0"u8, 0x08]));
    }

    [Test]
    public void ResourceTemplate_EndsWithTheEndTag()
    {
        byte[] rt = Aml.ResourceTemplate(AmlResource.IrqNoFlags(4));
        Assert.That(rt, Is.EqualTo(new byte[] { 0x11, 0x08, 0x0A, 0x05, 0x22, 0x10, 0x00, 0x79, 0x00 }));
    }

    [Test]
    public void BadNames_AreRejected()
    {
        Assert.Throws<ArgumentException>(() => Aml.NameSeg("TOOLONG"));
        Assert.Throws<ArgumentException>(() => Aml.NameSeg("1ABC"));
        Assert.Throws<ArgumentException>(() => Aml.EisaId("PNP0A0"));
    }
}
