# shellcheck shell=sh disable=SC3043
# Guest side of the mdpy e2e (busybox sh, sourced by the e2e /init; `exit N`
# is the verdict). No guest driver exists for mdpy (1b36:000f), so the test
# reads the mode from the vendor capability at config offset 0x40, enables
# the function and draws three rectangles straight into BAR0 with devmem
# (allowed while no driver holds the BAR), then prints
#     MDPY-DRAWN WxH
# The host takes its screenshot, compares pixels, and answers by writing a
# word right after the visible frame in BAR0: 0x600d600d when the screen
# matched, 0xbad0bad0 when not.
#
# Rectangles (32x8 pixels each, XRGB8888): red at (16,16), green at
# (W/2,H/2), blue at (W-48,H-24); the rest keeps the device's grey ramp.
#
# MDPY_HOLD: seconds to wait for the host's answer (default 120).
MDPY_HOLD=${MDPY_HOLD:-120}

fail() { echo "MDPY-FAIL $*"; exit 1; }
say() { echo "MDPY $*"; }

# cfg32 OFFSET: a config-space dword, little-endian, in decimal.
cfg32() { dd if="$dev/config" bs=1 skip="$1" count=4 2>/dev/null | hexdump -e '1/4 "%u"'; }

# rect X Y VALUE64: 32x8 pixels at (X,Y), two pixels per 64-bit write.
rect() {
    local y=$2 x
    while [ "$y" -lt "$(($2 + 8))" ]; do
        x=$1
        while [ "$x" -lt "$(($1 + 32))" ]; do
            devmem "$((bar + (y * w + x) * 4))" 64 "$3" || fail "devmem write at ($x,$y) failed"
            x=$((x + 2))
        done
        y=$((y + 1))
    done
}

dev=$(e2e_find_pci 0x1b36 0x000f) || fail "no mdpy device (1b36:000f) on the bus"
cap=$(dd if="$dev/config" bs=1 skip=64 count=4 2>/dev/null | hexdump -e '4/1 "%02x"')
[ "$cap" = 09001000 ] || fail "no vendor capability of 16 bytes at 0x40 (got $cap)"
format=$(cfg32 68)
w=$(cfg32 72)
h=$(cfg32 76)
say "device ${dev##*/} format=$format ${w}x${h} $(e2e_resources "$dev" | tr '\n' ' ')"
[ "$format" = 875713112 ] || fail "format $format is not XRGB8888"
bar=$(($(head -n 1 "$dev/resource" | cut -d' ' -f1)))
[ "$bar" != 0 ] || fail "BAR0 has no address"
echo 1 > "$dev/enable" || fail "cannot enable the function"

rect 16 16 0x00ff000000ff0000
rect "$((w / 2))" "$((h / 2))" 0x0000ff000000ff00
rect "$((w - 48))" "$((h - 24))" 0x000000ff000000ff
echo "MDPY-DRAWN ${w}x${h}"

answer=$((bar + w * h * 4))
i=0
while [ "$i" -lt "$MDPY_HOLD" ]; do
    case "$(devmem "$answer" 32)" in
        0x600D600D|0x600d600d) say "the host saw the pattern"; exit 0 ;;
        0xBAD0BAD0|0xbad0bad0) fail "the host's screenshot did not show the pattern" ;;
    esac
    sleep 1
    i=$((i + 1))
done
fail "no answer from the host in ${MDPY_HOLD}s"
