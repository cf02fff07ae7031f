using System.Text;
using Colo.Core.Chardev;
using Colo.Devices.Char;
using Colo.Tests.Unit.Chardev;
using Colo.Tests.Unit.Core.Irq;

namespace Colo.Tests.Unit.Devices.Char;

[TestFixture]
public sealed class Serial16550Tests
{
    private ChardevTestHarness _h = null!;
    private RingbufChardev _ring = null!;
    private RecordingIrqLine _irq = null!;
    private Serial16550 _uart = null!;

    [SetUp]
    public void SetUp()
    {
        _h = new ChardevTestHarness();
        _ring = (RingbufChardev)_h.Create("ringbuf,id=serial0");
        _irq = new RecordingIrqLine();
        _uart = new Serial16550(_irq.Line, _ring);
    }

    [TearDown]
    public void TearDown() => _h.Dispose();

    private uint R(int offset) => _uart.Read(offset, 1);

    private void W(int offset, uint value) => _uart.Write(offset, 1, value);

    [Test]
    public void ThrWrite_GoesToChardev_LsrShowsEmpty()
    {
        foreach (byte b in "hi\n"u8)
        {
            W(Serial16550.RbrThr, b);
        }
        Assert.That(Encoding.ASCII.GetString(_ring.Read(100)), Is.EqualTo("hi\n"));
        Assert.That(R(Serial16550.Lsr) & 0x60, Is.EqualTo(0x60));
        Assert.That(_irq.Changes, Is.Empty, "no interrupt without IER");
    }

    [Test]
    public void Break_ReceivesZeroWithBreakStatus_RaisesLineStatusInterrupt()
    {
        W(Serial16550.Ier, 0x04); // receiver line status interrupt
        _uart.OnEvent(CharEvent.Break);
        Assert.That(R(Serial16550.Lsr) & (Serial16550.LsrBi | Serial16550.LsrDr), Is.EqualTo(Serial16550.LsrBi | Serial16550.LsrDr));
        Assert.That(_irq.Changes, Is.Not.Empty);
        Assert.That(R(Serial16550.RbrThr), Is.Zero);
        Assert.That(R(Serial16550.Lsr) & Serial16550.LsrBi, Is.Zero, "reading LSR clears the break indication");
    }

    [Test]
    public void Dlab_SelectsDivisorLatch()
    {
        W(Serial16550.Lcr, Serial16550.LcrDlab | 0x03);
        W(Serial16550.RbrThr, 0x01);
        W(Serial16550.Ier, 0x02);
        Assert.That(R(Serial16550.RbrThr), Is.EqualTo(0x01));
        Assert.That(R(Serial16550.Ier), Is.EqualTo(0x02));
        W(Serial16550.Lcr, 0x03);
        Assert.That(R(Serial16550.Ier), Is.Zero, "IER untouched by divisor writes");
        Assert.That(_uart.Save().Divisor, Is.EqualTo(0x0201));
        Assert.That(_ring.Read(10), Is.Empty);
    }

    [Test]
    public void ThreInterrupt_OnEnable_ClearedByIirRead_ReassertedByThrWrite()
    {
        W(Serial16550.Ier, Serial16550.IerThre);
        Assert.That(_irq.Level, Is.True);
        Assert.That(R(Serial16550.IirFcr), Is.EqualTo(Serial16550.IirThre));
        Assert.That(_irq.Level, Is.False);
        Assert.That(R(Serial16550.IirFcr), Is.EqualTo(Serial16550.IirNoInt));
        W(Serial16550.RbrThr, (byte)'x');
        Assert.That(_irq.Level, Is.True);
    }

    [Test]
    public void Receive_NonFifo_RdaInterrupt_OverrunOnSecondByte()
    {
        W(Serial16550.Ier, Serial16550.IerRda | Serial16550.IerRls);
        _uart.Receive("ab"u8);
        Assert.That(_irq.Level, Is.True);
        Assert.That(R(Serial16550.IirFcr), Is.EqualTo(Serial16550.IirRls), "line status outranks data");
        Assert.That(R(Serial16550.Lsr) & (Serial16550.LsrDr | Serial16550.LsrOe), Is.EqualTo(Serial16550.LsrDr | Serial16550.LsrOe));
        Assert.That(R(Serial16550.IirFcr), Is.EqualTo(Serial16550.IirRda));
        Assert.That(R(Serial16550.RbrThr), Is.EqualTo('a'));
        Assert.That(_irq.Level, Is.False);
        Assert.That(R(Serial16550.Lsr) & Serial16550.LsrDr, Is.Zero);
    }

    [Test]
    public void Fifo_TriggerLevel_InterruptsAtLevel_TimeoutBelowIt()
    {
        W(Serial16550.IirFcr, 0x80 | Serial16550.FcrEnable); // trigger 8
        W(Serial16550.Ier, Serial16550.IerRda);
        _uart.Receive("1234567"u8);
        Assert.That(_irq.Level, Is.False);
        Assert.That(R(Serial16550.IirFcr), Is.EqualTo(Serial16550.IirFifoEnabled | Serial16550.IirNoInt));
        _uart.SignalCharacterTimeout();
        Assert.That(R(Serial16550.IirFcr) & 0x0F, Is.EqualTo(Serial16550.IirCharTimeout));
        _uart.Receive("8"u8);
        Assert.That(R(Serial16550.IirFcr) & 0x0F, Is.EqualTo(Serial16550.IirRda));
        var got = new StringBuilder();
        while ((R(Serial16550.Lsr) & Serial16550.LsrDr) != 0)
        {
            got.Append((char)R(Serial16550.RbrThr));
        }
        Assert.That(got.ToString(), Is.EqualTo("12345678"));
        Assert.That(_irq.Level, Is.False);
    }

    [Test]
    public void CharacterTimeout_FiresFourCharacterTimesAfterTheLastByte()
    {
        var clock = new Colo.Core.Time.ManualClock();
        var uart = new Serial16550(_irq.Line, _ring, clock);
        // 115200 / 12 = 9600 baud, 8N1: 10 bits a character, 1.04 ms each.
        uart.Write(Serial16550.Lcr, 1, Serial16550.LcrDlab | 0x03);
        uart.Write(Serial16550.RbrThr, 1, 12);
        uart.Write(Serial16550.Lcr, 1, 0x03);
        uart.Write(Serial16550.IirFcr, 1, 0xC0u | Serial16550.FcrEnable); // trigger 14
        uart.Write(Serial16550.Ier, 1, Serial16550.IerRda);
        uart.Receive("ab"u8);
        const long charNs = 10L * 12 * 1_000_000_000 / 115_200;
        clock.Advance(4 * charNs - 1000);
        Assert.That(_irq.Level, Is.False, "not before four character times");
        clock.Advance(1000);
        Assert.That(_irq.Level, Is.True);
        Assert.That(uart.Read(Serial16550.IirFcr, 1) & 0x0F, Is.EqualTo(Serial16550.IirCharTimeout));
        Assert.That(uart.Read(Serial16550.RbrThr, 1), Is.EqualTo('a'));
        Assert.That(_irq.Level, Is.False, "a read clears the timeout");
        clock.Advance(4 * charNs);
        Assert.That(_irq.Level, Is.True, "the byte left behind times out again");
        Assert.That(uart.Read(Serial16550.RbrThr, 1), Is.EqualTo('b'));
        clock.Advance(10 * charNs);
        Assert.That(_irq.Level, Is.False, "an empty FIFO never times out");
    }

    [Test]
    public void ReceiveSpace_ReportsFreedSpaceWhenTheGuestReads()
    {
        int reports = 0;
        _uart.SetReceiveSpaceHandler(() => reports++);
        W(Serial16550.IirFcr, Serial16550.FcrEnable);
        Assert.That(reports, Is.EqualTo(1), "enabling the FIFO makes room");
        reports = 0;
        _uart.Receive("0123456789abcdef"u8);
        Assert.That(_uart.ReceiveSpace, Is.Zero);
        Assert.That(R(Serial16550.RbrThr), Is.EqualTo('0'));
        Assert.That(_uart.ReceiveSpace, Is.EqualTo(1));
        Assert.That(reports, Is.EqualTo(1));
        Assert.That(R(Serial16550.Lsr) & Serial16550.LsrOe, Is.Zero);
    }

    [Test]
    public void Fifo_HoldsSixteen_ThenOverrun()
    {
        W(Serial16550.IirFcr, Serial16550.FcrEnable);
        _uart.Receive(new byte[17]);
        Assert.That(_uart.ReceiveSpace, Is.Zero);
        Assert.That(R(Serial16550.Lsr) & Serial16550.LsrOe, Is.EqualTo(Serial16550.LsrOe));
        W(Serial16550.IirFcr, Serial16550.FcrEnable | Serial16550.FcrClearRx);
        Assert.That(R(Serial16550.Lsr) & Serial16550.LsrDr, Is.Zero);
    }

    [Test]
    public void Loopback_ThrReturnsOnRbr_ModemLinesFollowMcr()
    {
        W(Serial16550.Mcr, Serial16550.McrLoop);
        R(Serial16550.Msr);
        W(Serial16550.RbrThr, 0x5A);
        Assert.That(_ring.Read(10), Is.Empty, "nothing leaves in loopback");
        Assert.That(R(Serial16550.RbrThr), Is.EqualTo(0x5A));
        W(Serial16550.Ier, Serial16550.IerMs);
        W(Serial16550.Mcr, Serial16550.McrLoop | Serial16550.McrRts | Serial16550.McrOut2);
        Assert.That(_irq.Level, Is.True);
        Assert.That(R(Serial16550.IirFcr), Is.EqualTo(Serial16550.IirMs));
        uint msr = R(Serial16550.Msr);
        Assert.That(msr & 0xF0, Is.EqualTo(Serial16550.MsrCts | Serial16550.MsrDcd));
        Assert.That(msr & 0x0F, Is.EqualTo(Serial16550.MsrDcts | Serial16550.MsrDdcd));
        Assert.That(_irq.Level, Is.False);
    }

    [Test]
    public void Scratch_RoundTrips()
    {
        W(Serial16550.Scr, 0xA5);
        Assert.That(R(Serial16550.Scr), Is.EqualTo(0xA5));
    }

    [Test]
    public void SaveRestore_RoundTrips_ReRaisesIrq()
    {
        W(Serial16550.IirFcr, 0x40 | Serial16550.FcrEnable);
        W(Serial16550.Ier, Serial16550.IerRda);
        _uart.Receive("hello"u8);
        R(Serial16550.RbrThr);
        Serial16550State saved = _uart.Save();
        var irq2 = new RecordingIrqLine();
        var uart2 = new Serial16550(irq2.Line, null);
        uart2.Restore(saved);
        Assert.That(uart2.Save(), Is.EqualTo(saved));
        Assert.That(irq2.Level, Is.True);
        Assert.That(uart2.Read(Serial16550.RbrThr, 1), Is.EqualTo('e'));
    }

    [Test]
    public void Reset_ClearsInterruptsAndFifo()
    {
        W(Serial16550.Ier, Serial16550.IerThre);
        _uart.Receive("x"u8);
        _uart.Reset();
        Assert.That(_irq.Level, Is.False);
        Assert.That(R(Serial16550.Lsr), Is.EqualTo(Serial16550.LsrThre | Serial16550.LsrTemt));
    }

    [Test]
    public void RandomAccess_EveryOffset_NeverThrows()
    {
        var rng = new Random(16550);
        var uart = new Serial16550(new RecordingIrqLine().Line, null);
        for (int i = 0; i < 100_000; i++)
        {
            int offset = rng.Next(-2, Serial16550.RegionSize + 2);
            if (rng.Next(2) == 0)
            {
                uart.Read(offset, 1);
            }
            else
            {
                uart.Write(offset, 1, (uint)rng.Next());
            }
            if (rng.Next(16) == 0)
            {
                uart.Receive(new byte[rng.Next(0, 20)]);
            }
            if (rng.Next(64) == 0)
            {
                uart.SignalCharacterTimeout();
            }
        }
        Serial16550State s = uart.Save();
        var uart2 = new Serial16550(new RecordingIrqLine().Line, null);
        uart2.Restore(s);
        Assert.That(uart2.Save(), Is.EqualTo(s));
    }
}
