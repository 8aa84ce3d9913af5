# shellcheck shell=sh disable=SC3043
# Guest side of the mtty e2e (busybox sh, sourced by the e2e /init; `exit N`
# is the verdict). For every mtty card (4348:3253) the guest's built-in
# 8250_pci driver ("serial") must have bound and made one ttyS port per
# I/O BAR; each port must give back, through the card's loopback, the bytes
# written to it, and its IRQ count in /proc/interrupts must rise meanwhile.
# Ports are found through sysfs: their ttyS numbers depend on nr_uarts.
#
# MTTY_CARDS: port counts of the cards the host serves, in any order.
MTTY_CARDS=${MTTY_CARDS:-"1 2"}

fail() { echo "MTTY-FAIL $*"; exit 1; }
say() { echo "MTTY $*"; }

# irq_count IRQ: interrupts so far on IRQ, summed over CPUs (0 when not listed).
irq_count() {
    awk -v want="$1:" '$1 == want { s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print s; found = 1 }
        END { if (!found) print 0 }' /proc/interrupts
}

# ports_of PCI_DIR: the ttyS names whose device lies below that PCI function.
ports_of() {
    local fn t dev
    fn=$(readlink -f "$1")
    for t in /sys/class/tty/ttyS*; do
        [ -e "$t/device" ] || continue
        dev=$(readlink -f "$t/device")
        case "$dev" in "$fn"/*) echo "${t##*/}" ;; esac
    done
}

# loop_port TTY: writes a message longer than the 16-byte FIFO, reads it back.
loop_port() {
    local tty=/dev/$1 irq before after msg got n
    irq=$(cat "/sys/class/tty/$1/irq")
    # 8250's autoconfig must have taken the UART for a 16550A (PORT_16550A = 4).
    [ "$(cat "/sys/class/tty/$1/type")" = 4 ] || fail "$1: port type $(cat "/sys/class/tty/$1/type"), not 16550A (4)"
    msg="uvfio-mtty-$1-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ-end"
    n=${#msg}
    # Hold the port open (its IRQ is requested only while open) and make it
    # raw without echo: an echoing tty would send every byte round again.
    exec 3<>"$tty" || fail "$1: cannot open $tty"
    stty -F "$tty" raw -echo -echoe -echok -echoctl -echoke clocal -crtscts -ixon -ixoff 115200 ||
        { exec 3>&-; fail "$1: stty failed"; }
    before=$(irq_count "$irq")
    printf '%s' "$msg" >&3
    got=$(timeout 20 dd bs=1 count="$n" <&3 2>/dev/null)
    after=$(irq_count "$irq")
    exec 3>&-
    say "$1 irq=$irq count $before -> $after, sent $n bytes, got ${#got}"
    [ "$got" = "$msg" ] || fail "$1: read back '$got', wanted '$msg'"
    [ "$after" -gt "$before" ] || fail "$1: IRQ $irq count did not rise ($before -> $after)"
}

cards=""
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x4348 ] && [ "$(cat "$d/device")" = 0x3253 ] && cards="$cards $d"
done
set -- $cards
[ $# -eq "$(echo $MTTY_CARDS | wc -w)" ] || fail "found $# mtty card(s), wanted $(echo $MTTY_CARDS | wc -w)"

seen=""
for d in $cards; do
    fn=${d##*/}
    say "$fn class=$(cat "$d/class") sub=$(cat "$d/subsystem_vendor"):$(cat "$d/subsystem_device") rev=$(cat "$d/revision") irq=$(cat "$d/irq")"
    e2e_resources "$d" | while read -r line; do say "$fn $line"; done
    [ -L "$d/driver" ] || fail "$fn: no driver bound"
    drv=$(basename "$(readlink "$d/driver")")
    [ "$drv" = serial ] || fail "$fn: bound to $drv, not 8250_pci (serial)"
    bars=$(ls "$d" | grep -c '^resource[0-5]$')
    ports=$(ports_of "$d")
    nports=$(echo $ports | wc -w)
    say "$fn driver=$drv io-bars=$bars ports:" $ports
    [ "$nports" -eq "$bars" ] || fail "$fn: $nports ttyS port(s) for $bars I/O BAR(s)"
    for p in $ports; do
        dmesg | grep -E "$p at " | sed 's/^/MTTY dmesg: /'
        loop_port "$p"
    done
    seen="$seen $nports"
done

# The cards found must be the ones served (e.g. one mtty-1 and one mtty-2).
sorted() { for x in "$@"; do echo "$x"; done | sort -n | tr '\n' ' '; }
[ "$(sorted $seen)" = "$(sorted $MTTY_CARDS)" ] || fail "port counts$seen, wanted $MTTY_CARDS"
say "all ports looped back, interrupt-driven"
