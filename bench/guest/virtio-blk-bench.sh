# shellcheck shell=sh disable=SC3043
# Guest side of bench/virtio-blk-guest.sh (busybox sh, sourced by the e2e
# /init after /e2e/vbench.env). VB_ROUNDS rounds of these tests, each test
# run on every disk of VB_DEVS (NAME=BDF ...) one right after the other, in
# an order turned round every round, so both meet the same background load:
#   seqwrite   dd if=/dev/zero bs=1M count=VB_MIB oflag=direct conv=fsync
#   seqread    dd of=/dev/null bs=1M count=VB_MIB iflag=direct
#   randread-qdN  /e2e/randread: 4 KiB O_DIRECT reads at random offsets, N
#              in flight (1, and VB_RR_JOBS), VB_RR_SECS seconds at most
# Each result is one line: VBENCH share=S dev=NAME round=R test=T value=V unit=U
# Times come from /proc/uptime (10 ms steps; busybox dd prints no rate).
. /e2e/vbench.env
. /e2e/virtio-blk-lib.sh

fail() { echo "VBENCH-FAIL $*"; exit 1; }
up() { cut -d' ' -f1 /proc/uptime; }
rate() { awk -v a="$1" -v b="$2" -v m="$3" 'BEGIN { s = b - a; if (s <= 0) s = 0.01; printf "%.1f", m / s }'; }
emit() { echo "VBENCH share=$VB_SHARE dev=$1 round=$2 test=$3 value=$4 unit=$5"; }

# run_test NAME DISK ROUND TEST: one measurement, one VBENCH line.
run_test() {
    local name=$1 dev=/dev/$2 r=$3 t0 t1 out
    case "$4" in
        seqwrite | seqread)
            t0=$(up)
            if [ "$4" = seqwrite ]; then
                out=$(dd if=/dev/zero of="$dev" bs=1M count="$VB_MIB" oflag=direct conv=fsync 2>&1) || fail "$name $4: $out"
            else
                out=$(dd if="$dev" of=/dev/null bs=1M count="$VB_MIB" iflag=direct 2>&1) || fail "$name $4: $out"
            fi
            t1=$(up)
            emit "$name" "$r" "$4" "$(rate "$t0" "$t1" "$VB_MIB")" MiB/s
            ;;
        randread-qd*)
            out=$(/e2e/randread "$dev" -t "$VB_RR_SECS" -n "$VB_RR_OPS" -j "${4#randread-qd}") || fail "$name $4: $out"
            echo "VBENCH-RAW $out"
            emit "$name" "$r" "$4" "${out##*iops=}" IOPS
            ;;
    esac
}

vblk_load || fail "virtio_blk did not load"
pairs=""
for nd in $VB_DEVS; do
    name=${nd%%=*} bdf=${nd#*=}
    disk=$(vblk_disk "/sys/bus/pci/devices/$bdf") || fail "$name: $disk"
    echo "VBENCH-DISK $name $bdf $disk $(cat "/sys/block/$disk/size") sectors max_segments=$(cat "/sys/block/$disk/queue/max_segments") max_sectors_kb=$(cat "/sys/block/$disk/queue/max_sectors_kb")"
    pairs="$pairs $name=$disk"
done
reversed=""
for p in $pairs; do reversed="$p $reversed"; done

tests="seqwrite seqread randread-qd1"
[ -n "${VB_RR_JOBS:-}" ] && tests="$tests randread-qd$VB_RR_JOBS"
r=1
while [ "$r" -le "$VB_ROUNDS" ]; do
    order=$pairs
    [ $((r % 2)) = 0 ] && order=$reversed
    for t in $tests; do
        for p in $order; do run_test "${p%%=*}" "${p#*=}" "$r" "$t"; done
    done
    r=$((r + 1))
done
echo "VBENCH-DONE"
