#!/usr/bin/env bash
# perfdhcp against pxe_stack::dhcp and pxe_stack::dhcp6 (benches/src/bin/dhcp-server.rs,
# dhcp6-server.rs), dnsmasq and Kea (memfile), in the same namespace setup and the same run,
# every server with a lease file: completed exchanges per second (DORA for v4, SARR for v6)
# at <= 0.5 % lost exchanges, and peak RSS as the number of distinct clients grows.
#
#   sudo benches/dhcp/run.sh
#   # defaults: FAMILIES="4 6" SERVERS="ours dnsmasq kea" RATES="100 250 500 1000 2000 4000 8000"
#   #           CLIENTS=1000 PERIOD=5 MEM_CLIENTS="1000 10000 50000" MEM_RATE=4000 MEM_PERIOD=10
#   #           AVALANCHE=0 (1: also the v4 all-at-once avalanche of CLIENTS clients)
# Each server's sweep climbs RATES and stops after the first step losing more than 10 %.
#
# Setup: namespaces pdb-s-PID (servers) and pdb-c-PID (perfdhcp), one veth pair (DAD off),
# 10.99.0.1/16 and 10.99.0.2/16, fd00:99::1/64 and fd00:99::2/64. Pools: 10.99.1.0-10.99.255.254
# and fd00:99::1:0-fd00:99::1:ffff. perfdhcp -4 acts as a relay (giaddr 10.99.0.2, port 67), so
# every server answers it by unicast; perfdhcp -6 sends to ff02::1:2 from its link-local address
# (its simulated clients differ only in their DUID-LLT, so ours runs with duid_first).
# Every server starts fresh (empty lease file) for every measurement. Lease persistence:
#   ours:    the batch's lease changes appended to the lease file's journal and fdatasync'd
#            once per batch of received datagrams, before any ACK/Reply of that batch is sent
#            (the whole table is rewritten, temp file + fsync + rename, when the journal
#            outgrows it);
#   dnsmasq: rewrites its lease file and fsyncs it after lease changes, before the reply;
#   Kea:     memfile persist=true appends one CSV line per lease before the reply and flushes it
#            to the kernel (write), without fsync; lfc-interval 0 (no lease file cleanup).
# Everything is removed on exit.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
FAMILIES="${FAMILIES:-4 6}"
SERVERS="${SERVERS:-ours dnsmasq kea}"
RATES="${RATES:-100 250 500 1000 2000 4000 8000}"
CLIENTS="${CLIENTS:-1000}"
PERIOD="${PERIOD:-5}"
MEM_CLIENTS="${MEM_CLIENTS:-1000 10000 50000}"
MEM_RATE="${MEM_RATE:-4000}"
MEM_PERIOD="${MEM_PERIOD:-10}"
AVALANCHE="${AVALANCHE:-0}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${BIN:-$TARGET/release/dhcp-server}"
BIN6="${BIN6:-$TARGET/release/dhcp6-server}"
MAX_DROP="0.5"

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }
for t in perfdhcp dnsmasq kea-dhcp4 kea-dhcp6 ip bc; do
    command -v "$t" >/dev/null || { echo "missing $t (scripts/install-deps.sh)" >&2; exit 1; }
done
if [ ! -x "$BIN" ] || [ ! -x "$BIN6" ]; then
    (cd "$ROOT" && cargo build --release -p benches --bin dhcp-server --bin dhcp6-server)
fi

NS_S="pdb-s-$$"; NS_C="pdb-c-$$"; IF_S="pbs$$"; IF_C="pbc$$"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_C" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ip netns add "$NS_S"; ip netns add "$NS_C"
for ns in "$NS_S" "$NS_C"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
ip link add "$IF_S" netns "$NS_S" type veth peer name "$IF_C" netns "$NS_C"
ip -n "$NS_S" addr add 10.99.0.1/16 dev "$IF_S"; ip -n "$NS_S" addr add fd00:99::1/64 dev "$IF_S" nodad
ip -n "$NS_C" addr add 10.99.0.2/16 dev "$IF_C"; ip -n "$NS_C" addr add fd00:99::2/64 dev "$IF_C" nodad
for ns in "$NS_S" "$NS_C"; do ip -n "$ns" link set lo up; done
ip -n "$NS_S" link set "$IF_S" up; ip -n "$NS_C" link set "$IF_C" up
# Wait for the link-local addresses (perfdhcp -6 sends from one).
for _ in $(seq 50); do
    ip -n "$NS_C" -6 addr show dev "$IF_C" scope link | grep -q inet6 && break; sleep 0.1
done

wait_ready() { # LOG PATTERN
    for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "server did not start:" >&2; cat "$1" >&2; exit 1
}

start_ours4() {
    LEASES="$WORK/ours4.leases"; rm -f "$LEASES"
    ip netns exec "$NS_S" "$BIN" --iface "$IF_S" --server-ip 10.99.0.1 --prefix 16 \
        --range 10.99.1.0 10.99.255.254 --lease-file "$LEASES" >"$WORK/ours4.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$WORK/ours4.log" ready
}
start_ours6() {
    LEASES="$WORK/ours6.leases"; rm -f "$LEASES"
    ip netns exec "$NS_S" "$BIN6" --iface "$IF_S" --server-addr fd00:99::1 --prefix 64 \
        --range fd00:99::1:0 fd00:99::1:ffff --lease-file "$LEASES" >"$WORK/ours6.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$WORK/ours6.log" ready
}
dnsmasq_common() {
    echo --keep-in-foreground --conf-file=/dev/null --port=0 --interface="$IF_S" --bind-interfaces \
        --dhcp-authoritative --no-ping --log-facility=- --quiet-dhcp --quiet-dhcp6 \
        --dhcp-lease-max=100000 --pid-file=
}
start_dnsmasq4() {
    LEASES="$WORK/dnsmasq4.leases"; rm -f "$LEASES"
    # shellcheck disable=SC2046
    ip netns exec "$NS_S" dnsmasq $(dnsmasq_common) --dhcp-range=10.99.1.0,10.99.255.254,255.255.0.0,1h \
        --dhcp-leasefile="$LEASES" >"$WORK/dnsmasq4.log" 2>&1 &
    SERVER_PID=$!
    sleep 0.5
}
start_dnsmasq6() {
    LEASES="$WORK/dnsmasq6.leases"; rm -f "$LEASES"
    # shellcheck disable=SC2046
    ip netns exec "$NS_S" dnsmasq $(dnsmasq_common) --dhcp-range=fd00:99::1:0,fd00:99::1:ffff,64,1h \
        --dhcp-leasefile="$LEASES" >"$WORK/dnsmasq6.log" 2>&1 &
    SERVER_PID=$!
    sleep 0.5
}
kea_common() { # FAMILY
    cat <<JSON
    "interfaces-config": { "interfaces": [ "$IF_S" ] $([ "$1" = 4 ] && echo ', "dhcp-socket-type": "udp"') },
    "lease-database": { "type": "memfile", "persist": true, "name": "$LEASES", "lfc-interval": 0 },
    "multi-threading": { "enable-multi-threading": false },
    "valid-lifetime": 3600,
    "loggers": [ { "name": "kea-dhcp$1", "output_options": [ { "output": "stdout" } ], "severity": "WARN" } ],
JSON
}
start_kea4() {
    LEASES="$WORK/kea4.leases"; rm -f "$LEASES"
    cat >"$WORK/kea4.json" <<JSON
{ "Dhcp4": {
$(kea_common 4)
    "subnet4": [ { "id": 1, "subnet": "10.99.0.0/16", "pools": [ { "pool": "10.99.1.0 - 10.99.255.254" } ] } ]
} }
JSON
    KEA_PIDFILE_DIR="$WORK" KEA_LOCKFILE_DIR="$WORK" ip netns exec "$NS_S" kea-dhcp4 -c "$WORK/kea4.json" >"$WORK/kea4.log" 2>&1 &
    SERVER_PID=$!
    sleep 1
    kill -0 "$SERVER_PID" || { cat "$WORK/kea4.log" >&2; exit 1; }
}
start_kea6() {
    LEASES="$WORK/kea6.leases"; rm -f "$LEASES"
    cat >"$WORK/kea6.json" <<JSON
{ "Dhcp6": {
$(kea_common 6)
    "data-directory": "$WORK",
    "preferred-lifetime": 3600,
    "subnet6": [ { "id": 1, "subnet": "fd00:99::/64", "interface": "$IF_S",
                   "pools": [ { "pool": "fd00:99::1:0 - fd00:99::1:ffff" } ] } ]
} }
JSON
    KEA_PIDFILE_DIR="$WORK" KEA_LOCKFILE_DIR="$WORK" ip netns exec "$NS_S" kea-dhcp6 -c "$WORK/kea6.json" >"$WORK/kea6.log" 2>&1 &
    SERVER_PID=$!
    sleep 1
    kill -0 "$SERVER_PID" || { cat "$WORK/kea6.log" >&2; exit 1; }
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0; }

# Distinct addresses in the current server's lease file.
lease_count() {
    case "$1" in
        ours*) grep -o '"addr"' "$LEASES" 2>/dev/null | wc -l ;;
        dnsmasq*) grep -vc '^duid' "$LEASES" 2>/dev/null || true ;;
        kea*) tail -n +2 "$LEASES" 2>/dev/null | cut -d, -f1 | sort -u | wc -l ;;
    esac
}

# One perfdhcp run: FAMILY RATE CLIENTS PERIOD. Sets SENT (DISCOVER/SOLICIT sent), DONE
# (ACK/REPLY received), RETRY (perfdhcp's drop counters summed).
run_perfdhcp() {
    local out first second
    if [ "$1" = 4 ]; then
        out="$(ip netns exec "$NS_C" perfdhcp -4 -l "$IF_C" -R "$3" -r "$2" -p "$4" -W 2000000 10.99.0.1 2>&1 || true)"
        first="DISCOVER-OFFER"; second="REQUEST-ACK"
    else
        out="$(ip netns exec "$NS_C" perfdhcp -6 -l "$IF_C" -R "$3" -r "$2" -p "$4" -W 2000000 2>&1 || true)"
        first="SOLICIT-ADVERTISE"; second="REQUEST-REPLY"
    fi
    { echo "### perfdhcp -$1 -R $3 -r $2 -p $4 ($CUR)"; echo "$out"; } >>"$WORK/perfdhcp.log"
    SENT="$(echo "$out" | awk -v s="Statistics for: $first" 'index($0, s) {f=1} f && /sent packets:/ {print $3; exit}')"
    DONE="$(echo "$out" | awk -v s="Statistics for: $second" 'index($0, s) {f=1} f && /received packets:/ {print $3; exit}')"
    DROPS="$(echo "$out" | awk '/drops:/ {s+=$2} END {print s+0}')"
    SENT="${SENT:-0}"; DONE="${DONE:-0}"
}

declare -A BEST
for fam in $FAMILIES; do
    for server in $SERVERS; do
        CUR="$server$fam"
        echo "== v$fam $server"
        printf '%-8s %-8s %-8s %-8s %-9s %-8s\n' rate started done drops "done/s" "lost%"
        best=0; best_rate=-
        for r in $RATES; do
            "start_$server$fam"
            run_perfdhcp "$fam" "$r" "$CLIENTS" "$PERIOD"
            stop_server
            lost="$(echo "scale=2; if ($SENT > 0) 100 * ($SENT - $DONE) / $SENT else 100" | bc)"
            per_s=$(( DONE / PERIOD ))
            printf '%-8s %-8s %-8s %-8s %-9s %-8s\n' "$r" "$SENT" "$DONE" "$DROPS" "$per_s" "$lost"
            if [ "$(echo "$lost <= $MAX_DROP" | bc)" = 1 ] && [ "$per_s" -gt "$best" ]; then
                best=$per_s; best_rate=$r
            fi
            # Past saturation: the higher steps only lose more.
            [ "$(echo "$lost > 10" | bc)" = 1 ] && break
        done
        BEST["$fam $server"]=$best
        echo "best: $best/s at offered $best_rate/s with <= $MAX_DROP % lost"
        if [ "$AVALANCHE" = 1 ] && [ "$fam" = 4 ]; then
            "start_$server$fam"
            t0="$(date +%s.%N)"
            out="$(ip netns exec "$NS_C" timeout 120 perfdhcp -4 -l "$IF_C" -R "$CLIENTS" --scenario avalanche 10.99.0.1 2>&1 || true)"
            t1="$(date +%s.%N)"
            echo "$out" >>"$WORK/perfdhcp.log"
            printf 'avalanche %s clients: provisioned in %s (perfdhcp), %.2f s wall, requests resent %s\n' \
                "$CLIENTS" "$(echo "$out" | awk '/It took/ {print $3; exit}')" "$(echo "$t1 - $t0" | bc)" \
                "$(echo "$out" | awk '/Requests resent:/ {print $3}')"
            echo "leases on disk: $(lease_count "$server")"
            stop_server
        fi
    done
done

# Memory: a fresh server per size, MEM_RATE offered for MEM_PERIOD with MEM_CLIENTS distinct
# clients; peak RSS (VmHWM) and the distinct addresses in its lease file at the end.
declare -A MEM
for fam in $FAMILIES; do
    for server in $SERVERS; do
        CUR="$server$fam"
        echo "== memory v$fam $server (offered $MEM_RATE/s for $MEM_PERIOD s)"
        printf '%-8s %-8s %-8s %-12s\n' clients done leases "peakRSS-KiB"
        for n in $MEM_CLIENTS; do
            "start_$server$fam"
            run_perfdhcp "$fam" "$MEM_RATE" "$n" "$MEM_PERIOD"
            rss="$(peak_rss_kib)"; leases="$(lease_count "$server")"
            stop_server
            printf '%-8s %-8s %-8s %-12s\n' "$n" "$DONE" "$leases" "$rss"
            MEM["$fam $server $n"]="$(( rss / 1024 )) MiB ($leases)"
        done
    done
done

ratio() { if [ "${2:-0}" -gt 0 ]; then echo "scale=2; $1 / $2" | bc | sed 's/^\./0./; s/$/x/'; else echo "-"; fi; }
echo "--- summary"
echo "| | ours | dnsmasq | Kea | ours/dnsmasq | ours/Kea |"
echo "|---|---|---|---|---|---|"
for fam in $FAMILIES; do
    o="${BEST["$fam ours"]:-0}"; d="${BEST["$fam dnsmasq"]:-0}"; k="${BEST["$fam kea"]:-0}"
    unit=DORA; [ "$fam" = 6 ] && unit=SARR
    echo "| DHCPv$fam $unit/s at <= $MAX_DROP % lost | $o | $d | $k | $(ratio "$o" "$d") | $(ratio "$o" "$k") |"
    for n in $MEM_CLIENTS; do
        echo "| DHCPv$fam peak RSS, -R $n (distinct leases) | ${MEM["$fam ours $n"]:--} | ${MEM["$fam dnsmasq $n"]:--} | ${MEM["$fam kea $n"]:--} | | |"
    done
done
echo "--- end"
[ -n "${KEEP_LOG:-}" ] && cp "$WORK/perfdhcp.log" "$KEEP_LOG"
exit 0
