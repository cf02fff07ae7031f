#!/usr/bin/env bash
# Builds Colo's test guest from Debian packages:
#   build/guest/bzImage            Debian's linux-image (vmlinuz)
#   build/guest/vmlinux            uncompressed ELF extracted from it (PVH-bootable)
#   build/guest/initramfs.cpio.gz  busybox-static + ata_piix/8139cp/8139too modules + /init
#   build/guest/disk.img           MBR + FAT partition with syslinux, kernel and initramfs
#   build/guest/cmdline            the standard kernel command line
#   build/guest/manifest.txt       which packages went in
# Downloads are cached in build/guest/cache/. Running it again only redoes what is stale.
#
# Environment:
#   COLO_GUEST_OUT          output folder (default: <repo>/build/guest)
#   COLO_GUEST_KERNEL_PKG   versioned kernel package (default: what linux-image-amd64 depends on)
#   COLO_GUEST_IP           default for colo.ip= in the command line (default 10.0.2.15/24)
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/../.." && pwd)
out=${COLO_GUEST_OUT:-$repo_root/build/guest}
cache=$out/cache
work=$out/work
guest_ip=${COLO_GUEST_IP:-10.0.2.15/24}

# Modules /init loads, by name; their dependencies are added from modules.dep.
wanted_modules=(ata_piix sd_mod 8139cp 8139too)

log() { printf '[guest] %s\n' "$*" >&2; }
die() { printf '[guest] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- host tools

apt_updated=0
apt_update_once() {
    if [[ $apt_updated -eq 0 ]]; then
        log "apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
        apt_updated=1
    fi
}

# Installs the given Debian packages if they are not installed yet.
need_packages() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "missing packages ${missing[*]} (run as root or install them)"
    apt_update_once
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >"${TMPDIR:-/tmp}/colo-guest-apt.log" 2>&1 \
        || die "apt-get install ${missing[*]} failed (see ${TMPDIR:-/tmp}/colo-guest-apt.log)"
}

# Prints the candidate version of a package, updating the apt lists once if needed.
candidate_version() {
    local pkg=$1 ver
    ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/ {print $2; exit}') || true
    if [[ -z $ver ]]; then
        apt_update_once
        ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/ {print $2; exit}') || true
    fi
    [[ -n $ver ]] || die "package $pkg not found in the apt lists"
    printf '%s\n' "$ver"
}

# Downloads a package's .deb into the cache (once) and prints its path.
fetch_deb() {
    local pkg=$1 ver file existing
    # Offline and already cached: use the newest cached copy.
    if ! ver=$(candidate_version "$pkg" 2>/dev/null); then
        existing=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n 1)
        [[ -n $existing ]] || die "cannot resolve $pkg and no cached copy in $cache"
        log "using cached $(basename "$existing") (apt lists do not know $pkg)"
        printf '%s\n' "$existing"
        return 0
    fi
    file=$cache/${pkg}_${ver//:/%3a}_amd64.deb
    if [[ ! -s $file ]]; then
        log "downloading $pkg $ver"
        if ! (cd "$cache" && apt-get download "$pkg=$ver" >/dev/null 2>"$cache/apt-download.log"); then
            # Old apt lists can name a version the archive no longer has.
            [[ $apt_updated -eq 0 ]] || die "apt-get download $pkg=$ver failed (see $cache/apt-download.log)"
            apt_update_once
            fetch_deb "$pkg"
            return 0
        fi
        [[ -s $file ]] || die "apt-get download did not produce $file"
    fi
    printf '%s\n' "$file"
}

# Extracts a .deb into a folder unless that folder already holds this .deb.
extract_deb() {
    local deb=$1 dest=$2
    if [[ -f $dest/.from && $(cat "$dest/.from") == "$(basename "$deb")" ]]; then
        return 0
    fi
    log "extracting $(basename "$deb")"
    rm -rf "$dest"
    mkdir -p "$dest"
    dpkg-deb -x "$deb" "$dest"
    basename "$deb" >"$dest/.from"
}

# True if $1 is missing or older than any of the other files.
stale() {
    local target=$1 dep
    shift
    [[ -e $target ]] || return 0
    for dep in "$@"; do
        [[ $dep -nt $target ]] && return 0
    done
    return 1
}

# ---------------------------------------------------------------- kernel

le32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }

# Extracts the uncompressed ELF kernel from a bzImage. The boot protocol
# (2.08+) header gives where the compressed payload lies inside the
# protected-mode part: payload_offset at 0x248, payload_length at 0x24c.
extract_vmlinux() {
    local bz=$1 dst=$2 magic setup_sects version start len payload magic_hex trailer size
    magic=$(dd if="$bz" bs=1 skip=$((0x202)) count=4 status=none)
    [[ $magic == HdrS ]] || die "$bz is not a bzImage (no HdrS header)"
    version=$(od -An -tu2 -j $((0x206)) -N2 "$bz" | tr -d ' ')
    ((version >= 0x208)) || die "$bz boot protocol $(printf '%#x' "$version") has no payload fields"
    setup_sects=$(u8 "$bz" $((0x1f1)))
    ((setup_sects == 0)) && setup_sects=4
    start=$(((setup_sects + 1) * 512 + $(le32 "$bz" $((0x248)))))
    len=$(le32 "$bz" $((0x24c)))
    payload=$work/payload.bin
    dd if="$bz" of="$payload" bs=64K iflag=skip_bytes,count_bytes skip="$start" count="$len" status=none
    magic_hex=$(od -An -tx1 -N6 "$payload" | tr -d ' \n')
    # The kernel build appends the uncompressed size (le32) to every payload.
    size=$(le32 "$payload" $((len - 4)))
    truncate -s $((len - 4)) "$payload"
    case $magic_hex in
        fd377a585a00*) log "payload: xz, $len bytes"; xz -dc --single-stream "$payload" >"$dst.tmp" ;;
        28b52ffd*) log "payload: zstd, $len bytes"; zstd -dcq "$payload" >"$dst.tmp" ;;
        1f8b*) log "payload: gzip, $len bytes"; gzip -dc "$payload" >"$dst.tmp" ;;
        425a68*) log "payload: bzip2, $len bytes"; bzip2 -dc "$payload" >"$dst.tmp" ;;
        5d0000*) log "payload: lzma, $len bytes"; xz --format=lzma -dc "$payload" >"$dst.tmp" ;;
        *) die "unknown payload compression (magic $magic_hex) in $bz" ;;
    esac
    rm -f "$payload"
    trailer=$(stat -c %s "$dst.tmp")
    [[ $trailer -eq $size ]] || die "decompressed $trailer bytes, the payload says $size"
    [[ $(od -An -tx1 -N4 "$dst.tmp" | tr -d ' \n') == 7f454c46 ]] || die "payload is not an ELF file"
    mv "$dst.tmp" "$dst"
}

# Xen PVH entry: ELF note owner "Xen", type 0x12 (XEN_ELFNOTE_PHYS32_ENTRY).
check_pvh_note() {
    local notes
    notes=$(readelf -n "$1")
    grep -qE '^ +Xen +0x[0-9a-f]+[[:space:]]+(Unknown note type: \(0x00000012\)|.*PHYS32_ENTRY)' <<<"$notes" \
        || die "$1 has no Xen PVH (XEN_ELFNOTE_PHYS32_ENTRY) note: the kernel lacks CONFIG_PVH"
}

# ---------------------------------------------------------------- initramfs

write_init() {
    cat >"$1" <<'EOF'
#!/bin/sh
# Colo test guest /init (written by tools/guest/build.sh).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
hostname colo-guest

kver=$(uname -r)
echo "colo-guest: kernel $kver, $(nproc) cpu(s)"
while read -r m; do
    insmod "/lib/modules/$kver/$m" || echo "colo-guest: insmod $m failed"
done </etc/colo-modules

# Kernel messages from here on (link up, ...) would cut into the serial
# dialogue: only warnings and worse go to the console; `dmesg` shows all.
dmesg -n 5

ip=
for arg in $(cat /proc/cmdline); do
    case $arg in
        colo.ip=*) ip=${arg#colo.ip=} ;;
        colo.gw=*) gw=${arg#colo.gw=} ;;
    esac
done
ip link set lo up
if [ -n "$ip" ]; then
    case $ip in */*) ;; *) ip=$ip/24 ;; esac
    if ip link set eth0 up 2>/dev/null && ip addr add "$ip" dev eth0; then
        [ -n "${gw:-}" ] && ip route add default via "$gw"
        echo "colo-guest: eth0 $ip"
    else
        echo "colo-guest: no eth0, network not configured"
    fi
fi

httpd -p 80 -h /var/www && echo "colo-guest: httpd on port 80"
nc -ll -p 7 -e /bin/cat </dev/null >/dev/null 2>&1 &
echo "colo-guest: echo service (nc) on port 7"

echo COLO-GUEST-READY
while :; do
    setsid cttyhack sh -l
    echo "colo-guest: shell exited, starting another"
done
EOF
    chmod 755 "$1"
}

# Prints module paths (relative to lib/modules/<ver>) in load order:
# each module after everything it depends on.
module_load_order() {
    local moddir=$1; shift
    local -A deps=() byname=() seen=()
    local line path name rest
    while IFS= read -r line; do
        path=${line%%:*}
        rest=${line#*:}
        deps[$path]=$rest
        name=$(basename "$path")
        name=${name%%.ko*}
        byname[$name]=$path
        byname[${name//-/_}]=$path
    done <"$moddir/modules.dep"
    visit() {
        local p=$1 d
        [[ -n ${seen[$p]:-} ]] && return 0
        seen[$p]=1
        for d in ${deps[$p]}; do visit "$d"; done
        printf '%s\n' "$p"
    }
    local m
    for m in "$@"; do
        [[ -n ${byname[$m]:-} ]] || die "module $m not in $moddir/modules.dep (built in?)"
        visit "${byname[$m]}"
    done
}

build_initramfs() {
    local kroot=$1 kver=$2 bbroot=$3 dst=$4
    local root=$work/initramfs moddir=$kroot/lib/modules/$kver p applet
    rm -rf "$root"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var/www,lib/modules/"$kver"}
    cp "$bbroot/bin/busybox" "$root/bin/busybox"
    # One symlink per applet, at the path busybox itself names.
    while IFS= read -r applet; do
        [[ $applet == bin/busybox || -e $root/$applet ]] && continue
        ln -s /bin/busybox "$root/$applet"
    done < <("$bbroot/bin/busybox" --list-full)

    : >"$root/etc/colo-modules"
    while IFS= read -r p; do
        mkdir -p "$root/lib/modules/$kver/$(dirname "$p")"
        case $p in
            *.ko.xz) xz -dc "$moddir/$p" >"$root/lib/modules/$kver/${p%.xz}"; p=${p%.xz} ;;
            *.ko.zst) zstd -dcq "$moddir/$p" >"$root/lib/modules/$kver/${p%.zst}"; p=${p%.zst} ;;
            *.ko.gz) gzip -dc "$moddir/$p" >"$root/lib/modules/$kver/${p%.gz}"; p=${p%.gz} ;;
            *) cp "$moddir/$p" "$root/lib/modules/$kver/$p" ;;
        esac
        printf '%s\n' "$p" >>"$root/etc/colo-modules"
    done < <(module_load_order "$moddir" "${wanted_modules[@]}")
    log "modules: $(xargs -n1 basename <"$root/etc/colo-modules" | tr '\n' ' ')"

    write_init "$root/init"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\n' >"$root/etc/group"
    printf 'export PS1="colo-guest# "\n' >"$root/etc/profile"
    printf 'colo-guest ok\n' >"$root/var/www/index.html"
    # Reproducible archive: fixed owner and timestamps, sorted names.
    find "$root" -exec touch -h -d @0 {} +
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n >"$dst.tmp"
    mv "$dst.tmp" "$dst"
}

# ---------------------------------------------------------------- disk image

build_disk() {
    local bz=$1 initrd=$2 cmdline=$3 dst=$4
    local start_sector=2048 size_mib=48 off nsect img=$dst.tmp cfg=$work/syslinux.cfg
    off=$((start_sector * 512))
    nsect=$((size_mib * 2048 - start_sector))
    rm -f "$img"
    truncate -s "${size_mib}M" "$img"
    # One bootable FAT16 (LBA) partition from 1 MiB to the end.
    printf 'label: dos\nlabel-id: 0x434f4c4f\nstart=%d, type=e, bootable\n' "$start_sector" \
        | sfdisk --quiet --no-reread --no-tell-kernel "$img" >/dev/null
    # Fixed volume serial and timestamps (mtools honours SOURCE_DATE_EPOCH): same inputs, same image.
    export SOURCE_DATE_EPOCH=946684800
    mformat -i "$img@@$off" -T "$nsect" -h 64 -s 32 -H "$start_sector" -N 434f4c4f -v COLOGUEST ::
    cat >"$cfg" <<EOF
SERIAL 0 115200
DEFAULT colo
PROMPT 0
TIMEOUT 0
LABEL colo
  LINUX /linux
  INITRD /initrd.gz
  APPEND $cmdline
EOF
    mcopy -i "$img@@$off" "$bz" ::/linux
    mcopy -i "$img@@$off" "$initrd" ::/initrd.gz
    mcopy -i "$img@@$off" "$cfg" ::/syslinux.cfg
    syslinux --offset "$off" --install "$img"
    dd if=/usr/lib/syslinux/mbr/mbr.bin of="$img" bs=440 count=1 conv=notrunc status=none
    mv "$img" "$dst"
}

# ---------------------------------------------------------------- main

main() {
    need_packages xz-utils zstd cpio gzip binutils kmod fdisk mtools syslinux syslinux-common
    mkdir -p "$cache" "$work"

    local kpkg kver kdeb bbdeb kroot=$work/kernel bbroot=$work/busybox
    kpkg=${COLO_GUEST_KERNEL_PKG:-}
    if [[ -z $kpkg ]]; then
        if candidate_version linux-image-amd64 >/dev/null 2>&1; then
            kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
        else
            # Offline: take the newest kernel already in the cache.
            kpkg=$(find "$cache" -maxdepth 1 -name 'linux-image-[0-9]*-amd64_*.deb' -printf '%f\n' \
                | sort -V | tail -n 1 | cut -d_ -f1)
        fi
        [[ -n $kpkg ]] || die "cannot tell which kernel linux-image-amd64 depends on"
    fi
    kver=${kpkg#linux-image-}
    kdeb=$(fetch_deb "$kpkg")
    bbdeb=$(fetch_deb busybox-static)
    extract_deb "$kdeb" "$kroot"
    extract_deb "$bbdeb" "$bbroot"
    [[ -f $kroot/boot/vmlinuz-$kver ]] || die "$kdeb has no boot/vmlinuz-$kver"

    # Debian generates modules.dep in the package's postinst; do the same here.
    if stale "$kroot/lib/modules/$kver/modules.dep" "$kroot/.from"; then
        log "depmod $kver"
        depmod -b "$kroot" "$kver"
    fi

    local cmdline
    cmdline="console=ttyS0 colo.ip=$guest_ip panic=-1 tsc=reliable no_timer_check cryptomgr.notests mitigations=off nokaslr edd=off"
    if [[ ! -f $out/cmdline || $(cat "$out/cmdline") != "$cmdline" ]]; then
        printf '%s\n' "$cmdline" >"$out/cmdline"
    fi

    if stale "$out/bzImage" "$kroot/.from"; then
        cp "$kroot/boot/vmlinuz-$kver" "$out/bzImage"
    fi
    if stale "$out/vmlinux" "$out/bzImage"; then
        log "extracting vmlinux from bzImage"
        extract_vmlinux "$out/bzImage" "$out/vmlinux"
    fi
    check_pvh_note "$out/vmlinux"

    if stale "$out/initramfs.cpio.gz" "$kroot/.from" "$bbroot/.from" "${BASH_SOURCE[0]}"; then
        log "building initramfs"
        build_initramfs "$kroot" "$kver" "$bbroot" "$out/initramfs.cpio.gz"
    fi
    if stale "$out/disk.img" "$out/bzImage" "$out/initramfs.cpio.gz" "$out/cmdline" "${BASH_SOURCE[0]}"; then
        log "building disk.img"
        build_disk "$out/bzImage" "$out/initramfs.cpio.gz" "$cmdline" "$out/disk.img"
    fi

    {
        printf 'kernel %s (%s)\n' "$kpkg" "$(basename "$kdeb")"
        printf 'busybox %s\n' "$(basename "$bbdeb")"
        printf 'cmdline %s\n' "$cmdline"
        (cd "$out" && sha256sum bzImage vmlinux initramfs.cpio.gz disk.img)
    } >"$out/manifest.txt"
    log "done: $out/{bzImage,vmlinux,initramfs.cpio.gz,disk.img,cmdline}"
}

main "$@"
