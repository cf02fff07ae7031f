using Colo.Core.Io;
using Colo.Core.Memory;

namespace Colo.Devices.Pci;

/// <summary>
/// PCI bus 0 of a PC: up to 32 slots × 8 functions, configuration cycles dispatched by device/function number, BARs
/// mapped into the port and memory spaces as the guest programs them, and INTx pins handed to the board's router,
/// which knows the chipset's swizzle (the bus only says which slot and pin changed).
/// </summary>
public sealed class PciBus
{
    private readonly PciDevice?[] _functions = new PciDevice?[256];
    private readonly Dictionary<(PciDevice, int), object> _mapped = [];

    /// <summary>Creates bus 0 over the machine's port space, MMIO space and memory (for bus-master DMA).</summary>
    public PciBus(PortIoSpace ports, MmioSpace mmio, IPhysicalMemory memory)
    {
        Ports = ports;
        Mmio = mmio;
        Memory = memory;
    }

    /// <summary>Port space I/O BARs map into.</summary>
    public PortIoSpace Ports { get; }

    /// <summary>Memory space memory BARs map into.</summary>
    public MmioSpace Mmio { get; }

    /// <summary>What bus-master DMA reads and writes.</summary>
    public IPhysicalMemory Memory { get; }

    /// <summary>
    /// Called with (device, pin 0–3 for INTA–INTD, level) whenever a function's effective INTx level changes; the
    /// board's interrupt router sets it.
    /// </summary>
    public Action<PciDevice, int, bool>? IntxChanged { get; set; }

    /// <summary>The plugged functions in device/function order.</summary>
    public IEnumerable<PciDevice> Devices
    {
        get
        {
            foreach (PciDevice? d in _functions)
            {
                if (d is not null)
                {
                    yield return d;
                }
            }
        }
    }

    /// <summary>The function at <paramref name="devFn"/>, if any.</summary>
    public PciDevice? Find(int devFn) => devFn is >= 0 and < 256 ? _functions[devFn] : null;

    /// <summary>The first slot (from 1; slot 0 is the host bridge's) with no function in it, or -1 when full.</summary>
    public int FreeSlot()
    {
        for (int slot = 1; slot < 32; slot++)
        {
            if (_functions[slot << 3] is null)
            {
                return slot;
            }
        }
        return -1;
    }

    /// <summary>Plugs <paramref name="device"/> at <paramref name="devFn"/>; QEMU's error text when occupied.</summary>
    public void Plug(PciDevice device, int devFn)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(devFn);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(devFn, 255);
        if (_functions[devFn] is PciDevice existing)
        {
            throw new InvalidOperationException(
                $"PCI: slot {devFn >> 3} function {devFn & 7} not available for {device.Name}, in use by {existing.Name}");
        }
        _functions[devFn] = device;
        device.DevFn = devFn;
        device.Bus = this;
        UpdateMappings(device);
        UpdateIntx(device);
    }

    /// <summary>Unplugs a function: its BARs stop decoding and its INTx drops.</summary>
    public void Unplug(PciDevice device)
    {
        if (device.Bus != this)
        {
            return;
        }
        foreach (PciDevice.Bar? bar in device.Bars)
        {
            if (bar is not null)
            {
                Unmap(device, bar.Index);
            }
        }
        if (device.EffectiveIntx)
        {
            IntxChanged?.Invoke(device, PinOf(device), false);
        }
        _functions[device.DevFn] = null;
        device.Bus = null;
        device.DevFn = -1;
    }

    /// <summary>A configuration read: all-ones where no function answers, as a master abort does.</summary>
    public uint ConfigRead(int devFn, int offset, int size)
    {
        PciDevice? d = Find(devFn);
        if (d is null)
        {
            return size >= 4 ? uint.MaxValue : (1u << (8 * size)) - 1;
        }
        return d.ConfigRead(offset, size);
    }

    /// <summary>A configuration write; dropped where no function answers.</summary>
    public void ConfigWrite(int devFn, int offset, int size, uint value) => Find(devFn)?.ConfigWrite(offset, size, value);

    /// <summary>Re-derives where each of <paramref name="device"/>'s BARs decodes.</summary>
    internal void UpdateMappings(PciDevice device)
    {
        if (device.Bus != this)
        {
            return;
        }
        foreach (PciDevice.Bar? bar in device.Bars)
        {
            if (bar is null)
            {
                continue;
            }
            ulong? address = device.BarAddress(bar);
            Unmap(device, bar.Index);
            if (address is ulong at)
            {
                _mapped[(device, bar.Index)] = bar.Kind == PciBarKind.Io
                    ? Ports.Map((ushort)at, bar.Region)
                    : Mmio.Map(at, bar.Region);
            }
        }
    }

    /// <summary>Tells the router the function's effective INTx level.</summary>
    internal void UpdateIntx(PciDevice device)
    {
        if (device.Bus == this)
        {
            int pin = PinOf(device);
            if (pin >= 0)
            {
                IntxChanged?.Invoke(device, pin, device.EffectiveIntx);
            }
        }
    }

    private static int PinOf(PciDevice device) => device.Config[PciDevice.InterruptPin] - 1;

    private void Unmap(PciDevice device, int index)
    {
        if (_mapped.Remove((device, index), out object? mapping))
        {
            switch (mapping)
            {
                case PortIoSpace.Mapping p:
                    Ports.Unmap(p);
                    break;
                case MmioSpace.Mapping m:
                    Mmio.Unmap(m);
                    break;
            }
        }
    }
}
