#!/usr/bin/env bash
# The main job: builds Colo, then follows QEMU's COLO document (docs/COLO-FT.txt) with Colo's
# binaries as far as Colo goes today, printing what each step answers. Addresses stay on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/build.sh
export PATH="$PWD/build/bin:$PATH"
work=$(mktemp -d /tmp/colo-main.XXXXXX)
trap 'rm -rf "$work"' EXIT
imagefolder="$work"
primary_ip=127.0.0.1

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "qemu-img create (document step 2)"
for image in primary secondary-active secondary-hidden; do
    qemu-img create -f qcow2 "$imagefolder/$image.qcow2" 10G || echo "(qemu-img: not there yet)"
done

step "Secondary command line, verbatim (0.0.0.0 -> 127.0.0.1)"
qemu-system-x86_64 -enable-kvm -cpu qemu64,kvmclock=on -m 512 -smp 1 -qmp stdio \
   -device piix3-usb-uhci -device usb-tablet -name secondary \
   -netdev tap,id=hn0,vhost=off,helper=/usr/lib/qemu/qemu-bridge-helper \
   -device rtl8139,id=e0,netdev=hn0 \
   -chardev socket,id=red0,host=$primary_ip,port=9003,reconnect=1 \
   -chardev socket,id=red1,host=$primary_ip,port=9004,reconnect=1 \
   -object filter-redirector,id=f1,netdev=hn0,queue=tx,indev=red0 \
   -object filter-redirector,id=f2,netdev=hn0,queue=rx,outdev=red1 \
   -object filter-rewriter,id=rew0,netdev=hn0,queue=all \
   -drive if=none,id=parent0,file.filename=$imagefolder/primary.qcow2,driver=qcow2 \
   -drive if=none,id=childs0,driver=replication,mode=secondary,file.driver=qcow2,top-id=colo-disk0,file.file.filename=$imagefolder/secondary-active.qcow2,file.backing.driver=qcow2,file.backing.file.filename=$imagefolder/secondary-hidden.qcow2,file.backing.backing=parent0 \
   -drive if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0=childs0 \
   -incoming tcp:127.0.0.1:9998 </dev/null || echo "(exit status $?)"

step "Primary command line, verbatim (0.0.0.0 -> 127.0.0.1)"
qemu-system-x86_64 -enable-kvm -cpu qemu64,kvmclock=on -m 512 -smp 1 -qmp stdio \
   -device piix3-usb-uhci -device usb-tablet -name primary \
   -netdev tap,id=hn0,vhost=off,helper=/usr/lib/qemu/qemu-bridge-helper \
   -device rtl8139,id=e0,netdev=hn0 \
   -chardev socket,id=mirror0,host=127.0.0.1,port=9003,server=on,wait=off \
   -chardev socket,id=compare1,host=127.0.0.1,port=9004,server=on,wait=on \
   -chardev socket,id=compare0,host=127.0.0.1,port=9001,server=on,wait=off \
   -chardev socket,id=compare0-0,host=127.0.0.1,port=9001 \
   -chardev socket,id=compare_out,host=127.0.0.1,port=9005,server=on,wait=off \
   -chardev socket,id=compare_out0,host=127.0.0.1,port=9005 \
   -object filter-mirror,id=m0,netdev=hn0,queue=tx,outdev=mirror0 \
   -object filter-redirector,netdev=hn0,id=redire0,queue=rx,indev=compare_out \
   -object filter-redirector,netdev=hn0,id=redire1,queue=rx,outdev=compare0 \
   -object iothread,id=iothread1 \
   -object colo-compare,id=comp0,primary_in=compare0-0,secondary_in=compare1,outdev=compare_out0,iothread=iothread1 \
   -drive if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.file.filename=$imagefolder/primary.qcow2,children.0.driver=qcow2 \
   -S </dev/null || echo "(exit status $?)"

step "What runs today: a board-less secondary (-M none) with the document's chardevs, driven over QMP"
qmp_session() {
    cat <<'QMP'
{'execute':'qmp_capabilities'}
{'execute':'query-status'}
{'execute': 'object-add', 'arguments':{ 'qom-type': 'iothread', 'id': 'iothread1' } }
{'execute': 'object-add', 'arguments':{ 'qom-type': 'filter-mirror', 'id': 'm0', 'props': { 'netdev': 'hn0', 'queue': 'tx', 'outdev': 'mirror0' } } }
{'execute': 'nbd-server-start', 'arguments': {'addr': {'type': 'inet', 'data': {'host': '127.0.0.1', 'port': '9999'} } } }
{'execute': 'chardev-remove', 'arguments':{ 'id': 'red1' } }
{'execute': 'chardev-remove', 'arguments':{ 'id': 'red0' } }
{'execute': 'chardev-add', 'arguments':{ 'id': 'mirror0', 'backend': {'type': 'socket', 'data': {'addr': { 'type': 'inet', 'data': { 'host': '127.0.0.1', 'port': '9003' } }, 'server': true } } } }
{'execute': 'chardev-add', 'arguments':{ 'id': 'compare0', 'backend': {'type': 'socket', 'data': {'addr': { 'type': 'inet', 'data': { 'host': '127.0.0.1', 'port': '9001' } }, 'server': true } } } }
{'execute': 'chardev-add', 'arguments':{ 'id': 'compare0-0', 'backend': {'type': 'socket', 'data': {'addr': { 'type': 'inet', 'data': { 'host': '127.0.0.1', 'port': '9001' } }, 'server': false } } } }
{'execute': 'query-chardev'}
{'execute': 'object-del', 'arguments':{ 'id': 'iothread1' } }
{'execute': 'human-monitor-command', 'arguments': {'command-line': 'info status'}}
{'execute': 'quit'}
QMP
}
qmp_session | while IFS= read -r line; do printf '%s\n' "$line"; sleep 0.2; done |
    tee >(sed 's/^/>> /' >&2) |
    qemu-system-x86_64 -M none -name secondary -qmp stdio \
        -chardev socket,id=red0,host=$primary_ip,port=9003,reconnect=1 \
        -chardev socket,id=red1,host=$primary_ip,port=9004,reconnect=1 \
        -incoming tcp:127.0.0.1:9998
