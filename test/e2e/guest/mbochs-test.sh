# shellcheck shell=sh disable=SC3043
# Guest side of the mbochs e2e (busybox sh, sourced by the e2e /init; `exit N`
# is the verdict). The guest's own `bochs` DRM driver must bind to the mbochs
# device (1234:1111) and bring up /dev/dri/card0 and /dev/fb0 in the mode of
# the EDID the device offers; then the guest paints four quadrants into
# /dev/fb0 and prints
#     MBOCHS-DRAWN WxH
# The host takes its own screenshot of the device and compares pixels. It
# answers by changing the monitor's name in the EDID (the GFX/EDID region):
# `uvfio-done` when the screen matched, `uvfio-fail` when not. The guest
# sees the name by re-probing its connector.
#
# Quadrants (XRGB8888, stored B G R X): top left red, top right green,
# bottom left blue, bottom right #204080.
#
# MBOCHS_HOLD: seconds to wait for the host's answer (default 120).
MBOCHS_HOLD=${MBOCHS_HOLD:-120}

fail() { echo "MBOCHS-FAIL $*"; exit 1; }
say() { echo "MBOCHS $*"; }

# wait_for PATH SECONDS
wait_for() {
    local i=0
    while [ ! -e "$1" ]; do
        i=$((i + 1))
        [ "$i" -gt "$(($2 * 5))" ] && return 1
        usleep 200000
    done
}

# run FILE PIXEL N: N copies of the 4-byte PIXEL (printf escapes) in FILE.
run() {
    printf "$2" > "$1.px"
    while [ "$(wc -c < "$1.px")" -lt "$(($3 * 4))" ]; do cat "$1.px" "$1.px" > "$1.tmp" && mv "$1.tmp" "$1.px"; done
    head -c "$(($3 * 4))" "$1.px" > "$1"
    rm -f "$1.px"
}

# repeat IN N OUT: N copies of file IN in OUT.
repeat() {
    local size
    size=$(wc -c < "$1")
    cp "$1" "$3.tmp"
    while [ "$(wc -c < "$3.tmp")" -lt "$((size * $2))" ]; do cat "$3.tmp" "$3.tmp" > "$3.2" && mv "$3.2" "$3.tmp"; done
    head -c "$((size * $2))" "$3.tmp" > "$3"
    rm -f "$3.tmp"
}

dev=$(e2e_find_pci 0x1234 0x1111) || fail "no mbochs device (1234:1111) on the bus"
say "device ${dev##*/}: $(e2e_resources "$dev" | tr '\n' ' ')"
modprobe bochs || fail "modprobe bochs failed"
wait_for /dev/dri/card0 60 || fail "no /dev/dri/card0 after loading bochs"
wait_for /dev/fb0 60 || fail "no /dev/fb0 after loading bochs"
drv=$(basename "$(readlink "$dev/driver")")
[ "$drv" = bochs-drm ] || fail "the device is bound to '$drv', not bochs-drm"

fb=/sys/class/graphics/fb0
mode=$(head -n 1 "$fb/modes")
w=$(echo "$mode" | sed -n 's/^[A-Z]*:\([0-9]*\)x\([0-9]*\).*/\1/p')
h=$(echo "$mode" | sed -n 's/^[A-Z]*:\([0-9]*\)x\([0-9]*\).*/\2/p')
stride=$(cat "$fb/stride")
bpp=$(cat "$fb/bits_per_pixel")
say "fb0 '$(cat "$fb/name")' mode=$mode ${w}x${h} stride=$stride bpp=$bpp virtual=$(cat "$fb/virtual_size")"
[ -n "$w" ] && [ -n "$h" ] || fail "cannot read the mode of fb0 ('$mode')"
[ "$bpp" = 32 ] || fail "fb0 has $bpp bits per pixel, not 32"
for c in /sys/class/drm/card0-*; do [ -e "$c/edid" ] && say "connector ${c##*/} $(cat "$c/status") edid=$(wc -c < "$c/edid") bytes"; done

# The text console draws on fb0 too (cursor blink): let go of it first.
for v in /sys/class/vtconsole/vtcon*; do
    case "$(cat "$v/name")" in *"frame buffer"*) echo 0 > "$v/bind" && say "unbound ${v##*/}: $(cat "$v/name")" ;; esac
done

cd /tmp || fail "no /tmp"
half=$((w / 2))
pad=$((stride - w * 4))
run tl '\000\000\377\000' "$half"
run tr '\000\377\000\000' "$((w - half))"
run bl '\377\000\000\000' "$half"
run br '\200\100\040\000' "$((w - half))"
head -c "$pad" /dev/zero > pad
cat tl tr pad > top.line
cat bl br pad > bottom.line
repeat top.line "$((h / 2))" top
repeat bottom.line "$((h - h / 2))" bottom
cat top bottom > /dev/fb0 || fail "writing /dev/fb0 failed"
# fbdev draws into a shadow buffer; a kernel worker copies the damage to VRAM.
sleep 1
echo "MBOCHS-DRAWN ${w}x${h}"

i=0
while [ "$i" -lt "$MBOCHS_HOLD" ]; do
    for c in /sys/class/drm/card0-*; do
        [ -e "$c/status" ] || continue
        echo detect > "$c/status" 2>/dev/null
        name=$(tr -cd 'a-z-' < "$c/edid")
        case "$name" in
            *uvfio-done*) say "the host saw the pattern"; exit 0 ;;
            *uvfio-fail*) fail "the host's screenshot (or the web console's canvas) did not show the pattern" ;;
        esac
    done
    sleep 1
    i=$((i + 1))
done
fail "no answer from the host in ${MBOCHS_HOLD}s"
