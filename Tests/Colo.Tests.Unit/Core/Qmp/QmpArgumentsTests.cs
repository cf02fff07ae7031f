using System.Text.Json;
using System.Text.Json.Serialization;
using Colo.Core.Qmp;

namespace Colo.Tests.Unit.Core.Qmp;

public sealed record SampleAddress
{
    [JsonPropertyName("host")]
    public required string Host { get; init; }

    [JsonPropertyName("port")]
    public required string Port { get; init; }
}

public sealed record SampleArgs
{
    [JsonPropertyName("device")]
    public required string Device { get; init; }

    [JsonPropertyName("writable")]
    public bool? Writable { get; init; }

    [JsonPropertyName("count")]
    public long? Count { get; init; }

    [JsonPropertyName("names")]
    public string[]? Names { get; init; }

    [JsonPropertyName("addr")]
    public SampleAddress? Addr { get; init; }
}

[JsonSerializable(typeof(SampleArgs))]
internal sealed partial class SampleJsonContext : JsonSerializerContext;

[TestFixture]
public sealed class QmpArgumentsTests
{
    private static string Error(string json) =>
        Assert.Throws<QmpException>(() => QmpArguments.Deserialize(JsonDocument.Parse(json).RootElement, SampleJsonContext.Default.SampleArgs))!.Message;

    [Test]
    public void Deserialize_Valid_ReturnsRecord()
    {
        SampleArgs args = QmpArguments.Deserialize(JsonDocument.Parse("""{"device": "parent0", "writable": true, "names": ["a"], "addr": {"host": "h", "port": "1"}}""").RootElement, SampleJsonContext.Default.SampleArgs);
        Assert.That(args, Is.EqualTo(new SampleArgs { Device = "parent0", Writable = true, Names = args.Names, Addr = new SampleAddress { Host = "h", Port = "1" } }));
    }

    [TestCase("{}", "Parameter 'device' is missing")]
    [TestCase("""{"device": 1}""", "Invalid parameter type for 'device', expected: string")]
    [TestCase("""{"device": "d", "writable": "yes"}""", "Invalid parameter type for 'writable', expected: boolean")]
    [TestCase("""{"device": "d", "count": 1.5}""", "Invalid parameter type for 'count', expected: integer")]
    [TestCase("""{"device": "d", "names": "a"}""", "Invalid parameter type for 'names', expected: array")]
    [TestCase("""{"device": "d", "names": ["a", 2]}""", "Invalid parameter type for 'names[1]', expected: string")]
    [TestCase("""{"device": "d", "addr": {"host": "h"}}""", "Parameter 'addr.port' is missing")]
    [TestCase("""{"device": "d", "addr": []}""", "Invalid parameter type for 'addr', expected: object")]
    [TestCase("""{"device": "d", "bogus": 1}""", "Parameter 'bogus' is unexpected")]
    [TestCase("""{"bogus": 1}""", "Parameter 'device' is missing")]
    [TestCase("[]", "QMP input member 'arguments' must be an object")]
    public void Deserialize_Bad_GivesQemuTextInQemuOrder(string json, string expected)
    {
        Assert.That(Error(json), Is.EqualTo(expected));
    }
}
