using System.Text;
using System.Text.Json.Serialization;
using BenchmarkDotNet.Attributes;
using Colo.Core.Chardev;
using Colo.Core.Loop;
using Colo.Core.Objects;
using Colo.Core.Qmp;
using Colo.Monitor.Hmp;
using Colo.Monitor.Qmp;

namespace Colo.Benchmarks.Monitor;

[JsonSerializable(typeof(QmpNoArgs))]
[JsonSerializable(typeof(QmpEmpty))]
internal sealed partial class MonitorBenchmarkJsonContext : JsonSerializerContext;

/// <summary>Parsing, validating, dispatching and formatting one small QMP command end to end.</summary>
[MemoryDiagnoser]
public class QmpDispatchBenchmark : IDisposable
{
    private readonly byte[] _request = Encoding.ASCII.GetBytes("{\"execute\":\"query-name\",\"id\":1}\n");
    private NullChardev _chardev = null!;
    private QmpMonitor _monitor = null!;

    [GlobalSetup]
    public void Setup()
    {
        var registry = new QmpCommandRegistry();
        MonitorQmpCommands.Register(registry, new HmpCommandRegistry());
        MonitorBenchmarkJsonContext j = MonitorBenchmarkJsonContext.Default;
        registry.Register("query-name", j.QmpNoArgs, j.QmpEmpty, (QmpNoArgs _) => QmpEmpty.Instance);
        registry.Freeze();
        _chardev = new NullChardev();
        _monitor = new QmpMonitor(_chardev, new InlineLoop(), registry, null, new QmpVersionInfo(7, 2, 0, "Colo 0.1.0"));
        _monitor.Start();
        _monitor.Receive("{\"execute\":\"qmp_capabilities\"}"u8);
    }

    [Benchmark]
    public int ParseAndDispatch()
    {
        _monitor.Receive(_request);
        return _chardev.Written;
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _monitor.Dispose();
        _chardev.Dispose();
        GC.SuppressFinalize(this);
    }

    private sealed class InlineLoop : IEventLoop
    {
        public bool IsLoopThread => true;

        public void Post(Action work) => work();
    }

    private sealed class NullChardev : Chardev
    {
        private static readonly ObjectTypeInfo TypeInfo = new("bench-null", ObjectCategory.Chardev, [], null);

        public NullChardev()
            : base(TypeInfo, new PropertyValues(TypeInfo))
        {
        }

        public int Written { get; private set; }

        public override bool IsConnected => true;

        public override int Write(ReadOnlySpan<byte> data)
        {
            Written += data.Length;
            return data.Length;
        }
    }
}
