#!/usr/bin/env bash
# Time to the guest's ready marker for the -kernel boot, Colo's interpreter against
# Debian's QEMU 7.2 with -accel tcg, in one run on the same machine; prints the
# ratio of the medians (issue 4's bar: Colo at most 10x QEMU-TCG's time).
# Usage: bench-ratio.sh [-n RUNS] [-k bzImage|vmlinux] [-s SMP] [COLO-BINARY]
#   COLO-BINARY  default build/bin/qemu-system-x86_64 (tools/build.sh makes it)
# The last line reads "ratio: X (wall) Y (cpu) ...".
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
root=$(cd "$here/../.." && pwd)

runs=3
kernel=bzImage
smp=1
while getopts 'n:k:s:h' opt; do
    case $opt in
        n) runs=$OPTARG ;;
        k) kernel=$OPTARG ;;
        s) smp=$OPTARG ;;
        h) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
colo=${1:-$root/build/bin/qemu-system-x86_64}

median_of() { sed -n 's/^median: \([0-9.]*\) s (cpu \([0-9.]*\) s).*/\1 \2/p'; }

echo "QEMU 7.2 -accel tcg:" >&2
qemu_out=$("$here/bench-boot.sh" -n "$runs" -k "$kernel" -s "$smp" -t 300 | tee /dev/stderr)
echo "Colo (interpreter):" >&2
# Colo has no rtl8139 yet: its guest boots without a NIC (the guest's /init then skips eth0).
colo_out=$("$here/bench-boot.sh" -n "$runs" -k "$kernel" -s "$smp" -t 1200 -a "" -x "" "$colo" | tee /dev/stderr)

read -r qemu_wall qemu_cpu <<<"$(median_of <<<"$qemu_out")"
read -r colo_wall colo_cpu <<<"$(median_of <<<"$colo_out")"
awk -v qw="$qemu_wall" -v qc="$qemu_cpu" -v cw="$colo_wall" -v cc="$colo_cpu" -v k="$kernel" -v s="$smp" 'BEGIN {
    printf "ratio: %.1f (wall) %.1f (cpu) -- Colo %s s / QEMU-TCG %s s to the ready marker, -kernel %s, -smp %s\n", cw / qw, cc / qc, cw, qw, k, s
}'
