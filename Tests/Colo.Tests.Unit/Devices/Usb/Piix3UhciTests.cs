using Colo.Devices.Pci;
using Colo.Devices.Usb;
using static Colo.Tests.Unit.Devices.Usb.UhciHarness;

namespace Colo.Tests.Unit.Devices.Usb;

/// <summary>
/// Register-level and schedule-walking tests of the UHCI. Register values marked "QEMU" were read from QEMU 7.2's
/// piix3-usb-uhci (00:01.2 with -usb) through the same port accesses.
/// </summary>
[TestFixture]
public sealed class Piix3UhciTests
{
    private UhciHarness _h = null!;

    [SetUp]
    public void SetUp() => _h = new UhciHarness();

    [Test]
    public void ConfigSpace_AsQemu()
    {
        var u = new Piix3Uhci(_h.Clock);
        Assert.That(u.ConfigRead(0x00, 4), Is.EqualTo(0x70208086u));
        Assert.That(u.ConfigRead(0x08, 4), Is.EqualTo(0x0C030001u));
        Assert.That(u.ConfigRead(0x0C, 4), Is.EqualTo(0u));
        Assert.That(u.ConfigRead(0x20, 4), Is.EqualTo(1u));
        Assert.That(u.ConfigRead(0x2C, 4), Is.EqualTo(0x11001AF4u));
        Assert.That(u.ConfigRead(0x3C, 4), Is.EqualTo(0x0400u), "interrupt pin INTD");
        Assert.That(u.ConfigRead(Piix3Uhci.Sbrn, 1), Is.EqualTo(0x10u));
        Assert.That(u.ConfigRead(Piix3Uhci.LegSup, 2), Is.EqualTo(0u));
        u.ConfigWrite(0x20, 4, 0xFFFFFFFF);
        Assert.That(u.ConfigRead(0x20, 4), Is.EqualTo(0xFFFFFFE1u), "32-byte I/O BAR");
        u.ConfigWrite(Piix3Uhci.LegSup, 2, 0xFFFF);
        Assert.That(u.ConfigRead(Piix3Uhci.LegSup, 2), Is.EqualTo(0xFFFFu));
    }

    [Test]
    public void Registers_ResetValuesAndMasks_AsQemu()
    {
        Assert.That(_h.R16(Piix3Uhci.UsbCmd), Is.EqualTo(0));
        Assert.That(_h.R16(Piix3Uhci.UsbSts), Is.EqualTo(Piix3Uhci.StsHalted));
        Assert.That(_h.R8(Piix3Uhci.SofMod), Is.EqualTo(0x40));
        Assert.That(_h.R16(Piix3Uhci.PortSc1), Is.EqualTo(0x0080), "bit 7 always reads one");
        Assert.That(_h.R16(Piix3Uhci.PortSc2), Is.EqualTo(0x0080));
        Assert.That(_h.R16(0x14), Is.EqualTo(0xFF7F), "no third port");
        Assert.That(_h.R32(0), Is.EqualTo(0x00200000u), "dword read spans USBCMD and USBSTS");
        _h.W16(Piix3Uhci.FrNum, 0xFFFF);
        Assert.That(_h.R16(Piix3Uhci.FrNum), Is.EqualTo(0x07FF));
        _h.W16(Piix3Uhci.FrNum, 0);
        _h.W32(Piix3Uhci.FlBaseAdd, 0xFFFFFFFF);
        Assert.That(_h.R32(Piix3Uhci.FlBaseAdd), Is.EqualTo(0xFFFFF000u));
        _h.W16(Piix3Uhci.UsbIntr, 0xFFFF);
        Assert.That(_h.R16(Piix3Uhci.UsbIntr), Is.EqualTo(0xFFFF));
        _h.W8(Piix3Uhci.SofMod, 0xFF);
        Assert.That(_h.R8(Piix3Uhci.SofMod), Is.EqualTo(0xFF));
        _h.W16(Piix3Uhci.UsbSts, 0x3F);
        Assert.That(_h.R16(Piix3Uhci.UsbSts), Is.EqualTo(Piix3Uhci.StsHalted), "HCHalted is not write-one-to-clear");
    }

    [Test]
    public void Port_AttachResetEnableDetach_AsQemu()
    {
        var tablet = new UsbTablet();
        _h.Uhci.Attach(0, tablet);
        Assert.That(_h.R16(Piix3Uhci.PortSc1), Is.EqualTo(0x0083));
        Assert.That(_h.R8(Piix3Uhci.PortSc1 + 1), Is.EqualTo(0x00));
        _h.W16(Piix3Uhci.PortSc1, Piix3Uhci.PortConnectChange | Piix3Uhci.PortEnableChange);
        Assert.That(_h.R16(Piix3Uhci.PortSc1), Is.EqualTo(0x0081));
        _h.W16(Piix3Uhci.PortSc1, Piix3Uhci.PortReset);
        Assert.That(_h.R16(Piix3Uhci.PortSc1), Is.EqualTo(0x0281));
        _h.W16(Piix3Uhci.PortSc1, 0);
        Assert.That(_h.R16(Piix3Uhci.PortSc1), Is.EqualTo(0x0081));
        _h.W16(Piix3Uhci.PortSc1, Piix3Uhci.PortEnable);
        Assert.That(_h.R16(Piix3Uhci.PortSc1), Is.EqualTo(0x0085));
        _h.W16(Piix3Uhci.PortSc2, Piix3Uhci.PortEnable);
        Assert.That(_h.R16(Piix3Uhci.PortSc2), Is.EqualTo(0x0080), "an empty port cannot be enabled");
        _h.W16(Piix3Uhci.PortSc1, Piix3Uhci.PortReset | Piix3Uhci.PortEnable);
        Assert.That(_h.R16(Piix3Uhci.PortSc1), Is.EqualTo(0x0285), "PE is as written, also during reset");
        _h.W16(Piix3Uhci.PortSc1, Piix3Uhci.PortEnable | Piix3Uhci.PortSuspend);
        Assert.That(_h.R16(Piix3Uhci.PortSc1), Is.EqualTo(0x1085));
        _h.W16(Piix3Uhci.UsbCmd, Piix3Uhci.CmdGReset);
        Assert.That(_h.R16(Piix3Uhci.UsbCmd), Is.Zero);
        Assert.That(_h.R16(Piix3Uhci.PortSc1), Is.EqualTo(0x0083), "global reset: the port re-detects its device");
        _h.W16(Piix3Uhci.PortSc1, Piix3Uhci.PortConnectChange | Piix3Uhci.PortEnable);

        Assert.That(_h.Uhci.Detach(0), Is.SameAs(tablet));
        Assert.That(_h.R16(Piix3Uhci.PortSc1), Is.EqualTo(0x008A), "disconnect: CSC and, being enabled, PEC");
        Assert.That(tablet.Host, Is.Null);
        Assert.That(_h.Uhci.Detach(0), Is.Null);
        Assert.Throws<InvalidOperationException>(() =>
        {
            _h.Uhci.Attach(1, new UsbTablet());
            _h.Uhci.Attach(1, new UsbTablet());
        });
    }

    [Test]
    public void Port_ResetReturnsDeviceToAddressZero()
    {
        UsbTablet t = _h.StartWithTablet();
        _h.Control(0, [0x00, 5, 9, 0, 0, 0, 0, 0]);
        Assert.That(t.Address, Is.EqualTo(9));
        _h.W16(Piix3Uhci.PortSc1, Piix3Uhci.PortReset);
        Assert.That(t.Address, Is.EqualTo(0));
        Assert.That(_h.R16(Piix3Uhci.PortSc1) & Piix3Uhci.PortEnable, Is.Zero, "reset wrote PE=0");
    }

    [Test]
    public void Attach_DuringGlobalSuspend_SetsResumeDetect()
    {
        _h.W16(Piix3Uhci.UsbIntr, Piix3Uhci.IntrResume);
        _h.W16(Piix3Uhci.UsbCmd, Piix3Uhci.CmdEgsm);
        _h.Uhci.Attach(1, new UsbTablet());
        Assert.That(_h.R16(Piix3Uhci.UsbSts) & Piix3Uhci.StsResumeDetect, Is.Not.Zero);
        Assert.That(_h.R16(Piix3Uhci.UsbCmd), Is.EqualTo(Piix3Uhci.CmdEgsm | Piix3Uhci.CmdFgr), "controller drives resume");
        Assert.That(_h.IrqLevel, Is.True);
        _h.W16(Piix3Uhci.UsbSts, Piix3Uhci.StsResumeDetect);
        Assert.That(_h.IrqLevel, Is.False);
    }

    [Test]
    public void FrameTimer_RunsOnlyWhileRunning()
    {
        Assert.That(_h.Uhci.FrameTimerPending, Is.False);
        _h.Clock.Advance(10 * Piix3Uhci.FrameNs);
        Assert.That(_h.R16(Piix3Uhci.FrNum), Is.Zero);
        _h.StartSchedule();
        Assert.That(_h.R16(Piix3Uhci.UsbSts) & Piix3Uhci.StsHalted, Is.Zero);
        Assert.That(_h.Uhci.FrameTimerPending, Is.True);
        _h.Clock.Advance(5 * Piix3Uhci.FrameNs);
        Assert.That(_h.R16(Piix3Uhci.FrNum), Is.EqualTo(5));
        _h.W16(Piix3Uhci.FrNum, 0x100);
        Assert.That(_h.R16(Piix3Uhci.FrNum), Is.EqualTo(5), "FRNUM is writable only while halted");
        _h.W16(Piix3Uhci.UsbCmd, 0);
        Assert.That(_h.Uhci.FrameTimerPending, Is.False);
        Assert.That(_h.R16(Piix3Uhci.UsbSts), Is.EqualTo(Piix3Uhci.StsHalted));
        _h.Clock.Advance(100 * Piix3Uhci.FrameNs);
        Assert.That(_h.R16(Piix3Uhci.FrNum), Is.EqualTo(5));
    }

    [Test]
    public void LateTimer_CatchesUpBoundedly_FrameNumberKeepsTime()
    {
        _h.StartSchedule();
        Piix3UhciState s = _h.Uhci.Save() with { NextFrameNs = 0 };
        _h.Clock.AdvanceTo(100 * Piix3Uhci.FrameNs);
        var late = new UhciHarness();
        late.Clock.AdvanceTo(100 * Piix3Uhci.FrameNs);
        // A schedule that completes one SETUP per frame would show how many frames ran; count FRNUM instead.
        late.Uhci.Restore(s);
        late.Clock.Advance(0);
        Assert.That(late.R16(Piix3Uhci.FrNum), Is.EqualTo(101), "all elapsed frames counted");
        Assert.That(late.Uhci.FrameTimerPending, Is.True);
        Assert.That(late.Uhci.Save().NextFrameNs, Is.EqualTo(101 * Piix3Uhci.FrameNs));
    }

    [Test]
    public void SoftwareDebug_HaltsAfterEachTransaction()
    {
        UsbTablet t = _h.StartWithTablet();
        new byte[] { 0x00, 5, 6, 0, 0, 0, 0, 0 }.CopyTo(_h.Memory.Bytes, (int)Buffers);
        _h.Td(0, TdAddress(1) | Piix3Uhci.LinkDepth, Active, Token(UsbPid.Setup, 0, 0, 0, 8), Buffers);
        _h.Td(1, Piix3Uhci.LinkTerminate, Active, Token(UsbPid.In, 0, 0, 1, 0), 0);
        _h.Memory.W32(Qh + 4, Tds);
        _h.W16(Piix3Uhci.UsbCmd, Piix3Uhci.CmdRs | Piix3Uhci.CmdSwDbg);
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.TdStatus(0) & Active, Is.Zero);
        Assert.That(_h.TdStatus(1) & Active, Is.Not.Zero);
        Assert.That(_h.R16(Piix3Uhci.UsbSts) & Piix3Uhci.StsHalted, Is.Not.Zero);
        Assert.That(_h.R16(Piix3Uhci.UsbCmd), Is.EqualTo(Piix3Uhci.CmdSwDbg));
        _h.W16(Piix3Uhci.UsbCmd, Piix3Uhci.CmdRs | Piix3Uhci.CmdSwDbg);
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.TdStatus(1) & Active, Is.Zero);
        Assert.That(t.Address, Is.EqualTo(6));
    }

    [Test]
    public void FrameNumber_WrapsAt2048()
    {
        _h.W16(Piix3Uhci.FrNum, 0x7FE);
        _h.StartSchedule();
        _h.Clock.Advance(3 * Piix3Uhci.FrameNs);
        Assert.That(_h.R16(Piix3Uhci.FrNum), Is.EqualTo(1));
    }

    [Test]
    public void Ioc_SetsUsbInt_InterruptGatedByUsbIntr()
    {
        _h.StartWithTablet();
        _h.W16(Piix3Uhci.UsbIntr, 0);
        _h.Control(0, [0x80, 6, 0, 1, 0, 0, 18, 0], 18);
        Assert.That(_h.R16(Piix3Uhci.UsbSts) & Piix3Uhci.StsUsbInt, Is.Not.Zero);
        Assert.That(_h.IrqLevel, Is.False);
        _h.W16(Piix3Uhci.UsbIntr, Piix3Uhci.IntrShortPacket);
        Assert.That(_h.IrqLevel, Is.False, "USBINT came from IOC, not a short packet");
        _h.W16(Piix3Uhci.UsbIntr, Piix3Uhci.IntrIoc);
        Assert.That(_h.IrqLevel, Is.True);
        _h.W8(Piix3Uhci.UsbSts + 1, 0xFF);
        Assert.That(_h.IrqLevel, Is.True, "a write to the high byte clears nothing in the low byte");
        _h.W16(Piix3Uhci.UsbSts, Piix3Uhci.StsUsbInt);
        Assert.That(_h.IrqLevel, Is.False);
    }

    [Test]
    public void QhLoop_WithoutProgress_EndsFrame()
    {
        UsbTablet t = _h.StartWithTablet();
        _h.Control(0, [0x00, 5, 1, 0, 0, 0, 0, 0]);
        _h.Control(1, [0x00, 9, 1, 0, 0, 0, 0, 0]);
        // The QH links to itself horizontally and its element NAKs forever (tablet idle).
        _h.Memory.W32(Qh, Qh | Piix3Uhci.LinkQh);
        _h.Td(0, Piix3Uhci.LinkTerminate, Active | Cerr3, Token(UsbPid.In, 1, 1, 0, 8), Buffers);
        _h.Memory.W32(Qh + 4, Tds);
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.TdStatus(0) & (Active | Piix3Uhci.TdNak), Is.EqualTo(Active | Piix3Uhci.TdNak));
        // Once there is data the loop makes progress, the TD completes and the frame still ends.
        t.SetPointer(1, 2, 0);
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.TdStatus(0) & Active, Is.Zero);
    }

    [Test]
    public void TdLoop_EndsFrame_AtVisitLimit()
    {
        _h.StartSchedule();
        // A TD linking to itself outside any queue, inactive (skipped forever) and active to an absent device.
        _h.Td(0, TdAddress(0), 0, Token(UsbPid.In, 3, 0, 0, 8), Buffers);
        _h.Td(1, TdAddress(1), Active, Token(UsbPid.In, 3, 0, 0, 8), Buffers);
        _h.Memory.W32(FrameList, TdAddress(0));
        _h.Memory.W32(FrameList + 4, TdAddress(1));
        ushort before = _h.R16(Piix3Uhci.FrNum);
        _h.Clock.Advance(4 * Piix3Uhci.FrameNs);
        Assert.That(_h.R16(Piix3Uhci.FrNum), Is.EqualTo((before + 4) & 0x7FF));
        Assert.That(_h.TdStatus(1) & Piix3Uhci.TdCrcTimeout, Is.Not.Zero, "C_ERR 0 retries without limit");
        Assert.That(_h.TdStatus(1) & Active, Is.Not.Zero);
    }

    [Test]
    public void ByteBudget_EndsFrame()
    {
        UsbTablet t = _h.StartWithTablet();
        _h.Control(0, [0x00, 5, 1, 0, 0, 0, 0, 0]);
        // 300 GET_STATUS SETUP TDs in one depth-first queue: 8 bytes each, 2400 bytes > one frame's 1280.
        for (int i = 0; i < 300; i++)
        {
            _h.Td(i, TdAddress(i + 1) | Piix3Uhci.LinkDepth, Active, Token(UsbPid.Setup, 1, 0, 0, 8), Buffers);
        }
        new byte[] { 0x80, 0, 0, 0, 0, 0, 2, 0 }.CopyTo(_h.Memory.Bytes, (int)Buffers);
        _h.Td(300, Piix3Uhci.LinkTerminate, Active, Token(UsbPid.Setup, 1, 0, 0, 8), Buffers);
        _h.Memory.W32(Qh + 4, Tds);
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.TdStatus(0) & Active, Is.Zero);
        Assert.That(_h.TdStatus(299) & Active, Is.Not.Zero, "the rest waits for later frames");
        _h.Clock.Advance(2 * Piix3Uhci.FrameNs);
        Assert.That(_h.TdStatus(300) & Active, Is.Zero);
        Assert.That(t.Address, Is.EqualTo(1));
    }

    [Test]
    public void BreadthFirst_OneTdPerQueuePerFrame_DepthFirst_Drains()
    {
        UsbTablet t = _h.StartWithTablet();
        _h.Control(0, [0x00, 5, 1, 0, 0, 0, 0, 0]);
        new byte[] { 0x80, 0, 0, 0, 0, 0, 2, 0 }.CopyTo(_h.Memory.Bytes, (int)Buffers);
        // QH A (breadth first) → QH B (depth first), two SETUP TDs each.
        const uint qhA = 0x13000, qhB = 0x13100;
        _h.Memory.W32(Qh, qhA | Piix3Uhci.LinkQh);
        _h.Memory.W32(qhA, qhB | Piix3Uhci.LinkQh);
        _h.Memory.W32(qhA + 4, TdAddress(0));
        _h.Memory.W32(qhB, Piix3Uhci.LinkTerminate);
        _h.Memory.W32(qhB + 4, TdAddress(2));
        uint token = Token(UsbPid.Setup, 1, 0, 0, 8);
        _h.Td(0, TdAddress(1), Active, token, Buffers);
        _h.Td(1, Piix3Uhci.LinkTerminate, Active, token, Buffers);
        _h.Td(2, TdAddress(3) | Piix3Uhci.LinkDepth, Active, token, Buffers);
        _h.Td(3, Piix3Uhci.LinkTerminate, Active, token, Buffers);
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.TdStatus(0) & Active, Is.Zero);
        Assert.That(_h.TdStatus(1) & Active, Is.Not.Zero, "breadth first: next TD next frame");
        Assert.That(_h.Memory.R32(qhA + 4) & ~0xFu, Is.EqualTo(TdAddress(1)), "element advanced");
        Assert.That(_h.TdStatus(2) & Active, Is.Zero);
        Assert.That(_h.TdStatus(3) & Active, Is.Zero, "depth first: whole queue in one frame");
        Assert.That(_h.Memory.R32(qhB + 4), Is.EqualTo(Piix3Uhci.LinkTerminate));
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.TdStatus(1) & Active, Is.Zero);
        Assert.That(t.Address, Is.EqualTo(1));
    }

    [Test]
    public void ShortPacket_WithSpd_QueueStays_WithoutSpd_Advances()
    {
        _h.StartWithTablet();
        new byte[] { 0x80, 6, 0, 1, 0, 0, 18, 0 }.CopyTo(_h.Memory.Bytes, (int)Buffers);
        _h.W16(Piix3Uhci.UsbIntr, Piix3Uhci.IntrShortPacket);
        // SETUP then one 64-byte IN (device gives 18: short) then another IN.
        _h.Td(0, TdAddress(1) | Piix3Uhci.LinkDepth, Active, Token(UsbPid.Setup, 0, 0, 0, 8), Buffers);
        _h.Td(1, TdAddress(2) | Piix3Uhci.LinkDepth, Active | Spd, Token(UsbPid.In, 0, 0, 1, 64), Buffers + 0x100);
        _h.Td(2, Piix3Uhci.LinkTerminate, Active, Token(UsbPid.Out, 0, 0, 1, 0), 0);
        _h.Memory.W32(Qh + 4, Tds);
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.TdStatus(1) & 0x7FF, Is.EqualTo(17u));
        Assert.That(_h.Memory.R32(Qh + 4) & ~0xFu, Is.EqualTo(TdAddress(1)), "queue stays on the short TD");
        Assert.That(_h.TdStatus(2) & Active, Is.Not.Zero);
        Assert.That(_h.IrqLevel, Is.True, "short packet interrupt");

        _h.W16(Piix3Uhci.UsbSts, 0x3F);
        _h.Td(0, TdAddress(1) | Piix3Uhci.LinkDepth, Active, Token(UsbPid.Setup, 0, 0, 0, 8), Buffers);
        _h.Td(1, TdAddress(2) | Piix3Uhci.LinkDepth, Active, Token(UsbPid.In, 0, 0, 1, 64), Buffers + 0x100);
        _h.Td(2, Piix3Uhci.LinkTerminate, Active, Token(UsbPid.Out, 0, 0, 1, 0), 0);
        _h.Memory.W32(Qh + 4, Tds);
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.TdStatus(2) & Active, Is.Zero, "without SPD the queue carries on");
        Assert.That(_h.Memory.R32(Qh + 4), Is.EqualTo(Piix3Uhci.LinkTerminate));
        Assert.That(_h.R16(Piix3Uhci.UsbSts) & Piix3Uhci.StsUsbInt, Is.Zero);
    }

    [Test]
    public void AbsentDevice_ErrorCounterCountsDown_ThenStalls()
    {
        _h.StartSchedule();
        _h.W16(Piix3Uhci.UsbIntr, Piix3Uhci.IntrTimeoutCrc);
        _h.Td(0, Piix3Uhci.LinkTerminate, Active | (2u << 27), Token(UsbPid.In, 7, 0, 0, 8), Buffers);
        _h.Memory.W32(Qh + 4, Tds);
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.TdStatus(0), Is.EqualTo(Active | (1u << 27) | Piix3Uhci.TdCrcTimeout));
        Assert.That(_h.IrqLevel, Is.False);
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.TdStatus(0), Is.EqualTo(Piix3Uhci.TdStalled | Piix3Uhci.TdCrcTimeout));
        Assert.That(_h.R16(Piix3Uhci.UsbSts) & Piix3Uhci.StsError, Is.Not.Zero);
        Assert.That(_h.IrqLevel, Is.True);
    }

    [TestCase(0x55u, 0u)]
    [TestCase(0x69u, 0x600u)]
    public void CorruptTd_ProcessError_Halts(uint pid, uint maxLenField)
    {
        _h.StartSchedule();
        _h.W16(Piix3Uhci.UsbIntr, 0);
        _h.Td(0, Piix3Uhci.LinkTerminate, Active, (maxLenField << 21) | pid, Buffers);
        _h.Memory.W32(Qh + 4, Tds);
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.R16(Piix3Uhci.UsbSts), Is.EqualTo(Piix3Uhci.StsProcessError | Piix3Uhci.StsHalted));
        Assert.That(_h.R16(Piix3Uhci.UsbCmd) & Piix3Uhci.CmdRs, Is.Zero);
        Assert.That(_h.IrqLevel, Is.True, "process errors cannot be masked");
        Assert.That(_h.Uhci.FrameTimerPending, Is.False);
    }

    [Test]
    public void BusMasterDisabled_HostSystemError()
    {
        _h.StartSchedule();
        _h.Uhci.ConfigWrite(PciDevice.Command, 2, PciDevice.CommandIo);
        _h.Clock.Advance(Piix3Uhci.FrameNs);
        Assert.That(_h.R16(Piix3Uhci.UsbSts), Is.EqualTo(Piix3Uhci.StsHostSystemError | Piix3Uhci.StsHalted));
        Assert.That(_h.IrqLevel, Is.True);
    }

    [Test]
    public void HcReset_RestoresDefaults_PortsRedetect()
    {
        UsbTablet t = _h.StartWithTablet();
        _h.Control(0, [0x00, 5, 4, 0, 0, 0, 0, 0]);
        _h.W16(Piix3Uhci.UsbCmd, Piix3Uhci.CmdHcReset);
        Assert.That(_h.R16(Piix3Uhci.UsbCmd), Is.Zero);
        Assert.That(_h.R16(Piix3Uhci.UsbSts), Is.EqualTo(Piix3Uhci.StsHalted));
        Assert.That(_h.R32(Piix3Uhci.FlBaseAdd), Is.Zero);
        Assert.That(_h.R16(Piix3Uhci.PortSc1), Is.EqualTo(0x0083));
        Assert.That(_h.Uhci.FrameTimerPending, Is.False);
        Assert.That(t.Address, Is.Zero);
        _h.W16(Piix3Uhci.PortSc1, Piix3Uhci.PortEnable);
        _h.Control(0, [0x00, 5, 4, 0, 0, 0, 0, 0]);
        _h.W16(Piix3Uhci.UsbCmd, Piix3Uhci.CmdGReset);
        Assert.That(t.Address, Is.Zero);
    }

    [Test]
    public void Detach_WhileRunning_TransfersTimeOut()
    {
        _h.StartWithTablet();
        _h.Uhci.Detach(0);
        (_, uint[] st) = _h.Control(0, [0x80, 6, 0, 1, 0, 0, 18, 0], 18);
        Assert.That(st[0] & Piix3Uhci.TdCrcTimeout, Is.Not.Zero);
    }

    [Test]
    public void State_RoundTrip_ReDerivesIrqAndTimer()
    {
        UsbTablet t = _h.StartWithTablet();
        _h.Control(0, [0x80, 6, 0, 1, 0, 0, 18, 0], 18);
        Assert.That(_h.IrqLevel, Is.True);
        Piix3UhciState saved = _h.Uhci.Save();
        UsbTabletState tabletSaved = t.Save();

        var other = new UhciHarness();
        var t2 = new UsbTablet();
        other.Uhci.Restore(saved);
        other.Uhci.Reattach(0, t2);
        t2.Restore(tabletSaved);
        Assert.That(other.Uhci.Save(), Is.EqualTo(saved));
        Assert.That(t2.Save(), Is.EqualTo(tabletSaved));
        Assert.That(other.IrqLevel, Is.True);
        Assert.That(other.Uhci.FrameTimerPending, Is.True);
        Assert.That(other.R16(Piix3Uhci.PortSc1), Is.EqualTo(_h.R16(Piix3Uhci.PortSc1)));

        other.Uhci.Reset();
        Assert.That(other.IrqLevel, Is.False);
        Assert.That(other.Uhci.FrameTimerPending, Is.False);
        Assert.That(other.Uhci.ConfigRead(0x20, 4), Is.EqualTo(1u));
    }

    [Test]
    public void SteadyState_FramesAllocateNothing()
    {
        UsbTablet t = _h.StartWithTablet();
        _h.Control(0, [0x00, 5, 1, 0, 0, 0, 0, 0]);
        _h.Control(1, [0x00, 9, 1, 0, 0, 0, 0, 0]);
        _h.Td(0, Piix3Uhci.LinkTerminate, Active | Cerr3 | Ioc, Token(UsbPid.In, 1, 1, 0, 8), Buffers);
        _h.Memory.W32(Qh + 4, Tds);
        _h.Clock.Advance(10 * Piix3Uhci.FrameNs);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            _h.Clock.Advance(Piix3Uhci.FrameNs);
        }
        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.That(after - before, Is.Zero);
        Assert.That(_h.TdStatus(0) & Piix3Uhci.TdNak, Is.Not.Zero);
        Assert.That(t.PendingReports, Is.Zero);
    }

    [Test]
    public void Fuzz_RandomRegistersAndMemory_NeverThrows()
    {
        for (int seed = 0; seed < 40; seed++)
        {
            var rng = new Random(seed);
            var h = new UhciHarness();
            var tablet = new UsbTablet();
            h.Uhci.Attach(rng.Next(2), tablet);
            rng.NextBytes(h.Memory.Bytes);
            // Half the runs use a schedule rooted where the random data can reach devices.
            if (seed % 2 == 0)
            {
                h.StartSchedule();
                h.W16(Piix3Uhci.PortSc1, Piix3Uhci.PortEnable);
                h.W16(Piix3Uhci.PortSc2, Piix3Uhci.PortEnable);
            }
            for (int step = 0; step < 400; step++)
            {
                int size = rng.Next(3) switch { 0 => 1, 1 => 2, _ => 4 };
                int offset = rng.Next(RegionSize + 4);
                if (rng.Next(3) == 0)
                {
                    _ = h.Bus.Ports.Read((ushort)(IoBase + offset), size);
                }
                else if (rng.Next(4) == 0)
                {
                    // Mostly keep the controller running so frames execute.
                    h.W16(Piix3Uhci.UsbCmd, Piix3Uhci.CmdRs | (rng.Next(256) & ~(Piix3Uhci.CmdHcReset | Piix3Uhci.CmdGReset)));
                }
                else
                {
                    h.Bus.Ports.Write((ushort)(IoBase + offset), size, (ulong)rng.NextInt64());
                }
                if (rng.Next(5) == 0)
                {
                    tablet.SetPointer(rng.Next(-10, 40000), rng.Next(-10, 40000), rng.Next(8), rng.Next(-3, 4));
                }
                if (rng.Next(10) == 0)
                {
                    h.Uhci.ConfigWrite(rng.Next(256), 1 << rng.Next(3), (uint)rng.Next());
                }
                h.Clock.Advance(rng.Next(3) * Piix3Uhci.FrameNs);
            }
            Piix3UhciState s = h.Uhci.Save();
            var again = new UhciHarness();
            again.Uhci.Restore(s);
            Assert.That(again.Uhci.Save(), Is.EqualTo(s), $"seed {seed}");
        }
    }

    private const int RegionSize = Piix3Uhci.RegionSize;
}
