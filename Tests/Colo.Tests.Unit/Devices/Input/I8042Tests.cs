using Colo.Core.Irq;
using Colo.Devices.Input;

namespace Colo.Tests.Unit.Devices.Input;

[TestFixture]
public sealed class I8042Tests
{
    private IrqLine _irq1 = null!;
    private IrqLine _irq12 = null!;
    private int _resets;
    private I8042 _kbc = null!;

    [SetUp]
    public void SetUp()
    {
        _irq1 = new IrqLine();
        _irq12 = new IrqLine();
        _resets = 0;
        _kbc = new I8042(_irq1, _irq12, () => _resets++);
    }

    private uint Status => _kbc.Read(I8042.Command, 1);

    private void Cmd(byte b) => _kbc.Write(I8042.Command, 1, b);

    private void Data(byte b) => _kbc.Write(I8042.Data, 1, b);

    private List<byte> Drain()
    {
        var bytes = new List<byte>();
        while ((Status & I8042.StatusOutputFull) != 0)
        {
            bytes.Add((byte)_kbc.Read(I8042.Data, 1));
        }
        return bytes;
    }

    [Test]
    public void PowerOn_OutputEmptyAndInterruptsEnabled()
    {
        Assert.That(Status & I8042.StatusOutputFull, Is.Zero);
        Cmd(0x20);
        Assert.That(Drain(), Is.EqualTo(new byte[] { I8042.ModeKeyboardInterrupt | I8042.ModeAuxInterrupt }));
    }

    [Test]
    public void SelfTestAndInterfaceTests_Answer()
    {
        Cmd(0xAA);
        Assert.That(Status & I8042.StatusSystem, Is.Not.Zero, "self-test sets the system flag");
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x55 }));
        Cmd(0xAB);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x00 }));
        Cmd(0xA9);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x00 }));
    }

    [Test]
    public void CommandByte_WriteThenRead_AndA2FlagAsQemu()
    {
        Cmd(0x60);
        Assert.That(Status & I8042.StatusCommand, Is.Not.Zero);
        Data(0x65);
        Assert.That(Status & I8042.StatusCommand, Is.Not.Zero, "QEMU keeps A2 after a data write");
        Assert.That(Status & I8042.StatusSystem, Is.Not.Zero);
        Cmd(0x20);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x65 }));
        Cmd(0xA7);
        Cmd(0x20);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x65 | I8042.ModeDisableAux }));
    }

    [Test]
    public void KeyboardReset_AcksAndPassesWithIrq1()
    {
        Data(0xFF);
        Assert.That(_irq1.Level, Is.True);
        Assert.That(_irq12.Level, Is.False);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0xAA }));
        Assert.That(_irq1.Level, Is.False, "reading the last byte lowers IRQ 1");
    }

    [Test]
    public void KeyboardIdentify_DependsOnTranslation()
    {
        Data(0xF2);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0xAB, 0x83 }));
        Cmd(0x60);
        Data(0x41);
        Data(0xF2);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0xAB, 0x41 }));
    }

    [Test]
    public void KeyboardArgumentCommands_AckTwiceAndScancodeSetReads()
    {
        Data(0xED);
        Data(0x07);
        Data(0xF0);
        Data(0x01);
        Data(0xF0);
        Data(0x00);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0xFA, 0xFA, 0xFA, 0xFA, 0xFA, 0x01 }));
        Data(0x12);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFE }), "unknown command asks for a resend");
    }

    [Test]
    public void InterruptDisabled_DataStillReadableWithoutIrq()
    {
        Cmd(0x60);
        Data(0x00);
        Data(0xFF);
        Assert.That(_irq1.Level, Is.False);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0xAA }));
    }

    [Test]
    public void DisabledKeyboard_HoldsItsBytesUntilEnabled()
    {
        _kbc.QueueKeyboardBytes([0x1E]);
        Cmd(0xAD);
        // 0x1E already sat in the output buffer; nothing further arrives while the interface is disabled.
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x1E }));
        _kbc.QueueKeyboardBytes([0x9E]);
        Assert.That(Status & I8042.StatusOutputFull, Is.Zero);
        Cmd(0xAE);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0x9E }));
    }

    [Test]
    public void Mouse_ResetAndIdentifyThroughD4_RaiseIrq12WithAuxFlag()
    {
        Cmd(0xD4);
        Data(0xFF);
        Assert.That(Status & I8042.StatusAuxData, Is.Not.Zero);
        Assert.That(_irq12.Level, Is.True);
        Assert.That(_irq1.Level, Is.False);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0xAA, 0x00 }));
        Cmd(0xD4);
        Data(0xF2);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0x00 }));
        Cmd(0xD4);
        Data(0xF3);
        Cmd(0xD4);
        Data(200);
        Cmd(0xD4);
        Data(0xE9);
        Assert.That(Drain(), Is.EqualTo(new byte[] { 0xFA, 0xFA, 0xFA, 0x00, 0x02, 200 }));
        Assert.That(_irq12.Level, Is.False);
    }

    [Test]
    public void Reset_ByPulseFeAndByOutputPortBit0()
    {
        Cmd(0xFF);
        Assert.That(_resets, Is.Zero, "0xFF pulses no line");
        Cmd(0xFE);
        Assert.That(_resets, Is.EqualTo(1));
        Cmd(0xD0);
        Assert.That(Drain()[0] & 3, Is.EqualTo(3), "reset line high, A20 on");
        Cmd(0xD1);
        Data(0xDD);
        Assert.That(_resets, Is.EqualTo(1), "bit 0 set: no reset; A20 off");
        Assert.That(_kbc.A20Enabled, Is.False);
        Cmd(0xD1);
        Data(0xDE);
        Assert.That(_resets, Is.EqualTo(2));
    }

    [Test]
    public void SaveRestore_RoundTripsQueuedBytes()
    {
        Data(0xF2);
        _ = _kbc.Read(I8042.Data, 1);
        I8042State saved = _kbc.Save();
        var other = new I8042(new IrqLine(), new IrqLine(), () => { });
        other.Restore(saved);
        Assert.That(other.Save(), Is.EqualTo(saved));
        var bytes = new List<byte>();
        while ((other.Read(I8042.Command, 1) & I8042.StatusOutputFull) != 0)
        {
            bytes.Add((byte)other.Read(I8042.Data, 1));
        }
        Assert.That(bytes, Is.EqualTo(new byte[] { 0xAB, 0x83 }));
        _kbc.Reset();
        Assert.That(_kbc.Save(), Is.EqualTo(new I8042(new IrqLine(), new IrqLine(), () => { }).Save()));
    }
}
