#!/usr/bin/env bash
# npm run bench:virtio — uvfio's virtio-blk against QEMU's built-in
# virtio-blk-pci, in one guest, on one image.
#
# Each boot of the e2e guest (../shared/e2e, TCG) gets three disks on the
# same raw image (in the QEMU chroot, random bytes, the host's page cache
# warm for all): uvfio's virtio-blk at 00:04.0 (a vfio-user-pci device
# served by the real daemon, defined with `--addattr path`), QEMU's own
# virtio-blk-pci at 00:05.0 (modern only, file locking off so all may open
# the image) and a second one at 00:06.0, the control.
# bench/guest/virtio-blk-bench.sh runs each test on the three side by side:
# dd with O_DIRECT and 1 MiB blocks, VB_MIB MiB written then read; 4 KiB
# random reads with bench/guest/randread.c (built static here) at queue
# depth 1 and VB_RR_JOBS. One boot with guest RAM shared (share=on: the
# daemon maps it) and one without (share=off: DMA by messages).
#
# The table goes to stdout and into BENCHMARKS.md between its markers
# (unless VB_NO_WRITE=1): medians over the rounds, and the median of the
# per-round ratios to QEMU's device with their range. The control's ratio
# (QEMU / QEMU) shows how far the machine's load alone moves a ratio.
# VB_PROFILE=1 runs the daemon under `node --cpu-prof` and prints where its
# time went (bench/cpuprofile-top.ts).
#
# Environment: VB_MIB (256), VB_ROUNDS (5), VB_RR_SECS (2), VB_RR_OPS
# (200000), VB_RR_JOBS (4; empty: depth 1 only), VB_CONTROL (1; empty: no
# control disk), VB_SHARES ("on off"), VBLK_TYPE (the virtio-blk type;
# default: the parent's read-write one), VB_DEVICE=qemu (a third QEMU
# virtio-blk-pci in uvfio's place: checks the bench itself), UVFIO_SHARED,
# E2E_TIMEOUT (default 900), E2E_NO_BUILD=1, E2E_KEEP=1.
# Where other e2e runs share the machine: `flock /work/e2e.lock npm run bench:virtio`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${UVFIO_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
E2E=$SHARED/e2e
export E2E_TIMEOUT=${E2E_TIMEOUT:-900}
VB_MIB=${VB_MIB:-256} VB_ROUNDS=${VB_ROUNDS:-5} VB_RR_SECS=${VB_RR_SECS:-2} VB_RR_OPS=${VB_RR_OPS:-200000}
VB_RR_JOBS=${VB_RR_JOBS-4}
VB_CONTROL=${VB_CONTROL-1}
SHARES=${VB_SHARES:-on off}
DEVICE=${VB_DEVICE:-uvfio}
log() { printf '[bench virtio-blk %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

[ -x "$E2E/setup.sh" ] || { log "no $E2E/setup.sh: set UVFIO_SHARED"; exit 2; }
[ "$(id -u)" = 0 ] || { log "must run as root (the QEMU chroot needs it)"; exit 2; }
WORK=$(mktemp -d /tmp/uvfio-bench-vblk.XXXXXX)
CHROOT=${E2E_DIR:-/opt/e2e}/root
IMGDIR=/e2e/vbench-$$
IMG=$CHROOT$IMGDIR/disk.img
NODE_OPTS=""
[ -n "${VB_PROFILE:-}" ] && NODE_OPTS="--cpu-prof --cpu-prof-dir=$WORK/prof"
UVFIO="node $NODE_OPTS $ROOT/dist/src/cli/main.js"
SERVER_PID=""
# shellcheck source=test/e2e/lib.sh
. "$ROOT/test/e2e/lib.sh"
trap vblk_cleanup EXIT

e2e_prepare
cd "$ROOT"
mkdir -p "$WORK/overlay/e2e" "$CHROOT$IMGDIR"
gcc -static -O2 -Wall -o "$WORK/overlay/e2e/randread" bench/guest/randread.c
cp test/e2e/guest/virtio-blk-lib.sh "$WORK/overlay/e2e/"
# Random bytes, every block allocated: neither device reads holes.
head -c $(((VB_MIB + 16) << 20)) /dev/urandom > "$IMG"
# qdev ID SLOT: QEMU's own virtio-blk-pci on the image, modern only (1af4:1042 as uvfio's).
qdev() { echo "-drive file=$IMGDIR/disk.img,if=none,id=$1,format=raw,file.locking=off -device virtio-blk-pci,drive=$1,disable-legacy=on,addr=$2"; }
QDEV="$(qdev q0 0x5)${VB_CONTROL:+ $(qdev q2 0x6)}"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

for share in $SHARES; do
    sock=none vfu="" qargs=$QDEV u=""
    if [ "$DEVICE" = uvfio ]; then
        uvfio_up || { log "the uvfio daemon did not come up"; exit 2; }
        uvfio_vblk "$IMG" || exit 2
        u=$VBLK_UUID sock=$VBLK_SOCKET
        vfu='"addr": "0x4"'
    else
        qargs="$QDEV $(qdev q1 0x4)"
    fi
    cat > "$WORK/overlay/e2e/vbench.env" <<ENV
VB_SHARE=$share
VB_DEVS="uvfio=0000:00:04.0 qemu=0000:00:05.0${VB_CONTROL:+ control=0000:00:06.0}"
VB_MIB=$VB_MIB VB_ROUNDS=$VB_ROUNDS VB_RR_SECS=$VB_RR_SECS VB_RR_OPS=$VB_RR_OPS VB_RR_JOBS="$VB_RR_JOBS"
ENV
    log "share=$share: booting ($DEVICE at 00:04.0, QEMU's virtio-blk-pci at 00:05.0${VB_CONTROL:+ and 00:06.0})"
    rc=0
    E2E_SHARE=$share E2E_QUIET=1 E2E_LOG="$WORK/console-$share.log" E2E_OVERLAY="$WORK/overlay" \
        E2E_VFU_OPTS="$vfu" E2E_QEMU_ARGS="${E2E_QEMU_ARGS:-} $qargs" \
        "$E2E/boot-with-vfio-user.sh" "$sock" "$ROOT/bench/guest/virtio-blk-bench.sh" 2> "$WORK/boot-$share.err" || rc=$?
    grep -E '^VBENCH' "$WORK/console-$share.log" >> "$WORK/results.txt" || true
    grep -E '^VBENCH-(DISK|FAIL)' "$WORK/console-$share.log" >&2 || true
    if [ "$DEVICE" = uvfio ]; then
        $UVFIO stop -u "$u" || log "uvfio stop failed"
        uvfio_down || log "the daemon did not exit 0 on SIGTERM"
        uvfio_warnings >&2 && log "share=$share: the daemon logged warnings or errors (above)"
        cp "$WORK/server.err" "$WORK/server-$share.err"
        rm -rf "$WORK/run" "$WORK/state"
        if [ -n "${VB_PROFILE:-}" ]; then
            prof=$(ls -t "$WORK"/prof/*.cpuprofile 2>/dev/null | head -n 1)
            [ -n "$prof" ] && mv "$prof" "$WORK/daemon-$share.cpuprofile" &&
                { echo "daemon CPU profile, share=$share:"; node dist/bench/cpuprofile-top.js "$WORK/daemon-$share.cpuprofile" 25; } | tee "$WORK/profile-$share.txt" >&2
        fi
    fi
    if [ "$rc" != 0 ]; then
        cat "$WORK/console-$share.log" "$WORK/boot-$share.err" >&2
        log "share=$share: the guest did not finish (rc=$rc)"
        exit 1
    fi
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# The table: medians over rounds, and the median (with the range) of the
# per-round ratios to QEMU's device, each from runs side by side. The
# control is a second QEMU virtio-blk-pci: its ratio to the first shows
# how far the machine's load alone moves a ratio.
table=$(awk '
    $1 == "VBENCH" {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        k = f["share"] SUBSEP f["test"]
        v[k, f["dev"]] = v[k, f["dev"]] " " f["value"]; unit[f["test"]] = f["unit"]
        val[k, f["dev"], f["round"]] = f["value"]
        if (!(f["round"] in rseen)) { rseen[f["round"]] = 1; rounds[++nr] = f["round"] }
        if (!(f["test"] in seen)) { seen[f["test"]] = 1; tests[++nt] = f["test"] }
        if (!(f["share"] in sseen)) { sseen[f["share"]] = 1; shares[++ns] = f["share"] }
    }
    function sort(s, a,   n, i, j, t) {
        n = split(s, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] + 0 < a[j - 1] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n
    }
    function median(s,   a, n) { n = sort(s, a); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    # ratio(K, DEV): "median (min-max)" of DEV / qemu over the rounds, or "-".
    function ratio(k, dev,   r, rs, n, a) {
        rs = ""
        for (r = 1; r <= nr; r++)
            if ((k, dev, rounds[r]) in val && val[k, "qemu", rounds[r]] > 0) rs = rs " " val[k, dev, rounds[r]] / val[k, "qemu", rounds[r]]
        if (rs == "") return "-"
        n = sort(rs, a)
        return sprintf("%.2fx (%.2f-%.2f)", median(rs), a[1], a[n])
    }
    END {
        print "| guest RAM | test | uvfio virtio-blk | QEMU virtio-blk-pci | uvfio / QEMU (range) | control: QEMU / QEMU (range) |"
        print "| --- | --- | ---: | ---: | ---: | ---: |"
        for (s = 1; s <= ns; s++) for (t = 1; t <= nt; t++) {
            k = shares[s] SUBSEP tests[t]
            if (!((k, "uvfio") in v) || !((k, "qemu") in v)) continue
            printf "| share=%s | %s | %.1f %s | %.1f %s | %s | %s |\n", shares[s], tests[t], median(v[k, "uvfio"]), unit[tests[t]],
                median(v[k, "qemu"]), unit[tests[t]], ratio(k, "uvfio"), ratio(k, "control")
        }
    }' "$WORK/results.txt")
echo "$table"
[ -n "${VB_NO_WRITE:-}" ] || [ "$DEVICE" != uvfio ] && exit 0

START='<!-- bench:virtio-blk:start -->' END='<!-- bench:virtio-blk:end -->'
section=$(cat <<MD
$START
Measured $(date -u +'%Y-%m-%d %H:%M UTC') on $(nproc) vCPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -n 1)), load average $LOAD0 before and $LOAD1 after (other work shared the machine), with:

    flock /work/e2e.lock npm run bench:virtio    # VB_MIB=$VB_MIB VB_ROUNDS=$VB_ROUNDS VB_RR_SECS=$VB_RR_SECS VB_RR_JOBS=${VB_RR_JOBS:-none}

Guest: the e2e guest under TCG (1 vCPU, 512 MiB, $(cat "$CHROOT/e2e/guest/kver" 2>/dev/null || echo "Debian kernel")), QEMU $(chroot "$CHROOT" qemu-system-x86_64 --version | head -n 1 | awk '{ print $4 }'). Medians of $VB_ROUNDS rounds.
Sequential: \`dd bs=1M count=$VB_MIB\` with \`oflag=direct conv=fsync\` (write) and \`iflag=direct\` (read).
Random: \`bench/guest/randread.c\`, 4 KiB O_DIRECT reads at random offsets, one process per request in flight (qd1, qd$VB_RR_JOBS), ${VB_RR_SECS} s each.

$table
$END
MD
)
node -e '
    const fs = require("fs");
    const [file, start, end, body] = process.argv.slice(1);
    const md = fs.readFileSync(file, "utf8");
    const a = md.indexOf(start), b = md.indexOf(end);
    fs.writeFileSync(file, a >= 0 && b > a ? md.slice(0, a) + body + md.slice(b + end.length) : md.trimEnd() + "\n\n" + body + "\n");' \
    BENCHMARKS.md "$START" "$END" "$section"
log "BENCHMARKS.md updated"
