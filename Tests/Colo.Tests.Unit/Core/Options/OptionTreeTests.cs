using Colo.Core.Options;

namespace Colo.Tests.Unit.Core.Options;

[TestFixture]
public sealed class OptionTreeTests
{
    [Test]
    public void ToTree_SecondaryReplicationDrive_NestsBackingChain()
    {
        const string text = "if=none,id=childs0,driver=replication,mode=secondary,file.driver=qcow2,top-id=colo-disk0," +
            "file.file.filename=/img/secondary-active.qcow2,file.backing.driver=qcow2," +
            "file.backing.file.filename=/img/secondary-hidden.qcow2,file.backing.backing=parent0";
        OptionTree tree = KeyValParser.Parse(text, null).ToTree();
        Assert.Multiple(() =>
        {
            Assert.That(tree.GetString("driver"), Is.EqualTo("replication"));
            Assert.That(tree.Find("file.driver")!.Scalar, Is.EqualTo("qcow2"));
            Assert.That(tree.Find("file.file.filename")!.Scalar, Is.EqualTo("/img/secondary-active.qcow2"));
            Assert.That(tree.Find("file.backing.file.filename")!.Scalar, Is.EqualTo("/img/secondary-hidden.qcow2"));
            Assert.That(tree.Find("file.backing.backing")!.Scalar, Is.EqualTo("parent0"));
            Assert.That(tree["file"]!.IsScalar, Is.False);
        });
    }

    [Test]
    public void ToTree_QuorumChildren_FormAList()
    {
        OptionTree tree = KeyValParser.Parse("driver=quorum,children.1.driver=raw,children.0.file.filename=/p.qcow2,children.0.driver=qcow2", null).ToTree();
        Assert.Multiple(() =>
        {
            Assert.That(tree["children"]!.IsList, Is.True);
            Assert.That(tree.Find("children.0.driver")!.Scalar, Is.EqualTo("qcow2"));
        });
    }

    [Test]
    public void ToTree_GappedIndexes_AreNotAList()
    {
        OptionTree tree = KeyValParser.Parse("children.0=a,children.2=b", null).ToTree();
        Assert.That(tree["children"]!.IsList, Is.False);
    }

    [Test]
    public void ToTree_ChildReference_IsScalar()
    {
        OptionTree tree = KeyValParser.Parse("driver=quorum,children.0=childs0", null).ToTree();
        Assert.That(tree.Find("children.0")!.Scalar, Is.EqualTo("childs0"));
    }

    [TestCase("a=1,a.b=2", "Parameters 'a.*' used inconsistently")]
    [TestCase("a.b=2,a=1", "Parameters 'a.*' used inconsistently")]
    [TestCase("a..b=1", "Invalid parameter 'a..b'")]
    public void ToTree_Conflicts_Fail(string text, string message)
    {
        Assert.That(() => KeyValParser.Parse(text, null).ToTree(), Throws.TypeOf<OptionsException>().With.Message.EqualTo(message));
    }

    [Test]
    public void Flatten_RoundTripsDottedKeys()
    {
        KeyValList list = KeyValParser.Parse("x=1,file.a=2,file.b.c=3", null);
        Assert.That(list.ToTree().Flatten(), Is.EqualTo(list.Pairs));
    }
}
