#!/bin/busybox sh
# rhcos-metal lab: a fake RHCOS installer (busybox only), the /init of the lab's initramfs.
#
# It does what coreos-installer does in a PXE install, with the same kernel arguments:
#   DHCP -> (introspection: POST ghw-format JSON, the answer is the Ignition config)
#        -> stream the raw.gz image onto the install disk -> fetch Ignition -> report -> power off.
# Every progress line starts with "FAKEINST:" so the host can follow it on the serial console,
# and the end of the image write, completion and failure are POSTed to the report URL so the
# deployment timeline sees them.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /run

log() { echo "FAKEINST: $*"; }
REPORT=""
report() {
    [ -n "$REPORT" ] || return 0
    wget -q -O /dev/null --post-data "$2" "$REPORT?mac=$MAC&stage=$1" 2>/dev/null || true
}
fail() {
    log "FAILED: $*"
    report failed "$*"
    sync
    poweroff -f
    sleep 30
}

for m in $(cat /etc/modules.order); do
    insmod "/lib/modules/$m.ko" 2>/dev/null
done

DEV="" IMG="" IGN="" INTRO="" LEGACY="" ROOTFS=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        coreos.inst.install_dev=*) DEV="${arg#*=}" ;;
        coreos.inst.image_url=*) IMG="${arg#*=}" ;;
        coreos.inst.ignition_url=*) IGN="${arg#*=}" ;;
        coreos.inst.introspection_endpoint=*) INTRO="${arg#*=}" ;;
        coreos.inst=yes) LEGACY=1 ;;
        coreos.live.rootfs_url=*) ROOTFS="${arg#*=}" ;;
        rhcos_metal.report=*) REPORT="${arg#*=}" ;;
    esac
done
DEV="${DEV#/dev/}"
[ -n "$DEV" ] && [ -n "$IMG" ] || fail "missing coreos.inst.install_dev or coreos.inst.image_url"
[ -n "$IGN" ] || [ -n "$INTRO" ] || fail "neither coreos.inst.ignition_url nor an introspection endpoint"

i=0
NIC=""
while [ -z "$NIC" ] || [ ! -b "/dev/$DEV" ]; do
    for n in /sys/class/net/*; do
        case "${n##*/}" in lo) ;; *) NIC="${n##*/}" ;; esac
    done
    i=$((i + 1))
    [ $i -gt 200 ] && fail "no NIC or no /dev/$DEV ($(ls /sys/class/net) / $(ls /sys/block))"
    sleep 0.1
done
MAC=$(cat /sys/class/net/$NIC/address)
SECTORS=$(cat /sys/block/$DEV/size)
log "nic $NIC mac=$MAC disk /dev/$DEV $((SECTORS / 2048)) MiB"

ip link set lo up
ip link set "$NIC" up
udhcpc -i "$NIC" -f -q -n -t 20 -T 1 -s /etc/udhcpc.script >/tmp/udhcpc.log 2>&1 ||
    fail "dhcp failed: $(cat /tmp/udhcpc.log)"
IP=$(cat /tmp/ip)
log "dhcp bound ip=$IP"

if [ -n "$ROOTFS" ]; then
    # The live initramfs fetches its root filesystem before anything else.
    wget -q -O /dev/null "$ROOTFS" || fail "rootfs fetch failed"
    log "rootfs fetched"
fi

if [ -n "$INTRO" ]; then
    # The 2019 introspection client's payload: ghwc {block,cpu,gpu,memory,net,topology} -f json,
    # concatenated into one object. Built from /sys and /proc, in ghw's field names.
    {
        printf '{"memory":{"total_physical_bytes":%s,"total_usable_bytes":%s,"supported_page_sizes":[]},' \
            "$(($(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2) * 1024))" \
            "$(($(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2) * 1024))"
        printf '"block":{"disks":['
        sep=""
        for b in /sys/block/*; do
            name="${b##*/}"
            case "$name" in loop* | ram*) continue ;; esac
            rot=$(cat "$b/queue/rotational" 2>/dev/null || echo 0)
            rem=$(cat "$b/removable" 2>/dev/null || echo 0)
            type=ssd; [ "$rot" = 1 ] && type=hdd
            serial=$(cat "$b/serial" 2>/dev/null || cat "$b/device/serial" 2>/dev/null || echo unknown)
            printf '%s{"name":"%s","size_bytes":%s,"drive_type":"%s","storage_controller":"virtio","bus_path":"unknown","vendor":"unknown","model":"unknown","serial_number":"%s","wwn":"unknown","removable":%s,"partitions":[]}' \
                "$sep" "$name" "$(($(cat "$b/size") * 512))" "$type" "${serial:-unknown}" \
                "$([ "$rem" = 1 ] && echo true || echo false)"
            sep=","
        done
        printf ']},"cpu":{"total_cores":%s,"total_threads":%s,"processors":[]},' "$(nproc)" "$(nproc)"
        printf '"topology":{"architecture":"smp","nodes":[]},"gpu":{"cards":[]},'
        printf '"network":{"nics":['
        sep=""
        for n in /sys/class/net/*; do
            name="${n##*/}"
            [ "$name" = lo ] && continue
            virt=false; [ -e "$n/device" ] || virt=true
            printf '%s{"name":"%s","mac_address":"%s","is_virtual":%s,"capabilities":[]}' \
                "$sep" "$name" "$(cat "$n/address")" "$virt"
            sep=","
        done
        printf ']}}'
    } >/tmp/inventory.json
    log "introspection: posting $(wc -c </tmp/inventory.json) bytes"
    i=0
    until wget -q -O /tmp/config.ign --header 'Content-Type: application/json' \
        --post-file /tmp/inventory.json "$INTRO"; do
        i=$((i + 1))
        [ $i -ge 10 ] && fail "introspection POST failed"
        sleep 2
    done
    log "introspection answered with $(wc -c </tmp/config.ign) bytes of Ignition"
fi

log "image download start"
mkfifo /tmp/count.fifo
wc -c </tmp/count.fifo >/tmp/bytes &
WCPID=$!
{ wget -q -O - "$IMG"; echo $? >/tmp/wget.rc; } |
    { gunzip -c; echo $? >/tmp/gunzip.rc; } |
    tee "/dev/$DEV" /tmp/count.fifo | sha256sum >/tmp/sum
wait $WCPID
sync
[ "$(cat /tmp/wget.rc)" = 0 ] || fail "image download failed (wget rc $(cat /tmp/wget.rc))"
[ "$(cat /tmp/gunzip.rc)" = 0 ] || fail "image is not valid gzip (rc $(cat /tmp/gunzip.rc))"
BYTES=$(tr -d ' ' </tmp/bytes)
SUM=$(cut -d' ' -f1 /tmp/sum)
log "image written $BYTES bytes sha256=$SUM"
report image-written "bytes=$BYTES sha256=$SUM"

if [ -z "$INTRO" ]; then
    i=0
    # Ignition retries on 5xx; so do we, a bounded number of times.
    until wget -q -O /tmp/config.ign "$IGN"; do
        i=$((i + 1))
        [ $i -ge 10 ] && fail "ignition fetch failed"
        sleep 2
    done
fi
IGN_SUM=$(sha256sum /tmp/config.ign | cut -d' ' -f1)
log "ignition $(wc -c </tmp/config.ign) bytes sha256=$IGN_SUM"

# The host-side check reads this marker from the last MiB of the disk.
{
    echo "FAKEINST-MARKER v1"
    echo "mac=$MAC"
    echo "ip=$IP"
    echo "legacy=${LEGACY:-0}"
    echo "image_bytes=$BYTES"
    echo "image_sha256=$SUM"
    echo "ignition_sha256=$IGN_SUM"
    echo "END-MARKER"
    cat /tmp/config.ign
} >/tmp/marker
dd if=/tmp/marker of="/dev/$DEV" bs=1M seek=$((SECTORS / 2048 - 1)) conv=notrunc,fsync 2>/dev/null ||
    fail "marker write failed"
sync
report installed "image_sha256=$SUM ignition_sha256=$IGN_SUM"
log "install complete, powering off"
poweroff -f
sleep 30
