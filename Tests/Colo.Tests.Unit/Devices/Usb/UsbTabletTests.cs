using System.Text;
using Colo.Devices.Usb;

namespace Colo.Tests.Unit.Devices.Usb;

/// <summary>
/// Enumeration and reports of the tablet through the controller. Expected bytes and TD status words were captured
/// from QEMU 7.2 (qemu-system-x86_64 -usb -device usb-tablet, schedules built the same way over qtest).
/// </summary>
[TestFixture]
public sealed class UsbTabletTests
{
    private UhciHarness _h = null!;
    private UsbTablet _tablet = null!;

    [SetUp]
    public void SetUp()
    {
        _h = new UhciHarness();
        _tablet = _h.StartWithTablet();
    }

    private static byte[] Setup(int type, int request, int value, int index, int length) =>
        [(byte)type, (byte)request, (byte)value, (byte)(value >> 8), (byte)index, (byte)(index >> 8), (byte)length, (byte)(length >> 8)];

    private static string Hex(byte[] b) => Convert.ToHexString(b).ToLowerInvariant();

    private static string[] Words(uint[] s) => Array.ConvertAll(s, x => x.ToString("x8"));

    private void Configure()
    {
        _h.Control(0, Setup(0x00, 5, 5, 0, 0));
        _h.Control(5, Setup(0x00, 9, 1, 0, 0));
    }

    [Test]
    public void GetDescriptor_Device_ExactBytesAndTdStatus()
    {
        (byte[] data, uint[] st) = _h.Control(0, Setup(0x80, 6, 0x0100, 0, 18), 18);
        Assert.That(Hex(data), Is.EqualTo("120100020000000827060100000001030a01"));
        Assert.That(Words(st), Is.EqualTo(new[] { "18000007", "38000007", "38000007", "38000001", "190007ff" }));
    }

    [Test]
    public void GetDescriptor_Configuration_ShortHeaderThenFull()
    {
        (byte[] head, _) = _h.Control(0, Setup(0x80, 6, 0x0200, 0, 9), 9);
        Assert.That(Hex(head), Is.EqualTo("09022200010107a032"));
        (byte[] all, uint[] st) = _h.Control(0, Setup(0x80, 6, 0x0200, 0, 255), 64);
        Assert.That(Hex(all), Is.EqualTo(
            "09022200010107a032" + "090400000103000000" + "092101000001224a00" + "0705810308000a"));
        // The 34-byte answer ends in a 2-byte packet: short with SPD, so the queue stops there.
        Assert.That(Words(st), Is.EqualTo(new[]
        {
            "18000007", "38000007", "38000007", "38000007", "38000007", "38000001", "38800000", "38800000", "38800000",
            "19800000",
        }));
        Assert.That(_h.R16(Piix3Uhci.UsbSts) & Piix3Uhci.StsUsbInt, Is.Not.Zero, "short packet interrupt");
    }

    [TestCase(0, "04030904")]
    [TestCase(1, "0a03510045004d005500")]
    [TestCase(3, "2003510045004d005500200055005300420020005400610062006c0065007400")]
    [TestCase(5, "060334003200")]
    [TestCase(7, "160348004900440020005400610062006c0065007400")]
    public void GetDescriptor_String(int index, string expected)
    {
        (byte[] data, _) = _h.Control(0, Setup(0x80, 6, 0x0300 | index, index == 0 ? 0 : 0x409, 255), 64);
        Assert.That(Hex(data), Is.EqualTo(expected));
    }

    [Test]
    public void GetDescriptor_Serial_NamesControllerAndPort()
    {
        (byte[] data, _) = _h.Control(0, Setup(0x80, 6, 0x030A, 0x409, 255), 64);
        Assert.That(data[0], Is.EqualTo(data.Length));
        Assert.That(Encoding.Unicode.GetString(data, 2, data.Length - 2), Is.EqualTo("28754-0000:00:01.2-1"));
    }

    [Test]
    public void GetDescriptor_UnknownString_ZeroLengthData()
    {
        (byte[] data, uint[] st) = _h.Control(0, Setup(0x80, 6, 0x030C, 0x409, 255), 16);
        Assert.That(data, Is.Empty);
        Assert.That(Words(st)[..2], Is.EqualTo(new[] { "18000007", "380007ff" }));
    }

    [Test]
    public void GetDescriptor_QualifierAndOtherSpeed()
    {
        Assert.That(Hex(_h.Control(0, Setup(0x80, 6, 0x0600, 0, 10), 10).Data), Is.EqualTo("0a060002000000400100"));
        Assert.That(Hex(_h.Control(0, Setup(0x80, 6, 0x0700, 0, 64), 64).Data), Is.EqualTo(
            "09072200010107a032090400000103000000092101000001224a0007058103080004"));
    }

    [Test]
    public void SetAddress_TakesEffectAfterStatus_OldAddressTimesOut()
    {
        (_, uint[] st) = _h.Control(0, Setup(0x00, 5, 5, 0, 0));
        Assert.That(Words(st), Is.EqualTo(new[] { "18000007", "190007ff" }));
        Assert.That(_tablet.Address, Is.EqualTo(5));
        (byte[] d5, _) = _h.Control(5, Setup(0x80, 6, 0x0100, 0, 18), 18);
        Assert.That(d5, Has.Length.EqualTo(18));
        (_, uint[] st0) = _h.Control(0, Setup(0x80, 6, 0x0100, 0, 18), 18);
        // Nobody answers address 0 now: three timeouts count C_ERR down, then the TD stalls (§3.2.2).
        Assert.That(st0[0] & (UhciHarness.Active | Piix3Uhci.TdCrcTimeout | Piix3Uhci.TdStalled | (3u << 27)),
            Is.EqualTo(Piix3Uhci.TdCrcTimeout | Piix3Uhci.TdStalled));
        Assert.That(_h.R16(Piix3Uhci.UsbSts) & Piix3Uhci.StsError, Is.Not.Zero);
    }

    [Test]
    public void SetConfiguration_GetConfiguration_GetInterface()
    {
        Assert.That(Hex(_h.Control(0, Setup(0x80, 8, 0, 0, 1), 1).Data), Is.EqualTo("00"));
        Configure();
        Assert.That(_tablet.Configuration, Is.EqualTo(1));
        Assert.That(Hex(_h.Control(5, Setup(0x80, 8, 0, 0, 1), 1).Data), Is.EqualTo("01"));
        Assert.That(Hex(_h.Control(5, Setup(0x81, 10, 0, 0, 1), 1).Data), Is.EqualTo("00"));
        (_, uint[] bad) = _h.Control(5, Setup(0x00, 9, 7, 0, 0));
        Assert.That(bad[1], Is.EqualTo(0x19400000u), "unknown configuration stalls the status stage");
    }

    [Test]
    public void GetStatus_RemoteWakeupFeature()
    {
        Assert.That(Hex(_h.Control(0, Setup(0x80, 0, 0, 0, 2), 2).Data), Is.EqualTo("0000"));
        _h.Control(0, Setup(0x00, 3, 1, 0, 0));
        Assert.That(Hex(_h.Control(0, Setup(0x80, 0, 0, 0, 2), 2).Data), Is.EqualTo("0200"));
        _h.Control(0, Setup(0x00, 1, 1, 0, 0));
        Assert.That(Hex(_h.Control(0, Setup(0x80, 0, 0, 0, 2), 2).Data), Is.EqualTo("0000"));
    }

    [Test]
    public void UnsupportedInRequest_StallsSetup()
    {
        Assert.That(Words(_h.Control(0, Setup(0x81, 0, 0, 0, 2), 2).Status), Is.EqualTo(new[] { "18400000", "38800000", "19800000" }));
        Assert.That(Words(_h.Control(0, Setup(0x80, 0x33, 0, 0, 2), 2).Status)[0], Is.EqualTo("18400000"));
        Assert.That(Words(_h.Control(0, Setup(0x81, 6, 0x2100, 0, 9), 9).Status)[0], Is.EqualTo("18400000"));
    }

    [Test]
    public void HidRequests_AsQemu()
    {
        Configure();
        (byte[] report, uint[] st) = _h.Control(5, Setup(0x81, 6, 0x2200, 0, 0x80), 0x80);
        Assert.That(Hex(report), Is.EqualTo(
            "05010902a1010901a10005091901290315002501950375018102950175058101050109300931150026ff7f350046ff7f75109502" +
            "8102050109381581257f35004500750895018106c0c0"));
        Assert.That(st[0], Is.EqualTo(0x18000007u));
        (byte[] get, uint[] gst) = _h.Control(5, Setup(0xA1, 1, 0x0100, 0, 6), 6);
        Assert.That(Hex(get), Is.EqualTo("000000000000"));
        Assert.That(Words(gst), Is.EqualTo(new[] { "18000007", "38000005", "190007ff" }));
        Assert.That(Hex(_h.Control(5, Setup(0xA1, 2, 0, 0, 1), 1).Data), Is.EqualTo("00"));
        Assert.That(Words(_h.Control(5, Setup(0xA1, 3, 0, 0, 1), 1).Status)[0], Is.EqualTo("18400000"));
        Assert.That(Words(_h.Control(5, Setup(0x21, 0x0A, 0, 0, 0)).Status), Is.EqualTo(new[] { "18000007", "190007ff" }));
        Assert.That(Words(_h.Control(5, Setup(0x21, 0x0B, 1, 0, 0)).Status), Is.EqualTo(new[] { "18000007", "19400000" }));
    }

    [Test]
    public void InterruptIn_NaksWhenIdle_ReportsAfterSetPointer()
    {
        Configure();
        _h.W16(Piix3Uhci.UsbSts, 0x3F);
        (uint idle, _) = _h.InterruptIn(5, 0);
        Assert.That(idle, Is.EqualTo(0x39880000u), "NAK: still active, NAK bit set");
        Assert.That(_h.IrqLevel, Is.False);

        _tablet.SetPointer(0x1234, 0x5678, 0);
        (uint moved, byte[] data) = _h.InterruptIn(5, 0);
        Assert.That(moved, Is.EqualTo(0x39000005u));
        Assert.That(Hex(data), Is.EqualTo("003412785600"));
        Assert.That(_h.R16(Piix3Uhci.UsbSts), Is.EqualTo(Piix3Uhci.StsUsbInt));
        Assert.That(_h.IrqLevel, Is.True);
        Assert.That(_h.Pin, Is.EqualTo(3), "INTD");
        _h.W16(Piix3Uhci.UsbSts, Piix3Uhci.StsUsbInt);
        Assert.That(_h.IrqLevel, Is.False);

        Assert.That(_h.InterruptIn(5, 1).Status, Is.EqualTo(0x39880000u));
        _tablet.SetPointer(0x1234, 0x5678, UsbTablet.ButtonLeft, 1);
        Assert.That(Hex(_h.InterruptIn(5, 1).Data), Is.EqualTo("013412785601"));
        _tablet.SetPointer(0x1234, 0x5678, 7, -1);
        Assert.That(Hex(_h.InterruptIn(5, 0).Data), Is.EqualTo("0734127856ff"));
        Assert.That(Hex(_h.Control(5, Setup(0xA1, 1, 0x0100, 0, 6), 6).Data), Is.EqualTo("073412785600"));
    }

    [Test]
    public void SetPointer_QueuesButtonChanges_MergesMoves()
    {
        Configure();
        _tablet.SetPointer(10, 10, 0);
        _tablet.SetPointer(20, 20, 0);
        _tablet.SetPointer(20, 20, UsbTablet.ButtonLeft);
        _tablet.SetPointer(20, 20, 0);
        Assert.That(_tablet.PendingReports, Is.EqualTo(3));
        Assert.That(Hex(_h.InterruptIn(5, 0).Data), Is.EqualTo("001400140000"));
        Assert.That(Hex(_h.InterruptIn(5, 1).Data), Is.EqualTo("011400140000"));
        Assert.That(Hex(_h.InterruptIn(5, 0).Data), Is.EqualTo("001400140000"));
        Assert.That(_h.InterruptIn(5, 1).Status & UhciHarness.Active, Is.Not.Zero);
        _tablet.SetPointer(-5, 99999, 0);
        Assert.That(Hex(_h.InterruptIn(5, 1).Data), Is.EqualTo("000000ff7f00"), "clamped to 0..0x7FFF");
    }

    [Test]
    public void InterruptIn_BeforeConfiguration_Answers_OtherEndpointsStall_AsQemu()
    {
        Assert.That(_h.InterruptIn(0, 0).Status, Is.EqualTo(0x39880000u));
        _tablet.SetPointer(0x1234, 0x5678, 0);
        Assert.That(_h.InterruptIn(0, 0), Is.EqualTo((0x39000005u, Convert.FromHexString("003412785600"))).Using<(uint, byte[])>(
            (a, b) => a.Item1 == b.Item1 && a.Item2.AsSpan().SequenceEqual(b.Item2)));
        _tablet.SetPointer(0x10, 0x5678, 0);
        (uint st4, byte[] d4) = _h.InterruptIn(0, 0, 4);
        Assert.That(st4, Is.EqualTo(0x39000003u), "a 4-byte TD gets the first 4 bytes, no babble");
        Assert.That(Hex(d4), Is.EqualTo("00100078"));
        _h.Td(0, Piix3Uhci.LinkTerminate, UhciHarness.Active | UhciHarness.Cerr3 | UhciHarness.Spd | UhciHarness.Ioc,
            UhciHarness.Token(UsbPid.In, 0, 2, 0, 8), UhciHarness.Buffers);
        _h.RunQueue(1);
        Assert.That(_h.TdStatus(0), Is.EqualTo(0x39400000u), "endpoint 2 stalls");
        _h.Td(0, Piix3Uhci.LinkTerminate, UhciHarness.Active | UhciHarness.Cerr3 | UhciHarness.Spd | UhciHarness.Ioc,
            UhciHarness.Token(UsbPid.Out, 0, 1, 0, 8), UhciHarness.Buffers);
        _h.RunQueue(1);
        Assert.That(_h.TdStatus(0), Is.EqualTo(0x39400000u), "OUT on endpoint 1 stalls");
    }

    [Test]
    public void SetIdle_NonZeroRate_RepeatsReport()
    {
        Configure();
        _h.Control(5, Setup(0x21, 0x0A, 0x0100, 0, 0)); // 4 ms
        _h.Clock.Advance(5_000_000);
        (uint st, byte[] data) = _h.InterruptIn(5, 0);
        Assert.That(st & UhciHarness.Active, Is.Zero);
        Assert.That(data, Has.Length.EqualTo(6));
        Assert.That(_h.InterruptIn(5, 1).Status & UhciHarness.Active, Is.Not.Zero, "not due yet");
    }

    [Test]
    public void RemoteWakeup_SuspendedPort_ResumeDetect()
    {
        Configure();
        _h.Control(5, Setup(0x00, 3, 1, 0, 0));
        _h.W16(Piix3Uhci.PortSc1, Piix3Uhci.PortEnable | Piix3Uhci.PortSuspend);
        _h.W16(Piix3Uhci.UsbCmd, 0);
        _h.W16(Piix3Uhci.UsbCmd, Piix3Uhci.CmdEgsm);
        _tablet.SetPointer(3, 3, 0);
        Assert.That(_h.R16(Piix3Uhci.PortSc1) & Piix3Uhci.PortResumeDetect, Is.Not.Zero);
        Assert.That(_h.R16(Piix3Uhci.UsbSts) & Piix3Uhci.StsResumeDetect, Is.Not.Zero);
        Assert.That(_h.IrqLevel, Is.True, "resume interrupt enabled");
    }

    [Test]
    public void Tablet_StateRoundTrip()
    {
        Configure();
        _h.Control(5, Setup(0x21, 0x0A, 0x0200, 0, 0));
        _tablet.SetPointer(100, 200, 1, 2);
        _tablet.SetPointer(100, 200, 0);
        UsbTabletState saved = _tablet.Save();
        var copy = new UsbTablet();
        copy.Restore(saved);
        Assert.That(copy.Save(), Is.EqualTo(saved));
        Assert.That(copy.Address, Is.EqualTo(5));
        Assert.That(copy.PendingReports, Is.EqualTo(2));
        copy.PowerOnReset();
        Assert.That(copy.Save(), Is.EqualTo(UsbTabletState.PowerOn));
    }

    [Test]
    public void ControlTransfer_SurvivesSaveRestoreMidDataStage()
    {
        var t = new UsbTablet();
        byte[] setup = Setup(0x80, 6, 0x0100, 0, 18);
        Assert.That(t.HandlePacket(UsbPid.Setup, 0, setup, out _), Is.EqualTo(UsbResult.Ack));
        var first = new byte[8];
        t.HandlePacket(UsbPid.In, 0, first, out _);
        var copy = new UsbTablet();
        copy.Restore(t.Save());
        var rest = new byte[16];
        Assert.That(copy.HandlePacket(UsbPid.In, 0, rest, out int n), Is.EqualTo(UsbResult.Ack));
        Assert.That(Hex(first) + Hex(rest[..n]), Is.EqualTo("120100020000000827060100000001030a01"));
        Assert.That(copy.HandlePacket(UsbPid.Out, 0, [], out _), Is.EqualTo(UsbResult.Ack));
    }

    [Test]
    public void Fuzz_RandomPackets_NeverThrow()
    {
        var rng = new Random(1234);
        var t = new UsbTablet();
        var buffer = new byte[1280];
        for (int i = 0; i < 200_000; i++)
        {
            int kind = rng.Next(4);
            int length = rng.Next(3) == 0 ? rng.Next(1281) : rng.Next(9);
            rng.NextBytes(buffer.AsSpan(0, length));
            if (kind == 0 && length == 8 && rng.Next(2) == 0)
            {
                // Bias toward meaningful requests: standard, class and bogus types with small lengths.
                buffer[0] = (byte)(rng.Next(4) switch { 0 => 0x80, 1 => 0x00, 2 => 0xA1, _ => 0x21 } | (rng.Next(8) == 0 ? 1 : 0));
                buffer[1] = (byte)rng.Next(12);
                buffer[3] = (byte)rng.Next(8);
                buffer[7] = 0;
            }
            UsbPid pid = kind switch { 0 => UsbPid.Setup, 1 => UsbPid.In, _ => UsbPid.Out };
            UsbResult r = t.HandlePacket(pid, rng.Next(3) == 0 ? rng.Next(16) : 0, buffer.AsSpan(0, length), out int n);
            Assert.That(n, Is.InRange(0, length), $"step {i} {r}");
            if (rng.Next(50) == 0)
            {
                t.SetPointer(rng.Next(), rng.Next(), rng.Next(), rng.Next(-300, 300));
            }
            if (rng.Next(1000) == 0)
            {
                t.Restore(t.Save());
            }
        }
    }
}
