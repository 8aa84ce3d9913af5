# shellcheck shell=sh disable=SC3043
# Guest side of the virtio-blk e2e (busybox sh, sourced by the e2e /init
# after /e2e/virtio-blk.env; `exit N` is the verdict). The host serves a
# disk image whose bytes it knows (the "canary"); here the guest's own
# virtio_blk must bind, show the image's size, read the canary as the host
# wrote it, then write /e2e/pattern.bin at VBLK_SEEK_MIB with O_DIRECT and
# fsync (a FLUSH), plus one 512-byte sector at the very end, and read both
# back with O_DIRECT. The host then checks the image byte for byte.
#
# With VBLK_RO=1 the disk must be read-only, and a write must be refused.
#
# /e2e/virtio-blk.env sets: VBLK_PCI (BDF, or empty: the only 1af4:1042),
# VBLK_RO (0 or 1), VBLK_SERIAL (what GET_ID must give, or empty: not
# checked), VBLK_BYTES (image size), VBLK_SEEK_MIB, VBLK_CANARY_SHA256 (of the
# image's first MiB), VBLK_PATTERN_SHA256, VBLK_TAIL_SHA256 (of
# /e2e/tail.bin, the last sector's new content).
. /e2e/virtio-blk.env
. /e2e/virtio-blk-lib.sh

fail() { echo "VBLK-FAIL $*"; exit 1; }
say() { echo "VBLK $*"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

vblk_load || fail "virtio_blk did not load"
fn=$(vblk_pci "$VBLK_PCI") || fail "$fn"
say "${fn##*/} $(cat "$fn/vendor"):$(cat "$fn/device") sub=$(cat "$fn/subsystem_vendor"):$(cat "$fn/subsystem_device") irq=$(cat "$fn/irq")"
disk=$(vblk_disk "$fn") || fail "$disk"
dev=/dev/$disk
q=/sys/block/$disk/queue
say "$disk: driver virtio_blk on virtio-pci, $(cat "/sys/block/$disk/size") sectors, lbs=$(cat $q/logical_block_size)" \
    "max_segments=$(cat $q/max_segments) max_sectors_kb=$(cat $q/max_sectors_kb) ro=$(cat "/sys/block/$disk/ro")" \
    "serial='$(cat "/sys/block/$disk/serial" 2>/dev/null)' mq=$(ls "/sys/block/$disk/mq" | wc -l)"
[ "$(cat "/sys/block/$disk/size")" = $((VBLK_BYTES / 512)) ] || fail "$disk: $(cat "/sys/block/$disk/size") sectors, the image has $((VBLK_BYTES / 512))"
[ "$(cat "/sys/block/$disk/ro")" = "$VBLK_RO" ] || fail "$disk: ro=$(cat "/sys/block/$disk/ro"), the device should give $VBLK_RO"
if [ -n "$VBLK_SERIAL" ]; then
    [ "$(cat "/sys/block/$disk/serial")" = "$VBLK_SERIAL" ] || fail "$disk: serial (GET_ID) '$(cat "/sys/block/$disk/serial")', wanted '$VBLK_SERIAL'"
fi
grep "virtio" /proc/interrupts | sed 's/^ */VBLK irq: /'

# READ of what the host wrote.
got=$(dd if="$dev" bs=1M count=1 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$got" = "$VBLK_CANARY_SHA256" ] || fail "first MiB reads as $got, the host wrote $VBLK_CANARY_SHA256"
say "first MiB as the host wrote it"

if [ "$VBLK_RO" = 1 ]; then
    # A read-only disk: the kernel refuses the write; the host checks nothing changed.
    out=$(dd if=/e2e/pattern.bin of="$dev" bs=1M count=1 seek="$VBLK_SEEK_MIB" oflag=direct conv=fsync,notrunc 2>&1) &&
        fail "a write to the read-only $disk succeeded: $out"
    say "read-only: the write was refused ($(echo "$out" | head -n 1))"
    echo "VBLK-GUEST-DONE read-only"
    exit 0
fi

# WRITE: the pattern with O_DIRECT in 1 MiB requests, then fsync (FLUSH).
n=$(($(wc -c < /e2e/pattern.bin) / 1048576))
out=$(dd if=/e2e/pattern.bin of="$dev" bs=1M count="$n" seek="$VBLK_SEEK_MIB" oflag=direct conv=fsync,notrunc 2>&1) || fail "write: $out"
say "wrote $n MiB at $VBLK_SEEK_MIB MiB: $(echo "$out" | tail -n 1)"
last=$((VBLK_BYTES / 512 - 1))
out=$(dd if=/e2e/tail.bin of="$dev" bs=512 count=1 seek="$last" oflag=direct conv=fsync,notrunc 2>&1) || fail "tail write: $out"

# Read back with O_DIRECT (nothing from the guest's page cache).
echo 3 > /proc/sys/vm/drop_caches
out=$(dd if="$dev" of=/tmp/back.bin bs=1M count="$n" skip="$VBLK_SEEK_MIB" iflag=direct 2>&1) || fail "read back: $out"
say "read $n MiB back: $(echo "$out" | tail -n 1)"
got=$(sha /tmp/back.bin)
[ "$got" = "$VBLK_PATTERN_SHA256" ] || {
    cmp /e2e/pattern.bin /tmp/back.bin | sed 's/^/VBLK cmp: /'
    fail "read back $got, wrote $VBLK_PATTERN_SHA256"
}
rm -f /tmp/back.bin
got=$(dd if="$dev" bs=512 count=1 skip="$last" iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$got" = "$VBLK_TAIL_SHA256" ] || fail "last sector reads $got, wrote $VBLK_TAIL_SHA256"
say "pattern and last sector read back as written"
# For the host: the guest is done writing (its check of the file follows).
echo "VBLK-GUEST-DONE $VBLK_PATTERN_SHA256"
