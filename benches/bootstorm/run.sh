#!/usr/bin/env bash
# Boot storm: N simulated PXE clients (benches/src/bin/bootstorm.rs) against the real deployment
# servers (benches/src/bin/bootstorm-server.rs = rhcos_deploy::start_servers), for N = 10, 100,
# 1000, each N against a fresh server. Reports success, p50/p99 per phase, server CPU seconds
# (utime+stime from /proc/PID/stat) and peak RSS (VmHWM).
#
#   sudo benches/bootstorm/run.sh                       # N="10 100 1000", 10 s arrival window
#   sudo N="10 100" KERNEL_MIB=1 INITRD_MIB=2 benches/bootstorm/run.sh
#
# Environment: N (client counts), ARRIVAL_MS (clients start evenly spread over this window,
# default 10000), RATE (clients per second instead: each N gets a window of N / RATE seconds,
# for memory against N at a constant arrival rate), PATTERN (how clients start within the
# window: even (default), random (a seeded Poisson process; SEED, default 1), burst (all at
# once) or waves:K (K groups, each all at once)), KERNEL_MIB / INITRD_MIB (served file sizes, default 8 / 32), THREADS (server
# runtime threads, default 2), OUT (directory for bootstorm-N.json, default
# benches/results/bootstorm), STATUS (0 default; 1: the plan's [status] on, so the status page
# and the Prometheus metrics follow every event, /metrics is scraped after the storm into
# OUT/metrics-N.txt and the row's N reads "N +metrics"; "0 1" runs each N both ways in turn).
#
# Network: namespaces bs-s-PID (server, 10.99.0.1/16) and bs-c-PID (clients) joined by one veth
# pair; client i's reserved address (10.99.(1+i/250).(1+i%250)) is added to the client veth so
# its TFTP and HTTP come from the address holding its lease. The only thing outside them it
# touches is the kernel's (global) neighbour table limit, raised when N needs it and restored on
# exit with the namespaces, processes and work directory.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
N_LIST=${N:-"10 100 1000"}
ARRIVAL_MS=${ARRIVAL_MS:-10000}
RATE=${RATE:-}
PATTERN=${PATTERN:-even}
SEED=${SEED:-1}
KERNEL_MIB=${KERNEL_MIB:-8}
INITRD_MIB=${INITRD_MIB:-32}
THREADS=${THREADS:-2}
STATUS=${STATUS:-0}
OUT=${OUT:-$ROOT/benches/results/bootstorm}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }
command -v ip >/dev/null || { echo "missing ip (iproute2)" >&2; exit 1; }
[ -f /usr/lib/ipxe/undionly.kpxe ] || { echo "missing /usr/lib/ipxe/undionly.kpxe (package ipxe)" >&2; exit 1; }
if [ -z "${NO_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p benches --bin bootstorm --bin bootstorm-server)
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

NS_S="bs-s-$$"; NS_C="bs-c-$$"; IF_S="bss$$"; IF_C="bsc$$"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bootstorm.XXXXXX")
SERVER_PID=
NEIGH_SAVED=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [ -n "$NEIGH_SAVED" ]; then sysctl -qw $NEIGH_SAVED || true; fi
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_C" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ip netns add "$NS_S"; ip netns add "$NS_C"
ip link add "$IF_S" netns "$NS_S" type veth peer name "$IF_C" netns "$NS_C"
ip -n "$NS_S" addr add 10.99.0.1/16 dev "$IF_S"
for ns in "$NS_S" "$NS_C"; do ip -n "$ns" link set lo up; done
ip -n "$NS_S" link set "$IF_S" up
ip -n "$NS_C" link set "$IF_C" up

MAX_N=0
for n in $N_LIST; do [ "$n" -gt "$MAX_N" ] && MAX_N=$n; done
[ "$MAX_N" -le 62500 ] || { echo "at most 62500 clients" >&2; exit 1; }
# The IPv4 neighbour table is one table for every namespace, capped by gc_thresh3 (1024 by
# default): past that the server cannot answer a thousand-and-first client (its ARP entry cannot
# be created), which is what any Linux provisioning server on a big L2 segment runs into. Raise
# the limits for the run when N needs it, and put the old values back on exit.
need=$((MAX_N * 2 + 1024))
if [ "$(sysctl -n net.ipv4.neigh.default.gc_thresh3)" -lt "$need" ]; then
    NEIGH_SAVED=$(for k in gc_thresh1 gc_thresh2 gc_thresh3; do
        printf 'net.ipv4.neigh.default.%s=%s ' "$k" "$(sysctl -n net.ipv4.neigh.default.$k)"; done)
    sysctl -qw net.ipv4.neigh.default.gc_thresh1=$((need / 4)) \
        net.ipv4.neigh.default.gc_thresh2=$((need / 2)) net.ipv4.neigh.default.gc_thresh3=$need
    echo "(neighbour table limits raised to $need for this run; restored on exit)" >&2
fi
# Every client's reserved address on the client side, in one netlink batch.
for i in $(seq 0 $((MAX_N - 1))); do
    echo "addr add 10.99.$((1 + i / 250)).$((1 + i % 250))/16 dev $IF_C"
done >"$WORK/addrs.batch"
ip -n "$NS_C" -batch "$WORK/addrs.batch"

clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
mkdir -p "$OUT"

echo "## Boot storm: rhcos_deploy::start_servers vs N simulated PXE clients"
echo
if [ -n "$RATE" ]; then arrival="$RATE clients/s (window N / $RATE s)"; else arrival="window ${ARRIVAL_MS} ms"; fi
arrival="$arrival, pattern $PATTERN"
echo "Arrival $arrival; kernel ${KERNEL_MIB} MiB, initramfs ${INITRD_MIB} MiB; server runtime threads ${THREADS}; $(nproc) cores shared by clients and server."
echo
echo "| N | ok | failed | wall s | total p50 ms | total p99 ms | dhcp_pxe p50/p99 | tftp p50/p99 | dhcp_ipxe p50/p99 | script p50/p99 | kernel p50/p99 | initrd p50/p99 | ignition p50/p99 | server CPU s | CPU ms/client | peak RSS MiB | RSS idle MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in $N_LIST; do
for st in $STATUS; do
    ip netns exec "$NS_S" "$BIN/bootstorm-server" --clients "$n" --iface "$IF_S" --address 10.99.0.1 \
        --prefix 16 --dir "$WORK/server" --kernel-mib "$KERNEL_MIB" --initrd-mib "$INITRD_MIB" \
        --threads "$THREADS" --status "$st" >"$WORK/server-$n.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 600); do grep -qs ready "$WORK/server-$n.log" && break; sleep 0.1; done
    grep -q ready "$WORK/server-$n.log" || { echo "server did not start:" >&2; cat "$WORK/server-$n.log" >&2; exit 1; }
    idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
    c0=$(cpu_ticks "$SERVER_PID")
    window=$ARRIVAL_MS
    [ -z "$RATE" ] || window=$((n * 1000 / RATE))
    ip netns exec "$NS_C" "$BIN/bootstorm" --clients "$n" --arrival-ms "$window" \
        --pattern "$PATTERN" --seed "$SEED" --iface "$IF_C" \
        >"$WORK/client-$n.json" 2>"$WORK/client-$n.err" || { echo "client failed:" >&2; cat "$WORK/client-$n.err" >&2; exit 1; }
    c1=$(cpu_ticks "$SERVER_PID")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
    suffix=; [ "$st" = 0 ] || suffix=-metrics
    if [ "$st" = 1 ]; then
        ip netns exec "$NS_S" curl -sf http://10.99.0.1:8080/metrics >"$OUT/metrics-$n.txt" ||
            { echo "no /metrics with STATUS=1" >&2; exit 1; }
    fi
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
    python3 - "$WORK/client-$n.json" "$OUT/bootstorm-$n$suffix.json" "$((c1 - c0))" "$clk" "$hwm" "$idle_rss" \
        "$KERNEL_MIB" "$INITRD_MIB" "$THREADS" "$st" <<'PY'
import json, sys
src, dst, ticks, clk, hwm, idle, kmib, imib, threads, status = sys.argv[1:]
d = json.load(open(src))
cpu = int(ticks) / int(clk)
d.update(server_cpu_s=cpu, server_peak_rss_kib=int(hwm), server_idle_rss_kib=int(idle),
         kernel_mib=int(kmib), initrd_mib=int(imib), server_threads=int(threads),
         status=status == "1")
json.dump(d, open(dst, "w"), indent=1)
ph = d["phases"]
def pp(k):
    p = ph[k]
    f = lambda v: "-" if v != v else f"{v:.0f}"
    return f"{f(p['p50_ms'])}/{f(p['p99_ms'])}"
row = [f"{d['clients']} +metrics" if d["status"] else d["clients"], d["succeeded"], d["failed"], f"{d['wall_s']:.1f}",
       f"{d['total_p50_ms']:.0f}", f"{d['total_p99_ms']:.0f}"]
row += [pp(k) for k in ["dhcp_pxe", "tftp", "dhcp_ipxe", "script", "kernel", "initrd", "ignition"]]
row += [f"{cpu:.2f}", f"{cpu * 1000 / max(1, d['clients']):.1f}", f"{int(hwm) / 1024:.1f}", f"{int(idle) / 1024:.1f}"]
print("| " + " | ".join(str(x) for x in row) + " |")
if d["errors"]:
    for e, c in sorted(d["errors"].items(), key=lambda x: -x[1]):
        print(f"|   error x{c}: {e} |", file=sys.stderr)
PY
done
done
echo
echo "Errors (if any) are on stderr; per-N JSON in $OUT."
if [ -n "$RATE" ]; then timing="RATE=$RATE"; else timing="ARRIVAL_MS=$ARRIVAL_MS"; fi
[ "$PATTERN" = even ] || timing="$timing PATTERN=$PATTERN SEED=$SEED"
[ "$STATUS" = 0 ] || timing="$timing STATUS=\"$STATUS\""
echo "Command: N=\"$N_LIST\" $timing KERNEL_MIB=$KERNEL_MIB INITRD_MIB=$INITRD_MIB THREADS=$THREADS benches/bootstorm/run.sh"
