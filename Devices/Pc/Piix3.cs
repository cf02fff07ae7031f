using Colo.Core.Io;
using Colo.Devices.Pci;

namespace Colo.Devices.Pc;

/// <summary>Saved PIIX3 ISA bridge state: configuration space (the PIRQ route registers live there) and RCR.</summary>
public sealed record Piix3State(PciDeviceState Pci, byte ResetControl)
{
    public const string Section = "PIIX3";
    public const int Version = 3;
}

/// <summary>
/// Intel 82371SB PIIX3 function 0, the PCI-to-ISA bridge (PCI 00:01.0, 8086:7000, multi-function): the PIRQA–D
/// route control registers at 0x60–0x63 (datasheet 2.2.8; bit 7 disables the route, bits 3:0 pick the ISA IRQ)
/// that the board's interrupt router reads, and the reset control register at port 0xCF9 (bit 2 starts a reset).
/// The ISA devices themselves (PIC, PIT, RTC, ...) are separate models the board maps behind it.
/// </summary>
public sealed class Piix3 : PciDevice
{
    /// <summary>PIRQA route control; PIRQB–D follow.</summary>
    public const int PirqRouteControl = 0x60;

    /// <summary>Route disabled.</summary>
    public const byte PirqDisable = 0x80;

    private const byte RcrSystemReset = 0x02;
    private const byte RcrResetCpu = 0x04;

    private readonly Action _reset;
    private byte _resetControl;

    /// <param name="reset">Called when the guest requests a system reset through RCR.</param>
    public Piix3(Action reset)
        : base("PIIX3", 0x8086, 0x7000, 0x00, 0x060100)
    {
        _reset = reset;
        SetByte(HeaderType, HeaderTypeMultiFunction);
        for (int i = 0; i < 4; i++)
        {
            SetByte(PirqRouteControl + i, PirqDisable);
            SetByteMask(PirqRouteControl + i, 0x8F);
        }
        ResetControlRegion = new IoRegion("piix3-reset-control", 1, (_, _) => _resetControl, (_, _, v) => WriteResetControl((byte)v), 1, 1);
        FinishInit();
    }

    /// <summary>Raised after a guest write changed a PIRQ route, so the router re-derives ISA levels.</summary>
    public event Action? RoutesChanged;

    /// <summary>The RCR register (board maps it at 0xCF9).</summary>
    public IoRegion ResetControlRegion { get; }

    /// <summary>ISA IRQ that PIRQ <paramref name="pirq"/> (0–3) drives, or -1 when the route is disabled.</summary>
    public int PirqToIrq(int pirq)
    {
        byte route = Config[PirqRouteControl + pirq];
        return (route & PirqDisable) != 0 ? -1 : route & 0x0F;
    }

    /// <inheritdoc/>
    public override void ConfigWrite(int offset, int size, uint value)
    {
        base.ConfigWrite(offset, size, value);
        if (offset < PirqRouteControl + 4 && offset + size > PirqRouteControl)
        {
            RoutesChanged?.Invoke();
        }
    }

    /// <inheritdoc/>
    public override void Reset()
    {
        base.Reset();
        _resetControl = 0;
        RoutesChanged?.Invoke();
    }

    public Piix3State Save() => new(SavePci(), _resetControl);

    public void Restore(Piix3State state)
    {
        RestorePci(state.Pci);
        _resetControl = state.ResetControl;
        RoutesChanged?.Invoke();
    }

    private void WriteResetControl(byte value)
    {
        // RCR bit 2 going high starts the reset; bit 1 picks hard vs soft, which a VM does not distinguish.
        bool start = (value & RcrResetCpu) != 0 && (_resetControl & RcrResetCpu) == 0;
        _resetControl = (byte)(value & RcrSystemReset);
        if (start)
        {
            _reset();
        }
    }
}
