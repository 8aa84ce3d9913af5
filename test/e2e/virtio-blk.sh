#!/usr/bin/env bash
# The virtio-blk e2e (part of `npm run test:e2e`): uvfio's virtio-blk serves
# a raw disk image to a real guest, whose own virtio_blk driver reads and
# writes it; once with guest RAM shared (share=on: the daemon maps guest
# memory from QEMU's fds) and once with private RAM (E2E_SHARE=off: every
# DMA is a DMA_READ/DMA_WRITE message).
#
# For each mode:
# 1. a 32 MiB image of known bytes (the "canary") in the QEMU chroot;
# 2. the daemon up; a device defined on the virtio-blk parent with the image
#    as its `path` attribute, started, and `uvfio list -v` must show it;
# 3. the guest (test/e2e/guest/virtio-blk-test.sh) checks the driver binds,
#    reads the canary, writes a 16 MiB pattern at 4 MiB with O_DIRECT and
#    fsync plus the last sector, reads both back;
# 4. the host checks the image is byte for byte the canary with exactly
#    those writes; the device stops, the daemon exits 0 and logged no
#    warning.
#
# Then a third boot (share=on) with the read-only type: the guest sees a
# read-only disk, reads the canary, its write is refused, and the image is
# the canary still.
#
# Environment: VBLK_MODES (default "on off ro"), VBLK_DEVICE=qemu (the same
# guest test against QEMU's built-in virtio-blk-pci, no daemon: checks the
# test itself), VBLK_TYPE (the virtio-blk type; default: the parent's
# read-write one), UVFIO_SHARED, E2E_TIMEOUT (default 300), E2E_NO_BUILD=1, E2E_KEEP=1,
# and what boot-with-vfio-user.sh takes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${UVFIO_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
E2E=$SHARED/e2e
export E2E_TIMEOUT=${E2E_TIMEOUT:-300}
MODES=${VBLK_MODES:-on off ro}
DEVICE=${VBLK_DEVICE:-uvfio}
IMG_MIB=32 SEEK_MIB=4 PATTERN_MIB=16

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[e2e virtio-blk %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
T0=$(now)

[ -x "$E2E/setup.sh" ] || { log "no $E2E/setup.sh: set UVFIO_SHARED"; exit 2; }
[ "$(id -u)" = 0 ] || { log "must run as root (the QEMU chroot needs it)"; exit 2; }
case "$DEVICE" in uvfio | qemu) ;; *) log "VBLK_DEVICE must be uvfio or qemu"; exit 2 ;; esac

WORK=$(mktemp -d /tmp/uvfio-e2e-vblk.XXXXXX)
CHROOT=${E2E_DIR:-/opt/e2e}/root
# The image lives in the chroot, where QEMU's own device (VBLK_DEVICE=qemu) finds it too.
IMGDIR=/e2e/vblk-$$
UVFIO="node $ROOT/dist/src/cli/main.js"
SERVER_PID=""
# shellcheck source=test/e2e/lib.sh
. "$ROOT/test/e2e/lib.sh"
trap vblk_cleanup EXIT

e2e_prepare

# What the guest writes, what the image holds before, and after.
mkdir -p "$WORK/overlay/e2e" "$CHROOT$IMGDIR"
IMG=$CHROOT$IMGDIR/disk.img
e2e_gen uvfio-vblk-canary $((IMG_MIB << 20)) "$WORK/canary.img"
e2e_gen uvfio-vblk-pattern $((PATTERN_MIB << 20)) "$WORK/overlay/e2e/pattern.bin"
e2e_gen uvfio-vblk-tail 512 "$WORK/overlay/e2e/tail.bin"
cp "$WORK/canary.img" "$WORK/expected.img"
dd if="$WORK/overlay/e2e/pattern.bin" of="$WORK/expected.img" bs=1M seek=$SEEK_MIB conv=notrunc status=none
dd if="$WORK/overlay/e2e/tail.bin" of="$WORK/expected.img" bs=512 seek=$(((IMG_MIB << 11) - 1)) conv=notrunc status=none
sha() { sha256sum "$1" | cut -d' ' -f1; }
cp "$ROOT/test/e2e/guest/virtio-blk-lib.sh" "$WORK/overlay/e2e/"
cat > "$WORK/virtio-blk.env" <<ENV
VBLK_PCI=
VBLK_BYTES=$((IMG_MIB << 20))
VBLK_SEEK_MIB=$SEEK_MIB
VBLK_CANARY_SHA256=$(head -c 1048576 "$WORK/canary.img" | sha256sum | cut -d' ' -f1)
VBLK_PATTERN_SHA256=$(sha "$WORK/overlay/e2e/pattern.bin")
VBLK_TAIL_SHA256=$(sha "$WORK/overlay/e2e/tail.bin")
ENV

# run_mode MODE: one boot (MODE: on, off, or ro: a read-only disk, share=on);
# status 0 when the guest and every host check passed.
run_mode() {
    local mode=$1 share=$1 ro=0 rc=0 u="" sock=none qargs="" serial="" t expected=$WORK/expected.img label="share=$1"
    t=$(now)
    if [ "$mode" = ro ]; then share=on ro=1 expected=$WORK/canary.img label="read-only, share=on"; fi
    cp "$WORK/canary.img" "$IMG"
    if [ "$DEVICE" = uvfio ]; then
        uvfio_up || { log "the uvfio daemon did not come up"; uvfio_kill; return 2; }
        VBLK_TYPE=${VBLK_TYPE:-$([ "$ro" = 1 ] && echo virtio-blk-ro)} uvfio_vblk "$IMG" || { uvfio_kill; return 2; }
        u=$VBLK_UUID sock=$VBLK_SOCKET
        $UVFIO list -v -u "$u" > "$WORK/list-$mode.txt" 2>&1
        grep -qF "$IMG" "$WORK/list-$mode.txt" || { cat "$WORK/list-$mode.txt" >&2; log "uvfio list -v does not show $IMG"; rc=1; }
        # GET_ID: the device's name, dashes removed, 20 bytes at most.
        serial=$(echo "$u" | tr -d - | cut -c1-20)
    else
        qargs="-drive file=$IMGDIR/disk.img,if=none,id=d0,format=raw,readonly=$([ "$ro" = 1 ] && echo on || echo off) -device virtio-blk-pci,drive=d0,disable-legacy=on"
    fi
    { cat "$WORK/virtio-blk.env"; echo "VBLK_RO=$ro"; echo "VBLK_SERIAL=$serial"; } > "$WORK/overlay/e2e/virtio-blk.env"
    E2E_SHARE=$share E2E_QUIET=1 E2E_LOG="$WORK/console-$mode.log" E2E_OVERLAY="$WORK/overlay" \
        E2E_QEMU_ARGS="${E2E_QEMU_ARGS:-} $qargs" \
        "$E2E/boot-with-vfio-user.sh" "$sock" "$ROOT/test/e2e/guest/virtio-blk-test.sh" 2> "$WORK/boot-$mode.err" || rc=$?
    grep -E '^(VBLK|E2E-(PASS|FAIL))' "$WORK/console-$mode.log" | sed "s/^/  [$label] /" >&2 || true
    if [ "$rc" = 0 ]; then
        if cmp "$IMG" "$expected" > "$WORK/cmp-$mode.txt" 2>&1; then
            log "$label: the image is byte for byte what it should be"
        else
            log "$label: the image is not what the guest wrote: $(head -1 "$WORK/cmp-$mode.txt")"
            rc=1
        fi
    fi
    if [ "$DEVICE" = uvfio ]; then
        $UVFIO stop -u "$u" || { log "uvfio stop failed"; [ "$rc" = 0 ] && rc=1; }
        uvfio_down || { log "the daemon did not exit 0 on SIGTERM"; [ "$rc" = 0 ] && rc=1; }
        if uvfio_warnings > "$WORK/warn-$mode.txt"; then
            log "$label: the daemon logged warnings or errors:"; cat "$WORK/warn-$mode.txt" >&2
            [ "$rc" = 0 ] && rc=1
        fi
        rm -rf "$WORK/run" "$WORK/state"
    fi
    if [ "$rc" != 0 ]; then
        log "---- console ($label) ----"; cat "$WORK/console-$mode.log" >&2
        log "---- boot ----"; cat "$WORK/boot-$mode.err" >&2
        [ "$DEVICE" = uvfio ] && { log "---- daemon ----"; tail -n 40 "$WORK/server.err" >&2; }
    fi
    log "$label: $([ "$rc" = 0 ] && echo PASS || echo "FAIL rc=$rc") in $(since "$t")s"
    return "$rc"
}

rc=0
for mode in $MODES; do
    run_mode "$mode" || { r=$?; [ "$rc" = 0 ] && rc=$r; }
done
if [ "$rc" = 0 ]; then
    log "PASS: the guest's virtio_blk on $DEVICE's virtio-blk: ${MODES// /, } (total $(since "$T0")s)"
else
    log "FAIL (rc=$rc, total $(since "$T0")s)"
fi
exit "$rc"
