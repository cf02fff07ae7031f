#!/usr/bin/env bash
# Read/write throughput of Colo's qemu-nbd against the real QEMU 7.2 qemu-nbd, measured with
# libnbd's nbdcopy over loopback TCP (one connection each, so neither server's multi-conn matters).
# Prints MiB/s per server and the Colo/real ratio for each direction.
#
#   tools/bench-nbd.sh            # 256 MiB raw image, best of 3 runs
#   BENCH_SIZE=1G BENCH_RUNS=5 BENCH_FORMAT=qcow2 tools/bench-nbd.sh
#
# Needs tools/build.sh to have published build/bin/qemu-nbd, and qemu-utils + libnbd-bin.
set -euo pipefail
cd "$(dirname "$0")/.."

size="${BENCH_SIZE:-256M}"
runs="${BENCH_RUNS:-3}"
format="${BENCH_FORMAT:-raw}"
colo_nbd="$PWD/build/bin/qemu-nbd"
real_nbd="$(command -v qemu-nbd)"
for tool in "$colo_nbd" "$real_nbd" nbdcopy qemu-img; do
    command -v "$tool" >/dev/null || { echo "bench-nbd: $tool not found" >&2; exit 1; }
done

work="$(mktemp -d)"
# start() runs in a command substitution (a subshell), so the pid files have fixed names.
pids=("$work/colo.pid" "$work/real.pid")
cleanup() {
    # Only the servers this script started, by the pid each wrote.
    for pidfile in "${pids[@]}"; do
        [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    # QEMU 7.2's qemu-nbd leaves its pid file behind, so wait on the process, not the file.
    for pidfile in "${pids[@]}"; do
        [[ -f "$pidfile" ]] || continue
        pid=$(cat "$pidfile")
        for _ in $(seq 100); do
            [[ -d /proc/$pid ]] && ! grep -q '^[^)]*) [ZX]' "/proc/$pid/stat" 2>/dev/null || break
            sleep 0.05
        done
    done
    rm -rf "$work"
}
trap cleanup EXIT

bytes=$(numfmt --from=iec "$size")
mib=$((bytes / 1048576))
# Incompressible data, so neither side can skip work on zeroes.
head -c "$bytes" /dev/urandom >"$work/src.raw"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start NAME EXE IMAGE -> prints the port once the server listens (--fork returns then).
start() {
    local name=$1 exe=$2 image=$3 port
    port=$(free_port)
    "$exe" --fork --pid-file "$work/$name.pid" -t -f "$format" -b 127.0.0.1 -p "$port" "$image"
    echo "$port"
}

# best_mibs CMD... -> best MiB/s over $runs runs of CMD.
best_mibs() {
    local best=0 t0 t1 rate
    for _ in $(seq "$runs"); do
        t0=$(date +%s%N)
        "$@" >/dev/null
        t1=$(date +%s%N)
        rate=$(awk -v b="$bytes" -v ns="$((t1 - t0))" 'BEGIN { printf "%.1f", b / 1048576 / (ns / 1e9) }')
        best=$(awk -v a="$best" -v b="$rate" 'BEGIN { print (b > a) ? b : a }')
    done
    echo "$best"
}

for who in colo real; do
    qemu-img create -q -f "$format" "$work/$who.img" "$size"
done
colo_port=$(start colo "$colo_nbd" "$work/colo.img")
real_port=$(start real "$real_nbd" "$work/real.img")

write_colo=$(best_mibs nbdcopy -C 1 "$work/src.raw" "nbd://127.0.0.1:$colo_port")
write_real=$(best_mibs nbdcopy -C 1 "$work/src.raw" "nbd://127.0.0.1:$real_port")
read_colo=$(best_mibs nbdcopy -C 1 "nbd://127.0.0.1:$colo_port" null:)
read_real=$(best_mibs nbdcopy -C 1 "nbd://127.0.0.1:$real_port" null:)

printf 'image: %s %s (%d MiB), nbdcopy -C 1, best of %d\n' "$format" "$size" "$mib" "$runs"
printf '%-6s %12s %12s %8s\n' "" "colo MiB/s" "real MiB/s" "ratio"
awk -v c="$write_colo" -v r="$write_real" 'BEGIN { printf "%-6s %12.1f %12.1f %8.2f\n", "write", c, r, c / r }'
awk -v c="$read_colo" -v r="$read_real" 'BEGIN { printf "%-6s %12.1f %12.1f %8.2f\n", "read", c, r, c / r }'
