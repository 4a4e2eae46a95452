#!/bin/busybox sh
# rhcos-metal lab: the /init of the lab's live installer initramfs.
#
# The install itself is the real coreos-installer, driven by its own unmodified
# /usr/libexec/coreos-installer-service, which maps the coreos.inst.* kernel arguments to
# `coreos-installer install` flags. There is no systemd here, so this script stands in for the
# units of a live system around it, each with the smallest honest equivalent:
#   systemd-udevd.service      -> Debian's real systemd-udevd, started by hand (--daemon) and
#                                 triggered, so `udevadm settle` in the service means what it says
#   NetworkManager (After=)    -> busybox udhcpc on the one NIC, /etc/resolv.conf from DHCP
#                                 options 6 and 15
#   (ours) name resolution     -> busybox nslookup of api-int, the host's address and its name
#                                 through that resolver, each answer a "LIVE: dns" line
#   coreos-livepxe-rootfs      -> coreos.live.rootfs_url fetched with busybox wget
#   (ours) introspection hook  -> POST ghw-format JSON to coreos.inst.introspection_endpoint; the
#                                 answer is the Ignition config, handed to coreos-installer as an
#                                 installer config file in /etc/coreos/installer.d/ (the service
#                                 passes each with --config-file; coreos.inst.ignition_url would
#                                 need an http(s) URL)
#   coreos-installer.service   -> the service script run here, its output on the console
#                                 (StandardOutput=kmsg+console)
#   coreos-installer-reboot.service / OnFailure=emergency.target
#                              -> power off either way (the BMC sees it), after reporting
# Our progress lines start with "LIVE:"; everything the service and coreos-installer print is
# copied to the console as is. The stages image-written, installed and failed are POSTed to
# rhcos_metal.report= so the deployment timeline sees them.

/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /run /run/udev /dev/pts
INSTALLER=$(cat /etc/coreos-installer-version)

log() { echo "LIVE: $*"; }
REPORT="" MAC=""
report() {
    [ -n "$REPORT" ] || return 0
    wget -q -O /dev/null --post-data "$2" "$REPORT?mac=$MAC&stage=$1" 2>/dev/null || true
}
fail() {
    log "FAILED: $*"
    report failed "installer=$INSTALLER $*"
    sync
    poweroff -f
    sleep 30
}

for m in $(cat /etc/modules.order); do
    insmod "/lib/modules/$m.ko" 2>/dev/null
done

DEV="" IGN="" INTRO="" ROOTFS="" INSTALL_CONFIG="" IPMODE=dhcp
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        # dracut's ip= as rhcos-deploy writes it: none (DHCPv4), ip=dhcp6, ip=dhcp,dhcp6.
        ip=dhcp | ip=dhcp6 | ip=dhcp,dhcp6 | ip=dhcp6,dhcp) IPMODE="${arg#ip=}" ;;
        ip=*) fail "unsupported ${arg} (the lab's installer takes ip=dhcp, dhcp6 or dhcp,dhcp6)" ;;
        coreos.inst.install_dev=*) DEV="${arg#*=}" ;;
        rhcos_metal.install_config=*) INSTALL_CONFIG="${arg#*=}" ;;
        coreos.inst.ignition_url=*) IGN="${arg#*=}" ;;
        coreos.inst.introspection_endpoint=*) INTRO="${arg#*=}" ;;
        coreos.live.rootfs_url=*) ROOTFS="${arg#*=}" ;;
        rhcos_metal.report=*) REPORT="${arg#*=}" ;;
    esac
done
DEV="${DEV#/dev/}"
if [ -z "$DEV" ] && [ -n "$INSTALL_CONFIG" ]; then
    # Introspection chooses the disk; until it answers, wait for (and log) the lab's one disk.
    DEV=vda
fi
[ -n "$DEV" ] || fail "missing coreos.inst.install_dev"
[ -n "$IGN" ] || [ -n "$INTRO" ] || fail "neither coreos.inst.ignition_url nor an introspection endpoint"

# Debian's systemd-udevd without systemd, as initramfs-tools starts it.
/usr/lib/systemd/systemd-udevd --daemon --resolve-names=never || fail "systemd-udevd did not start"
udevadm trigger --type=subsystems --action=add
udevadm trigger --type=devices --action=add
udevadm settle --timeout=30 || log "udevadm settle timed out"

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
log "nic $NIC mac=$MAC disk /dev/$DEV $(($(cat /sys/block/$DEV/size) / 2048)) MiB, $(cat /sys/block/$DEV/queue/logical_block_size)-byte sectors; $INSTALLER"

ip link set lo up
ip link set "$NIC" up
: >/etc/resolv.conf
IP="" IP6=""
case "$IPMODE" in *dhcp6*) V6=1 ;; *) V6="" ;; esac
case ",$IPMODE," in *,dhcp,*) V4=1 ;; *) V4="" ;; esac
if [ -n "$V4" ]; then
    udhcpc -i "$NIC" -f -q -n -t 20 -T 1 -s /etc/udhcpc.script >/tmp/udhcpc.log 2>&1 ||
        fail "dhcp failed: $(cat /tmp/udhcpc.log)"
    IP=$(cat /tmp/ip)
    log "dhcp bound ip=$IP"
fi
if [ -n "$V6" ]; then
    # ISC dhclient -6 (stateful, IA_NA) once the link-local address has passed duplicate
    # address detection; it backgrounds itself once bound and keeps renewing.
    i=0
    until ip -6 addr show dev "$NIC" | grep -q "inet6 fe80" &&
        ! ip -6 addr show dev "$NIC" | grep -q tentative; do
        i=$((i + 1))
        [ $i -gt 100 ] && fail "no link-local IPv6 address on $NIC"
        sleep 0.1
    done
    mkdir -p /var/lib/dhcp
    dhclient -6 -1 -v -cf /etc/dhcp/dhclient.conf -sf /etc/dhclient6.script \
        -lf /tmp/dhclient6.leases -pf /run/dhclient6.pid "$NIC" >/tmp/dhclient6.log 2>&1 ||
        fail "dhcpv6 failed: $(tail -n 5 /tmp/dhclient6.log)"
    IP6=$(cat /tmp/ip6)
    i=0
    while ip -6 addr show dev "$NIC" | grep -q tentative; do
        i=$((i + 1))
        [ $i -gt 50 ] && break
        sleep 0.1
    done
    log "dhcp6 bound ip6=$IP6 ($(grep -c '^nameserver' /etc/resolv.conf) resolvers)"
fi

# The names a node needs from the cluster DNS, asked (busybox nslookup) of the resolver DHCP
# handed out: api-int, this host's own address and the name that comes back. Each answer is
# a console line the lab's disk check reads, and goes with the installed report.
resolve() { # a|aaaa|ptr name-or-address -> the answers, space-separated ("-" for none)
    # busybox nslookup turns an address into its in-addr.arpa name only without -type.
    if [ "$1" = ptr ]; then set -- "$2"; else set -- -type="$1" "$2"; fi
    got=$(nslookup "$@" 2>/dev/null |
        sed -n -e 's/^Address: //p' -e 's/.*[[:space:]]name = //p' | tr '\n' ' ')
    got="${got% }"
    echo "${got:--}"
}
DNS_SEEN=""
dns() {
    answer=$(resolve "$1" "$2")
    log "dns $2 -> $answer"
    DNS_SEEN="$DNS_SEEN $2=$(echo "$answer" | tr ' ' ',')"
}
log "dns resolver $(grep '^nameserver' /etc/resolv.conf 2>/dev/null | cut -d' ' -f2 | tr '\n' ' ')(dhcp option 6 / dhcpv6 option 23)"
DOMAIN=$(sed -n 's/^search //p' /etc/resolv.conf 2>/dev/null | head -n 1)
[ -n "$DOMAIN" ] && dns a "api-int.$DOMAIN"
if [ -n "$IP" ]; then
    dns ptr "$IP"
    OWN=$(resolve ptr "$IP")
    [ "$OWN" != - ] && dns a "${OWN%% *}"
fi
if [ -n "$IP6" ]; then
    # The same over IPv6: the ip6.arpa name of the DHCPv6 address, and the name's AAAA.
    dns ptr "$IP6"
    OWN6=$(resolve ptr "$IP6")
    [ "$OWN6" != - ] && dns aaaa "${OWN6%% *}"
fi

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
            # logical_block_size_bytes is ours: ghw reports only the physical size.
            printf '%s{"name":"%s","size_bytes":%s,"physical_block_size_bytes":%s,"logical_block_size_bytes":%s,"drive_type":"%s","storage_controller":"virtio","bus_path":"unknown","vendor":"unknown","model":"unknown","serial_number":"%s","wwn":"unknown","removable":%s,"partitions":[]}' \
                "$sep" "$name" "$(($(cat "$b/size") * 512))" \
                "$(cat "$b/queue/physical_block_size")" "$(cat "$b/queue/logical_block_size")" \
                "$type" "${serial:-unknown}" "$([ "$rem" = 1 ] && echo true || echo false)"
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
    until wget -q -O /run/introspection.ign --header 'Content-Type: application/json' \
        --post-file /tmp/inventory.json "$INTRO"; do
        i=$((i + 1))
        [ $i -ge 10 ] && fail "introspection POST failed"
        sleep 2
    done
    log "introspection answered with $(wc -c </run/introspection.ign) bytes of Ignition"
    # coreos-installer takes the config from an installer config file, which its service
    # script passes on (coreos.inst.ignition_url only takes http(s) URLs).
    mkdir -p /etc/coreos/installer.d
    echo "ignition-file: /run/introspection.ign" >/etc/coreos/installer.d/50-rhcos-metal-introspection.yaml
    if [ -n "$INSTALL_CONFIG" ]; then
        # The disk introspection chose and the image for its sector size, as an installer
        # config file too (the command line names neither).
        i=0
        until wget -q -O /tmp/install.yaml "$INSTALL_CONFIG"; do
            i=$((i + 1))
            [ $i -ge 10 ] && fail "install config fetch failed"
            sleep 2
        done
        mv /tmp/install.yaml /etc/coreos/installer.d/40-rhcos-metal-install.yaml
        log "install config: $(grep -v '^#' /etc/coreos/installer.d/40-rhcos-metal-install.yaml | tr '\n' ' ')"
    fi
fi

log "running /usr/libexec/coreos-installer-service"
# The service's output goes to the console as coreos-installer.service's does; the image is
# on the disk (written, synced, signature checked if any) once coreos-installer turns to the
# boot partition to write the Ignition config.
{
    /usr/libexec/coreos-installer-service 2>&1
    echo $? >/tmp/service.rc
} | while IFS= read -r line; do
    echo "$line"
    case "$line" in
        "Writing Ignition config"*)
            report image-written "installer=$INSTALLER"
            ;;
    esac
done
RC=$(cat /tmp/service.rc)
[ "$RC" = 0 ] || fail "coreos-installer-service exited $RC"
sync
report installed "installer=$INSTALLER dns:$DNS_SEEN"
log "coreos-installer-service exited 0, powering off"
poweroff -f
sleep 30
