using System.Text;
using Colo.Core.Chardev;
using Colo.Core.Cpu;
using Colo.Core.Io;
using Colo.Core.Irq;
using Colo.Core.Loop;
using Colo.Core.Memory;
using Colo.Core.Time;
using Colo.Block.Graph;
using Colo.Devices.Acpi;
using Colo.Devices.Char;
using Colo.Devices.Firmware;
using Colo.Devices.Pc.Boot;
using Colo.Devices.Ide;
using Colo.Devices.Input;
using Colo.Devices.Interrupt;
using Colo.Devices.Misc;
using Colo.Devices.Pci;
using Colo.Devices.Rtc;
using Colo.Devices.Timer;
using Colo.Devices.Usb;

namespace Colo.Devices.Pc;

/// <summary>What the <c>pc</c> board is built from.</summary>
/// <param name="RamSize">Guest RAM in bytes (<c>-m</c>).</param>
/// <param name="Cpus">vCPUs (<c>-smp</c>), written to CMOS for SeaBIOS.</param>
/// <param name="Bios">The system BIOS image (mapped below 4 GiB, its last 128 KiB also below 1 MiB), or null.</param>
/// <param name="Serials">Chardevs of COM1..COM4 in order (null: port present, output discarded).</param>
/// <param name="Kernel">A <c>-kernel</c> image to start directly (no firmware runs), or null to boot the BIOS.</param>
public sealed record PcBoardOptions(ulong RamSize, int Cpus, ReadOnlyMemory<byte>? Bios, IReadOnlyList<Chardev?> Serials, KernelBoot? Kernel = null);

/// <summary>What <c>-kernel</c>, <c>-initrd</c> and <c>-append</c> gave.</summary>
/// <param name="Path">The kernel's file name (multiboot passes it as argv[0]).</param>
/// <param name="Image">The kernel file.</param>
/// <param name="Initrd">The initrd (bzImage, PVH) or null.</param>
/// <param name="Modules">Multiboot modules from <c>-initrd "a arg,b"</c>.</param>
/// <param name="Append">The command line.</param>
public sealed record KernelBoot(string Path, byte[] Image, byte[]? Initrd, IReadOnlyList<MultibootModule> Modules, string Append);

/// <summary>
/// QEMU's <c>pc</c> (i440FX + PIIX3) board: the memory map (RAM below the PCI hole and above 4 GiB, BIOS ROM at
/// the top of 4 GiB with its alias under 1 MiB, the legacy window steered by PAM), port and MMIO dispatch, PCI bus 0
/// with the host bridge at 00.0 and the ISA bridge at 01.0, the ISA devices at their classic ports and IRQs, and the
/// interrupt routing. Implements <see cref="IIoBus"/> for the vCPU backends; every access takes <see cref="Lock"/>
/// (QEMU's BQL), which the main loop also holds while it runs device timers and qtest commands.
/// </summary>
public sealed class PcBoard : IIoBus, IDisposable
{
    // Classic PC addresses and IRQs (the board, not the devices, knows them).
    public const ushort PicMasterPort = 0x20;
    public const ushort PicSlavePort = 0xA0;
    public const ushort ElcrPort = 0x4D0;
    public const ushort PitPort = 0x40;
    public const ushort Port61 = 0x61;
    public const ushort KeyboardDataPort = 0x60;
    public const ushort KeyboardCommandPort = 0x64;
    public const int KeyboardIrq = 1;
    public const int MouseIrq = 12;
    public const ushort RtcPort = 0x70;
    public const ushort Port92Address = 0x92;
    public const ushort PciConfigAddress = 0xCF8;
    public const ushort PciConfigData = 0xCFC;
    public const ushort ResetControlPort = 0xCF9;
    public const ulong IoApicAddress = 0xFEC00000;
    public const ushort FwCfgPort = 0x510;
    public const int PitIrq = 0;
    public const int RtcIrq = 8;
    public const ushort IdePrimaryCommand = 0x1F0;
    public const ushort IdePrimaryControl = 0x3F6;
    public const ushort IdeSecondaryCommand = 0x170;
    public const ushort IdeSecondaryControl = 0x376;
    public const int IdePrimaryIrq = 14;
    public const int IdeSecondaryIrq = 15;
    public const ushort Gpe0Port = PcAcpiTables.Gpe0Base;
    public const ushort ApmPort = PcAcpiTables.SmiCommandPort;

    /// <summary>The PM I/O base SeaBIOS programs (its PORT_ACPI_PM_BASE); Colo uses it too for <c>-kernel</c> boots.</summary>
    public const ushort DefaultPmIoBase = 0x600;

    /// <summary>Where a <c>-kernel</c> boot finds the RSDP: the start of the EBDA, which Linux scans first.</summary>
    public const ulong DirectBootRsdpAddress = 0x9FC00;

    /// <summary>Size of the ACPI window a <c>-kernel</c> boot reserves at the top of RAM below 4 GiB.</summary>
    public const ulong DirectBootAcpiSize = PcAcpiTables.TablesBlobSize;
    public static readonly ushort[] SerialPorts = [0x3F8, 0x2F8, 0x3E8, 0x2E8];
    public static readonly int[] SerialIrqs = [4, 3, 4, 3];

    /// <summary>Where the PCI hole starts when RAM does not fit below it (QEMU's gigabyte-aligned split).</summary>
    public const ulong LowMemoryLimit = 0xC0000000;
    private const ulong SplitThreshold = 0xE0000000;

    private readonly List<Serial16550> _serials = [];
    private readonly RomBlock? _bios;
    private readonly IrqLine _cpuInterrupt = new();
    private PortIoSpace.Mapping? _pmMapping;
    private AcpiTableSet? _acpi;
    private bool _acpiPatched;

    public PcBoard(PcBoardOptions options, IClock clock, IEventLoop loop)
    {
        Options = options;
        Clock = clock;
        ulong lowRam = options.RamSize >= SplitThreshold ? LowMemoryLimit : options.RamSize;
        Ram = new RamBlock("pc.ram", options.RamSize);
        Memory = new GuestMemory(Ram, this, lowRam, legacyWindow: true);
        if (options.Bios is ReadOnlyMemory<byte> image)
        {
            _bios = new RomBlock("pc.bios", image.Span);
            Memory.AddRom((1UL << 32) - _bios.Size, _bios);
        }

        PciBus = new PciBus(Ports, Mmio, Memory);
        Host = new I440fx(PciBus, Memory, _bios);
        Isa = new Piix3(() => ResetRequested?.Invoke());
        PciBus.Plug(Host, 0);
        PciBus.Plug(Isa, 1 << 3);
        Ports.Map(PciConfigAddress, Host.ConfigAddressRegion);
        Ports.Map(PciConfigData, Host.ConfigDataRegion);
        Ports.Map(ResetControlPort, Isa.ResetControlRegion);

        Pic = new I8259Pic(_cpuInterrupt);
        IoApic = new IoApic();
        IoApic.Deliver = ApicBus.Deliver;
        Interrupts = new PcInterruptRouter(Pic, IoApic, Isa, PciBus);
        Ports.Map(PicMasterPort, new IoRegion("pic", 2, (o, s) => Pic.Read(I8259Pic.MasterCommand + (int)o, s), (o, s, v) => Pic.Write(I8259Pic.MasterCommand + (int)o, s, (uint)v)));
        Ports.Map(PicSlavePort, new IoRegion("pic", 2, (o, s) => Pic.Read(I8259Pic.SlaveCommand + (int)o, s), (o, s, v) => Pic.Write(I8259Pic.SlaveCommand + (int)o, s, (uint)v)));
        Ports.Map(ElcrPort, new IoRegion("elcr", 2, (o, s) => Pic.Read(I8259Pic.ElcrMaster + (int)o, s), (o, s, v) => Pic.Write(I8259Pic.ElcrMaster + (int)o, s, (uint)v)));
        Mmio.Map(IoApicAddress, IoApic.Region);

        Pit = new I8254Pit(clock, Interrupts.Isa(PitIrq));
        Ports.Map(PitPort, new IoRegion("pit", 4, (o, s) => Pit.Read((int)o, s), (o, s, v) => Pit.Write((int)o, s, (uint)v), 1, 1));
        Ports.Map(Port61, new IoRegion("pcspk", 1, (_, _) => Pit.ReadPort61(), (_, _, v) => Pit.WritePort61((byte)v), 1, 1));

        Rtc = new Mc146818Rtc(clock, Interrupts.Isa(RtcIrq));
        Ports.Map(RtcPort, new IoRegion("rtc", Mc146818Rtc.RegionSize, (o, s) => Rtc.Read((int)o, s), (o, s, v) => Rtc.Write((int)o, s, (uint)v), 1, 1));
        WriteCmosMemoryLayout();

        // PIIX3's IDE function is part of the chipset: present even with -nodefaults, as on QEMU's pc.
        Ide = new Piix3Ide(Interrupts.Isa(IdePrimaryIrq), Interrupts.Isa(IdeSecondaryIrq));
        PciBus.Plug(Ide, (1 << 3) | 1);
        Ports.Map(IdePrimaryCommand, Ide.PrimaryCommand);
        Ports.Map(IdePrimaryControl, Ide.PrimaryControl);
        Ports.Map(IdeSecondaryCommand, Ide.SecondaryCommand);
        Ports.Map(IdeSecondaryControl, Ide.SecondaryControl);

        // PIIX4's power-management function, as QEMU's pc puts it at 01.3: SCI on ISA IRQ 9, GPE0 at 0xAFE0, APM at 0xB2.
        Pm = new Piix4Pm(clock, Interrupts.Isa(PcAcpiTables.SciIrq), () => PowerOffRequested?.Invoke());
        Pm.PmIoChanged += RemapPmBlock;
        PciBus.Plug(Pm, (1 << 3) | 3);
        Ports.Map(Gpe0Port, Pm.GpeRegion);
        Ports.Map(ApmPort, Pm.ApmRegion);

        Port92 = new Port92(() => ResetRequested?.Invoke());
        Keyboard = new I8042(Interrupts.Isa(KeyboardIrq), Interrupts.Isa(MouseIrq), () => ResetRequested?.Invoke());
        Ports.Map(KeyboardDataPort, new IoRegion("i8042-data", 1, (_, s) => Keyboard.Read(I8042.Data, s), (_, s, v) => Keyboard.Write(I8042.Data, s, (uint)v), 1, 1));
        Ports.Map(KeyboardCommandPort, new IoRegion("i8042-cmd", 1, (_, s) => Keyboard.Read(I8042.Command, s), (_, s, v) => Keyboard.Write(I8042.Command, s, (uint)v), 1, 1));
        Ports.Map(Port92Address, Port92.Region);

        // fw_cfg with its DMA interface, as QEMU's pc: selector/data at 0x510, DMA address at 0x514.
        FwCfg = new FwCfg(Memory, dmaRangeValid: Memory.IsRam);
        Ports.Map(FwCfgPort, new IoRegion("fwcfg", FwCfg.RegionSize, (o, s) => FwCfg.Read((int)o, s), (o, s, v) => FwCfg.Write((int)o, s, (uint)v)));
        // qemu64 is an AMD-vendor model with 40 physical bits, so QEMU reports the HyperTransport hole.
        E820 = PcMemoryMap.Build(options.RamSize, PcChipset.I440fx, amdHtHole: true);
        PcFwCfg.AddDefaults(FwCfg, new PcFwCfgConfig(options.RamSize, E820, (ushort)options.Cpus, (ushort)options.Cpus));

        for (int i = 0; i < options.Serials.Count && i < SerialPorts.Length; i++)
        {
            Chardev? chardev = options.Serials[i];
            var uart = new Serial16550(Interrupts.Isa(SerialIrqs[i]), chardev, clock);
            chardev?.Attach(new LockedFrontend(uart, Lock), loop);
            _serials.Add(uart);
            Ports.Map(SerialPorts[i], new IoRegion("serial", Serial16550.RegionSize, (o, s) => uart.Read((int)o, s), (o, s, v) => uart.Write((int)o, s, (uint)v), 1, 1));
        }

        // ACPI tables for SeaBIOS through the BIOS linker/loader, as QEMU's pc: built now so the files have their
        // sizes, rebuilt in place on the first read after each reset so the FADT sees the PM base the firmware set.
        _acpi = PcAcpiTables.Build(AcpiConfig(Pm.PmIoBaseRegister));
        FwCfg.AddFile(PcAcpiTables.RsdpFile, _acpi.Rsdp, onSelect: RefreshAcpi);
        FwCfg.AddFile(PcAcpiTables.TablesFile, _acpi.Tables, onSelect: RefreshAcpi);
        FwCfg.AddFile(PcAcpiTables.LoaderFile, _acpi.Loader, onSelect: RefreshAcpi);
    }

    /// <summary>The PIIX4 power-management function (00:01.3).</summary>
    public Piix4Pm Pm { get; }

    /// <summary>Raised (under <see cref="Lock"/>) when the guest enters S5 through PM1a_CNT: QEMU's guest shutdown.</summary>
    public event Action? PowerOffRequested;

    /// <summary>The ACPI power button (<c>system_powerdown</c>).</summary>
    public void PressPowerButton() => Pm.PressPowerButton();

    /// <summary>What the tables describe right now.</summary>
    public PcAcpiConfig AcpiConfig(ushort pmIoBase)
    {
        var serials = new List<(ushort, int)>();
        for (int i = 0; i < _serials.Count; i++)
        {
            serials.Add((SerialPorts[i], SerialIrqs[i]));
        }
        return new PcAcpiConfig(Options.Cpus, pmIoBase, Memory.LowRamEnd, Memory.HighRamSize, serials);
    }

    /// <summary>Regenerates the ACPI files in place (same sizes) once per reset, when the firmware first reads one.</summary>
    private void RefreshAcpi()
    {
        if (_acpiPatched || _acpi is null)
        {
            return;
        }
        _acpiPatched = true;
        AcpiTableSet fresh = PcAcpiTables.Build(AcpiConfig(Pm.PmIoBaseRegister));
        fresh.Rsdp.CopyTo(_acpi.Rsdp, 0);
        fresh.Tables.AsSpan(0, Math.Min(fresh.Tables.Length, _acpi.Tables.Length)).CopyTo(_acpi.Tables);
        fresh.Loader.AsSpan(0, Math.Min(fresh.Loader.Length, _acpi.Loader.Length)).CopyTo(_acpi.Loader);
    }

    /// <summary>Moves the PM register block to where PMBA/PMREGMISC now put it (QEMU maps it even at port 0).</summary>
    private void RemapPmBlock()
    {
        ushort? at = Pm.PmIoBase;
        if (_pmMapping is { } old)
        {
            if (at == old.Port)
            {
                return;
            }
            Ports.Unmap(old);
            _pmMapping = null;
        }
        if (at is ushort port)
        {
            _pmMapping = Ports.Map(port, Pm.PmRegion);
        }
    }

    /// <summary>
    /// For a <c>-kernel</c> boot, where no firmware builds the tables: programs the PM base as SeaBIOS would, places
    /// the tables at the top of RAM below 4 GiB (reserved as ACPI in the returned map) and the RSDP at the EBDA, which
    /// the BDA word at 0x40E points at, and runs the loader script over those addresses.
    /// </summary>
    private List<E820Entry> PlaceAcpiForDirectBoot(IReadOnlyList<E820Entry> map)
    {
        Pm.ProgramPmBase(DefaultPmIoBase);
        if (Memory.LowRamEnd < 0x40_0000)
        {
            return [.. map]; // too little RAM to spare a window; the kernel runs without ACPI
        }
        AcpiTableSet set = PcAcpiTables.Build(AcpiConfig(DefaultPmIoBase));
        ulong tablesAt = Memory.LowRamEnd - DirectBootAcpiSize;
        BiosLinker.Run(set.Loader, new Dictionary<string, (byte[], ulong)>
        {
            [PcAcpiTables.TablesFile] = (set.Tables, tablesAt),
            [PcAcpiTables.RsdpFile] = (set.Rsdp, DirectBootRsdpAddress),
        });
        Memory.Write(tablesAt, set.Tables.AsSpan(0, (int)DirectBootAcpiSize));
        Memory.Write(DirectBootRsdpAddress, set.Rsdp);
        // BDA 0x40E: the EBDA segment.
        Memory.Write(0x40E, [(byte)((DirectBootRsdpAddress >> 4) & 0xFF), (byte)(DirectBootRsdpAddress >> 12)]);
        return PcMemoryMap.Carve(map, tablesAt, DirectBootAcpiSize, E820Type.Acpi);
    }

    /// <summary>The options the board was built from.</summary>
    public PcBoardOptions Options { get; }

    /// <summary>The virtual clock devices run on.</summary>
    public IClock Clock { get; }

    /// <summary>QEMU's BQL: held by every device access from a vCPU, timer or monitor.</summary>
    public Lock Lock { get; } = new();

    /// <summary>Guest RAM (low RAM first, then what is mapped above 4 GiB).</summary>
    public RamBlock Ram { get; }

    /// <summary>The guest-physical address space.</summary>
    public GuestMemory Memory { get; }

    /// <summary>The 64 KiB port space.</summary>
    public PortIoSpace Ports { get; } = new();

    /// <summary>Memory-mapped device windows.</summary>
    public MmioSpace Mmio { get; } = new();

    /// <summary>PCI bus 0.</summary>
    public PciBus PciBus { get; }

    /// <summary>The i440FX host bridge (00:00.0).</summary>
    public I440fx Host { get; }

    /// <summary>The PIIX3 ISA bridge (00:01.0).</summary>
    public Piix3 Isa { get; }

    /// <summary>The fw_cfg device.</summary>
    public FwCfg FwCfg { get; }

    /// <summary>The memory map the firmware reports (<c>etc/e820</c>).</summary>
    public IReadOnlyList<E820Entry> E820 { get; }

    /// <summary>
    /// Puts the boot CPU where the machine starts: the reset vector for a BIOS boot, or, with <c>-kernel</c>, the
    /// kernel's entry after (re)loading it into RAM as its protocol requires. Called at power-on and on every reset,
    /// since a reset must start the kernel afresh even if the guest overwrote its image.
    /// </summary>
    /// <exception cref="KernelImageException">The kernel or its modules cannot be loaded.</exception>
    public BootLayout? PrepareBoot(ref X86CpuState cpu)
    {
        if (Options.Kernel is not KernelBoot k)
        {
            cpu.Reset();
            return null;
        }
        IReadOnlyList<E820Entry> map = PlaceAcpiForDirectBoot(PcMemoryMap.ForDirectBoot(E820));
        ulong ramBelow4G = Memory.LowRamEnd;
        return KernelImage.Detect(k.Image) switch
        {
            KernelImageKind.LinuxBzImage => LinuxBootLoader.LoadDirect(Memory, k.Image, map, ramBelow4G, new LinuxBootOptions(k.Append, k.Initrd, DirectBootRsdpAddress), ref cpu),
            KernelImageKind.Pvh => PvhLoader.Load(Memory, k.Image, map, ramBelow4G, new LinuxBootOptions(k.Append, k.Initrd, DirectBootRsdpAddress), ref cpu),
            _ => MultibootLoader.Load(Memory, k.Image, MultibootLoader.QemuCommandLine(k.Path, k.Append), k.Modules, map, ramBelow4G, ref cpu),
        };
    }

    /// <summary>The PIIX3 IDE controller (00:01.1).</summary>
    public Piix3Ide Ide { get; }

    /// <summary>Attaches an <c>if=ide</c> drive at its channel and unit (QEMU numbers serials in creation order).</summary>
    /// <exception cref="InvalidOperationException">Position out of range or taken, or the drive cannot be used.</exception>
    public void AttachIdeDrive(BlockBackend backend, int bus, int unit, int creationIndex)
    {
        if (bus is < 0 or > 1 || unit is < 0 or > 1)
        {
            throw new InvalidOperationException($"machine type does not support if=ide,bus={bus},unit={unit}");
        }
        Ide.Attach(bus, unit, backend, serial: $"QM{creationIndex + 1:D5}");
    }

    /// <summary>The 8259 pair.</summary>
    public I8259Pic Pic { get; }

    /// <summary>The IOAPIC at 0xFEC00000.</summary>
    public IoApic IoApic { get; }

    /// <summary>The local APICs (one per vCPU, created by <see cref="CreateLocalApic"/>) and the messages between them.</summary>
    public ApicBus ApicBus { get; } = new();

    private readonly List<LocalApic> _localApics = [];

    /// <summary>The local APICs in CPU index order (for the monitor's <c>info lapic</c>).</summary>
    public IReadOnlyList<LocalApic> LocalApics => _localApics;

    /// <summary>
    /// Creates CPU <paramref name="index"/>'s local APIC on the APIC bus. The boot CPU's gets the PIC on LINT0 and
    /// becomes the sink of <see cref="CpuInterrupt"/>; level-triggered EOIs go back to the IOAPIC.
    /// </summary>
    public LocalApic CreateLocalApic(int index)
    {
        bool bsp = index == 0;
        var apic = new LocalApic((byte)index, bsp, Clock, ApicBus, bsp ? Pic : null) { EoiBroadcast = IoApic.Eoi };
        _localApics.Add(apic);
        if (bsp)
        {
            _cpuInterrupt.Connect(apic.SetPicInterrupt);
        }
        return apic;
    }

    /// <summary>ISA and PCI interrupt wiring.</summary>
    public PcInterruptRouter Interrupts { get; }

    /// <summary>The 8254 PIT.</summary>
    public I8254Pit Pit { get; }

    /// <summary>The MC146818 RTC with CMOS.</summary>
    public Mc146818Rtc Rtc { get; }

    /// <summary>System Control Port A.</summary>
    public Port92 Port92 { get; }

    /// <summary>The 8042 keyboard controller with its PS/2 keyboard and mouse.</summary>
    public I8042 Keyboard { get; }

    /// <summary>The serial ports, COM1 first.</summary>
    public IReadOnlyList<Serial16550> Serials => _serials;

    /// <summary>The PIC's INTR output towards the boot CPU.</summary>
    public IrqLine CpuInterrupt => _cpuInterrupt;

    /// <summary>Raised (under <see cref="Lock"/>) when the guest asks for a system reset (0xCF9, 0x92, the 8042's reset line).</summary>
    public event Action? ResetRequested;

    /// <summary>Resets every device to its power-on state (RAM and CMOS contents survive, as on hardware).</summary>
    public void Reset()
    {
        foreach (PciDevice device in PciBus.Devices)
        {
            device.Reset();
        }
        Pic.Reset();
        IoApic.Reset();
        FwCfg.Reset();
        _acpiPatched = false;
        Pit.Reset();
        Port92.Reset();
        Keyboard.Reset();
        foreach (LocalApic apic in ApicBus.Apics)
        {
            apic.Reset();
        }
        foreach (Serial16550 uart in _serials)
        {
            uart.Reset();
        }
    }

    /// <inheritdoc/>
    public void PioRead(ushort port, Span<byte> data)
    {
        ulong v;
        lock (Lock)
        {
            v = Ports.Read(port, data.Length);
        }
        Store(v, data);
    }

    /// <inheritdoc/>
    public void PioWrite(ushort port, ReadOnlySpan<byte> data)
    {
        ulong v = Load(data);
        lock (Lock)
        {
            Ports.Write(port, data.Length, v);
        }
    }

    /// <inheritdoc/>
    public void MmioRead(ulong address, Span<byte> data)
    {
        for (int done = 0; done < data.Length; done += 8)
        {
            int n = Math.Min(8, data.Length - done);
            ulong v;
            lock (Lock)
            {
                v = Mmio.Read(address + (ulong)done, n);
            }
            Store(v, data.Slice(done, n));
        }
    }

    /// <inheritdoc/>
    public void MmioWrite(ulong address, ReadOnlySpan<byte> data)
    {
        for (int done = 0; done < data.Length; done += 8)
        {
            int n = Math.Min(8, data.Length - done);
            ulong v = Load(data.Slice(done, n));
            lock (Lock)
            {
                Mmio.Write(address + (ulong)done, n, v);
            }
        }
    }

    /// <summary>Raised (under <see cref="Lock"/>) when a debug-exit device asks to end the process with a status.</summary>
    public event Action<int>? ExitRequested;

    /// <summary>
    /// Plugs a <c>-device</c> instance into the board (QEMU's realize): creates its model, maps it and wires it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The device cannot be placed (port range, slot in use, ...).</exception>
    public void Plug(DeviceObject device)
    {
        switch (device.TypeName)
        {
            case "isa-debug-exit":
            {
                ulong iobase = device.Values.GetUInt("iobase", IsaDebugExit.DefaultIoBase);
                ulong iosize = device.Values.GetUInt("iosize", IsaDebugExit.DefaultIoSize);
                if (iobase > 0xFFFF || iosize == 0 || iobase + iosize > 0x10000)
                {
                    throw new InvalidOperationException($"isa-debug-exit: I/O range 0x{iobase:x}+0x{iosize:x} is outside the port space");
                }
                var model = new IsaDebugExit((int)iosize, status => ExitRequested?.Invoke(status));
                Ports.Map((ushort)iobase, model.Region);
                device.Model = model;
                break;
            }
            case "isa-debugcon":
            {
                ulong iobase = device.Values.GetUInt("iobase", IsaDebugcon.DefaultIoBase);
                if (iobase > 0xFFFF)
                {
                    throw new InvalidOperationException($"isa-debugcon: I/O port 0x{iobase:x} is outside the port space");
                }
                var model = new IsaDebugcon(device.Chardev, (byte)device.Values.GetUInt("readback", IsaDebugcon.DefaultReadback));
                Ports.Map((ushort)iobase, model.Region);
                device.Model = model;
                break;
            }
            case "pc-testdev":
            {
                var model = new PcTestdev(irq => irq < PcInterruptRouter.IsaIrqs ? Interrupts.Isa(irq) : null);
                Ports.Map(PcTestdev.IoportBase, model.Ioport);
                Ports.Map(PcTestdev.FlushPort, model.Flush);
                Ports.Map(PcTestdev.IoportByteBase, model.IoportByte);
                Ports.Map(PcTestdev.IrqLineBase, model.IrqLines);
                Mmio.Map(PcTestdev.IomemBase, model.Iomem);
                device.Model = model;
                break;
            }
            case "pci-testdev":
            {
                ulong membar = device.Values.GetUInt("membar");
                if (membar != 0 && (!ulong.IsPow2(membar) || membar < 16))
                {
                    throw new InvalidOperationException($"pci-testdev: membar size 0x{membar:x} is not a power of two of at least 16 bytes");
                }
                var model = new PciTestdev(membar);
                PciBus.Plug(model, PciAddress(device));
                device.Model = model;
                break;
            }
            case "piix3-usb-uhci":
            {
                var model = new Piix3Uhci(Clock);
                PciBus.Plug(model, PciAddress(device));
                device.Model = model;
                break;
            }
            case "usb-tablet":
            {
                (Piix3Uhci controller, int port) = UsbPort(device);
                var model = new UsbTablet();
                controller.Attach(port, model);
                device.Model = model;
                break;
            }
            default:
                throw new InvalidOperationException($"'{device.TypeName}' cannot be plugged into the pc board yet");
        }
    }

    /// <summary>
    /// Unplugs a device at once where the bus allows it (USB); PCI functions would need the guest's ACPI eject,
    /// which the board does not offer yet.
    /// </summary>
    /// <exception cref="InvalidOperationException">The device cannot be removed.</exception>
    public void Unplug(DeviceObject device)
    {
        switch (device.Model)
        {
            case UsbDevice usb:
                foreach (PciDevice d in PciBus.Devices)
                {
                    if (d is Piix3Uhci uhci)
                    {
                        for (int port = 0; port < Piix3Uhci.PortCount; port++)
                        {
                            if (uhci.DeviceAt(port) == usb)
                            {
                                uhci.Detach(port);
                                return;
                            }
                        }
                    }
                }
                return;
            case PciDevice:
                // QEMU's pc ejects PCI functions through ACPI with the guest's help; Colo's board has no
                // hot-plug controller yet, which is QEMU's text when root-bus hot-plug is off.
                throw new InvalidOperationException("Bus 'pci.0' does not support hotplugging");
            default:
                throw new InvalidOperationException("Bus 'isa.0' does not support hotplugging");
        }
    }

    /// <summary>The devfn a PCI <c>-device</c> asks for (<c>addr=SLOT[.FN]</c>, hex), or the first free slot.</summary>
    private int PciAddress(DeviceObject device)
    {
        string? bus = device.Values.GetString("bus");
        if (bus is not null && bus != "pci.0")
        {
            throw new InvalidOperationException($"Bus '{bus}' not found");
        }
        if (device.Values.GetString("addr") is not string addr || addr == "-1")
        {
            int slot = PciBus.FreeSlot();
            return slot >= 0 ? slot << 3 : throw new InvalidOperationException($"PCI: no slot/function available for {device.TypeName}, all in use or reserved");
        }
        string[] parts = addr.Split('.');
        if (parts.Length > 2
            || !int.TryParse(parts[0], System.Globalization.NumberStyles.HexNumber, null, out int s) || s > 31
            || (parts.Length == 2 && (!int.TryParse(parts[1], System.Globalization.NumberStyles.HexNumber, null, out int f) || f > 7)))
        {
            throw new InvalidOperationException($"Property '{device.TypeName}.addr' doesn't take value '{addr}'");
        }
        int function = parts.Length == 2 ? int.Parse(parts[1], System.Globalization.NumberStyles.HexNumber, null) : 0;
        return (s << 3) | function;
    }

    /// <summary>The controller and 0-based port a USB <c>-device</c> goes to (<c>bus=</c>, 1-based <c>port=</c>).</summary>
    private (Piix3Uhci Controller, int Port) UsbPort(DeviceObject device)
    {
        Piix3Uhci? controller = null;
        foreach (PciDevice d in PciBus.Devices)
        {
            if (d is Piix3Uhci uhci)
            {
                controller = uhci;
                break;
            }
        }
        if (controller is null)
        {
            throw new InvalidOperationException($"No 'usb-bus' bus found for device '{device.TypeName}'");
        }
        if (device.Values.GetString("port") is string portText)
        {
            if (!int.TryParse(portText, out int port) || port < 1 || port > Piix3Uhci.PortCount || controller.DeviceAt(port - 1) is not null)
            {
                throw new InvalidOperationException($"usb port {portText} (bus usb-bus.0) not found (in use?)");
            }
            return (controller, port - 1);
        }
        int free = controller.FreePort();
        return free >= 0 ? (controller, free) : throw new InvalidOperationException("no free USB port on usb-bus.0 (Colo has no usb-hub to add more)");
    }

    /// <summary>
    /// HMP <c>info pci</c> in QEMU's layout (including its quirk of printing unnamed classes in decimal);
    /// <paramref name="idOf"/> gives a function's <c>-device</c> id.
    /// </summary>
    public string DescribePci(Func<PciDevice, string?>? idOf = null)
    {
        var text = new StringBuilder();
        foreach (PciDevice d in PciBus.Devices)
        {
            text.Append($"  Bus  0, device {d.DevFn >> 3,3}, function {d.DevFn & 7}:\n");
            uint cls = d.ConfigRead(PciDevice.ClassDevice, 2);
            string name = ClassName(cls) ?? $"Class {cls:D4}";
            text.Append($"    {name}: PCI device {d.ReadConfigWord(PciDevice.VendorId):x4}:{d.ReadConfigWord(PciDevice.DeviceId):x4}\n");
            text.Append($"      PCI subsystem {d.ReadConfigWord(PciDevice.SubsystemVendorId):x4}:{d.ReadConfigWord(PciDevice.SubsystemId):x4}\n");
            byte pin = d.Config[PciDevice.InterruptPin];
            if (pin != 0)
            {
                text.Append($"      IRQ {d.Config[PciDevice.InterruptLine]}, pin {(char)('A' + pin - 1)}\n");
            }
            foreach (PciDevice.Bar? bar in d.Bars)
            {
                if (bar is null)
                {
                    continue;
                }
                // Unmapped BARs show address all-ones and, wrapping, size - 2 as the end, as QEMU prints them.
                ulong a = d.BarAddress(bar) ?? ulong.MaxValue;
                ulong end = unchecked(a + bar.Region.Size - 1);
                string line = bar.Kind == PciBarKind.Io
                    ? $"I/O at 0x{a:x4} [0x{end:x4}]"
                    : $"{(bar.Kind == PciBarKind.Memory64 ? 64 : 32)} bit{(bar.Prefetchable ? " prefetchable" : "")} memory at 0x{a:x8} [0x{end:x8}]";
                text.Append($"      BAR{bar.Index}: {line}.\n");
            }
            text.Append($"      id \"{idOf?.Invoke(d) ?? ""}\"\n");
        }
        return text.ToString();
    }

    /// <summary>
    /// The output GPIO lines of a board part, in QEMU's order for its model (what qtest's <c>irq_intercept_out</c>
    /// numbers): the RTC's and PIT's interrupt, the 8042's keyboard and mouse interrupts, the master PIC's INTR.
    /// </summary>
    public IReadOnlyList<IrqLine> GpioOutputs(object model) => model switch
    {
        Mc146818Rtc => [Interrupts.Isa(RtcIrq)],
        I8254Pit => [Interrupts.Isa(PitIrq)],
        I8042 => [Interrupts.Isa(KeyboardIrq), Interrupts.Isa(MouseIrq)],
        I8259Pic => [_cpuInterrupt],
        _ => [],
    };

    /// <summary>HMP <c>info mtree</c>: the I/O and memory maps.</summary>
    public string DescribeMemoryTree()
    {
        var text = new StringBuilder();
        text.Append("address-space: I/O\n  0000000000000000-000000000000ffff (prio 0, i/o): io\n");
        foreach (PortIoSpace.Mapping m in Ports.Mappings.OrderBy(m => m.Port))
        {
            text.Append($"    {m.Port:x16}-{m.Port + m.Region.Size - 1:x16} (prio 0, i/o): {m.Region.Name}\n");
        }
        text.Append("\naddress-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n");
        text.Append($"    0000000000000000-{Memory.LowRamEnd - 1:x16} (prio 0, ram): alias ram-below-4g @pc.ram 0000000000000000-{Memory.LowRamEnd - 1:x16}\n");
        if (Memory.HighRamSize > 0)
        {
            text.Append($"    {GuestMemory.HighRamBase:x16}-{GuestMemory.HighRamBase + Memory.HighRamSize - 1:x16} (prio 0, ram): alias ram-above-4g @pc.ram {Memory.LowRamEnd:x16}-{Ram.Size - 1:x16}\n");
        }
        if (_bios is not null)
        {
            ulong at = (1UL << 32) - _bios.Size;
            text.Append($"    {at:x16}-{at + _bios.Size - 1:x16} (prio 0, rom): pc.bios\n");
        }
        foreach (MmioSpace.Mapping m in Mmio.Mappings.OrderBy(m => m.Address))
        {
            text.Append($"    {m.Address:x16}-{m.Address + m.Region.Size - 1:x16} (prio {m.Priority}, i/o): {m.Region.Name}\n");
        }
        return text.ToString();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Ram.Dispose();
        _bios?.Dispose();
    }

    /// <summary>
    /// The CMOS bytes SeaBIOS reads for memory sizes and boot order (IBM AT / QEMU layout): base memory,
    /// extended memory in KiB, memory above 16 MiB and above 4 GiB in 64 KiB units, CPU count, boot devices.
    /// </summary>
    private void WriteCmosMemoryLayout()
    {
        const int BaseMemoryKiB = 640;
        Rtc.SetCmos(0x15, BaseMemoryKiB & 0xFF);
        Rtc.SetCmos(0x16, BaseMemoryKiB >> 8);
        ulong lowRam = Memory.LowRamEnd;
        ulong extendedKiB = Math.Min(lowRam > 0x100000 ? (lowRam - 0x100000) / 1024 : 0, 0xFFFF);
        Rtc.SetCmos(0x17, (byte)extendedKiB);
        Rtc.SetCmos(0x18, (byte)(extendedKiB >> 8));
        Rtc.SetCmos(0x30, (byte)extendedKiB);
        Rtc.SetCmos(0x31, (byte)(extendedKiB >> 8));
        ulong above16M = Math.Min(lowRam > 0x1000000 ? (lowRam - 0x1000000) / 0x10000 : 0, 0xFFFF);
        Rtc.SetCmos(0x34, (byte)above16M);
        Rtc.SetCmos(0x35, (byte)(above16M >> 8));
        ulong above4G = Memory.HighRamSize / 0x10000;
        Rtc.SetCmos(0x5B, (byte)above4G);
        Rtc.SetCmos(0x5C, (byte)(above4G >> 8));
        Rtc.SetCmos(0x5D, (byte)(above4G >> 16));
        Rtc.SetCmos(0x5F, (byte)(Options.Cpus - 1));
        // Boot order "cad" (QEMU's default): disk, floppy, CD-ROM; floppy signature check on.
        Rtc.SetCmos(0x3D, 0x12);
        Rtc.SetCmos(0x38, 0x30);
        // Equipment byte: FPU present, PS/2 mouse.
        Rtc.SetCmos(0x14, 0x06);
    }

    /// <summary>Delivers chardev input to a device under the board lock, so it never races a vCPU's register access.</summary>
    private sealed class LockedFrontend(ICharFrontend inner, Lock boardLock) : ICharFrontend
    {
        public void Receive(ReadOnlySpan<byte> data)
        {
            lock (boardLock)
            {
                inner.Receive(data);
            }
        }

        public void OnEvent(CharEvent charEvent)
        {
            lock (boardLock)
            {
                inner.OnEvent(charEvent);
            }
        }

        public int ReceiveSpace
        {
            get
            {
                lock (boardLock)
                {
                    return inner.ReceiveSpace;
                }
            }
        }

        public void SetReceiveSpaceHandler(Action? handler) => inner.SetReceiveSpaceHandler(handler);
    }

    /// <summary>The names QEMU gives PCI class codes (class and subclass), or null for "Class NNNN".</summary>
    public static string? ClassName(uint cls) => cls switch
    {
        0x0600 => "Host bridge",
        0x0601 => "ISA bridge",
        0x0101 => "IDE controller",
        0x0C03 => "USB controller",
        0x0680 => "Bridge",
        0x0200 => "Ethernet controller",
        0x0300 => "VGA controller",
        _ => null,
    };

    private static void Store(ulong v, Span<byte> data)
    {
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(v >> (8 * i));
        }
    }

    private static ulong Load(ReadOnlySpan<byte> data)
    {
        ulong v = 0;
        for (int i = 0; i < data.Length && i < 8; i++)
        {
            v |= (ulong)data[i] << (8 * i);
        }
        return v;
    }
}
