#!/usr/bin/env bash
# npm run test:e2e — uvfio's devices in a real guest, through QEMU's own
# vfio-user client.
#
# 1. ../shared/e2e/setup.sh prepares the QEMU chroot and the guest (once;
#    later runs take under a second);
# 2. a uvfio server process serves an mtty-1 and an mtty-2 card on sockets
#    in a temporary directory (test/e2e/mtty-server.ts);
# 3. ../shared/e2e/boot-with-vfio-user.sh boots the guest with both and runs
#    test/e2e/guest/mtty-test.sh in it: 8250_pci binds, the ttyS ports are
#    found through sysfs, bytes loop back through each port, driven by
#    interrupts.
#
# Exits 0 when the guest passed, non-zero otherwise (also on a server that
# never came up, a guest that hung, or a server that logged an error).
#
# Environment: UVFIO_SHARED (default: ../shared beside the repository),
# E2E_TIMEOUT (seconds for one boot; default 300, the machine is shared),
# E2E_NO_BUILD=1 (use dist/ as it is), and anything boot-with-vfio-user.sh
# takes (E2E_APPEND, E2E_QEMU_ARGS, E2E_KEEP...).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${UVFIO_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
E2E=$SHARED/e2e
export E2E_TIMEOUT=${E2E_TIMEOUT:-300}
# Room for more UARTs than the kernel's default 4, so the numbering moves
# and the guest test must find its ports through sysfs.
export E2E_APPEND="8250.nr_uarts=8 ${E2E_APPEND:-}"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[e2e %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
T0=$(now)

[ -x "$E2E/setup.sh" ] || { log "no $E2E/setup.sh: set UVFIO_SHARED"; exit 2; }
[ "$(id -u)" = 0 ] || { log "must run as root (the QEMU chroot needs it)"; exit 2; }

WORK=$(mktemp -d /tmp/uvfio-e2e.XXXXXX)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    [ -n "${E2E_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# --- 1. setup -------------------------------------------------------------------
t=$(now)
"$E2E/setup.sh" > "$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log" >&2; log "setup.sh failed"; exit 2; }
log "setup.sh: $(since "$t")s"

# --- 2. build -------------------------------------------------------------------
cd "$ROOT"
if [ -z "${E2E_NO_BUILD:-}" ]; then
    t=$(now)
    # tsc emits even when some file has a type error; the server is checked below.
    npx tsc -p tsconfig.json > "$WORK/tsc.log" 2>&1 || log "tsc reported errors (see below); going on with what it emitted"
    [ -s "$WORK/tsc.log" ] && head -20 "$WORK/tsc.log" >&2
    log "build: $(since "$t")s"
fi
SERVER_JS=dist/test/e2e/mtty-server.js
[ -f "$SERVER_JS" ] || { log "no $SERVER_JS: build first"; exit 2; }

# --- 3. server ------------------------------------------------------------------
t=$(now)
SOCKS=$WORK/sockets
mkdir -p "$SOCKS"
node "$SERVER_JS" "$SOCKS" > "$WORK/server.out" 2> "$WORK/server.err" &
SERVER_PID=$!
sockets=""
for _ in $(seq 600); do
    sockets=$(sed -n 's/^ready //p' "$WORK/server.out")
    [ -n "$sockets" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$sockets" ]; then
    cat "$WORK/server.out" "$WORK/server.err" >&2
    log "the uvfio server did not come up"
    exit 2
fi
log "server ready in $(since "$t")s: $sockets"

# --- 4. guest -------------------------------------------------------------------
t=$(now)
rc=0
E2E_QUIET=1 E2E_LOG="$WORK/console.log" "$E2E/boot-with-vfio-user.sh" "$sockets" "$ROOT/test/e2e/guest/mtty-test.sh" 2> "$WORK/boot.err" || rc=$?
boot=$(since "$t")
grep -E '^(MTTY|E2E-(GUEST|TEST|PASS|FAIL))' "$WORK/console.log" >&2 || true
if [ "$rc" != 0 ]; then
    log "---- console ----"
    cat "$WORK/console.log" >&2
    log "---- boot ----"
    cat "$WORK/boot.err" >&2
fi
if [ -s "$WORK/server.err" ]; then
    log "---- server stderr ----"
    cat "$WORK/server.err" >&2
    # A server that reports an error fails the run even when the guest passed.
    if grep -qE '^(warn|error)' "$WORK/server.err" && [ "$rc" = 0 ]; then rc=1; fi
fi
if kill -0 "$SERVER_PID" 2>/dev/null; then :; else
    log "the server exited during the run"
    [ "$rc" = 0 ] && rc=1
fi

if [ "$rc" = 0 ]; then
    log "PASS: mtty-1 + mtty-2 in the guest (boot ${boot}s, total $(since "$T0")s)"
else
    log "FAIL (rc=$rc; boot ${boot}s, total $(since "$T0")s)"
fi
exit "$rc"
