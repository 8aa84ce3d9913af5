#!/usr/bin/env bash
# The display e2e: mdpy and mbochs in a real guest, through QEMU's own
# vfio-user client, checked by screenshots taken on the host.
#
# 1. ../shared/e2e/setup.sh prepares the QEMU chroot and the guest (once);
# 2. test/e2e/display-host.ts serves an mbochs-small and an mdpy-vga
#    device, created through the mdev bus, and watches the guest's console;
# 3. the guest runs test/e2e/guest/mdpy-test.sh (draws through BAR0 with
#    devmem) and test/e2e/guest/mbochs-test.sh (the bochs DRM driver binds,
#    the pattern goes through /dev/fb0); after each drawing the host takes
#    screenshots until the pixels match (for mbochs, then also the web
#    console's canvas in a headless Chromium), and tells the guest.
#
# Exits 0 when the guest passed and the host matched both screens and the
# console's mbochs canvas.
# Environment: UVFIO_SHARED, E2E_TIMEOUT (default 300), E2E_NO_BUILD=1,
# E2E_KEEP=1 (keeps the work directory with the PNGs and logs), and
# whatever boot-with-vfio-user.sh takes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${UVFIO_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
E2E=$SHARED/e2e
export E2E_TIMEOUT=${E2E_TIMEOUT:-300}

log() { printf '[e2e display %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
[ -x "$E2E/setup.sh" ] || { log "no $E2E/setup.sh: set UVFIO_SHARED"; exit 2; }
[ "$(id -u)" = 0 ] || { log "must run as root (the QEMU chroot needs it)"; exit 2; }

WORK=$(mktemp -d /tmp/uvfio-e2e-display.XXXXXX)
HOST_PID=""
# shellcheck source=test/e2e/lib.sh
. "$ROOT/test/e2e/lib.sh"
cleanup() {
    e2e_stop "$HOST_PID"
    if [ -n "${E2E_KEEP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

e2e_prepare
cd "$ROOT"
HOST_JS=dist/test/e2e/display-host.js
[ -f "$HOST_JS" ] || { log "no $HOST_JS: build first"; exit 2; }

mkdir -p "$WORK/sockets" "$WORK/shots"
# The host finds this run's live console through a token in the test script.
TOKEN="uvfio-display-run-${WORK##*.}-$$"
node "$HOST_JS" "$WORK/sockets" "$WORK/shots" "${E2E_DIR:-/opt/e2e}/root/e2e/runs" "$TOKEN" > "$WORK/host.out" 2> "$WORK/host.err" &
HOST_PID=$!
sockets=""
for _ in $(seq 600); do
    sockets=$(sed -n 's/^ready //p' "$WORK/host.out")
    [ -n "$sockets" ] && break
    kill -0 "$HOST_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$sockets" ] || { cat "$WORK/host.out" "$WORK/host.err" >&2; log "the display host did not come up"; exit 2; }
log "host ready: $sockets"

# One boot runs both guest scripts, each in a subshell of its own.
{
    echo "# $TOKEN"
    echo '( . /e2e/mdpy-test.sh ) || exit 1'
    echo '( . /e2e/mbochs-test.sh ) || exit 1'
} > "$WORK/test.sh"
mkdir -p "$WORK/overlay/e2e"
cp "$ROOT/test/e2e/guest/mdpy-test.sh" "$ROOT/test/e2e/guest/mbochs-test.sh" "$WORK/overlay/e2e/"

rc=0
E2E_QUIET=1 E2E_LOG="$WORK/console.log" E2E_OVERLAY="$WORK/overlay" \
    "$E2E/boot-with-vfio-user.sh" "$sockets" "$WORK/test.sh" 2> "$WORK/boot.err" || rc=$?
grep -E '^(MBOCHS|MDPY|E2E-(GUEST|TEST|PASS|FAIL))' "$WORK/console.log" >&2 || true
cat "$WORK/host.out" >&2
for what in mdpy mbochs; do
    grep -q "^HOST-MATCH $what " "$WORK/host.out" || { log "the host never matched the $what screen"; [ "$rc" = 0 ] && rc=1; }
done
grep -q "^HOST-CONSOLE-MATCH mbochs " "$WORK/host.out" || { log "the web console never showed the mbochs screen"; [ "$rc" = 0 ] && rc=1; }
if [ -s "$WORK/host.err" ]; then
    log "---- host stderr ----"
    cat "$WORK/host.err" >&2
    grep -qiE 'error|warning' "$WORK/host.err" && [ "$rc" = 0 ] && rc=1
fi
if [ "$rc" != 0 ]; then
    log "---- console ----"
    cat "$WORK/console.log" >&2
    cat "$WORK/boot.err" >&2
    log "FAIL (rc=$rc)"
else
    log "PASS: mdpy and mbochs screens (and the console's mbochs canvas) match what the guest drew"
fi
exit "$rc"
