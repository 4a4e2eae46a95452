#!/bin/sh
# ipmi_sim chassis_control program whose "machine" is two files in a state directory.
# ipmi_sim runs it through popen and reads its stdout until EOF:
#   chassisctl.sh <dir> get power|boot ...  -> "power:0|1", "boot:pxe|default|cdrom|bios|none"
#   chassisctl.sh <dir> set power 1|0 | reset 1 | shutdown 1 | boot pxe|... | identify ...
D=$1; shift; op=$1; shift
mkdir -p "$D"
case $op in
get)
    for p in "$@"; do
        case $p in
            power) echo "power:$(cat "$D/power" 2>/dev/null || echo 0)" ;;
            boot)  echo "boot:$(cat "$D/boot" 2>/dev/null || echo default)" ;;
            *) echo "Invalid parameter: $p"; exit 1 ;;
        esac
    done ;;
set)
    while [ $# -gt 0 ]; do
        p=$1; v=$2; shift 2
        case $p in
            power)    echo "$v" > "$D/power" ;;
            reset)    ;;
            shutdown) [ "$v" = 1 ] && echo 0 > "$D/power" ;;
            boot)     echo "$v" > "$D/boot" ;;
            identify) ;;
            *) echo "Invalid parameter: $p"; exit 1 ;;
        esac
    done ;;
check) exit 1 ;;
*) echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
