#!/usr/bin/env bash
# The takeover e2e: the uvfio daemon is replaced under a running guest,
# through QEMU's own vfio-user client, and the guest does not notice.
#
# 1. ../shared/e2e/setup.sh prepares the QEMU chroot and the guest (once);
# 2. the real daemon serves an mbochs-small adapter and an mtty-1 card
#    (`uvfio start`), from temporary runtime and state directories;
# 3. the guest (test/e2e/guest/takeover-test.sh) fills the adapter's screen
#    with random pixels: the host takes `uvfio screenshot`; then the guest's
#    8250 driver moves bytes through the card continuously, every byte
#    checked, while the host replaces the daemon TAKEOVERS times (default 3)
#    with `uvfio daemon --takeover`, each old daemon exiting 0;
# 4. the host takes another screenshot from the daemon serving now: it must
#    equal the first, pixel for pixel; the guest must pass (no byte lost or
#    reordered, no serial error); then the cards are stopped and the last
#    daemon exits cleanly on SIGTERM. A daemon that logged a warning or an
#    error fails the run.
#
# Environment: UVFIO_SHARED, E2E_TIMEOUT (default 400), E2E_NO_BUILD=1,
# E2E_KEEP=1, TAKEOVERS (default 3), TAKEOVER_GAP_S (seconds between
# takeovers; default 4), and whatever boot-with-vfio-user.sh takes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${UVFIO_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
E2E=$SHARED/e2e
export E2E_TIMEOUT=${E2E_TIMEOUT:-400}
export E2E_APPEND="8250.nr_uarts=8 ${E2E_APPEND:-}"
TAKEOVERS=${TAKEOVERS:-3}
GAP=${TAKEOVER_GAP_S:-4}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[e2e takeover %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
T0=$(now)
[ -x "$E2E/setup.sh" ] || { log "no $E2E/setup.sh: set UVFIO_SHARED"; exit 2; }
[ "$(id -u)" = 0 ] || { log "must run as root (the QEMU chroot needs it)"; exit 2; }

WORK=$(mktemp -d /tmp/uvfio-e2e-takeover.XXXXXX)
RUNS=${E2E_DIR:-/opt/e2e}/root/e2e/runs
SERVER_PID=""
BOOT_PID=""
UVFIO="node $ROOT/dist/src/cli/main.js"
# shellcheck source=test/e2e/lib.sh
. "$ROOT/test/e2e/lib.sh"
cleanup() {
    [ -z "$BOOT_PID" ] || kill -TERM "$BOOT_PID" 2>/dev/null || true
    uvfio_kill
    if [ -n "${E2E_KEEP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

e2e_prepare
cd "$ROOT"

export UVFIO_RUNTIME_DIR=$WORK/run UVFIO_STATE_DIR=$WORK/state UVFIO_LOG_FORMAT=json
$UVFIO daemon --no-defaults --no-vnc > "$WORK/daemon-0.out" 2> "$WORK/daemon-0.err" &
SERVER_PID=$!
up=""
for _ in $(seq 600); do
    if $UVFIO list --json > /dev/null 2>&1; then up=1; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$up" ] || { cat "$WORK/daemon-0.err" >&2; log "the uvfio daemon did not come up"; exit 2; }
ub=$($UVFIO start -p mbochs -t mbochs-small) && ut=$($UVFIO start -p mtty -t mtty-1) || { log "uvfio start failed"; exit 2; }
sockets=$($UVFIO list --json | node -e '
    const devs = JSON.parse(require("fs").readFileSync(0, "utf8"));
    console.log(process.argv.slice(1).map((u) => devs.find((d) => d.uuid === u).socket).join(","));' "$ub" "$ut")
log "daemon up (pid $SERVER_PID): mbochs-small $ub, mtty-1 $ut"

TOKEN="uvfio-takeover-run-${WORK##*.}-$$"
{ echo "# $TOKEN"; cat "$ROOT/test/e2e/guest/takeover-test.sh"; } > "$WORK/test.sh"
E2E_QUIET=1 E2E_LOG="$WORK/console.log" "$E2E/boot-with-vfio-user.sh" "$sockets" "$WORK/test.sh" 2> "$WORK/boot.err" &
BOOT_PID=$!

# The live console of this run: the run directory whose test script holds the token.
console=""
# wait_line PATTERN SECONDS: until the live console has a line matching PATTERN.
wait_line() {
    local i=0
    while [ "$i" -lt "$(($2 * 10))" ]; do
        if [ -z "$console" ]; then
            for d in "$RUNS"/*/; do
                grep -qs "$TOKEN" "$d/overlay/e2e/test.sh" && console="$d/console.log"
            done
        fi
        [ -n "$console" ] && grep -qE "$1" "$console" 2>/dev/null && return 0
        kill -0 "$BOOT_PID" 2>/dev/null || return 1
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

rc=0
took=0
if wait_line '^TAKEOVER-DRAWN' 300; then
    $UVFIO screenshot -u "$ub" -o "$WORK/before.png" --json > "$WORK/before.json" || { log "screenshot before failed"; rc=1; }
    log "guest drew; screenshot before: $(cat "$WORK/before.json")"
    if wait_line '^TAKEOVER-LOOP-START' 120; then
        for i in $(seq "$TAKEOVERS"); do
            sleep "$GAP"
            t=$(now)
            old=$SERVER_PID
            $UVFIO daemon --no-defaults --no-vnc --takeover > "$WORK/daemon-$i.out" 2> "$WORK/daemon-$i.err" &
            SERVER_PID=$!
            orc=0; wait "$old" || orc=$?
            if [ "$orc" != 0 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
                log "takeover $i failed: the old daemon exited $orc"; cat "$WORK/daemon-$i.err" >&2; rc=1; break
            fi
            for _ in $(seq 100); do grep -q '"msg":"daemon ready"' "$WORK/daemon-$i.err" && break; sleep 0.1; done
            took=$i
            log "takeover $i: pid $old -> $SERVER_PID in $(since "$t")s; $(grep -o '"msg":"takeover: serving"[^}]*' "$WORK/daemon-$i.err")"
        done
        grep -qE '^TAKEOVER-LOOP-END' "$console" && { log "the guest's loop ended before the takeovers did: make TAKEOVER_LOOP_S longer"; rc=1; }
    else
        log "the guest never started its byte loop"; rc=1
    fi
else
    log "the guest never drew"; rc=1
fi

brc=0; wait "$BOOT_PID" || brc=$?
BOOT_PID=""
[ "$brc" = 0 ] || rc=1
grep -E '^(TAKEOVER|E2E-(GUEST|TEST|PASS|FAIL))' "$WORK/console.log" >&2 || true

if [ "$took" = "$TAKEOVERS" ]; then
    $UVFIO screenshot -u "$ub" -o "$WORK/after.png" --json > "$WORK/after.json" || { log "screenshot after failed"; rc=1; }
    if cmp -s "$WORK/before.png" "$WORK/after.png"; then
        log "the screen after $took takeovers equals the one before, pixel for pixel ($(cat "$WORK/after.json"))"
    else
        log "the screen changed across the takeovers: $WORK/before.png vs $WORK/after.png"; rc=1
    fi
else
    [ "$rc" != 0 ] || { log "only $took of $TAKEOVERS takeovers happened"; rc=1; }
fi

if kill -0 "$SERVER_PID" 2>/dev/null; then
    $UVFIO stop -u "$ub" && $UVFIO stop -u "$ut" || { log "uvfio stop failed"; rc=1; }
    kill -TERM "$SERVER_PID"
    drc=0; wait "$SERVER_PID" || drc=$?
    SERVER_PID=""
    [ "$drc" = 0 ] || { log "the last daemon exited $drc on SIGTERM"; rc=1; }
else
    log "the serving daemon is gone"; rc=1
fi
if grep -hE '"level":"(warn|error)"' "$WORK"/daemon-*.err >&2; then
    log "a daemon logged warnings or errors (above)"; rc=1
fi
if [ "$rc" != 0 ]; then
    log "---- console ----"; cat "$WORK/console.log" >&2
    log "---- boot ----"; cat "$WORK/boot.err" >&2
    log "FAIL (total $(since "$T0")s)"
else
    log "PASS: $took takeovers under a running guest: every byte through mtty, the mbochs screen unchanged (total $(since "$T0")s)"
fi
exit "$rc"
