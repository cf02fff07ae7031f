using System.Buffers.Binary;
using Colo.Devices.Pc.Boot;

namespace Colo.Devices.Firmware;

/// <summary>Machine facts the PC's standard fw_cfg items describe.</summary>
/// <param name="RamSize">Total guest RAM (FW_CFG_RAM_SIZE).</param>
/// <param name="E820">The map for etc/e820 (see <see cref="PcMemoryMap.Build"/>).</param>
/// <param name="BootCpus">CPUs present at boot (FW_CFG_NB_CPUS).</param>
/// <param name="MaxCpus">Highest APIC ID + 1 the firmware must size tables for (FW_CFG_MAX_CPUS).</param>
/// <param name="Uuid">The <c>-uuid</c> value in SMBIOS byte order, or null for all zeros.</param>
/// <param name="NoGraphic">Whether <c>-nographic</c> is in effect.</param>
/// <param name="BootMenu">Whether <c>-boot menu=on</c> is in effect.</param>
/// <param name="RebootTimeoutMs"><c>-boot reboot-timeout</c>; −1 (the default) means never retry.</param>
/// <param name="Hpet">Whether an HPET is present at 0xFED00000 (the pc machine's default).</param>
public sealed record PcFwCfgConfig(ulong RamSize, IReadOnlyList<E820Entry> E820, ushort BootCpus = 1, ushort MaxCpus = 1,
    byte[]? Uuid = null, bool NoGraphic = false, bool BootMenu = false, int RebootTimeoutMs = -1, bool Hpet = true);

/// <summary>
/// The standard items of a QEMU 7.2 <c>pc</c> machine's fw_cfg, as read back from qemu-system-x86_64 over qtest:
/// UUID, RAM size, NOGRAPHIC, NB_CPUS, MAX_CPUS, BOOT_MENU, NUMA (no nodes), IRQ0_OVERRIDE = 1, an empty legacy
/// E820_TABLE, HPET and ACPI_TABLES; files <c>bios-geometry</c>, <c>bootorder</c>, <c>etc/boot-fail-wait</c>,
/// <c>etc/e820</c> and <c>etc/system-states</c>. ACPI, SMBIOS and option ROM files come from their builders.
/// </summary>
public static class PcFwCfg
{
    /// <summary>HPET block id register value QEMU reports (Intel vendor 0x8086, rev 1, 3 comparators, legacy capable).</summary>
    public const uint HpetEventTimerBlockId = 0x8086_A201;
    public const ulong HpetAddress = 0xFED0_0000;

    /// <summary>S0–S5 states: S3 and S4 advertised as enabled (bit 7) with their sleep-type values, as QEMU 7.2 pc.</summary>
    public static ReadOnlySpan<byte> DefaultSystemStates => [0x80, 0x00, 0x00, 0x81, 0x82, 0x80];

    public static void AddDefaults(FwCfg fw, PcFwCfgConfig c)
    {
        fw.AddBytes(FwCfg.KeyUuid, c.Uuid is { Length: 16 } ? (byte[])c.Uuid.Clone() : new byte[16]);
        fw.AddU64(FwCfg.KeyRamSize, c.RamSize);
        fw.AddU16(FwCfg.KeyNoGraphic, c.NoGraphic ? (ushort)1 : (ushort)0);
        fw.AddU16(FwCfg.KeyBootMenu, c.BootMenu ? (ushort)1 : (ushort)0);
        fw.AddU16(FwCfg.KeyNbCpus, c.BootCpus);
        fw.AddU16(FwCfg.KeyMaxCpus, c.MaxCpus);
        // NUMA: node count, then one node id per possible APIC id, then per-node sizes; all zero without -numa.
        fw.AddBytes(FwCfg.KeyNuma, new byte[8 * (1 + c.MaxCpus)]);
        // No -acpitable blobs: a zero count.
        fw.AddBytes(FwCfg.KeyAcpiTables, new byte[2]);
        fw.AddU32(FwCfg.KeyIrq0Override, 1);
        // Legacy reservation table: count plus 16 entries, all zero since etc/e820 carries the map.
        fw.AddBytes(FwCfg.KeyE820Table, new byte[4 + 16 * E820Entry.EncodedSize]);
        if (c.Hpet)
        {
            // hpet_fw_config: count, then 8 packed {u32 block id, u64 address, u16 min tick, u8 page protection}.
            byte[] hpet = new byte[1 + 8 * 15];
            hpet[0] = 1;
            BinaryPrimitives.WriteUInt32LittleEndian(hpet.AsSpan(1), HpetEventTimerBlockId);
            BinaryPrimitives.WriteUInt64LittleEndian(hpet.AsSpan(5), HpetAddress);
            fw.AddBytes(FwCfg.KeyHpet, hpet);
        }
        fw.AddFile("bios-geometry", []);
        fw.AddFile("bootorder", []);
        byte[] failWait = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(failWait, c.RebootTimeoutMs);
        fw.AddFile("etc/boot-fail-wait", failWait);
        fw.AddFile("etc/e820", E820Entry.Encode(c.E820));
        fw.AddFile("etc/system-states", DefaultSystemStates.ToArray());
    }

    /// <summary>
    /// The <c>bootorder</c> contents for the given OpenFirmware device paths: one per line, NUL-terminated, and empty
    /// with no paths (e.g. "/rom@genroms/linuxboot_dma.bin" alone gives 31 bytes, as QEMU's -kernel does).
    /// </summary>
    public static byte[] BootOrder(IReadOnlyList<string> paths) =>
        paths.Count == 0 ? [] : FwCfg.NulTerminated(string.Join('\n', paths));

    /// <summary>Sets <c>bootorder</c> (adding it when <see cref="AddDefaults"/> has not run).</summary>
    public static void SetBootOrder(FwCfg fw, IReadOnlyList<string> paths) => fw.SetFile("bootorder", BootOrder(paths));

    /// <summary>The OpenFirmware path QEMU gives an option ROM added with boot index (e.g. linuxboot_dma.bin).</summary>
    public static string RomBootPath(string romFile) => "/rom@genroms/" + romFile;
}
