# shellcheck shell=bash
# Helpers shared by check-qemu.sh and bench-boot.sh: run an emulator with the
# guest's serial console on stdin/stdout, wait for lines, type commands.
# Source it; it defines functions and the variables below, nothing runs.

guest_script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
guest_repo_root=$(cd "$guest_script_dir/../.." && pwd)
guest_out=${COLO_GUEST_OUT:-$guest_repo_root/build/guest}
guest_marker=COLO-GUEST-READY

vm_pid=
vm_fd=
vm_log=
vm_start=

die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

now() { date +%s.%N; }

# Seconds since $1, with two decimals.
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# need_emulator NAME: fails unless NAME runs; QEMU itself is installed from
# Debian (qemu-system-x86) when it is missing and we are root.
need_emulator() {
    command -v "$1" >/dev/null && return 0
    if [[ $1 == qemu-system-x86_64 && $(id -u) -eq 0 ]]; then
        printf '%s: installing qemu-system-x86\n' "$(basename "$0")" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 \
                 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null 2>&1; } \
            || die "apt-get install qemu-system-x86 failed"
        command -v "$1" >/dev/null && return 0
    fi
    die "emulator $1 not found"
}

need_guest() {
    local f
    for f in bzImage vmlinux initramfs.cpio.gz disk.img cmdline; do
        [[ -e $guest_out/$f ]] || die "$guest_out/$f is missing: run tools/guest/build.sh first"
    done
}

# vm_run LOG CMD ARGS...: starts the emulator with the serial console on its
# stdin/stdout (stdout and stderr go to LOG, stdin comes from a fifo that
# vm_send writes to).
vm_run() {
    vm_log=$1
    shift
    local fifo=$vm_log.in
    rm -f "$fifo" "$vm_log"
    mkfifo "$fifo"
    : >"$vm_log"
    # Opening read-write does not block, so the emulator can open it later.
    exec {vm_fd}<>"$fifo"
    vm_start=$(now)
    "$@" <"$fifo" >"$vm_log" 2>&1 &
    vm_pid=$!
}

# Stops the emulator started by vm_run (if it still runs) and closes the fifo.
vm_stop() {
    if [[ -n $vm_pid ]]; then
        kill "$vm_pid" 2>/dev/null || true
        wait "$vm_pid" 2>/dev/null || true
        vm_pid=
    fi
    if [[ -n $vm_fd ]]; then
        exec {vm_fd}>&-
        vm_fd=
        rm -f "$vm_log.in"
    fi
}

# vm_wait_line REGEX TIMEOUT: waits until a whole line of the console output
# (carriage returns removed) matches the extended REGEX. Fails on timeout or
# when the emulator exits.
vm_wait_line() {
    local re=$1 timeout=$2 t0
    t0=$(now)
    while :; do
        if tr -d '\r' <"$vm_log" | grep -qxE -- "$re"; then
            return 0
        fi
        if ! kill -0 "$vm_pid" 2>/dev/null; then
            printf 'emulator exited before a line matched %s\n' "$re" >&2
            return 1
        fi
        if awk -v a="$t0" -v b="$(now)" -v t="$timeout" 'BEGIN { exit !(b - a > t) }'; then
            printf 'timeout (%ss) waiting for a line matching %s\n' "$timeout" "$re" >&2
            return 1
        fi
        sleep 0.05
    done
}

# vm_wait_ready TIMEOUT: waits for the ready marker, prints seconds since start.
vm_wait_ready() {
    vm_wait_line ".*$guest_marker.*" "$1" || return 1
    elapsed "$vm_start"
}

# CPU seconds (user + system, all threads) the emulator has used so far.
# Less disturbed than wall-clock time when other jobs share the machine.
vm_cpu_time() {
    local stat ticks
    ticks=$(getconf CLK_TCK)
    stat=$(cat "/proc/$vm_pid/stat" 2>/dev/null) || { printf -- '-'; return 0; }
    stat=${stat##*) }
    awk -v t="$ticks" '{ printf "%.2f", ($12 + $13) / t }' <<<"$stat"
}

# vm_send TEXT: types TEXT and Enter on the serial console.
vm_send() { printf '%s\n' "$1" >&"$vm_fd"; }

# vm_ask COMMAND EXPECTED-LINE-REGEX TIMEOUT
vm_ask() {
    vm_send "$1"
    vm_wait_line "$2" "$3"
}

# Median of numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2];
        else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
