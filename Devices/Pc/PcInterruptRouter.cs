using Colo.Core.Irq;
using Colo.Devices.Interrupt;
using Colo.Devices.Pci;

namespace Colo.Devices.Pc;

/// <summary>
/// The PC's interrupt wiring, as QEMU's <c>pc</c> builds it: ISA IRQ lines 0–15 go to the 8259 pair and to the
/// IOAPIC (ISA IRQ 0 on IOAPIC pin 2, the MADT's override); PCI INTx pins are swizzled onto PIRQA–D by slot
/// (PIRQ = (slot + pin − 1) mod 4, which SeaBIOS and the DSDT's _PRT assume), each PIRQ drives the ISA IRQ its
/// PIIX3 route register names (shared, wire-OR) and IOAPIC pin 16 + PIRQ. The IOAPIC side can be intercepted, as
/// qtest's <c>irq_intercept_in ioapic</c> does.
/// </summary>
public sealed class PcInterruptRouter
{
    public const int IsaIrqs = 16;

    private readonly I8259Pic _pic;
    private readonly IoApic _ioapic;
    private readonly Piix3 _piix3;
    private readonly IrqLine[] _isa = new IrqLine[IsaIrqs];
    private readonly bool[] _isaDevice = new bool[IsaIrqs];
    private readonly bool[] _isaOut = new bool[IsaIrqs];
    private readonly int[] _pirqCount = new int[4];
    private readonly bool[] _pirqOut = new bool[4];
    private readonly Dictionary<PciDevice, int> _pciAsserted = [];
    private readonly bool[] _ioapicLevel = new bool[IoApic.Pins];

    public PcInterruptRouter(I8259Pic pic, IoApic ioapic, Piix3 piix3, PciBus bus)
    {
        _pic = pic;
        _ioapic = ioapic;
        _piix3 = piix3;
        for (int irq = 0; irq < IsaIrqs; irq++)
        {
            int n = irq;
            _isa[irq] = new IrqLine(level =>
            {
                _isaDevice[n] = level;
                UpdateIsa(n);
            });
        }
        bus.IntxChanged = OnIntx;
        piix3.RoutesChanged += () =>
        {
            for (int irq = 0; irq < IsaIrqs; irq++)
            {
                UpdateIsa(irq);
            }
        };
    }

    /// <summary>
    /// When set, IOAPIC input changes go here (pin, level) instead of to the IOAPIC: qtest's interception.
    /// </summary>
    public Action<int, bool>? IoApicInterceptor { get; set; }

    /// <summary>The ISA IRQ line <paramref name="irq"/> a device drives.</summary>
    public IrqLine Isa(int irq) => _isa[irq];

    /// <summary>The level each IOAPIC input pin last saw (for qtest and tests).</summary>
    public bool IoApicLevel(int pin) => _ioapicLevel[pin];

    /// <summary>Drives IOAPIC pin <paramref name="pin"/> directly (qtest's <c>set_irq_in</c>).</summary>
    public void SetIoApicPin(int pin, bool level) => ToIoApic(pin, level);

    /// <summary>Which PIRQ a slot's INTx pin (0 = INTA) lands on.</summary>
    public static int Swizzle(int slot, int pin) => (slot + pin - 1) & 3;

    private void OnIntx(PciDevice device, int pin, bool level)
    {
        int pirq = Swizzle(device.DevFn >> 3, pin);
        bool was = _pciAsserted.ContainsKey(device);
        if (level == was)
        {
            return;
        }
        if (level)
        {
            _pciAsserted[device] = pirq;
            _pirqCount[pirq]++;
        }
        else
        {
            pirq = _pciAsserted[device];
            _pciAsserted.Remove(device);
            _pirqCount[pirq]--;
        }
        bool pirqLevel = _pirqCount[pirq] > 0;
        if (pirqLevel == _pirqOut[pirq])
        {
            return;
        }
        _pirqOut[pirq] = pirqLevel;
        ToIoApic(16 + pirq, pirqLevel);
        int isaIrq = _piix3.PirqToIrq(pirq);
        if (isaIrq >= 0)
        {
            UpdateIsa(isaIrq);
        }
    }

    private void UpdateIsa(int irq)
    {
        bool level = _isaDevice[irq];
        for (int pirq = 0; pirq < 4 && !level; pirq++)
        {
            level = _pirqOut[pirq] && _piix3.PirqToIrq(pirq) == irq;
        }
        if (level != _isaOut[irq])
        {
            _isaOut[irq] = level;
            _pic.SetIrq(irq, level);
        }
        // The IOAPIC's ISA pins see only ISA devices; PCI reaches it on pins 16–19 (PIRQ routing is a PIC-mode path).
        if (irq != 2)
        {
            ToIoApic(irq == 0 ? 2 : irq, _isaDevice[irq]);
        }
    }

    private void ToIoApic(int pin, bool level)
    {
        if (_ioapicLevel[pin] == level)
        {
            return;
        }
        _ioapicLevel[pin] = level;
        if (IoApicInterceptor is { } intercept)
        {
            intercept(pin, level);
        }
        else
        {
            _ioapic.SetIrq(pin, level);
        }
    }
}
