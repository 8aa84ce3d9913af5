#!/usr/bin/env bash
# npm run test:e2e — uvfio's devices in a real guest, through QEMU's own
# vfio-user client.
#
# 1. ../shared/e2e/setup.sh prepares the QEMU chroot and the guest (once;
#    later runs take under a second);
# 2. the real daemon (`uvfio daemon`, what `npm start` runs) serves from
#    temporary runtime and state directories, sharing its device sockets
#    with one group (--socket-group), and the command line creates an mtty-1
#    and an mtty-2 card (`uvfio start -p mtty -t ...`), whose sockets come
#    from `uvfio list --json`;
# 3. ../shared/e2e/boot-with-vfio-user.sh boots the guest with both and runs
#    test/e2e/guest/mtty-test.sh in it: 8250_pci binds, the ttyS ports are
#    found through sysfs, bytes loop back through each port, driven by
#    interrupts. QEMU runs as another user in that group, as libvirt runs
#    it, and `uvfio list --json` must show it attached with that uid;
# 4. both cards are traced (`uvfio trace --json`) from before the guest
#    boots; after the guest is gone, `uvfio stop` removes both cards (which
#    ends the traces), test/e2e/uart-probe.ts checks each trace holds the
#    8250 driver's register accesses in order and the looped-back bytes,
#    `uvfio replay` runs each against a fresh card with no difference, and
#    the daemon exits cleanly on SIGTERM.
#
# Exits 0 when the guest passed, non-zero otherwise (also on a server that
# never came up, a guest that hung, or a server that logged an error).
#
# Environment: UVFIO_SHARED (default: ../shared beside the repository),
# E2E_TIMEOUT (seconds for one boot; default 300, the machine is shared),
# E2E_NO_BUILD=1 (use dist/ as it is), E2E_QEMU_UID and E2E_SOCKET_GID (the
# user QEMU runs as and the socket group; default 4242 and 4243), and
# anything boot-with-vfio-user.sh takes (E2E_APPEND, E2E_QEMU_ARGS,
# E2E_KEEP...).
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
# shellcheck source=test/e2e/lib.sh
. "$ROOT/test/e2e/lib.sh"
T0=$(now)

[ -x "$E2E/setup.sh" ] || { log "no $E2E/setup.sh: set UVFIO_SHARED"; exit 2; }
[ "$(id -u)" = 0 ] || { log "must run as root (the QEMU chroot needs it)"; exit 2; }

WORK=$(mktemp -d /tmp/uvfio-e2e.XXXXXX)
# Other users pass through (as through /run), so the socket group reaches the sockets.
chmod 711 "$WORK"
QEMU_UID=${E2E_QEMU_UID:-4242}
SOCKET_GID=${E2E_SOCKET_GID:-4243}
CHROOT=${E2E_DIR:-/opt/e2e}/root
AS_USER=/e2e/uvfio-as-user-$$
SERVER_PID=""
BOOT_PID=""
cleanup() {
    [ -z "$BOOT_PID" ] || kill -TERM "$BOOT_PID" 2>/dev/null || true
    rm -rf "${CHROOT:?}$AS_USER"
    e2e_stop "$SERVER_PID"
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
UVFIO="node $ROOT/dist/src/cli/main.js"
[ -f "$ROOT/dist/src/cli/main.js" ] || { log "no dist/src/cli/main.js: build first"; exit 2; }

# --- 3. daemon and devices, as an operator makes them ------------------------------
t=$(now)
export UVFIO_RUNTIME_DIR=$WORK/run UVFIO_STATE_DIR=$WORK/state
$UVFIO daemon --no-defaults --socket-group "$SOCKET_GID" > "$WORK/server.out" 2> "$WORK/server.err" &
SERVER_PID=$!
up=""
for _ in $(seq 600); do
    if $UVFIO list --json > /dev/null 2>&1; then up=1; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$up" ]; then
    cat "$WORK/server.out" "$WORK/server.err" >&2
    log "the uvfio daemon did not come up"
    exit 2
fi
u1=$($UVFIO start -p mtty -t mtty-1) && u2=$($UVFIO start -p mtty -t mtty-2) || { log "uvfio start failed"; exit 2; }
# Sockets in the order of the cards: the guest test expects mtty-1 first.
sockets=$($UVFIO list --json | node -e '
    const devs = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const want = process.argv.slice(1);
    const socks = want.map((u) => devs.find((d) => d.uuid === u)?.socket);
    if (socks.some((s) => !s)) { console.error("a started card has no socket"); process.exit(1); }
    console.log(socks.join(","));' "$u1" "$u2") || { log "uvfio list --json gave no sockets"; exit 2; }
log "daemon up, cards $u1 (mtty-1) and $u2 (mtty-2) in $(since "$t")s: $sockets"
# Both cards traced from before the guest boots (uvfio trace --json): what
# its 8250 driver did is checked, then replayed, once the guest is gone.
TRACE_PIDS=""
for u in "$u1" "$u2"; do
    $UVFIO trace -u "$u" --json -o "$WORK/$u.trace" 2> "$WORK/$u.trace.err" &
    TRACE_PIDS="$TRACE_PIDS $!"
done
for _ in $(seq 100); do
    [ "$(grep -c '"msg":"trace started"' "$WORK/server.err")" -ge 2 ] && break
    sleep 0.1
done

# --- 4. guest, its QEMU as another user in the socket group ---------------------
# boot-with-vfio-user.sh runs QEMU in its chroot as root, finding it through
# PATH; a wrapper found first there drops to QEMU_UID in SOCKET_GID with
# setpriv, as libvirt runs QEMU as its own user. Its run directory (where
# the initrd is) becomes that user's, for the console log QEMU writes.
mkdir -p "$CHROOT$AS_USER"
cat > "$CHROOT$AS_USER/qemu-system-x86_64" <<EOF
#!/bin/sh
prev=
for a in "\$@"; do [ "\$prev" = -initrd ] && chown $QEMU_UID "\$(dirname "\$a")"; prev=\$a; done
exec setpriv --reuid=$QEMU_UID --regid=$QEMU_UID --groups=$SOCKET_GID -- /usr/bin/qemu-system-x86_64 "\$@"
EOF
chmod 755 "$CHROOT$AS_USER/qemu-system-x86_64"
t=$(now)
rc=0
PATH="$AS_USER:$PATH" E2E_QUIET=1 E2E_LOG="$WORK/console.log" "$E2E/boot-with-vfio-user.sh" "$sockets" "$ROOT/test/e2e/guest/mtty-test.sh" 2> "$WORK/boot.err" &
BOOT_PID=$!
# While the guest runs: both cards are held by a client of uid QEMU_UID.
attached=""
while kill -0 "$BOOT_PID" 2>/dev/null; do
    if $UVFIO list -p mtty --json 2>/dev/null | node -e '
        const devs = JSON.parse(require("fs").readFileSync(0, "utf8"));
        const uid = Number(process.argv[1]);
        process.exit(devs.length === 2 && devs.every((d) => d.clients?.some((c) => c.uid === uid && c.bound)) ? 0 : 1);' "$QEMU_UID"; then
        attached=1
        $UVFIO list -v -p mtty | grep -A1 'Clients:' | grep -m1 'pid ' | cut -c1-160 | sed 's/^ */[e2e] attached: /' >&2
        break
    fi
    sleep 0.5
done
wait "$BOOT_PID" || rc=$?
BOOT_PID=""
[ -n "$attached" ] || { log "uvfio list never showed both cards held by uid $QEMU_UID"; [ "$rc" = 0 ] && rc=1; }
boot=$(since "$t")
grep -E '^(MTTY|E2E-(GUEST|TEST|PASS|FAIL))' "$WORK/console.log" >&2 || true
if [ "$rc" != 0 ]; then
    log "---- console ----"
    cat "$WORK/console.log" >&2
    log "---- boot ----"
    cat "$WORK/boot.err" >&2
fi
if kill -0 "$SERVER_PID" 2>/dev/null; then
    # The guest is gone: removing the cards must not wait on anyone.
    $UVFIO stop -u "$u1" && $UVFIO stop -u "$u2" || { log "uvfio stop failed"; [ "$rc" = 0 ] && rc=1; }
    left=$($UVFIO list -p mtty --json | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).length)')
    [ "$left" = 0 ] || { log "$left cards still listed after stop"; [ "$rc" = 0 ] && rc=1; }
    # Stopping the cards ended their traces: the driver's probe must be in
    # them, in order, and a fresh card must answer them the same.
    for p in $TRACE_PIDS; do wait "$p" || { log "uvfio trace exited $?"; [ "$rc" = 0 ] && rc=1; }; done
    n=1
    for u in "$u1" "$u2"; do
        cat "$WORK/$u.trace.err" >&2
        node "$ROOT/dist/test/e2e/uart-probe.js" "$WORK/$u.trace" "$n" >&2 || { log "mtty-$n: the trace does not show the 8250 probe"; [ "$rc" = 0 ] && rc=1; }
        $UVFIO replay "$WORK/$u.trace" >&2 || { log "mtty-$n: replay of the guest's trace found a difference"; [ "$rc" = 0 ] && rc=1; }
        n=$((n + 1))
    done
    kill -TERM "$SERVER_PID"
    drc=0; wait "$SERVER_PID" || drc=$?
    SERVER_PID=""
    [ "$drc" = 0 ] || { log "the daemon exited $drc on SIGTERM"; [ "$rc" = 0 ] && rc=1; }
else
    log "the daemon exited during the run"
    [ "$rc" = 0 ] && rc=1
fi
# A daemon that logged a warning or an error fails the run even when the guest passed.
if grep -qE '"level":"(warn|error)"' "$WORK/server.err"; then
    log "---- daemon log (warnings and errors) ----"
    grep -E '"level":"(warn|error)"' "$WORK/server.err" >&2
    [ "$rc" = 0 ] && rc=1
fi

if [ "$rc" = 0 ]; then
    log "PASS: mtty-1 + mtty-2 in the guest, QEMU as uid $QEMU_UID in group $SOCKET_GID (boot ${boot}s, total $(since "$T0")s)"
else
    log "FAIL (rc=$rc; boot ${boot}s, total $(since "$T0")s)"
fi
exit "$rc"
