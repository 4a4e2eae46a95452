#!/bin/sh
# ipmi_sim chassis_control program, adapted from the project shared folder, peers/ipmi/chassisctl.sh: the power
# state is a file instead of a QEMU process, so tests run fast and need no KVM/TCG guest.
# ipmi_sim runs (via popen, reading stdout until EOF):
#   chassisctl.sh <statedir> get power|boot ...      -> prints "power:0|1", "boot:pxe|default|cdrom|bios|none"
#   chassisctl.sh <statedir> set power "1"|"0" | reset "1" | shutdown "1" | boot "pxe" | identify "15 0"
D=$1; shift; op=$1; shift
mkdir -p "$D"
POWER="$D/power"; BOOTF="$D/boot"; LOG="$D/chassis.log"
echo "$op $*" >> "$LOG"
case $op in
get)
    for p in "$@"; do
        case $p in
            power) echo "power:$(cat "$POWER" 2>/dev/null || echo 0)" ;;
            boot)  echo "boot:$(cat "$BOOTF" 2>/dev/null || echo default)" ;;
            *) echo "Invalid parameter: $p"; exit 1 ;;
        esac
    done ;;
set)
    while [ $# -gt 0 ]; do
        p=$1; v=$2; shift 2
        case $p in
            power)    echo "$v" > "$POWER"; echo "power $v" >> "$D/power.log" ;;
            reset)    [ "$v" = 1 ] && echo "reset" >> "$D/power.log" ;;
            shutdown) [ "$v" = 1 ] && echo 0 > "$POWER" ;;
            boot)     case $v in none|pxe|default|cdrom|bios) echo "$v" > "$BOOTF" ;; *) echo "Invalid boot value: $v"; exit 1 ;; esac ;;
            identify) shift ;;
            *) echo "Invalid parameter: $p"; exit 1 ;;
        esac
    done ;;
check) exit 1 ;;
*) echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
