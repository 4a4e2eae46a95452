#!/usr/bin/env bash
# dnsperf against pxe_stack::dns (benches/src/bin/dns-server.rs) and against dnsmasq serving the
# same zone, in the same namespace setup: queries per second at saturation, latency at a fixed
# rate both can sustain, and the server's memory before and after.
#
#   sudo benches/dns/run.sh          # HOSTS=100 SECONDS_=10 RATE=5000 ROUNDS=3 THREADS=1
#
# Each round runs both servers, alternating which goes first; the summary is the median over
# the rounds, and ours/dnsmasq for queries per second (higher is better) and p99 (lower is
# better). Both servers are single-threaded (THREADS=1), as dnsmasq always is.
#
# Zone: ocp.example.com with host-<i> (A and PTR) for HOSTS hosts in 10.98.0.0/16, api and
# api-int at 10.98.0.5, *.apps at 10.98.0.6. dnsmasq gets it as host-record= (A and PTR),
# address=/apps.ocp.example.com/ and local=/ocp.example.com/ (so misses are NXDOMAIN, never
# forwarded): the usual dnsmasq setup for an OpenShift UPI cluster. The query mix is every
# host's A and PTR, api, api-int and one *.apps name.
# Forwarded: both servers forward n-<i>.example.org (1000 names, so dnsmasq's merging of
# identical queries in flight rarely applies) to a third dnsmasq (the upstream, port 5353); the
# dnsmasq under test runs with cache-size=0 there, so both really forward (ours caches nothing).
# Setup: namespaces pdns-s-PID (servers) and pdns-c-PID (dnsperf), one veth pair,
# 10.98.0.1/16 and 10.98.0.2/16. Everything is removed on exit.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
HOSTS="${HOSTS:-100}"
SECS="${SECONDS_:-10}"
RATE="${RATE:-5000}"
THREADS="${THREADS:-1}"
ROUNDS="${ROUNDS:-3}"
BIN="${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/dns-server}"

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }
for t in dnsperf dnsmasq dig ip; do
    command -v "$t" >/dev/null || { echo "missing $t (scripts/install-deps.sh)" >&2; exit 1; }
done
if [ ! -x "$BIN" ]; then
    (cd "$ROOT" && cargo build --release -p benches --bin dns-server)
fi

NS_S="pdns-s-$$"; NS_C="pdns-c-$$"; IF_S="pns$$"; IF_C="pnc$$"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_C" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ip netns add "$NS_S"; ip netns add "$NS_C"
ip link add "$IF_S" netns "$NS_S" type veth peer name "$IF_C" netns "$NS_C"
ip -n "$NS_S" addr add 10.98.0.1/16 dev "$IF_S"; ip -n "$NS_S" link set "$IF_S" up; ip -n "$NS_S" link set lo up
ip -n "$NS_C" addr add 10.98.0.2/16 dev "$IF_C"; ip -n "$NS_C" link set "$IF_C" up; ip -n "$NS_C" link set lo up

# The zone for dnsmasq, and the query files.
{
    echo "host-record=api.ocp.example.com,10.98.0.5"
    echo "host-record=api-int.ocp.example.com,10.98.0.5"
    echo "address=/apps.ocp.example.com/10.98.0.6"
    echo "local=/ocp.example.com/"
    echo "local=/98.10.in-addr.arpa/"
} >"$WORK/zone.conf"
: >"$WORK/auth.queries"
for ((i = 0; i < HOSTS; i++)); do
    a="10.98.$((1 + i / 250)).$((1 + i % 250))"
    echo "host-record=host-$i.ocp.example.com,$a" >>"$WORK/zone.conf"
    echo "host-$i.ocp.example.com A" >>"$WORK/auth.queries"
    echo "$((1 + i % 250)).$((1 + i / 250)).98.10.in-addr.arpa PTR" >>"$WORK/auth.queries"
done
printf 'api.ocp.example.com A\napi-int.ocp.example.com A\nconsole-openshift-console.apps.ocp.example.com A\n' >>"$WORK/auth.queries"
for ((i = 0; i < 1000; i++)); do echo "n-$i.example.org A"; done >"$WORK/fwd.queries"

# The upstream for forwarded names (both servers forward to it).
ip netns exec "$NS_S" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --listen-address=10.98.0.1 --bind-interfaces --port=5353 --local=/example.org/ \
    --address=/example.org/192.0.2.80 --pid-file= --log-facility=- >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)

SERVER_PID=""
start_ours() {
    ip netns exec "$NS_S" "$BIN" --listen 10.98.0.1:53 --zone ocp.example.com --subnet 10.98.0.0/16 \
        --hosts "$HOSTS" --upstream 10.98.0.1:5353 --threads "$THREADS" >"$WORK/ours.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do grep -q ready "$WORK/ours.log" && return 0; sleep 0.05; done
    echo "our server did not start:" >&2; cat "$WORK/ours.log" >&2; exit 1
}
start_dnsmasq() {
    ip netns exec "$NS_S" dnsmasq --keep-in-foreground --conf-file="$WORK/zone.conf" --no-resolv \
        --no-hosts --listen-address=10.98.0.1 --bind-interfaces --port=53 --server=10.98.0.1#5353 \
        --cache-size="${1:-150}" --dns-forward-max=1000 --pid-file= --log-facility=- >"$WORK/dnsmasq.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        ip netns exec "$NS_C" dig +time=1 +tries=1 +short @10.98.0.1 api.ocp.example.com >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "dnsmasq did not start:" >&2; cat "$WORK/dnsmasq.log" >&2; exit 1
}
stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status"; }

# Saturation: dnsperf as fast as the server answers (100 queries outstanding).
# Prints queries/s, average latency (ms), lost queries and the answer codes.
saturate() {
    local out
    out="$(ip netns exec "$NS_C" dnsperf -s 10.98.0.1 -d "$1" -l "$SECS" -c 4 -T 1 -q 100 2>&1)"
    echo "$out" >>"$WORK/dnsperf.log"
    printf '%s %s %s %s' \
        "$(echo "$out" | awk '/Queries per second:/ {printf "%.0f", $4}')" \
        "$(echo "$out" | awk '/Average Latency/ {printf "%.3f", $4 * 1000}')" \
        "$(echo "$out" | awk '/Queries lost:/ {print $3}')" \
        "$(echo "$out" | awk '/Response codes:/ {$1=$2=""; gsub(/ /, ""); print}')"
}

# A fixed rate both servers sustain, every answer's latency: p50 and p99 in ms.
fixed_rate() {
    ip netns exec "$NS_C" dnsperf -s 10.98.0.1 -d "$1" -l "$SECS" -c 4 -T 1 -Q "$RATE" -v 2>&1 \
        | awk '/^> / {print $NF * 1000}' | sort -n >"$WORK/lat"
    local n
    n="$(wc -l <"$WORK/lat")"
    [ "$n" -gt 0 ] || { echo "- - 0"; return; }
    printf '%.3f %.3f %s' "$(sed -n "$(( (n + 1) / 2 ))p" "$WORK/lat")" \
        "$(sed -n "$(( (n * 99 + 99) / 100 ))p" "$WORK/lat")" "$n"
}

echo "zone: $HOSTS hosts (A + PTR), api, api-int, *.apps; dnsperf ${SECS}s per run, 1 thread, 4 sockets"
echo "ours: threads=$THREADS; dnsmasq $(dnsmasq --version | head -1 | awk '{print $3}')"
printf '%-9s %-6s %-5s %-9s %-8s %-6s %-10s %-8s %-8s %-9s %-10s %-7s %s\n' \
    server kind round "q/s" avg_ms lost "@${RATE}q/s" p50_ms p99_ms rss_kb_0 rss_kb_end hwm_kb codes
: >"$WORK/rows"
for kind in auth fwd; do
    for ((round = 1; round <= ROUNDS; round++)); do
        order="ours dnsmasq"
        (( round % 2 == 0 )) && order="dnsmasq ours"
        for server in ${SERVERS:-$order}; do
            if [ "$server" = dnsmasq ] && [ "$kind" = fwd ]; then start_dnsmasq 0; else "start_$server"; fi
            rss0="$(rss_kb)"
            read -r qps avg lost codes <<<"$(saturate "$WORK/$kind.queries")"
            read -r p50 p99 n <<<"$(fixed_rate "$WORK/$kind.queries")"
            printf '%-9s %-6s %-5s %-9s %-8s %-6s %-10s %-8s %-8s %-9s %-10s %-7s %s\n' \
                "$server" "$kind" "$round" "$qps" "$avg" "$lost" "$n" "$p50" "$p99" "$rss0" "$(rss_kb)" "$(hwm_kb)" "$codes" \
                | tee -a "$WORK/rows"
            stop_server
        done
    done
done

echo
echo "median of $ROUNDS rounds"
printf '%-6s %-12s %-12s %-9s %-13s %-13s %-9s %-14s %s\n' \
    kind "ours q/s" "dnsmasq q/s" ratio "ours p99_ms" "dnsmasq p99" "p99 ratio" "ours hwm_kb" "dnsmasq hwm_kb"
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
for kind in auth fwd; do
    col() { awk -v s="$1" -v k="$kind" -v c="$2" '$1 == s && $2 == k {print $c}' "$WORK/rows" | median; }
    oq="$(col ours 4)"; dq="$(col dnsmasq 4)"; op="$(col ours 9)"; dp="$(col dnsmasq 9)"
    printf '%-6s %-12s %-12s %-9s %-13s %-13s %-9s %-14s %s\n' "$kind" "$oq" "$dq" \
        "$(awk -v a="$oq" -v b="$dq" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')" "$op" "$dp" \
        "$(awk -v a="$op" -v b="$dp" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')" "$(col ours 12)" "$(col dnsmasq 12)"
done
[ -n "${KEEP_LOG:-}" ] && cp "$WORK/dnsperf.log" "$KEEP_LOG"
exit 0
