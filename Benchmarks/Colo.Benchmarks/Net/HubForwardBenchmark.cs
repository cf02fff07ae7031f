using BenchmarkDotNet.Attributes;
using Colo.Core.Objects;
using Colo.Net;

namespace Colo.Benchmarks.Net;

/// <summary>
/// One 1514-byte frame from a client through a three-port hub to two receivers (the path every frame between a NIC
/// and its netdevs takes); must show 0 B allocated per frame.
/// </summary>
[MemoryDiagnoser]
public class HubForwardBenchmark : IDisposable
{
    private static readonly ObjectTypeInfo SinkType = new("sink", ObjectCategory.Netdev, [], factory: null);

    private readonly byte[] _frame = new byte[1514];
    private NetClients _net = null!;
    private Sink _source = null!;

    private sealed class Sink(string id, NetClients net) : NetClient(SinkType, new PropertyValues(SinkType), id, net)
    {
        public long Bytes { get; private set; }

        public override int Receive(ReadOnlySpan<byte> frame)
        {
            Bytes += frame.Length;
            return frame.Length;
        }
    }

    [GlobalSetup]
    public void Setup()
    {
        _net = new NetClients();
        var types = new TypeRegistry();
        NetTypes.Register(types, _net);
        _source = new Sink("src", _net);
        for (int i = 0; i < 3; i++)
        {
            NetClient port = _net.Add(types, "hubport", $"p{i}", [new("hubid", "0")], fromQmp: false);
            NetClient.Link(i == 0 ? _source : new Sink($"dst{i}", _net), port);
        }
    }

    [Benchmark]
    public void ForwardOneFrame()
    {
        lock (_net.Lock)
        {
            _source.Send(_frame);
        }
    }

    public void Dispose()
    {
        _net.DisposeAll();
        GC.SuppressFinalize(this);
    }
}
