# shellcheck shell=sh disable=SC3043
# Guest helpers for the virtio-blk e2e and its benchmark (busybox sh; sourced).

# vblk_disk PCI_DIR: checks that virtio-pci drives the function and the
# guest's own virtio_blk drives its virtio device, and prints the disk's
# name (vda...). Fails (status 1, a line on stdout) otherwise.
vblk_disk() {
    local fn=$1 drv vdev disk
    [ -d "$fn" ] || { echo "no PCI function $fn"; return 1; }
    drv=$(basename "$(readlink "$fn/driver" 2>/dev/null)" 2>/dev/null)
    [ "$drv" = virtio-pci ] || { echo "${fn##*/}: driven by '${drv:-nothing}', not virtio-pci"; return 1; }
    vdev=$(ls -d "$fn"/virtio* 2>/dev/null | head -n 1)
    [ -n "$vdev" ] || { echo "${fn##*/}: virtio-pci made no virtio device"; return 1; }
    [ "$(cat "$vdev/device")" = 0x0002 ] || { echo "${vdev##*/}: virtio device id $(cat "$vdev/device"), not 2 (block)"; return 1; }
    drv=$(basename "$(readlink "$vdev/driver" 2>/dev/null)" 2>/dev/null)
    [ "$drv" = virtio_blk ] || { echo "${vdev##*/}: driven by '${drv:-nothing}', not virtio_blk"; return 1; }
    disk=$(ls "$vdev/block" 2>/dev/null | head -n 1)
    [ -n "$disk" ] && [ -b "/dev/$disk" ] || { echo "${vdev##*/}: no block device (/dev/${disk:-?})"; return 1; }
    echo "$disk"
}

# vblk_pci [BDF]: the sysfs directory of function BDF, or of the only
# 1af4:1042 (modern virtio-blk) function when BDF is empty.
vblk_pci() {
    local d found=""
    if [ -n "$1" ]; then echo "/sys/bus/pci/devices/$1"; return 0; fi
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1042 ] && found="$found $d"
    done
    set -- $found
    [ $# -eq 1 ] || { echo "found $# virtio-blk (1af4:1042) functions, wanted 1" >&2; return 1; }
    echo "$1"
}

# vblk_load: the virtio_blk module (virtio_pci is built in).
vblk_load() { modprobe virtio_blk 2>/dev/null || [ -d /sys/bus/virtio/drivers/virtio_blk ]; }
