using System.IO.Pipelines;
using System.Text;
using Colo.Core.Chardev;
using Colo.Core.Loop;
using Colo.Core.Objects;

namespace Colo.Tests.Unit.Chardev;

[TestFixture]
[NonParallelizable] // MuxChardev.EscapeChar is process-wide, as QEMU's -echr
public sealed class MuxChardevTests
{
    private Pipe _input = null!;
    private LockedStream _output = null!;
    private ObjectTree _tree = null!;
    private TypeRegistry _types = null!;
    private EventLoop _loop = null!;
    private int _terminated;

    [SetUp]
    public void SetUp()
    {
        MuxChardev.EscapeChar = 0x01;
        _input = new Pipe();
        _output = new LockedStream();
        _types = new TypeRegistry();
        var env = new ChardevEnvironment { Report = _ => { }, OpenStdin = () => _input.Reader.AsStream(), OpenStdout = () => _output };
        ChardevTypes.Register(_types, env);
        _tree = new ObjectTree();
        _loop = new EventLoop("mux-test");
        _loop.StartThread();
        _terminated = 0;
    }

    [TearDown]
    public void TearDown()
    {
        ChardevFactory.RemoveAll(_tree);
        _loop.Dispose();
        _output.Dispose();
        MuxChardev.EscapeChar = 0x01;
    }

    [Test]
    public void Create_MuxOn_MuxLabelThenBase()
    {
        Colo.Core.Chardev.Chardev mux = ChardevFactory.CreateFromOption(_types, _tree, "stdio,id=x,mux=on");
        Assert.That(mux, Is.InstanceOf<MuxChardev>());
        Assert.That(ChardevFactory.All(_tree).Select(c => (c.Name, ((IChardevInfo)c).Filename)),
            Is.EqualTo(new[] { ("x", "mux"), ("x-base", "stdio") }));
    }

    [Test]
    public void Input_GoesToFocusedOnly_CtrlACCyclesFocus()
    {
        (MuxChardev mux, SpaceFrontend serial, SpaceFrontend monitor) = Start();
        Assert.That(serial.NextEvent(), Is.EqualTo(CharEvent.MuxIn));
        Assert.That(monitor.NextEvent(), Is.EqualTo(CharEvent.MuxOut));
        Type("ab\u0001cinfo\u0001cz");
        Assert.That(serial.WaitForText("abz"), Is.True);
        Assert.That(monitor.WaitForText("info"), Is.True);
        Assert.That(serial.Text, Is.EqualTo("abz"));
        Assert.That(monitor.Text, Is.EqualTo("info"));
        Assert.That(mux.FocusIndex, Is.EqualTo(0));
    }

    [Test]
    public void CtrlACtrlA_SendsLiteralEscape_UnknownCommandDropped()
    {
        (_, SpaceFrontend serial, _) = Start();
        Type("\u0001\u0001\u0001qA");
        Assert.That(serial.WaitForText("\u0001A"), Is.True);
        Assert.That(serial.Text, Is.EqualTo("\u0001A"));
    }

    [Test]
    public void CtrlAH_PrintsQemuHelp()
    {
        Start();
        Type("\u0001h");
        string expected = "\n\rC-a h    print this help\n\rC-a x    exit emulator\n\rC-a s    save disk data back to file (if -snapshot)\n\r" +
            "C-a t    toggle console timestamps\n\rC-a b    send break (magic sysrq)\n\rC-a c    switch between console and monitor\n\r" +
            "C-a C-a  sends C-a\n\r";
        Assert.That(_output.WaitForText(expected), Is.True, _output.Text);
    }

    [Test]
    public void Echr_ChangesEscape_AndHelpSpelling()
    {
        MuxChardev.EscapeChar = 0x14;
        Assert.That(MuxChardev.HelpText(), Does.Contain("C-t C-t  sends C-t\n\r"));
        MuxChardev.EscapeChar = (byte)'~';
        Assert.That(MuxChardev.HelpText(), Does.StartWith("\n\rEscape-Char set to Ascii: 0x7e\n\r\n\rEscape-Char h    print this help"));
        (_, SpaceFrontend serial, SpaceFrontend monitor) = Start();
        Type("a\u0001~cb");
        Assert.That(monitor.WaitForText("b"), Is.True);
        Assert.That(serial.Text, Is.EqualTo("a\u0001"));
    }

    [Test]
    public void CtrlAX_PrintsTerminated_CallsHandler()
    {
        Start();
        Type("\u0001x");
        Assert.That(_output.WaitForText("QEMU: Terminated\n\r"), Is.True);
        Assert.That(SpinWait.SpinUntil(() => Volatile.Read(ref _terminated) == 1, 5000), Is.True);
    }

    [Test]
    public void CtrlAB_SendsBreakToFocused()
    {
        (_, SpaceFrontend serial, SpaceFrontend monitor) = Start();
        Assert.That(serial.NextEvent(), Is.EqualTo(CharEvent.MuxIn));
        Type("\u0001b");
        CharEvent? e;
        do
        {
            e = serial.NextEvent();
        }
        while (e is not null and not CharEvent.Break);
        Assert.That(e, Is.EqualTo(CharEvent.Break));
        Assert.That(monitor.Events, Does.Not.Contain(CharEvent.Break));
    }

    [Test]
    public void CtrlAT_TimestampsLineStarts_OffAgain()
    {
        (MuxChardev mux, SpaceFrontend serial, _) = Start();
        Type("\u0001tm"); // "m" reaching the serial shows the toggle was processed
        Assert.That(serial.WaitForText("m"), Is.True);
        mux.Write("one\ntwo"u8);
        Assert.That(_output.Text, Does.Match(@"^one\n\[00:00:00\.00\d\] two$"));
        Type("\u0001tn");
        Assert.That(serial.WaitForText("mn"), Is.True);
        mux.Write("\nthree"u8);
        Assert.That(_output.Text, Does.EndWith("two\nthree"));
    }

    [Test]
    public void OutputFromEveryFrontend_GoesToBackend()
    {
        (MuxChardev mux, _, _) = Start();
        mux.Write("from serial "u8);
        mux.Write("from monitor"u8);
        Assert.That(_output.Text, Is.EqualTo("from serial from monitor"));
    }

    [Test]
    public void FlowControl_FocusedSpaceIsMuxSpace_HeldBytesFollowWhenFreed()
    {
        (MuxChardev mux, SpaceFrontend serial, SpaceFrontend monitor) = Start(serialSpace: 2);
        Type("abcdef");
        Assert.That(serial.WaitForText("ab"), Is.True);
        Sync(() => { });
        Assert.That(serial.Text, Is.EqualTo("ab"));
        Assert.That(((ICharFrontend)mux).ReceiveSpace, Is.GreaterThan(0), "the mux still takes an escape while the UART is full");
        serial.Free(10);
        Assert.That(serial.WaitForText("abcdef"), Is.True, serial.Text);
        Assert.That(monitor.Text, Is.Empty);
    }

    [Test]
    public void FlowControl_FullSerial_EscapeStillSwitchesToMonitor()
    {
        (_, SpaceFrontend serial, SpaceFrontend monitor) = Start(serialSpace: 0);
        Type("\u0001cinfo status\r");
        Assert.That(monitor.WaitForText("info status\r"), Is.True, monitor.Text);
        Assert.That(serial.Text, Is.Empty);
    }

    [Test]
    public void AttachAfterRealize_TakesFocus_AndHearsOpened()
    {
        (MuxChardev mux, _, _) = Start();
        var late = new SpaceFrontend(int.MaxValue);
        Sync(() => mux.Attach(late, _loop));
        Assert.That(mux.FocusIndex, Is.EqualTo(2));
        Type("q");
        Assert.That(late.WaitForText("q"), Is.True);
        Assert.That(late.Events, Does.Contain(CharEvent.Opened));
    }

    [Test]
    public void Detach_KeepsOtherFrontends()
    {
        (MuxChardev mux, SpaceFrontend serial, SpaceFrontend monitor) = Start();
        Sync(() => mux.Detach(monitor));
        Assert.That(mux.FrontendCount, Is.EqualTo(1));
        Assert.That(mux.HasFrontend, Is.True);
        Type("\u0001cz");
        Assert.That(serial.WaitForText("z"), Is.True);
    }

    private (MuxChardev Mux, SpaceFrontend Serial, SpaceFrontend Monitor) Start(int serialSpace = int.MaxValue)
    {
        var mux = (MuxChardev)ChardevFactory.CreateFromOption(_types, _tree, "stdio,id=x,mux=on");
        mux.TerminateHandler = () => Interlocked.Exchange(ref _terminated, 1);
        var serial = new SpaceFrontend(serialSpace);
        var monitor = new SpaceFrontend(int.MaxValue);
        Sync(() =>
        {
            mux.Attach(serial, _loop);
            mux.Attach(monitor, _loop);
            mux.Realize();
        });
        return (mux, serial, monitor);
    }

    private void Sync(Action action) => _loop.Invoke(() =>
    {
        action();
        return 0;
    });

    private void Type(string text)
    {
        _input.Writer.AsStream().Write(Encoding.Latin1.GetBytes(text));
        _input.Writer.AsStream().Flush();
    }

    /// <summary>A frontend with a settable receive space, as a UART FIFO.</summary>
    private sealed class SpaceFrontend(int space) : ICharFrontend
    {
        private readonly object _lock = new();
        private readonly List<byte> _received = [];
        private readonly System.Collections.Concurrent.BlockingCollection<CharEvent> _events = [];
        private readonly List<CharEvent> _all = [];
        private int _space = space;
        private Action? _handler;

        public int ReceiveSpace
        {
            get
            {
                lock (_lock)
                {
                    return _space;
                }
            }
        }

        public string Text
        {
            get
            {
                lock (_lock)
                {
                    return Encoding.Latin1.GetString([.. _received]);
                }
            }
        }

        public List<CharEvent> Events
        {
            get
            {
                lock (_lock)
                {
                    return [.. _all];
                }
            }
        }

        public void Receive(ReadOnlySpan<byte> data)
        {
            lock (_lock)
            {
                Assert.That(data.Length, Is.LessThanOrEqualTo(_space), "a mux must not hand over more than the frontend's space");
                if (_space != int.MaxValue)
                {
                    _space -= data.Length;
                }
                _received.AddRange(data.ToArray());
                System.Threading.Monitor.PulseAll(_lock);
            }
        }

        public void OnEvent(CharEvent charEvent)
        {
            lock (_lock)
            {
                _all.Add(charEvent);
            }
            _events.Add(charEvent);
        }

        public void SetReceiveSpaceHandler(Action? handler) => _handler = handler;

        public CharEvent? NextEvent() => _events.TryTake(out CharEvent e, 5000) ? e : null;

        public void Free(int n)
        {
            lock (_lock)
            {
                _space += n;
            }
            _handler?.Invoke();
        }

        public bool WaitForText(string expected, int timeoutMs = 5000)
        {
            long deadline = Environment.TickCount64 + timeoutMs;
            lock (_lock)
            {
                while (!Encoding.Latin1.GetString([.. _received]).Contains(expected, StringComparison.Ordinal))
                {
                    long left = deadline - Environment.TickCount64;
                    if (left <= 0)
                    {
                        return false;
                    }
                    System.Threading.Monitor.Wait(_lock, (int)left);
                }
                return true;
            }
        }
    }

    /// <summary>The stdio backend's output, readable while it is written from the loop.</summary>
    private sealed class LockedStream : Stream
    {
        private readonly object _lock = new();
        private readonly MemoryStream _inner = new();

        public string Text
        {
            get
            {
                lock (_lock)
                {
                    return Encoding.Latin1.GetString(_inner.ToArray());
                }
            }
        }

        public bool WaitForText(string expected, int timeoutMs = 5000)
        {
            long deadline = Environment.TickCount64 + timeoutMs;
            lock (_lock)
            {
                while (!Encoding.Latin1.GetString(_inner.ToArray()).Contains(expected, StringComparison.Ordinal))
                {
                    long left = deadline - Environment.TickCount64;
                    if (left <= 0)
                    {
                        return false;
                    }
                    System.Threading.Monitor.Wait(_lock, (int)left);
                }
                return true;
            }
        }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            lock (_lock)
            {
                _inner.Write(buffer, offset, count);
                System.Threading.Monitor.PulseAll(_lock);
            }
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            lock (_lock)
            {
                _inner.Write(buffer);
                System.Threading.Monitor.PulseAll(_lock);
            }
        }
    }
}
