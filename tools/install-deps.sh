#!/usr/bin/env bash
# Installs the Debian packages the test suite uses as peers and fixtures (idempotent; needs root).
set -euo pipefail

packages=(
    qemu-utils   # real qemu-img/qemu-io: interop checks of the images Colo writes and reads
    qemu-system-x86 # real QEMU 7.2 TCG: the oracle the multiboot CPU test kernels also run on, side-by-side checks
    libnbd-bin   # nbdinfo/nbdcopy/nbdsh: real NBD clients for Colo's NBD server
    seabios      # bios-256k.bin: the pc machine's default firmware (qtest and SeaBIOS boot tests)
    acpica-tools # iasl: disassembles and recompiles the DSDT Colo builds (ACPI end-to-end test)
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
