#!/usr/bin/env bash
# perfdhcp against pxe_stack::dhcp (benches/src/bin/dhcp-server.rs) and against dnsmasq, in the
# same namespace setup, both with a lease file: DORA exchanges per second and drops.
#
#   sudo benches/dhcp/run.sh                # RATES="1000 2000 4000" CLIENTS=1000 PERIOD=10
#
# Setup: namespaces pdb-s-PID (server) and pdb-c-PID (perfdhcp), one veth pair,
# 10.99.0.1/16 and 10.99.0.2/16, pool 10.99.1.0-10.99.8.255 (2048 addresses). perfdhcp acts as
# a relay (giaddr 10.99.0.2, port 67), so both servers answer it by unicast.
# Lease persistence: ours fsyncs the lease file before every ACK batch; dnsmasq rewrites its
# lease file after changes (without fsync). Everything is removed on exit.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
RATES="${RATES:-1000 2000 4000}"
CLIENTS="${CLIENTS:-1000}"
PERIOD="${PERIOD:-10}"
BIN="${BIN:-$ROOT/target/release/dhcp-server}"

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }
for t in perfdhcp dnsmasq ip; do
    command -v "$t" >/dev/null || { echo "missing $t (scripts/install-deps.sh)" >&2; exit 1; }
done
if [ ! -x "$BIN" ]; then
    (cd "$ROOT" && cargo build --release -p benches --bin dhcp-server)
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
ip link add "$IF_S" netns "$NS_S" type veth peer name "$IF_C" netns "$NS_C"
ip -n "$NS_S" addr add 10.99.0.1/16 dev "$IF_S"; ip -n "$NS_S" link set "$IF_S" up; ip -n "$NS_S" link set lo up
ip -n "$NS_C" addr add 10.99.0.2/16 dev "$IF_C"; ip -n "$NS_C" link set "$IF_C" up; ip -n "$NS_C" link set lo up

start_ours() {
    rm -f "$WORK/ours.leases"
    ip netns exec "$NS_S" "$BIN" --iface "$IF_S" --server-ip 10.99.0.1 --prefix 16 \
        --range 10.99.1.0 10.99.8.255 --lease-file "$WORK/ours.leases" >"$WORK/ours.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do grep -q ready "$WORK/ours.log" && return 0; sleep 0.05; done
    echo "our server did not start:" >&2; cat "$WORK/ours.log" >&2; exit 1
}

start_dnsmasq() {
    rm -f "$WORK/dnsmasq.leases"
    ip netns exec "$NS_S" dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 \
        --interface="$IF_S" --bind-interfaces --dhcp-authoritative --no-ping --log-facility=- \
        --quiet-dhcp --dhcp-range=10.99.1.0,10.99.8.255,255.255.0.0,1h --dhcp-lease-max=100000 \
        --dhcp-leasefile="$WORK/dnsmasq.leases" --pid-file= >"$WORK/dnsmasq.log" 2>&1 &
    SERVER_PID=$!
    sleep 0.5
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# One perfdhcp run at a fixed rate for PERIOD seconds, then 2 s to collect late answers.
# Prints: rate, packets sent, received, drops, completed DORA exchanges per second of the period.
measure() {
    local out
    out="$(ip netns exec "$NS_C" perfdhcp -4 -l "$IF_C" -R "$CLIENTS" -r "$1" -p "$PERIOD" -W 2000000 10.99.0.1 2>&1 || true)"
    echo "$out" >>"$WORK/perfdhcp.log"
    local sent recv drops acks
    sent="$(echo "$out" | awk '/sent packets:/ {s+=$3} END {print s+0}')"
    recv="$(echo "$out" | awk '/received packets:/ {s+=$3} END {print s+0}')"
    drops="$(echo "$out" | awk '/drops:/ {s+=$2} END {print s+0}')"
    acks="$(echo "$out" | awk '/Statistics for: REQUEST-ACK/ {f=1} f && /received packets:/ {print $3; exit}')"
    printf '%-8s %-8s %-8s %-8s %-8s\n' "$1" "$sent" "$recv" "$drops" "$(( ${acks:-0} / PERIOD ))"
}

# A boot storm: every client starts at once, perfdhcp retransmits until all are done.
avalanche() {
    local out t0 t1
    t0="$(date +%s.%N)"
    out="$(ip netns exec "$NS_C" timeout 120 perfdhcp -4 -l "$IF_C" -R "$CLIENTS" --scenario avalanche 10.99.0.1 2>&1 || true)"
    t1="$(date +%s.%N)"
    echo "$out" >>"$WORK/perfdhcp.log"
    local took
    took="$(echo "$out" | awk '/It took/ {print $3; exit}')"
    printf 'avalanche %s clients: provisioned in %s (perfdhcp), %.2f s wall, requests resent %s\n' \
        "$CLIENTS" "${took:-never}" "$(echo "$t1 - $t0" | bc)" "$(echo "$out" | awk '/Requests resent:/ {print $3}')"
    printf '  udp receive-buffer overflows: server %s, perfdhcp %s\n' \
        "$(ip netns exec "$NS_S" nstat -az UdpRcvbufErrors | awk '/UdpRcvbufErrors/ {print $2}')" \
        "$(ip netns exec "$NS_C" nstat -az UdpRcvbufErrors | awk '/UdpRcvbufErrors/ {print $2}')"
}

for server in ${SERVERS:-ours dnsmasq}; do
    echo "== $server"
    printf '%-8s %-8s %-8s %-8s %-8s\n' rate sent recv drops "DORA/s"
    for r in $RATES; do
        "start_$server"
        measure "$r"
        stop_server
    done
    "start_$server"
    avalanche
    leases="$WORK/$server.leases"
    echo "leases on disk: $( (grep -o '"addr"' "$leases" 2>/dev/null || cat "$leases" 2>/dev/null || true) | wc -l)"
    stop_server
done
[ -n "${KEEP_LOG:-}" ] && cp "$WORK/perfdhcp.log" "$KEEP_LOG"
exit 0
