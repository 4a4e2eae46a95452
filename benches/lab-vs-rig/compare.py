#!/usr/bin/env python3
"""Per-phase comparison of one lab run and one reference-rig run (see run.sh).

usage: compare.py N IMAGE_MIB LAB_LOGS LAB_RCS RIG_TIMINGS_JSONS RIG_RCS OUT_JSON

LAB_LOGS, RIG_TIMINGS_JSONS and the exit statuses are comma-separated lists, one per repeat.

Reads the lab's stdout (its progress lines and the timeline table that
rhcos_deploy::Timeline::render_table prints) and the rig's timings.json, writes OUT_JSON and
prints a markdown table. Values are seconds; with several VMs, the median over VMs. The lab
alternates BIOS and UEFI VMs (node0, node2 … are BIOS); the rig runs MODE=bios, so the
comparison columns use the lab's BIOS VMs and a separate column shows all lab VMs.
"""
import json
import re
import statistics
import sys

n, image_mib, lab_logs, lab_rcs, rig_jsons, rig_rcs, out = sys.argv[1:]
n, image_mib = int(n), int(image_mib)
lab_logs, rig_jsons = lab_logs.split(","), rig_jsons.split(",")
lab_rcs, rig_rcs = [int(x) for x in lab_rcs.split(",")], [int(x) for x in rig_rcs.split(",")]
lab_rc, rig_rc = max(lab_rcs), max(rig_rcs)
repeats = len(lab_logs)

PHASES = ["dhcp", "boot_file", "on_to_script", "kernel_initrd", "image", "ignition", "total"]
LABELS = {
    "dhcp": "DHCP (firmware DISCOVER→ACK)",
    "boot_file": "boot file (TFTP)",
    "on_to_script": "power-on → iPXE script",
    "kernel_initrd": "kernel + initramfs (HTTP)",
    "image": "image (download+gunzip+write)",
    "ignition": "Ignition (HTTP)",
    "total": "total (power-on → installed)",
}
LAB_COLS = ["dhcp", "bootfile", "script", "kernel", "initrd", "introspect", "image",
            "ignition", "installed"]
ORDER = ["power"] + LAB_COLS


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


# ---- lab: every VM of every repeat, keyed (repeat, host)
lab_vms, seen = {}, {}
for r, lab_log in enumerate(lab_logs):
    text = open(lab_log, errors="replace").read()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.split()[:1] == ["host"] and "dhcp" in line and "total" in line:
            for row in lines[i + 1:]:
                w = row.split()
                if len(w) < 3 + len(LAB_COLS) + 1:
                    break
                vals = dict(zip(LAB_COLS, map(num, w[3:3 + len(LAB_COLS)])))
                vals["total"] = num(w[3 + len(LAB_COLS)])
                vals["result"] = " ".join(w[4 + len(LAB_COLS):])
                lab_vms[(r, w[0])] = vals
    # progress lines: "[  12.3s] node0    52:54:00:7e:60:01 script"
    for m in re.finditer(r"^\[\s*([\d.]+)s\]\s+(\S+)\s+\S+\s+(\S+)\s*$", text, re.M):
        t, host, phase = float(m.group(1)), m.group(2), m.group(3)
        if phase in ORDER:
            seen.setdefault((r, host), []).append((t, ORDER.index(phase)))


def lab_phases(v, host):
    k, i = v.get("kernel"), v.get("initrd")
    prog = seen.get(host, [])
    t_on = next((t for t, p in prog if p == 0), None)
    t_script = next((t for t, p in prog if p >= ORDER.index("script")), None)
    return {
        "dhcp": v.get("dhcp"),
        "boot_file": v.get("bootfile"),
        "on_to_script": round(t_script - t_on, 2) if t_on is not None and t_script is not None else None,
        "kernel_initrd": round(k + i, 3) if k is not None and i is not None else None,
        "image": v.get("image"),
        "ignition": v.get("ignition"),
        "total": v.get("total"),
    }


def median(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(vals), 3) if vals else None


lab_rows = {k: lab_phases(v, k) for k, v in lab_vms.items()}
bios = [row for (_, h), row in lab_rows.items() if re.fullmatch(r"node\d+", h) and int(h[4:]) % 2 == 0]
lab_bios = {k: median(bios, k) for k in PHASES}
lab_all = {k: median(list(lab_rows.values()), k) for k in PHASES}
lab_installed = sum(1 for v in lab_vms.values() if v["result"].startswith("installed"))

# ---- rig
rig_rows, rig_passed = [], 0
for rig_json in rig_jsons:
    try:
        rig = json.load(open(rig_json))
    except (OSError, ValueError):
        rig = {}
    for v in rig.get("vms", []):
        p = v.get("phases", {})
        tot, tail = p.get("15_TOTAL_power_on_to_poweroff"), p.get("14_install_complete_to_qemu_exit")
        rig_rows.append({
            "dhcp": p.get("2_firmware_DHCP_discover_to_ack"),
            "boot_file": p.get("4_TFTP_NBP_transfer"),
            "on_to_script": p.get("6_power_on_to_bootstrap_ipxe"),
            "kernel_initrd": p.get("7_kernel_plus_initrd_HTTP"),
            "image": p.get("12_image_download+gunzip+write+sync"),
            "ignition": p.get("13_ignition_HTTP"),
            "total": round(tot - (tail or 0), 3) if tot is not None else None,
        })
    log = rig_json.replace(".timings.json", ".log")
    try:
        m = re.search(r"(\d+) passed, (\d+) failed", open(log, errors="replace").read())
        rig_passed += int(m.group(1)) if m else 0
    except OSError:
        pass
rig_med = {k: median(rig_rows, k) for k in PHASES}

res = {
    "vms": n, "image_mib": image_mib,
    "repeats": repeats,
    "lab": {"bios_median": lab_bios, "all_median": lab_all,
            "per_vm": {f"run{r + 1}/{h}": row for (r, h), row in lab_rows.items()},
            "installed": lab_installed, "exit": lab_rc},
    "rig": {"median": rig_med, "per_vm": rig_rows, "passed": rig_passed, "exit": rig_rc},
    "commands": {
        "lab": f"target/release/examples/lab --vms {n} --image-mib {image_mib}",
        "rig": f"ACCEL=tcg TUNED=1 MODE=bios N_VMS={n} IMAGE_MB={image_mib} ../shared/reference-rig/rig.sh",
    },
}
json.dump(res, open(out, "w"), indent=1)


def f(v):
    return "-" if v is None else f"{v:.2f}"


def ratio(rig_v, lab_v):
    if rig_v is None or lab_v is None:
        return "-"
    if lab_v < 0.02 and rig_v < 0.02:
        return "tie (both < 20 ms)"
    if lab_v < 0.005:
        return "lab < 5 ms"
    return f"{rig_v / lab_v:.2f}x"


print(f"### {n} VM(s), {image_mib} MiB image, {repeats} run(s) each: lab {lab_installed}/{len(lab_vms)} "
      f"installed (exit {lab_rc}), rig {rig_passed}/{len(rig_rows)} passed (exit {rig_rc})")
print()
extra = " | lab, all VMs" if n > 1 else ""
print(f"| phase (s) | lab (BIOS) | reference rig (BIOS, tuned) | rig / lab{extra} |")
print("|---|---|---|---|" + ("---|" if n > 1 else ""))
for k in PHASES:
    row = f"| {LABELS[k]} | {f(lab_bios[k])} | {f(rig_med[k])} | {ratio(rig_med[k], lab_bios[k])} |"
    if n > 1:
        row += f" {f(lab_all[k])} |"
    print(row)
print()
