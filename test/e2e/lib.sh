# shellcheck shell=bash
# Sourced by the e2e and bench scripts that boot the guest of ../shared/e2e
# against the real uvfio daemon (what `npm start` runs), its runtime and
# state directories under $WORK. Needs ROOT (the repository), E2E (the
# shared e2e directory), WORK, UVFIO (the command line, e.g.
# "node $ROOT/dist/src/cli/main.js") and a `log` function; sets SERVER_PID.
# The daemon's stdout and stderr go to $WORK/server.{out,err}.

# e2e_prepare: the QEMU chroot and guest (setup.sh; under a second once
# done), then the build unless E2E_NO_BUILD=1. Exits 2 when either fails.
e2e_prepare() {
    "$E2E/setup.sh" > "$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log" >&2; log "setup.sh failed"; exit 2; }
    if [ -z "${E2E_NO_BUILD:-}" ]; then
        (cd "$ROOT" && npx tsc -p tsconfig.json) > "$WORK/tsc.log" 2>&1 ||
            { head -20 "$WORK/tsc.log" >&2; log "tsc reported errors; going on with what it emitted"; }
    fi
    [ -f "$ROOT/dist/src/cli/main.js" ] || { log "no dist/src/cli/main.js: build first"; exit 2; }
}

# uvfio_up [DAEMON_ARGS...]: starts the daemon, waits until it answers.
uvfio_up() {
    export UVFIO_RUNTIME_DIR=$WORK/run UVFIO_STATE_DIR=$WORK/state
    $UVFIO daemon --no-defaults "$@" > "$WORK/server.out" 2> "$WORK/server.err" &
    SERVER_PID=$!
    for _ in $(seq 600); do
        $UVFIO list --json > /dev/null 2>&1 && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/server.out" "$WORK/server.err" >&2
    return 1
}

# uvfio_down: SIGTERM, then the daemon must exit 0 (status 1 otherwise,
# also when it had already gone).
uvfio_down() {
    local drc=0
    [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null || { SERVER_PID=""; return 1; }
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || drc=$?
    SERVER_PID=""
    [ "$drc" = 0 ]
}

# e2e_stop PID: for an EXIT trap; SIGTERM, then SIGKILL after 5 s. An
# empty PID or a process already gone is no error.
e2e_stop() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}

# uvfio_kill: e2e_stop of the daemon.
uvfio_kill() {
    e2e_stop "${SERVER_PID:-}"
    SERVER_PID=""
}

# vblk_cleanup: for the EXIT trap of a run that keeps a disk image in the
# chroot (CHROOT, IMGDIR): the daemon, the image, then WORK unless E2E_KEEP.
vblk_cleanup() {
    uvfio_kill
    rm -rf "${CHROOT:?}$IMGDIR"
    if [ -n "${E2E_KEEP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}

# uvfio_vblk IMAGE: defines a device on the virtio-blk parent (type VBLK_TYPE,
# or its read-write type, or its first) with IMAGE as its `path`, starts it and sets
# VBLK_UUID and VBLK_SOCKET.
uvfio_vblk() {
    local type=${VBLK_TYPE:-}
    [ -n "$type" ] || type=$($UVFIO types -p virtio-blk --json | node -e '
        const t = JSON.parse(require("fs").readFileSync(0, "utf8"));
        console.log((t.find((x) => x.mdev_type.endsWith("-rw")) ?? t[0])?.mdev_type ?? "")')
    [ -n "$type" ] || { log "the daemon has no virtio-blk type"; return 1; }
    VBLK_UUID=$($UVFIO define -p virtio-blk -t "$type") &&
        $UVFIO modify -u "$VBLK_UUID" --addattr path --value "$1" > /dev/null &&
        $UVFIO start -u "$VBLK_UUID" > /dev/null || { log "defining or starting a $type device on $1 failed"; return 1; }
    VBLK_SOCKET=$(uvfio_socket "$VBLK_UUID")
}

# uvfio_warnings: prints the daemon's warning and error lines; status 0 when there were any.
uvfio_warnings() { grep -E '"level":"(warn|error)"' "$WORK/server.err"; }

# uvfio_socket UUID: the device's socket, from `uvfio list --json`.
uvfio_socket() {
    $UVFIO list --json | node -e '
        const d = JSON.parse(require("fs").readFileSync(0, "utf8")).find((x) => x.uuid === process.argv[1]);
        if (!d?.socket) { console.error("device " + process.argv[1] + " has no socket"); process.exit(1); }
        console.log(d.socket);' "$1"
}

# e2e_gen LABEL BYTES FILE: BYTES of AES-128-CTR keystream keyed by LABEL,
# the same bytes for the same label on every run.
e2e_gen() {
    node -e '
        const [label, n] = process.argv.slice(1);
        const c = require("crypto").createCipheriv("aes-128-ctr", Buffer.alloc(16, label), Buffer.alloc(16));
        process.stdout.write(Buffer.concat([c.update(Buffer.alloc(Number(n))), c.final()]));' "$1" "$2" > "$3"
}
