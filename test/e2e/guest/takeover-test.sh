# shellcheck shell=sh disable=SC3043
# Guest side of the takeover e2e (busybox sh, sourced by the e2e /init;
# `exit N` is the verdict), with one mbochs adapter and one mtty-1 card
# while the host replaces the uvfio daemon several times.
#
# 1. The bochs DRM driver binds to the mbochs device and the guest fills
#    /dev/fb0 with random pixels, then prints TAKEOVER-DRAWN; the host takes
#    a screenshot (and another after its takeovers, from the new daemon).
# 2. The 8250 driver's port on the mtty card moves bytes continuously for
#    TAKEOVER_LOOP_S seconds (default 30): 64-byte messages, each numbered,
#    written and read back through the card's loopback, every byte checked;
#    TAKEOVER-LOOP-START and TAKEOVER-LOOP-END bracket it (the host
#    replaces the daemon in between). A read that times out, a byte lost or
#    out of order, or an error counted by the serial driver (overrun,
#    framing, parity, break) fails the test.
TAKEOVER_LOOP_S=${TAKEOVER_LOOP_S:-30}

fail() { echo "TAKEOVER-FAIL $*"; exit 1; }
say() { echo "TAKEOVER $*"; }

wait_for() {
    local i=0
    while [ ! -e "$1" ]; do
        i=$((i + 1))
        [ "$i" -gt "$(($2 * 5))" ] && return 1
        usleep 200000
    done
}

# --- the picture ------------------------------------------------------------
dev=$(e2e_find_pci 0x1234 0x1111) || fail "no mbochs device (1234:1111) on the bus"
modprobe bochs || fail "modprobe bochs failed"
wait_for /dev/fb0 60 || fail "no /dev/fb0 after loading bochs"
for v in /sys/class/vtconsole/vtcon*; do
    case "$(cat "$v/name")" in *"frame buffer"*) echo 0 > "$v/bind" ;; esac
done
fb=/sys/class/graphics/fb0
h=$(sed -n 's/^[A-Z]*:[0-9]*x\([0-9]*\).*/\1/p' "$fb/modes" | head -n 1)
stride=$(cat "$fb/stride")
[ -n "$h" ] || fail "cannot read the mode of fb0"
dd if=/dev/urandom of=/tmp/picture bs="$stride" count="$h" 2>/dev/null || fail "no random picture"
cat /tmp/picture > /dev/fb0 || fail "writing /dev/fb0 failed"
# fbdev draws into a shadow buffer; a kernel worker copies the damage to VRAM.
sleep 2
echo "TAKEOVER-DRAWN $(wc -c < /tmp/picture) bytes, stride $stride, $h lines, on ${dev##*/}"

# --- the bytes --------------------------------------------------------------
card=""
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x4348 ] && [ "$(cat "$d/device")" = 0x3253 ] && card=$(readlink -f "$d")
done
[ -n "$card" ] || fail "no mtty card (4348:3253)"
port=""
for t in /sys/class/tty/ttyS*; do
    [ -e "$t/device" ] || continue
    case "$(readlink -f "$t/device")" in "$card"/*) port=${t##*/} ;; esac
done
[ -n "$port" ] || fail "no ttyS port on the mtty card"
line=$(($(cat "/sys/class/tty/$port/line") + 0))
# counters LINE: the serial driver's error counters of that line (oe: fe: pe: brk:), if any.
counters() {
    grep "^$1:" /proc/tty/driver/serial | grep -oE ' (oe|fe|pe|brk):[0-9]+' | tr '\n' ' '
}
exec 3<>"/dev/$port" || fail "cannot open /dev/$port"
stty -F "/dev/$port" raw -echo -echoe -echok -echoctl -echoke clocal -crtscts -ixon -ixoff 115200 || fail "stty failed"
start=$(date +%s)
echo "TAKEOVER-LOOP-START $port"
n=0
bytes=0
while [ $(($(date +%s) - start)) -lt "$TAKEOVER_LOOP_S" ]; do
    n=$((n + 1))
    msg=$(printf 'seq-%08d-abcdefghijklmnopqrstuvwxyz-0123456789ABCDEFGHIJKLM.' "$n")
    printf '%s' "$msg" >&3
    got=$(timeout 10 dd bs=1 count="${#msg}" <&3 2>/dev/null)
    [ "$got" = "$msg" ] || fail "message $n: read back '$got', wanted '$msg' after $bytes bytes"
    bytes=$((bytes + ${#msg}))
done
end=$(date +%s)
exec 3>&-
echo "TAKEOVER-LOOP-END $n messages, $bytes bytes in $((end - start)) s"
if [ -r /proc/tty/driver/serial ]; then
    errs=$(counters "$line")
    [ -z "$errs" ] || fail "the serial driver counted errors on $port: $errs"
else
    say "no /proc/tty/driver/serial in this kernel: every byte compared, and the kernel log, are the checks"
fi
dmesg | grep -iE "ttyS|serial" | grep -iE "error|overrun|timeout" && fail "the kernel logged serial errors"
say "$bytes bytes through $port, none lost or reordered, no error"
# Still the guest's picture as far as the guest is concerned; the host compares VRAM.
head -c "$(wc -c < /tmp/picture)" /dev/fb0 | cmp -s - /tmp/picture || fail "/dev/fb0 no longer reads back the picture"
say "done"
