#!/bin/sh
# ipmi_sim chassis_control program of the rhcos-metal lab: one per VM.
# ipmi_sim runs it with popen() and reads stdout until EOF, so everything started in the
# background has its output redirected.
#   chassis.sh <vmdir> get power|boot ...   -> prints "power:0|1", "boot:<value>"
#   chassis.sh <vmdir> set power 1|0 | reset 1 | shutdown 1 | boot pxe|default|cdrom|bios|none
D=$1; shift; op=$1; shift
PIDF="$D/qemu.pid"; BOOTF="$D/boot"
echo "$(date +%T.%N) $op $*" >>"$D/chassis.log"

running() { [ -s "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; }
start_vm() {
    running && return 0
    "$D/start-vm.sh" "$(cat "$BOOTF" 2>/dev/null || echo default)" </dev/null >>"$D/qemu.out" 2>&1
}
stop_vm() {
    if running; then
        pid=$(cat "$PIDF"); kill "$pid"
        i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
        kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$PIDF"
}

case $op in
get)
    for p in "$@"; do
        case $p in
            power) if running; then echo "power:1"; else echo "power:0"; fi ;;
            boot) echo "boot:$(cat "$BOOTF" 2>/dev/null || echo default)" ;;
            *) echo "Invalid parameter: $p"; exit 1 ;;
        esac
    done ;;
set)
    while [ $# -gt 0 ]; do
        p=$1; v=$2; shift 2
        case $p in
            power) if [ "$v" = 1 ]; then start_vm || { echo "VM start failed"; exit 1; }; else stop_vm; fi ;;
            reset) [ "$v" = 1 ] && running && { stop_vm; start_vm; } ;;
            shutdown) [ "$v" = 1 ] && stop_vm ;;
            boot) case $v in none|pxe|default|cdrom|bios) echo "$v" >"$BOOTF" ;; *) echo "Invalid boot value: $v"; exit 1 ;; esac ;;
            identify) ;;
            *) echo "Invalid parameter: $p"; exit 1 ;;
        esac
    done ;;
check) exit 1 ;;
*) echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
