#!/usr/bin/env bash
# qcow2 throughput of Colo's qemu-img bench against the real QEMU 7.2 qemu-img bench, on the same file:
# 4 KiB random write/read (a prime stride that visits every 4 KiB block once, since qemu-img bench has no
# random mode), 4 KiB sequential write into a fresh image (cluster allocation), and 1 MiB sequential
# read/write. Prints seconds and MiB/s per tool and the Colo/QEMU speed ratio (>1: Colo is faster).
# Then runs tools/bench-nbd.sh for NBD read/write against qemu-nbd (BENCH_NBD=0 skips it).
#
#   tools/bench-block.sh                       # 256 MiB image, best of 3 runs
#   BENCH_SIZE=1G BENCH_RUNS=5 tools/bench-block.sh
#
# Needs tools/build.sh to have published build/bin/qemu-img, and qemu-utils.
set -euo pipefail
cd "$(dirname "$0")/.."

size="${BENCH_SIZE:-256M}"
runs="${BENCH_RUNS:-3}"
colo_img="$PWD/build/bin/qemu-img"
real_img="$(command -v qemu-img)"
for tool in "$colo_img" "$real_img"; do
    command -v "$tool" >/dev/null || { echo "bench-block: $tool not found" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bytes=$(numfmt --from=iec "$size")
blocks4k=$((bytes / 4096))
# 7919 is prime, so with a power-of-two block count the stride is coprime and visits every block.
stride=$((7919 * 4096))
count4k=$((blocks4k < 65536 ? blocks4k : 65536))
count1m=$((bytes / 1048576))

# seconds EXE ARGS... -> the best "Run completed in X seconds" of $runs runs.
seconds() {
    local best="" t
    for _ in $(seq "$runs"); do
        t=$("$@" | sed -n 's/^Run completed in \([0-9.]*\) seconds\./\1/p')
        [[ -n "$t" ]] || { echo "bench-block: no timing from: $*" >&2; exit 1; }
        if [[ -z "$best" ]] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
    done
    echo "$best"
}

printf '%-28s %10s %10s %10s %10s %7s\n' case "qemu s" "colo s" "qemu MiB/s" "colo MiB/s" ratio
# row NAME TOTAL_BYTES SETUP ARGS... : SETUP (fresh|filled) prepares $work/img.qcow2 before each tool's runs.
row() {
    local name=$1 total=$2 setup=$3
    shift 3
    local q c
    prepare "$setup"; q=$(seconds "$real_img" bench -f qcow2 "$@" "$work/img.qcow2")
    prepare "$setup"; c=$(seconds "$colo_img" bench -f qcow2 "$@" "$work/img.qcow2")
    awk -v n="$name" -v q="$q" -v c="$c" -v b="$total" 'BEGIN {
        qm = (q > 0) ? b / 1048576 / q : 0; cm = (c > 0) ? b / 1048576 / c : 0;
        printf "%-28s %10.3f %10.3f %10.1f %10.1f %7.2f\n", n, q, c, qm, cm, (qm > 0 ? cm / qm : 0) }'
}

prepare() {
    rm -f "$work/img.qcow2"
    "$real_img" create -q -f qcow2 "$work/img.qcow2" "$size"
    if [[ $1 == filled ]]; then
        "$real_img" bench -w -f qcow2 -c "$count1m" -s 1M --pattern=0x5a "$work/img.qcow2" >/dev/null
    fi
}

row "qcow2 4k seq write (alloc)" $((count4k * 4096)) fresh -w -c "$count4k" -s 4096
row "qcow2 4k random write" $((count4k * 4096)) filled -w -c "$count4k" -s 4096 -S "$stride"
row "qcow2 4k random read" $((count4k * 4096)) filled -c "$count4k" -s 4096 -S "$stride"
row "qcow2 1M seq write" "$bytes" filled -w -c "$count1m" -s 1M
row "qcow2 1M seq read" "$bytes" filled -c "$count1m" -s 1M
echo "(both keep 64 requests in flight (-d default), reads and writes; both use the page cache (-t writeback default);"
echo " the 1M rows are 256 requests, a few tens of ms: startup (threads, JIT) weighs; BENCH_SIZE=1G gives steadier ratios)"

if [[ "${BENCH_NBD:-1}" != 0 ]]; then
    echo
    echo "NBD (tools/bench-nbd.sh):"
    BENCH_SIZE="$size" BENCH_RUNS="$runs" tools/bench-nbd.sh
fi
