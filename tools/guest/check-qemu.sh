#!/usr/bin/env bash
# Boots the guest built by tools/guest/build.sh under QEMU TCG in four ways and
# checks each one: the ready marker comes, the serial shell answers a command,
# and the guest's services answer through the emulated rtl8139 (QEMU user
# networking, restrict=on, forwarded to 127.0.0.1 only).
#   a  -kernel bzImage -initrd initramfs.cpio.gz -append CMDLINE
#   b  -kernel vmlinux (PVH ELF entry) -initrd ... -append ...
#   c  -drive file=disk.img,format=raw,if=ide (SeaBIOS -> syslinux -> kernel)
#   d  as a, with -smp 2
# Usage: check-qemu.sh [-e EMULATOR] [-t TIMEOUT] [-x EXTRA-ARGS] [-n] [CASE...]
#   -e  emulator binary (default qemu-system-x86_64)
#   -t  seconds to wait for the ready marker (default 180)
#   -x  more emulator arguments, e.g. "-cpu max"
#   -n  no network device (skips the host-side TCP checks)
# 'ready' is wall-clock seconds from start to the marker, 'cpu' the emulator's
# CPU seconds (all threads) by then. Logs go to build/guest/check/CASE.log.
# Exit status 0 only if all cases pass.
set -euo pipefail
# shellcheck source=tools/guest/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The comment block at the top of this file.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

emulator=qemu-system-x86_64
timeout=180
network=1
user_args=()
while getopts 'e:t:x:nh' opt; do
    case $opt in
        e) emulator=$OPTARG ;;
        t) timeout=$OPTARG ;;
        n) network=0 ;;
        x) read -ra user_args <<<"$OPTARG" ;;
        h) usage; exit 0 ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
cases=("$@")
[[ ${#cases[@]} -gt 0 ]] || cases=(a b c d)

need_emulator "$emulator"
need_guest
logdir=$guest_out/check
mkdir -p "$logdir"
cmdline=$(cat "$guest_out/cmdline")
trap vm_stop EXIT

# Host-side TCP checks through the forwarded ports.
http_get() {
    local port=$1 fd reply
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET / HTTP/1.0\r\nHost: colo-guest\r\n\r\n' >&"$fd"
    reply=$(timeout 20 cat <&"$fd" | tr -d '\r') || true
    exec {fd}>&-
    grep -qx 'colo-guest ok' <<<"$reply"
}
tcp_echo() {
    local port=$1 word=$2 fd line=
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf '%s\n' "$word" >&"$fd"
    read -r -t 20 line <&"$fd" || true
    exec {fd}>&-
    [[ $line == "$word" ]]
}

# Prints P such that nothing listens on 127.0.0.1 ports P and P+1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port_pair() {
    local p tries
    for ((tries = 0; tries < 50; tries++)); do
        p=$((20000 + RANDOM % 20000))
        if ! port_in_use "$p" && ! port_in_use $((p + 1)); then
            printf '%s\n' "$p"
            return 0
        fi
    done
    die "no free pair of loopback ports found"
}

failed=0
summary=()
run_case() {
    local name=$1 what extra=() ready cpu http_port echo_port result token
    case $name in
        a) what="-kernel bzImage"
           extra=(-kernel "$guest_out/bzImage" -initrd "$guest_out/initramfs.cpio.gz" -append "$cmdline") ;;
        b) what="-kernel vmlinux (PVH)"
           extra=(-kernel "$guest_out/vmlinux" -initrd "$guest_out/initramfs.cpio.gz" -append "$cmdline") ;;
        c) what="disk.img (SeaBIOS+syslinux)"
           extra=(-drive "file=$guest_out/disk.img,format=raw,if=ide,snapshot=on") ;;
        d) what="-kernel bzImage -smp 2"
           extra=(-smp 2 -kernel "$guest_out/bzImage" -initrd "$guest_out/initramfs.cpio.gz" -append "$cmdline") ;;
        *) die "unknown case $name (use a, b, c or d)" ;;
    esac
    http_port=$(free_port_pair)
    echo_port=$((http_port + 1))
    if [[ $network -eq 1 ]]; then
        extra+=(-nic "user,model=rtl8139,restrict=on,hostfwd=tcp:127.0.0.1:$http_port-:80,hostfwd=tcp:127.0.0.1:$echo_port-:7")
    else
        extra+=(-nic none)
    fi
    vm_run "$logdir/$name.log" "$emulator" -accel tcg -m 512 -nographic -no-reboot "${extra[@]}" "${user_args[@]}"

    result=ok
    if ! ready=$(vm_wait_ready "$timeout"); then
        result=FAIL
        ready=-
    fi
    cpu=$(vm_cpu_time)
    token=hello-$RANDOM
    if [[ $result == ok ]] && ! vm_ask "echo $token" "$token" 30; then result=FAIL; fi
    if [[ $result == ok && $name == c ]] && ! vm_ask "test -b /dev/sda1 && echo disk-$token" "disk-$token" 30; then
        result="FAIL (no /dev/sda1)"
    fi
    # shellcheck disable=SC2016 # $(nproc) is for the guest's shell
    if [[ $result == ok && $name == d ]] && ! vm_ask 'echo cpus-$(nproc)' cpus-2 30; then
        result="FAIL (not 2 cpus)"
    fi
    if [[ $result == ok && $network -eq 1 ]]; then
        if ! vm_ask "wget -qO- http://127.0.0.1/ && echo web-$token" "web-$token" 30; then
            result="FAIL (httpd inside the guest)"
        elif ! http_get "$http_port"; then
            result="FAIL (http through rtl8139)"
        elif ! tcp_echo "$echo_port" "echo-$token"; then
            result="FAIL (tcp echo through rtl8139)"
        fi
    fi
    vm_stop
    [[ $result == ok ]] || failed=1
    summary+=("$(printf '(%s) %-30s ready %6s s  cpu %6s s  %s' "$name" "$what" "$ready" "$cpu" "$result")")
    printf '%s\n' "${summary[-1]}"
    [[ $result == ok ]] || printf '    log: %s\n' "$logdir/$name.log"
}

for c in "${cases[@]}"; do
    run_case "$c"
done
printf '%s\n' "$("$emulator" --version | head -n 1), -accel tcg, host $(nproc) cpu(s), load $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$failed"
