#!/usr/bin/env bash
# Every comparison benchmark in one command; writes benches/results/RESULTS.md and SVG charts.
#
#   sudo benches/run-all.sh quick     # small sizes, a smoke run (about 7 minutes)
#   sudo benches/run-all.sh full      # the published sizes (about 15 minutes)
#   sudo ONLY="http-tftp bootstorm" benches/run-all.sh quick    # a subset
#
# Areas (each is its own script, runnable alone; this one only sets sizes and collects output):
#   image-pipeline  rhcos-images fetch+verify+gunzip vs curl | gzip -d | sha256sum (nginx source)
#   http-tftp       HTTP vs nginx, TFTP vs dnsmasq and tftpd-hpa, throughput vs concurrency
#   dhcp            DHCPv4 and v6 vs dnsmasq and Kea under perfdhcp (rate sweep, RSS by clients)
#   dns             DNS vs dnsmasq under dnsperf (authoritative and forwarded answers)
#   bootstorm       N simulated PXE clients against rhcos_deploy::start_servers (N=10,100,1000)
#   bootstorm-rate  the same at a constant 100 clients/s for larger N: memory against N
#   bootstorm-burst 1000 clients all at once, as after a power cut
#   bootstorm-metrics 1000 clients with the status page and Prometheus metrics off, then on
#   lab-vs-rig      examples/lab vs the dnsmasq+nginx reference rig, power-on to installed
# Output: benches/results/RESULTS.md, benches/results/*.svg, raw logs in benches/results/raw/.
# An area that fails is marked FAILED in RESULTS.md with the tail of its log; the others still run.
set -uo pipefail

MODE=${1:-quick}
case "$MODE" in quick | full) ;; *) echo "usage: $0 quick|full" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RESULTS=${RESULTS:-$HERE/results}
RAW=$RESULTS/raw
ONLY=${ONLY:-"image-pipeline http-tftp dhcp dns bootstorm bootstorm-rate bootstorm-burst bootstorm-metrics lab-vs-rig"}

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, QEMU)" >&2; exit 1; }
mkdir -p "$RAW"
rm -f "$RAW"/*.status

# Sizes per mode. Every area gets its environment from here, and RESULTS.md prints it.
if [ "$MODE" = quick ]; then
    ENV_image="SIZE_MB=64 RUNS=1"
    ENV_httptftp="SIZE_MIB=64 HTTP_CONC='1 4 16' TFTP_SIZES_MIB='1' TFTP_CONC='1 4 16' REPEAT=1"
    ENV_dhcp="RATES='1000 2000' CLIENTS=500 PERIOD=3 MEM_CLIENTS='1000 10000' MEM_PERIOD=3"
    ENV_dns="SECONDS_=3 ROUNDS=1"
    ENV_bootstorm="N='10 100 1000' ARRIVAL_MS=10000 KERNEL_MIB=1 INITRD_MIB=1"
    ENV_bootrate="N='2000' RATE=100 KERNEL_MIB=1 INITRD_MIB=1"
    ENV_bootburst="N='1000' PATTERN=burst KERNEL_MIB=1 INITRD_MIB=1"
    ENV_bootmetrics="N='1000' STATUS='0 1' ARRIVAL_MS=10000 KERNEL_MIB=1 INITRD_MIB=1"
    ENV_labrig="VMS=1 IMAGE_MIB=16 REPEAT=3"
else
    ENV_image="SIZE_MB=1024 RUNS=2"
    ENV_httptftp="SIZE_MIB=1024 HTTP_CONC='1 2 4 8 16' TFTP_SIZES_MIB='1 32' TFTP_CONC='1 4 16' REPEAT=3"
    ENV_dhcp=""
    ENV_dns="SECONDS_=10 ROUNDS=3"
    ENV_bootstorm="N='10 100 1000' ARRIVAL_MS=10000 KERNEL_MIB=8 INITRD_MIB=32"
    ENV_bootrate="N='2000 4000' RATE=100 KERNEL_MIB=8 INITRD_MIB=32"
    ENV_bootburst="N='1000' PATTERN=burst KERNEL_MIB=8 INITRD_MIB=32"
    ENV_bootmetrics="N='1000' STATUS='0 1 0 1' ARRIVAL_MS=10000 KERNEL_MIB=8 INITRD_MIB=32"
    ENV_labrig="VMS='1 4' IMAGE_MIB=16 REPEAT=3"
fi

echo "building the benchmark binaries (release)" >&2
BUILD_NOTE=
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
if ! (cd "$ROOT" && cargo build --release -q -p benches --bin pxe-serve --bin tftp-get --bin dhcp-server --bin dhcp6-server --bin dns-server \
    --bin bootstorm --bin bootstorm-server && cargo build --release -q -p examples --example fetch-images --example lab); then
    # The working tree can be mid-edit; binaries from the last good build are still a valid run,
    # and RESULTS.md says so.
    for b in pxe-serve tftp-get dhcp-server dhcp6-server dns-server bootstorm bootstorm-server examples/fetch-images examples/lab; do
        [ -x "$BIN/$b" ] || { echo "build failed and $BIN/$b is missing" >&2; exit 1; }
    done
    BUILD_NOTE="build of the working tree failed; ran the binaries of the last good build ($(date -u -r "$BIN/bootstorm-server" +%H:%M:%SZ))"
    echo "WARNING: $BUILD_NOTE" >&2
fi

# Machine description, taken now so it describes this run.
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "mode: $MODE"
    echo "nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "kernel: $(uname -srm)"
    echo "loadavg_start: $(cut -d' ' -f1-3 /proc/loadavg)"
    [ -n "$BUILD_NOTE" ] && echo "note: $BUILD_NOTE"
    echo "git: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet -- . ':!benches/results' 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "free -g:"
    free -g
} >"$RAW/machine.txt"

# run AREA ENV SCRIPT: runs one area with its environment; stdout to raw/AREA.out, stderr to
# raw/AREA.err, the exact command to raw/AREA.cmd, exit status and seconds to raw/AREA.status.
run() {
    local area=$1 env=$2 script=$3
    case " $ONLY " in *" $area "*) ;; *) return 0 ;; esac
    local cmd="sudo $env $script"
    echo "$cmd" >"$RAW/$area.cmd"
    echo "== $area: $cmd" >&2
    local t0 rc
    t0=$(date +%s)
    (cd "$ROOT" && eval "env $env NO_BUILD=1 $script") >"$RAW/$area.out" 2>"$RAW/$area.err"
    rc=$?
    echo "$rc $(( $(date +%s) - t0 ))" >"$RAW/$area.status"
    # The published files name paths relative to the repository, not this machine's checkout.
    sed -i "s|$ROOT/||g" "$RAW/$area.cmd" "$RAW/$area.out" "$RAW/$area.err"
    if [ "$rc" = 0 ]; then echo "   ok in $(( $(date +%s) - t0 )) s" >&2; else echo "   FAILED ($rc), see $RAW/$area.err" >&2; fi
}

run image-pipeline "WORK=\${TMPDIR:-/tmp}/rhcos-images-bench $ENV_image" benches/image-pipeline/run.sh
run http-tftp "$ENV_httptftp" benches/http-tftp/run.sh
run dhcp "$ENV_dhcp" benches/dhcp/run.sh
run dns "$ENV_dns" benches/dns/run.sh
run bootstorm "$ENV_bootstorm OUT=$RAW/bootstorm" benches/bootstorm/run.sh
run bootstorm-rate "$ENV_bootrate OUT=$RAW/bootstorm-rate" benches/bootstorm/run.sh
run bootstorm-burst "$ENV_bootburst OUT=$RAW/bootstorm-burst" benches/bootstorm/run.sh
run bootstorm-metrics "$ENV_bootmetrics OUT=$RAW/bootstorm-metrics" benches/bootstorm/run.sh
run lab-vs-rig "$ENV_labrig OUT=$RAW/lab-vs-rig" benches/lab-vs-rig/run.sh

echo "loadavg_end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/machine.txt"
python3 "$HERE/report.py" "$RESULTS" && echo "wrote $RESULTS/RESULTS.md" >&2
