#!/usr/bin/env bash
# HTTP and TFTP throughput: pxe-stack vs nginx (sendfile on), dnsmasq's TFTP and tftpd-hpa.
# One command, ratios from the same run, a markdown table on stdout.
#
#   sudo benches/http-tftp/run.sh
#
# Everything runs inside a private network namespace (unshare -n) on its own loopback, so the
# fixed TFTP port 69 that dnsmasq insists on cannot collide with anything, and no packet leaves it.
# Knobs (environment): SIZE_MIB=1024 (HTTP file), HTTP_CONC="1 4 16", TFTP_SIZES_MIB="1 32",
# TFTP_CONC="1 16", REPEAT=3 (best of), CHUNK (our read chunk in bytes, default the server's),
# BIN_DIR (use prebuilt pxe-serve and tftp-get from there instead of building the benches package).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

if [ "${PXE_BENCH_INNER:-}" != 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "run as root (needs unshare -n for a private loopback)" >&2; exit 1; }
    for c in curl nginx dnsmasq in.tftpd unshare; do
        command -v "$c" >/dev/null || { echo "missing $c (scripts/install-deps.sh)" >&2; exit 1; }
    done
    if [ -z "${BIN_DIR:-}" ]; then
        (cd "$REPO" && cargo build --release -q -p benches --bin pxe-serve --bin tftp-get)
        BIN_DIR="${CARGO_TARGET_DIR:-$REPO/target}/release"
    fi
    exec unshare -n env PXE_BENCH_INNER=1 BIN_DIR="$BIN_DIR" bash "$0" "$@"
fi

SIZE_MIB=${SIZE_MIB:-1024}
HTTP_CONC=${HTTP_CONC:-"1 4 16"}
TFTP_SIZES_MIB=${TFTP_SIZES_MIB:-"1 32"}
TFTP_CONC=${TFTP_CONC:-"1 16"}
REPEAT=${REPEAT:-3}
BIN="$BIN_DIR"

ip link set lo up
# glibc's AI_ADDRCONFIG ignores 127.0.0.1, and tftpd-hpa exits when its -a address does not
# resolve: one more (unrouted, namespace-local) address on lo satisfies it.
ip addr add 10.254.0.1/32 dev lo
WORK=$(mktemp -d /tmp/pxe-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/root" "$WORK/nginx/tmp"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/root/big.bin"
for s in $TFTP_SIZES_MIB; do head -c "$((s * 1024 * 1024))" /dev/urandom >"$WORK/root/t$s.bin"; done
chmod -R a+rX "$WORK"

HTTP_OURS=8081 HTTP_NGINX=8082 TFTP_OURS=6969 TFTP_HPA=6970 TFTP_DNSMASQ=69

CHUNK_ARGS=()
[ -n "${CHUNK:-}" ] && CHUNK_ARGS=(--chunk "$CHUNK")
"$BIN/pxe-serve" --root "$WORK/root" --http 127.0.0.1:$HTTP_OURS --tftp 127.0.0.1:$TFTP_OURS \
    "${CHUNK_ARGS[@]}" 2>"$WORK/ours.log" &
OURS_PID=$!
PIDS+=($OURS_PID)

cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    server { listen 127.0.0.1:$HTTP_NGINX; root $WORK/root; }
}
EOF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

dnsmasq -k --conf-file=/dev/null --port=0 --enable-tftp --tftp-root="$WORK/root" \
    --listen-address=127.0.0.1 --bind-interfaces --tftp-max=200 --user=root --group=root \
    --pid-file="$WORK/dnsmasq.pid" --log-facility="$WORK/dnsmasq.log" --quiet-tftp &
PIDS+=($!)

in.tftpd -L -a 127.0.0.1:$TFTP_HPA -u root -s "$WORK/root" &
PIDS+=($!)

# Wait until every server answers.
for _ in $(seq 100); do
    if curl -sf -o /dev/null -r 0-0 http://127.0.0.1:$HTTP_OURS/big.bin &&
        curl -sf -o /dev/null -r 0-0 http://127.0.0.1:$HTTP_NGINX/big.bin &&
        curl -sf -o /dev/null tftp://127.0.0.1:$TFTP_OURS/t1.bin 2>/dev/null &&
        curl -sf -o /dev/null tftp://127.0.0.1:$TFTP_HPA/t1.bin 2>/dev/null; then break; fi
    sleep 0.1
done
curl -sf -o /dev/null tftp://127.0.0.1:$TFTP_DNSMASQ/t1.bin || { echo "dnsmasq tftp not answering" >&2; exit 1; }
curl -sf -o /dev/null tftp://127.0.0.1:$TFTP_HPA/t1.bin || { echo "tftpd-hpa not answering" >&2; exit 1; }

now() { date +%s.%N; }

# best_of CMD...: runs CMD REPEAT times, prints the shortest wall time in seconds.
best_of() {
    local best="" t0 t1 t
    for _ in $(seq "$REPEAT"); do
        t0=$(now)
        "$@"
        t1=$(now)
        t=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
    done
    echo "$best"
}

# parallel N URL [curl args]: N concurrent curl downloads to /dev/null; fails if any fails.
parallel() {
    local n=$1 url=$2
    shift 2
    local pids=() fail=0
    for _ in $(seq "$n"); do
        curl -sf -o /dev/null "$@" "$url" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fail=1; done
    return $fail
}

# window N WS FILE: our RFC 7440 client, N concurrent transfers.
window() { "$BIN/tftp-get" 127.0.0.1:$TFTP_OURS "$3" --windowsize "$2" --parallel "$1" >/dev/null; }

mbps() { echo "scale=0; $1 * 1048576 / $2 / 1000000" | bc -l; } # MiB moved, seconds -> MB/s
ratio() { echo "scale=2; $2 / $1" | bc -l; }                   # time_ours time_other -> speed ratio

echo "## HTTP: ${SIZE_MIB} MiB file, curl -o /dev/null, aggregate MB/s (best of $REPEAT)"
echo
echo "| concurrent | pxe-stack | nginx (sendfile on) | ratio |"
echo "|---|---|---|---|"
for c in $HTTP_CONC; do
    t_ours=$(best_of parallel "$c" http://127.0.0.1:$HTTP_OURS/big.bin)
    t_ng=$(best_of parallel "$c" http://127.0.0.1:$HTTP_NGINX/big.bin)
    echo "| $c | $(mbps $((SIZE_MIB * c)) "$t_ours") | $(mbps $((SIZE_MIB * c)) "$t_ng") | $(ratio "$t_ours" "$t_ng")x |"
done
echo
echo "pxe-stack peak RSS after the HTTP runs: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$OURS_PID/status)"
echo

echo "## TFTP: curl tftp:// --tftp-blksize 1468, aggregate MB/s (best of $REPEAT)"
echo
echo "| file | concurrent | pxe-stack | dnsmasq | tftpd-hpa | ratio vs best |"
echo "|---|---|---|---|---|---|"
for s in $TFTP_SIZES_MIB; do
    for c in $TFTP_CONC; do
        t_o=$(best_of parallel "$c" tftp://127.0.0.1:$TFTP_OURS/t$s.bin --tftp-blksize 1468)
        t_d=$(best_of parallel "$c" tftp://127.0.0.1:$TFTP_DNSMASQ/t$s.bin --tftp-blksize 1468)
        t_h=$(best_of parallel "$c" tftp://127.0.0.1:$TFTP_HPA/t$s.bin --tftp-blksize 1468)
        best=$t_d
        [ "$(echo "$t_h < $best" | bc -l)" = 1 ] && best=$t_h
        echo "| $s MiB | $c | $(mbps $((s * c)) "$t_o") | $(mbps $((s * c)) "$t_d") | $(mbps $((s * c)) "$t_h") | $(ratio "$t_o" "$best")x |"
    done
done
echo

echo "## TFTP windowsize (RFC 7440), benches' tftp-get client, blksize 1468, aggregate MB/s"
echo
echo "| file | concurrent | pxe-stack ws 1 | pxe-stack ws 16 | ws16 / ws1 | ws16 / best baseline (curl, above) |"
echo "|---|---|---|---|---|---|"
for s in $TFTP_SIZES_MIB; do
    for c in $TFTP_CONC; do
        t_w1=$(best_of window "$c" 1 "t$s.bin")
        t_w16=$(best_of window "$c" 16 "t$s.bin")
        t_d=$(best_of parallel "$c" tftp://127.0.0.1:$TFTP_DNSMASQ/t$s.bin --tftp-blksize 1468)
        t_h=$(best_of parallel "$c" tftp://127.0.0.1:$TFTP_HPA/t$s.bin --tftp-blksize 1468)
        best=$t_d
        [ "$(echo "$t_h < $best" | bc -l)" = 1 ] && best=$t_h
        echo "| $s MiB | $c | $(mbps $((s * c)) "$t_w1") | $(mbps $((s * c)) "$t_w16") | $(ratio "$t_w16" "$t_w1")x | $(ratio "$t_w16" "$best")x |"
    done
done
echo
echo "pxe-stack peak RSS at the end: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$OURS_PID/status)"
echo "Machine: $(nproc) cores, $(uname -r); clients and servers share the cores."
