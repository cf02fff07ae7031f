#!/usr/bin/env bash
# Time from starting the emulator to the guest's ready marker, for the
# -kernel boot of the guest built by tools/guest/build.sh; median of N runs.
# Usage: bench-boot.sh [-n RUNS] [-t TIMEOUT] [-k bzImage|vmlinux] [-s SMP]
#                      [-a ACCEL-ARGS] [-x EXTRA-ARGS] [-c CMDLINE] [EMULATOR]
#   EMULATOR  binary to run (default qemu-system-x86_64 on PATH)
#   -n  number of runs (default 5)
#   -t  seconds to wait for the marker in one run (default 300)
#   -k  kernel to pass with -kernel (default bzImage; vmlinux = PVH entry)
#   -s  number of CPUs (default 1)
#   -a  accelerator arguments (default "-accel tcg")
#   -x  extra arguments (default "-nic user,model=rtl8139,restrict=on")
#   -c  kernel command line (default: the one in build/guest/cmdline)
# Prints one line per run and a last line "median: SECONDS s (cpu SECONDS s) (...)":
# wall-clock seconds to the marker and the emulator's CPU seconds (all threads)
# by then, which other jobs on the machine disturb less.
# Exit status is non-zero if any run did not reach the marker.
set -euo pipefail
# shellcheck source=tools/guest/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The comment block at the top of this file.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

runs=5
timeout=300
kernel=bzImage
smp=1
accel="-accel tcg"
extra="-nic user,model=rtl8139,restrict=on"
cmdline=
while getopts 'n:t:k:s:a:x:c:h' opt; do
    case $opt in
        n) runs=$OPTARG ;;
        t) timeout=$OPTARG ;;
        k) kernel=$OPTARG ;;
        s) smp=$OPTARG ;;
        a) accel=$OPTARG ;;
        x) extra=$OPTARG ;;
        c) cmdline=$OPTARG ;;
        h) usage; exit 0 ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
emulator=${1:-qemu-system-x86_64}
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive number, not $runs"
[[ $kernel == bzImage || $kernel == vmlinux ]] || die "-k wants bzImage or vmlinux, not $kernel"
need_emulator "$emulator"
need_guest
[[ -n $cmdline ]] || cmdline=$(cat "$guest_out/cmdline")

logdir=$guest_out/bench
mkdir -p "$logdir"
trap vm_stop EXIT
read -ra accel_args <<<"$accel"
read -ra extra_args <<<"$extra"

times=()
cpus=()
status=0
for ((i = 1; i <= runs; i++)); do
    vm_run "$logdir/run-$i.log" "$emulator" "${accel_args[@]}" -m 512 -smp "$smp" -nographic -no-reboot \
        -kernel "$guest_out/$kernel" -initrd "$guest_out/initramfs.cpio.gz" -append "$cmdline" \
        "${extra_args[@]}"
    if t=$(vm_wait_ready "$timeout"); then
        c=$(vm_cpu_time)
        times+=("$t")
        cpus+=("$c")
        printf 'run %d: %s s (cpu %s s)\n' "$i" "$t" "$c"
    else
        status=1
        failed_log=$logdir/failed-$(date +%Y%m%d-%H%M%S)-run-$i.log
        cp "$logdir/run-$i.log" "$failed_log"
        printf 'run %d: no ready marker (log: %s)\n' "$i" "$failed_log"
    fi
    vm_stop
done
[[ ${#times[@]} -gt 0 ]] || die "no run reached the ready marker"
printf 'median: %s s (cpu %s s) (%d runs, %s %s, -kernel %s, -smp %s, load %s)\n' \
    "$(median "${times[@]}")" "$(median "${cpus[@]}")" "${#times[@]}" "$emulator" "$accel" "$kernel" "$smp" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
