#!/usr/bin/env bash
# DHCPv4 DORA/s with the leases in PostgreSQL: Kea (kea-dhcp4, lease-database postgresql,
# schema by `kea-admin db-init pgsql`, single- and multi-threaded) against pxe_stack::dhcp
# (benches/src/bin/dhcp-server.rs) with its PostgreSQL lease store (`--lease-db`), one server
# and two sharing the database, and our file backend for reference. One script, one run, one
# machine.
#
#   sudo benches/dhcp-pg/run.sh
#   # defaults: SERVERS="kea_pg kea_pg_mt ours_pg ours_pg_two ours_files"
#   #           RATES="500 1000 2000 4000 8000" CLIENTS=2000 PERIOD=10
#
# Each server's sweep climbs RATES (offered DISCOVERs per second, in total) and stops after the
# first step losing more than 10 %; its result is the best ACKs/s at <= 0.5 % lost exchanges
# (lost = DISCOVERs sent without an ACK received), as benches/dhcp/run.sh counts them.
#
# Setup: a PostgreSQL cluster (Debian's, as `nobody`, in a temp dir, Unix socket only, fsync on:
# an ACK is durable), one database per server kind, made anew for each measurement. One bridge
# (in namespace pgb-b-PID) joins four namespaces by veth pairs: servers pgb-s1-PID
# (10.99.0.1/16) and pgb-s2-PID (10.99.0.3/16), perfdhcp pgb-c1-PID (10.99.0.2/16) and
# pgb-c2-PID (10.99.0.4/16). Pool 10.99.1.0-10.99.255.254. perfdhcp acts as a relay (giaddr
# its own address), so every server answers by unicast. One server: one perfdhcp (c1) against
# s1 with CLIENTS clients. Two servers (ours_pg_two: two dhcp-server processes, one database):
# c1 against s1 and c2 against s2 at the same time, each at half the rate with half the
# clients (distinct MACs), summed; the same offered load as one server.
# Everything (processes, namespaces, the cluster) is removed on exit.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
RATES="${RATES:-500 1000 2000 4000 8000}"
CLIENTS="${CLIENTS:-2000}"
PERIOD="${PERIOD:-10}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${BIN:-$TARGET/release/dhcp-server}"
SERVERS="${SERVERS:-kea_pg kea_pg_mt ours_pg ours_pg_two ours_files}"
MAX_DROP="0.5"

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }
for t in perfdhcp kea-dhcp4 kea-admin ip psql bc setpriv; do
    command -v "$t" >/dev/null || { echo "missing $t (scripts/install-deps.sh)" >&2; exit 1; }
done
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
[ -x "$PG_BIN/initdb" ] || { echo "missing postgresql (scripts/install-deps.sh)" >&2; exit 1; }
if [ ! -x "$BIN" ]; then
    (cd "$ROOT" && cargo build --release -p benches --bin dhcp-server)
fi
"$BIN" --help 2>&1 | grep -q -- --lease-db \
    || { echo "$BIN has no --lease-db (rebuild: cargo build --release -p benches)" >&2; exit 1; }

NS_B="pgb-b-$$"; NS_S1="pgb-s1-$$"; NS_S2="pgb-s2-$$"; NS_C1="pgb-c1-$$"; NS_C2="pgb-c2-$$"
IF_S1="pgs1$$"; IF_S2="pgs2$$"; IF_C1="pgc1$$"; IF_C2="pgc2$$"; BR="pgbr$$"
WORK="$(mktemp -d)"
chmod 0755 "$WORK"
PG="$WORK/pg"; PG_PORT=5432
PIDS=()
as_pg() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ -d "$PG/data" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG/data" -m immediate stop >/dev/null 2>&1 || true
    for ns in "$NS_S1" "$NS_S2" "$NS_C1" "$NS_C2" "$NS_B"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# The database: Unix socket in $PG (reachable from the namespaces), trust for local users.
mkdir -p "$PG/data"; chown -R nobody:nogroup "$PG"
as_pg "$PG_BIN/initdb" -D "$PG/data" -U postgres --auth-local=trust --no-sync >/dev/null 2>&1
cat >>"$PG/data/postgresql.conf" <<CONF
listen_addresses = ''
port = $PG_PORT
unix_socket_directories = '$PG'
max_connections = 50
CONF
as_pg "$PG_BIN/pg_ctl" -D "$PG/data" -l "$PG/log" -w start >/dev/null
sql() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -A -t -F ' ' -h "$PG" -p "$PG_PORT" -U postgres -d "${2:-postgres}" -c "$1"; }
fresh_db() { # name: a new empty database owned by a role of the same name
    sql "DROP DATABASE IF EXISTS $1" >/dev/null
    sql "DO \$\$BEGIN CREATE ROLE $1 LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END\$\$" >/dev/null
    sql "CREATE DATABASE $1 OWNER $1" >/dev/null
}

# The network: a bridge in its own namespace, one veth pair per server or client namespace.
ip netns add "$NS_B"
ip -n "$NS_B" link add "$BR" type bridge
ip -n "$NS_B" link set "$BR" up; ip -n "$NS_B" link set lo up
attach() { # namespace, interface, address
    ip netns add "$1"
    ip link add "$2" netns "$1" type veth peer name "$2b" netns "$NS_B"
    ip -n "$NS_B" link set "$2b" master "$BR"; ip -n "$NS_B" link set "$2b" up
    ip -n "$1" addr add "$3/16" dev "$2"
    ip -n "$1" link set "$2" up; ip -n "$1" link set lo up
}
attach "$NS_S1" "$IF_S1" 10.99.0.1
attach "$NS_S2" "$IF_S2" 10.99.0.3
attach "$NS_C1" "$IF_C1" 10.99.0.2
attach "$NS_C2" "$IF_C2" 10.99.0.4

wait_for() { # log, pattern
    for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "server did not start ($1):" >&2; cat "$1" >&2; exit 1
}

kea_config() { # threads (1: single-threaded)
    local mt=false; [ "$1" -gt 1 ] && mt=true
    cat <<JSON
{ "Dhcp4": {
    "interfaces-config": { "interfaces": [ "$IF_S1/10.99.0.1" ], "dhcp-socket-type": "udp" },
    "lease-database": { "type": "postgresql", "name": "kea", "user": "kea",
                        "host": "$PG", "port": $PG_PORT },
    "multi-threading": { "enable-multi-threading": $mt, "thread-pool-size": $1, "packet-queue-size": 256 },
    "valid-lifetime": 3600,
    "subnet4": [ { "id": 1, "subnet": "10.99.0.0/16", "pools": [ { "pool": "10.99.1.0 - 10.99.255.254" } ] } ],
    "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "stdout" } ], "severity": "WARN" } ]
} }
JSON
}

start_kea() { # threads
    fresh_db kea
    kea-admin db-init pgsql -u kea -n kea -h "$PG" -P "$PG_PORT" >"$WORK/kea-admin.log" 2>&1 \
        || { cat "$WORK/kea-admin.log" >&2; exit 1; }
    kea_config "$1" >"$WORK/kea.json"
    KEA_LOCKFILE_DIR="$WORK" KEA_PIDFILE_DIR="$WORK" ip netns exec "$NS_S1" \
        kea-dhcp4 -c "$WORK/kea.json" >"$WORK/kea.log" 2>&1 &
    PIDS+=($!)
    sleep 1
    kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$WORK/kea.log" >&2; exit 1; }
}
start_kea_pg() { start_kea 1; }
start_kea_pg_mt() { start_kea 4; }

ours() { # namespace, interface, server-ip, log, lease args...
    local ns="$1" ifc="$2" ip="$3" log="$4"; shift 4
    ip netns exec "$ns" "$BIN" --iface "$ifc" --server-ip "$ip" --prefix 16 \
        --range 10.99.1.0 10.99.255.254 "$@" >"$log" 2>&1 &
    PIDS+=($!)
    wait_for "$log" ready
}
# Our PostgreSQL lease store (pxe-stack feature `postgres`): no password (trust on the socket).
ours_url() { echo "postgresql://ours@$(echo "$PG" | sed 's,/,%2F,g'):$PG_PORT/ours"; }
start_ours_pg() {
    fresh_db ours
    ours "$NS_S1" "$IF_S1" 10.99.0.1 "$WORK/ours.log" --lease-db "$(ours_url)" --server-name s1
}
start_ours_pg_two() {
    fresh_db ours
    ours "$NS_S1" "$IF_S1" 10.99.0.1 "$WORK/ours-1.log" --lease-db "$(ours_url)" --server-name s1
    ours "$NS_S2" "$IF_S2" 10.99.0.3 "$WORK/ours-2.log" --lease-db "$(ours_url)" --server-name s2
}
start_ours_files() {
    rm -f "$WORK/ours.leases"
    ours "$NS_S1" "$IF_S1" 10.99.0.1 "$WORK/ours.log" --lease-file "$WORK/ours.leases"
}

stop_servers() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
}

# perfdhcp at a fixed rate for PERIOD seconds; prints "discovers-sent acks-received drops".
perf() { # namespace, interface, rate, clients, base MAC, server-ip
    local out
    out="$(ip netns exec "$1" perfdhcp -4 -l "$2" -r "$3" -R "$4" -b "mac=$5" -p "$PERIOD" \
        -W 2000000 "$6" 2>&1 || true)"
    { echo "### perfdhcp -r $3 -R $4 -b mac=$5 -> $6 ($CUR)"; echo "$out"; } >>"$WORK/perfdhcp.log"
    echo "$(echo "$out" | awk '/Statistics for: DISCOVER-OFFER/ {f=1} f && /sent packets:/ {print $3; exit}')" \
         "$(echo "$out" | awk '/Statistics for: REQUEST-ACK/ {f=1} f && /received packets:/ {print $3; exit}')" \
         "$(echo "$out" | awk '/drops:/ {s+=$2} END {print s+0}')"
}

# One measurement at a total offered rate: sets SENT, DONE, DROPS.
measure() { # server, rate
    if [ "$1" = ours_pg_two ]; then
        # One perfdhcp per server, at the same time, half the rate and half the clients each.
        local a b pa pb
        a="$(mktemp -p "$WORK")"; b="$(mktemp -p "$WORK")"
        perf "$NS_C1" "$IF_C1" $(( $2 / 2 )) $(( CLIENTS / 2 )) 00:0c:01:02:03:04 10.99.0.1 >"$a" & pa=$!
        perf "$NS_C2" "$IF_C2" $(( $2 / 2 )) $(( CLIENTS / 2 )) 00:0c:02:02:03:04 10.99.0.3 >"$b" & pb=$!
        wait "$pa" "$pb"
        read -r SENT DONE DROPS < <(paste -d' ' "$a" "$b" | awk '{print $1+$4, $2+$5, $3+$6}')
    else
        read -r SENT DONE DROPS < <(perf "$NS_C1" "$IF_C1" "$2" "$CLIENTS" 00:0c:01:02:03:04 10.99.0.1)
    fi
    SENT="${SENT:-0}"; DONE="${DONE:-0}"; DROPS="${DROPS:-0}"
}

leases_in_db() { # server
    case "$1" in
        kea_pg*) sql "SELECT count(*) FROM lease4" kea ;;
        ours_pg*) sql "SELECT coalesce(string_agg(server || ':' || n, ' ' ORDER BY server), '0')
                         FROM (SELECT server, count(*) AS n FROM dhcp4_lease
                                WHERE state = 'bound' GROUP BY server) s" ours ;;
        *) echo - ;;
    esac
}

echo "machine: $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)"
echo "versions: kea-dhcp4 $(kea-dhcp4 -v), $("$PG_BIN/postgres" --version), perfdhcp clients $CLIENTS, period ${PERIOD}s"
declare -A BEST
for server in $SERVERS; do
    CUR="$server"
    echo "== $server"
    printf '%-8s %-8s %-8s %-8s %-9s %-8s %s\n' rate started done drops "done/s" "lost%" "bound leases in the database (by server)"
    best=0; best_rate=-
    for r in $RATES; do
        "start_$server"
        measure "$server" "$r"
        leases="$(leases_in_db "$server")"
        stop_servers
        lost="$(echo "scale=2; if ($SENT > 0) 100 * ($SENT - $DONE) / $SENT else 100" | bc)"
        per_s=$(( DONE / PERIOD ))
        printf '%-8s %-8s %-8s %-8s %-9s %-8s %s\n' "$r" "$SENT" "$DONE" "$DROPS" "$per_s" "$lost" "$leases"
        if [ "$(echo "$lost <= $MAX_DROP" | bc)" = 1 ] && [ "$per_s" -gt "$best" ]; then
            best=$per_s; best_rate=$r
        fi
        # Past saturation: the higher steps only lose more.
        [ "$(echo "$lost > 10" | bc)" = 1 ] && break
    done
    BEST["$server"]=$best
    echo "best: $best/s at offered $best_rate/s with <= $MAX_DROP % lost"
done

ratio() { if [ "${2:-0}" -gt 0 ]; then echo "scale=2; $1 / $2" | bc | sed 's/^\./0./; s/$/x/'; else echo "-"; fi; }
echo "--- summary: DORA/s at <= $MAX_DROP % lost"
echo "| server | DORA/s | vs Kea PG 1 thread | vs Kea PG multi-threaded |"
echo "|---|---|---|---|"
k1="${BEST[kea_pg]:-0}"; km="${BEST[kea_pg_mt]:-0}"
for server in $SERVERS; do
    b="${BEST[$server]:-0}"
    echo "| $server | $b | $(ratio "$b" "$k1") | $(ratio "$b" "$km") |"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "--- end"
[ -n "${KEEP_LOG:-}" ] && cp "$WORK/perfdhcp.log" "$KEEP_LOG"
exit 0
