#!/usr/bin/env bash
# Lab vs reference rig: power-on to installed through rhcos-metal (`examples/lab`: our DHCP,
# TFTP, HTTP, iPXE scripts, Ignition, BMC power) and through the dnsmasq + nginx reference rig
# (../shared/reference-rig/rig.sh, ACCEL=tcg TUNED=1 MODE=bios), on the same machine with the
# same image size, per phase, side by side with ratios.
#
#   sudo benches/lab-vs-rig/run.sh                   # VMS="1 4" IMAGE_MIB=16
#   sudo VMS=1 benches/lab-vs-rig/run.sh             # the quick comparison
#
# Environment: VMS (VM counts, default "1 4"), IMAGE_MIB (default 16), REPEAT (runs of each
# side, alternating lab and rig; medians over every VM of every run, default 1), RIG (the rig's folder,
# run read-only; it writes under ${TMPDIR:-/tmp}/reference-rig), OUT (directory for the raw
# logs and lab-vs-rig-N.json, default benches/results/lab-vs-rig).
#
# What is compared (seconds; the median over VMs and repeats, per-VM values in the JSON):
#   dhcp       firmware DHCP, first DISCOVER to first ACK (lab: our timeline; rig: its pcap)
#   boot file  TFTP of the iPXE binary (both skip it for BIOS: QEMU's NIC ROM is iPXE)
#   on→script  power-on to the per-host iPXE script (lab: its progress lines; rig: phase 6)
#   kernel     kernel + initramfs over HTTP
#   image      image download + gunzip + write + sync (the TCG guest's speed, not the server's)
#   ignition   the Ignition HTTP request
#   total      power-on to the installer's "installed" report (rig: to poweroff, minus the
#              poweroff itself)
# The lab alternates BIOS (fixed role) and UEFI (introspected) VMs, so its 4-VM run has two
# UEFI VMs while the rig's has four BIOS ones; the table says so.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VMS=${VMS:-"1 4"}
IMAGE_MIB=${IMAGE_MIB:-16}
REPEAT=${REPEAT:-1}
RIG=${RIG:-$ROOT/../shared/reference-rig}
OUT=${OUT:-$ROOT/benches/results/lab-vs-rig}

[ "$(id -u)" = 0 ] || { echo "needs root (namespaces, QEMU, bridges)" >&2; exit 1; }
[ -x "$RIG/rig.sh" ] || { echo "no reference rig at $RIG" >&2; exit 1; }
mkdir -p "$OUT"
if [ -z "${NO_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p examples --example lab)
fi
LAB=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/lab
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lab-vs-rig.XXXXXX")
CHILD=
cleanup() {
    # The lab and the rig both tear down their namespaces and VMs on SIGTERM.
    if [ -n "$CHILD" ]; then kill "$CHILD" 2>/dev/null || true; wait "$CHILD" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

for n in $VMS; do
    labs=() rigs=() lab_rcs=() rig_rcs=()
    for r in $(seq "$REPEAT"); do
        echo "== lab, $n VM(s), ${IMAGE_MIB} MiB image, run $r of $REPEAT" >&2
        "$LAB" --vms "$n" --image-mib "$IMAGE_MIB" --work-dir "$WORK/lab-$n" >"$OUT/lab-$n-$r.log" 2>&1 &
        CHILD=$!
        lab_rc=0; wait "$CHILD" || lab_rc=$?; CHILD=
        tail -n $((n + 4)) "$OUT/lab-$n-$r.log" >&2

        echo "== reference rig, $n VM(s), ${IMAGE_MIB} MiB image, run $r of $REPEAT" >&2
        rig_run="${TMPDIR:-/tmp}/reference-rig/runs/bench-$$-n$n-r$r"
        (cd "$RIG" && exec env ACCEL=tcg TUNED=1 MODE=bios N_VMS="$n" IMAGE_MB="$IMAGE_MIB" \
            BUILD="${TMPDIR:-/tmp}/reference-rig/build$IMAGE_MIB" NS="rigb$$" RUN_DIR="$rig_run" \
            ./rig.sh) >"$OUT/rig-$n-$r.log" 2>&1 &
        CHILD=$!
        rig_rc=0; wait "$CHILD" || rig_rc=$?; CHILD=
        tail -n 1 "$OUT/rig-$n-$r.log" >&2
        cp "$rig_run/timings.json" "$OUT/rig-$n-$r.timings.json" 2>/dev/null || echo '{}' >"$OUT/rig-$n-$r.timings.json"
        labs+=("$OUT/lab-$n-$r.log"); rigs+=("$OUT/rig-$n-$r.timings.json")
        lab_rcs+=("$lab_rc"); rig_rcs+=("$rig_rc")
    done
    python3 "$HERE/compare.py" "$n" "$IMAGE_MIB" "$(IFS=,; echo "${labs[*]}")" "$(IFS=,; echo "${lab_rcs[*]}")" \
        "$(IFS=,; echo "${rigs[*]}")" "$(IFS=,; echo "${rig_rcs[*]}")" "$OUT/lab-vs-rig-$n.json"
done
