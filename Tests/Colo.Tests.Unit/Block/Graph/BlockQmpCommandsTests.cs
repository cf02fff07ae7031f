using System.Text.Json;
using Colo.Block.Graph;
using Colo.Block.Qcow2;
using Colo.Block.Qmp;
using Colo.Core.Options;
using Colo.Core.Qmp;

namespace Colo.Tests.Unit.Block.Graph;

[TestFixture]
public sealed class BlockQmpCommandsTests
{
    [Test]
    public void QueryBlockAndNamedNodes_DescribeTheGraph()
    {
        string dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "qmp-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string basePath = Path.Combine(dir, "base.qcow2");
            string top = Path.Combine(dir, "top.qcow2");
            Qcow2Creator.Create(basePath, new Qcow2CreateOptions { Size = 1 << 20 });
            Qcow2Creator.Create(top, new Qcow2CreateOptions { Size = 1 << 20, BackingFile = "base.qcow2", BackingFormat = "qcow2" });
            using var graph = new BlockGraph();
            graph.AddDrive([.. KeyValParser.Parse($"if=none,id=d0,driver=qcow2,file.filename={top},node-name=top", null).Pairs]);
            var registry = new QmpCommandRegistry();
            BlockQmpCommands.Register(registry, graph, new QmpEventBus());
            registry.Freeze();
            Assert.That(registry.TryGet("query-block", out QmpCommand block), Is.True);
            Assert.That(registry.TryGet("query-named-block-nodes", out QmpCommand nodes), Is.True);
            JsonElement info = JsonDocument.Parse(block.Invoke(null, new QmpContext(null))).RootElement[0];
            JsonElement flat = JsonDocument.Parse(nodes.Invoke(JsonDocument.Parse("""{"flat": true}""").RootElement, new QmpContext(null))).RootElement;
            JsonElement inserted = info.GetProperty("inserted");
            Assert.Multiple(() =>
            {
                Assert.That(info.GetProperty("device").GetString(), Is.EqualTo("d0"));
                Assert.That(info.GetProperty("type").GetString(), Is.EqualTo("unknown"));
                Assert.That(info.TryGetProperty("qdev", out _), Is.False);
                Assert.That(inserted.GetProperty("node-name").GetString(), Is.EqualTo("top"));
                Assert.That(inserted.GetProperty("backing_file").GetString(), Is.EqualTo("base.qcow2"));
                Assert.That(inserted.GetProperty("backing_file_depth").GetInt32(), Is.EqualTo(1));
                Assert.That(inserted.GetProperty("image").GetProperty("full-backing-filename").GetString(), Is.EqualTo(basePath));
                Assert.That(inserted.GetProperty("image").GetProperty("backing-image").GetProperty("format").GetString(), Is.EqualTo("qcow2"));
                Assert.That(inserted.GetProperty("image").GetProperty("format-specific").GetProperty("data").GetProperty("compat").GetString(), Is.EqualTo("1.1"));
                Assert.That(flat.GetArrayLength(), Is.EqualTo(4));
                Assert.That(flat[2].GetProperty("node-name").GetString(), Is.EqualTo("top"), "QEMU lists a node after its backing chain");
                Assert.That(flat[2].GetProperty("image").TryGetProperty("backing-image", out _), Is.False);
            });
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
