#!/usr/bin/env python3
"""Builds benches/results/RESULTS.md and the SVG charts from one run-all.sh run.

usage: report.py RESULTS_DIR

Reads RESULTS_DIR/raw/: machine.txt, AREA.{out,err,cmd,status} for every area, and the JSON the
boot storm and lab-vs-rig scripts leave in raw/bootstorm/ and raw/lab-vs-rig/. The per-area
scripts print human tables; this parses them (it does not rerun anything). Standard library
only: the charts are hand-written SVG.
"""
import glob
import html
import json
import os
import re
import sys

res_dir = sys.argv[1]
raw = os.path.join(res_dir, "raw")


def read(name, default=""):
    try:
        with open(os.path.join(raw, name), errors="replace") as f:
            return f.read()
    except OSError:
        return default


def status(area):
    s = read(area + ".status").split()
    if not s:
        return None
    return int(s[0]), int(s[1])


def fnum(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------- SVG helpers
PALETTE = ["#1f6feb", "#d1242f", "#2da44e", "#bf8700", "#8250df", "#57606a"]


def esc(s):
    return html.escape(str(s), quote=True)


def nice_max(v):
    if v <= 0:
        return 1
    import math
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def line_chart(path, title, xlabel, ylabel, xs, series, w=640, h=360):
    """xs: category labels; series: [(name, [y or None per x])]."""
    ml, mr, mt, mb = 70, 160, 40, 50
    pw, ph = w - ml - mr, h - mt - mb
    ymax = nice_max(max([y for _, ys in series for y in ys if y is not None] or [1]) * 1.05)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{esc(title)}</text>']
    for i in range(6):
        y = mt + ph - ph * i / 5
        out.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">{ymax * i / 5:g}</text>')
    n = len(xs)

    def px(i):
        return ml + (pw * (i + 0.5) / n)

    for i, x in enumerate(xs):
        out.append(f'<text x="{px(i):.1f}" y="{mt + ph + 18}" text-anchor="middle">{esc(x)}</text>')
    out.append(f'<line x1="{ml}" y1="{mt + ph}" x2="{ml + pw}" y2="{mt + ph}" stroke="black"/>')
    out.append(f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{mt + ph}" stroke="black"/>')
    out.append(f'<text x="{ml + pw / 2}" y="{h - 10}" text-anchor="middle">{esc(xlabel)}</text>')
    out.append(f'<text x="16" y="{mt + ph / 2}" text-anchor="middle" transform="rotate(-90 16 {mt + ph / 2})">{esc(ylabel)}</text>')
    for k, (name, ys) in enumerate(series):
        c = PALETTE[k % len(PALETTE)]
        pts = [(px(i), mt + ph - ph * y / ymax) for i, y in enumerate(ys) if y is not None]
        if len(pts) > 1:
            out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="' +
                       " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
        for a, b in pts:
            out.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3.5" fill="{c}"/>')
        ly = mt + 10 + 18 * k
        out.append(f'<rect x="{ml + pw + 12}" y="{ly - 9}" width="12" height="12" fill="{c}"/>')
        out.append(f'<text x="{ml + pw + 30}" y="{ly + 1}">{esc(name)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def bar_chart(path, title, ylabel, groups, series, w=720, h=380):
    """Grouped vertical bars. groups: labels; series: [(name, [value or None per group])]."""
    ml, mr, mt, mb = 70, 170, 40, 70
    pw, ph = w - ml - mr, h - mt - mb
    ymax = nice_max(max([v for _, vs in series for v in vs if v is not None] or [1]) * 1.05)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{esc(title)}</text>']
    for i in range(6):
        y = mt + ph - ph * i / 5
        out.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">{ymax * i / 5:g}</text>')
    ng, ns = len(groups), max(1, len(series))
    gw = pw / max(1, ng)
    bw = gw * 0.8 / ns
    for g, label in enumerate(groups):
        gx = ml + g * gw + gw * 0.1
        words = str(label).split(" ")
        for li, part in enumerate([" ".join(words[:2]), " ".join(words[2:])]):
            if part:
                out.append(f'<text x="{ml + g * gw + gw / 2:.1f}" y="{mt + ph + 16 + 14 * li}" text-anchor="middle">{esc(part)}</text>')
        for k, (_, vs) in enumerate(series):
            v = vs[g]
            if v is None:
                continue
            bh = ph * v / ymax
            out.append(f'<rect x="{gx + k * bw:.1f}" y="{mt + ph - bh:.1f}" width="{bw - 2:.1f}" height="{bh:.1f}" fill="{PALETTE[k % len(PALETTE)]}"/>')
            out.append(f'<text x="{gx + k * bw + bw / 2:.1f}" y="{mt + ph - bh - 3:.1f}" text-anchor="middle" font-size="10">{v:.2f}</text>')
    out.append(f'<line x1="{ml}" y1="{mt + ph}" x2="{ml + pw}" y2="{mt + ph}" stroke="black"/>')
    out.append(f'<text x="16" y="{mt + ph / 2}" text-anchor="middle" transform="rotate(-90 16 {mt + ph / 2})">{esc(ylabel)}</text>')
    for k, (name, _) in enumerate(series):
        ly = mt + 10 + 18 * k
        out.append(f'<rect x="{ml + pw + 12}" y="{ly - 9}" width="12" height="12" fill="{PALETTE[k % len(PALETTE)]}"/>')
        out.append(f'<text x="{ml + pw + 30}" y="{ly + 1}">{esc(name)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ------------------------------------------------------------------------------- parsers
def md_tables(text):
    """Markdown tables in text: list of (heading, header cells, rows of cells)."""
    tables, heading, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-|\s:]+\|$", lines[i + 1]):
            head = [c.strip() for c in line.strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            tables.append((heading, head, rows))
            continue
        i += 1
    return tables


def section(area, title):
    st = status(area)
    cmd = read(area + ".cmd").strip()
    out = [f"## {title}", ""]
    if st is None:
        out += ["Not run in this run.", ""]
        return out, False
    rc, secs = st
    out += [f"Command: `{cmd}` ({secs} s, exit {rc})", ""]
    if rc != 0:
        tail = "\n".join((read(area + ".err") + read(area + ".out")).strip().splitlines()[-15:])
        out += ["**FAILED.** Last lines of its output:", "", "```", tail, "```", ""]
    return out, rc == 0


md = []
charts = []
mach = read("machine.txt")
mode = re.search(r"^mode: (\S+)", mach, re.M)
md += ["# Benchmark results", "",
       f"Generated by `sudo benches/run-all.sh {mode.group(1) if mode else '?'}`; every ratio compares "
       "numbers measured in this same run on this machine. How to read the tables: "
       "[benches/README.md](../README.md).", "",
       "## Machine", "", "```", mach.strip(), "```", "",
       "Clients and servers share the same cores, and other work on the machine (the load averages "
       "above) adds noise: treat differences under about 15 % as ties.", ""]

# ---- image pipeline
sec, ok = section("image-pipeline", "Image pipeline: rhcos-images vs curl | gzip -d | sha256sum")
md += sec
if ok:
    text = read("image-pipeline.out")
    head = re.search(r"^image: .*$", text, re.M)
    if head:
        md += [head.group(0), ""]
    rows = re.findall(r"^(pipeline\+sync|pipeline|ours\+cache|ours)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(.*)$", text, re.M)
    what = {"pipeline": "curl | tee sha256sum | gzip -dc | tee sha256sum > file",
            "ours": "fetch-images --output FILE --decompress",
            "pipeline+sync": "the pipeline, then sync",
            "ours+cache": "fetch-images --dest DIR (temp, verify, fsync, rename)"}
    md += ["| contender | what | seconds | raw MB/s | gz MB/s | peak RSS |", "|---|---|---|---|---|---|"]
    for name, s, rawm, gzm, rss in rows:
        cell = what.get(name, "").replace("|", "\\|")
        md.append(f"| {name} | `{cell}` | {s} | {rawm} | {gzm} | {rss.strip()} |")
    md.append("")
    for r in re.findall(r"^ratio .*$", text, re.M):
        md.append(f"- {r}")
    md += ["", "A ratio above 1 means ours is faster.", ""]

# ---- HTTP / TFTP
sec, ok = section("http-tftp", "HTTP vs nginx, TFTP vs dnsmasq and tftpd-hpa")
md += sec
if ok:
    text = read("http-tftp.out")
    md += [text.replace("## ", "### ").strip(), ""]
    md += ["Ratios are pxe-stack's throughput divided by the other server's (above 1: ours is faster).", ""]
    for heading, head, rows in md_tables(text):
        if heading.startswith("HTTP"):
            xs = [r[0] for r in rows]
            line_chart(os.path.join(res_dir, "http-throughput.svg"), "HTTP throughput vs concurrency",
                       "concurrent downloads", "aggregate MB/s", xs,
                       [("pxe-stack", [fnum(r[1]) for r in rows]), ("nginx (sendfile)", [fnum(r[2]) for r in rows])])
            charts.append(("http-throughput.svg", "HTTP throughput vs concurrency"))
        elif heading.startswith("TFTP:"):
            sizes = sorted({r[0] for r in rows}, key=lambda s: fnum(s.split()[0]) or 0)
            series = []
            xs = []
            for size in sizes:
                sub = [r for r in rows if r[0] == size]
                xs = xs or [r[1] for r in sub]
                for col, name in ((2, "pxe-stack"), (3, "dnsmasq"), (4, "tftpd-hpa")):
                    series.append((f"{name} {size}", [fnum(r[col]) for r in sub]))
            line_chart(os.path.join(res_dir, "tftp-throughput.svg"), "TFTP throughput vs concurrency (blksize 1468)",
                       "concurrent transfers", "aggregate MB/s", xs, series)
            charts.append(("tftp-throughput.svg", "TFTP throughput vs concurrency"))

# ---- DHCP
sec, ok = section("dhcp", "DHCPv4 and DHCPv6: pxe-stack vs dnsmasq and Kea (perfdhcp)")
md += sec
if ok:
    text = read("dhcp.out")
    summary = re.search(r"^--- summary\n(.*?)^--- end", text, re.M | re.S)
    if summary:
        md += ["Completed exchanges per second (DORA for v4, SARR for v6) at the highest offered rate "
               "with at most 0.5 % of the started exchanges lost, every server in the same run; "
               "ratios are ours / peer. Peak RSS (VmHWM) of a fresh server after perfdhcp with that "
               "many distinct clients, the distinct addresses in its lease file in brackets. "
               "Durability: ours fsyncs its lease file (per batch) and dnsmasq (per change) before "
               "the reply; Kea memfile writes the lease line before the reply without fsync.", "",
               summary.group(1).strip(), "", "Every step (lost % = started exchanges without a final ACK/Reply):", "",
               "```", text[:summary.start()].strip(), "```", ""]
    else:
        md += ["```", text.strip(), "```", ""]

# ---- boot storm
STORM_NOTE = ("Each client: DHCP DORA as PXE firmware, TFTP of undionly.kpxe, DORA as iPXE, HTTP "
              "`/boot.ipxe` then `/ipxe?mac=` (the chain), kernel, initramfs, Ignition (served only to the "
              "address holding the lease). Phase columns are p50/p99 in ms over the clients that "
              "succeeded; server CPU is utime+stime during the storm; peak RSS is VmHWM.")


def storm_runs(area):
    runs = []
    for p in glob.glob(os.path.join(raw, area, "bootstorm-*.json")):
        try:
            runs.append(json.load(open(p)))
        except ValueError:
            pass
    return sorted(runs, key=lambda d: d["clients"])


def storm_tables(area, runs):
    text = read(area + ".out")
    out = [l for l in text.splitlines() if l.startswith("Arrival")] + [""]
    out += [l for l in text.splitlines() if l.startswith("|")] + [""]
    errs = [(d["clients"], e, c) for d in runs for e, c in d.get("errors", {}).items()]
    if errs:
        out += ["Failures:", ""] + [f"- N={n}: {c} × `{e}`" for n, e, c in errs] + [""]
    return out


# ---- DNS
sec, ok = section("dns", "DNS vs dnsmasq (dnsperf)")
md += sec
if ok:
    text = read("dns.out")
    med = re.findall(r"^(auth|fwd)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", text, re.M)
    if med:
        md += ["Median over the rounds (servers alternate which runs first). `q/s`: dnsperf at "
               "saturation; p99: every answer's latency at a fixed rate both sustain; memory: peak RSS. "
               "`auth`: our zone's names (A, PTR, api, api-int, *.apps); `fwd`: names forwarded to an "
               "upstream (dnsmasq with cache-size=0). Ratio = ours / dnsmasq (q/s: above 1 is faster; "
               "p99: below 1 is faster).", "",
               "| answers | ours q/s | dnsmasq q/s | ratio | ours p99 ms | dnsmasq p99 ms | p99 ratio | ours peak KiB | dnsmasq peak KiB |",
               "|---|---|---|---|---|---|---|---|---|"]
        for m in med:
            md.append("| " + " | ".join(m) + " |")
        md.append("")
    md += ["<details><summary>every round</summary>", "", "```", text.strip(), "```", "</details>", ""]

sec, ok = section("bootstorm", "Boot storm: N simulated PXE clients vs rhcos_deploy::start_servers")
md += sec
storm = storm_runs("bootstorm")
if storm:
    md += [STORM_NOTE + " Clients start evenly over the arrival window.", ""]
    md += storm_tables("bootstorm", storm)
    xs = [str(d["clients"]) for d in storm]
    line_chart(os.path.join(res_dir, "bootstorm-cost.svg"), "Boot storm: server cost vs N",
               "clients (N)", "value", xs,
               [("server CPU s", [d["server_cpu_s"] for d in storm]),
                ("peak RSS MiB", [d["server_peak_rss_kib"] / 1024 for d in storm]),
                ("CPU ms / client", [d["server_cpu_s"] * 1000 / max(1, d["clients"]) for d in storm])])
    charts.append(("bootstorm-cost.svg", "Boot-storm cost vs N"))
    line_chart(os.path.join(res_dir, "bootstorm-latency.svg"), "Boot storm: client time, DHCP to Ignition",
               "clients (N)", "ms", xs,
               [("total p50", [d["total_p50_ms"] for d in storm]),
                ("total p99", [d["total_p99_ms"] for d in storm]),
                ("failed clients", [d["failed"] for d in storm])])
    charts.append(("bootstorm-latency.svg", "Boot-storm latency vs N"))

sec, ok = section("bootstorm-rate", "Boot storm at a constant arrival rate: memory against N")
md += sec
rate = storm_runs("bootstorm-rate")
if rate:
    md += [STORM_NOTE + " Clients arrive at a constant rate, so N grows the storm's length, "
           "not its peak concurrency: memory that grows with N here would be a leak or per-host "
           "state. The idle column is the server before the storm, with the N-host plan loaded.", ""]
    md += storm_tables("bootstorm-rate", rate)
sec, ok = section("bootstorm-burst", "Boot storm, every client at once")
md += sec
burst = storm_runs("bootstorm-burst")
if burst:
    md += [STORM_NOTE + " Every client starts at the same instant, as when power comes back to a "
           "whole room: the worst case for DHCP, TFTP and memory at once.", ""]
    md += storm_tables("bootstorm-burst", burst)
sec, ok = section("bootstorm-metrics", "Boot storm with the status page and metrics on")
md += sec
with_metrics = storm_runs("bootstorm-metrics")
if with_metrics:
    md += [STORM_NOTE + " Rows alternate the plan's `[status]` off and on (`N +metrics`: every "
           "event also feeds the per-host status rows and the Prometheus metrics, and `/metrics` "
           "is scraped after the storm), each against a fresh server, so a loaded machine "
           "weighs on both alike.", ""]
    md += storm_tables("bootstorm-metrics", with_metrics)


def storm_label(d):
    if d.get("pattern") == "burst":
        return f"{d['clients']} at once"
    return f"{d['clients']} in {d['arrival_ms'] / 1000:g} s"


if storm or rate or burst:
    runs = [(storm_label(d), d) for d in storm + rate + burst]
    runs.sort(key=lambda r: (r[1]["clients"], r[1]["arrival_ms"]))
    bar_chart(os.path.join(res_dir, "bootstorm-memory.svg"), "Boot storm: server memory vs N",
              "MiB", [name for name, _ in runs],
              [("peak RSS", [d["server_peak_rss_kib"] / 1024 for _, d in runs]),
               ("idle RSS (plan loaded)", [d["server_idle_rss_kib"] / 1024 for _, d in runs])])
    charts.append(("bootstorm-memory.svg", "Boot-storm memory vs N"))

# ---- lab vs rig
sec, ok = section("lab-vs-rig", "Lab vs reference rig: power-on to installed, per phase")
md += sec
lvr = []
for p in glob.glob(os.path.join(raw, "lab-vs-rig", "lab-vs-rig-*.json")):
    try:
        lvr.append(json.load(open(p)))
    except ValueError:
        pass
lvr.sort(key=lambda d: d["vms"])
if lvr:
    md += ["Both run QEMU under TCG on this machine with the same image size: the lab through "
           "rhcos-metal (`examples/lab`), the rig through dnsmasq + nginx "
           "(`ACCEL=tcg TUNED=1 MODE=bios`, router advertisements on, no ping, no ProxyDHCP wait). "
           "`rig / lab` above 1 means the lab is faster. The image phase is bounded by the TCG "
           "guest's gunzip, not by either server. With 4 VMs the lab alternates BIOS and UEFI "
           "(introspected) VMs: the comparison columns use its BIOS VMs, the last column all of them. "
           "Values are medians over every VM of every run; per-VM numbers are in "
           "raw/lab-vs-rig/lab-vs-rig-N.json.", ""]
    text = read("lab-vs-rig.out")
    md += [l.replace("### ", "#### ") for l in text.splitlines()] + [""]
    md += ["Commands:", ""] + [f"- `{d['commands']['lab']}` and `{d['commands']['rig']}`" for d in lvr] + [""]
    phases = ["dhcp", "on_to_script", "kernel_initrd", "image", "ignition", "total"]
    labels = ["DHCP", "on → script", "kernel + initrd", "image", "Ignition", "total"]
    series = []
    for d in lvr:
        series.append((f"lab, {d['vms']} VM", [d["lab"]["bios_median"].get(k) for k in phases]))
        series.append((f"rig, {d['vms']} VM", [d["rig"]["median"].get(k) for k in phases]))
    bar_chart(os.path.join(res_dir, "boot-phases.svg"), "Per-phase boot time: lab (rhcos-metal) vs reference rig",
              "seconds", labels, series)
    charts.append(("boot-phases.svg", "Per-phase boot time, lab vs rig"))

if charts:
    md += ["## Charts", ""] + [f"![{t}]({f})" for f, t in charts] + [""]

with open(os.path.join(res_dir, "RESULTS.md"), "w") as f:
    f.write("\n".join(md).rstrip() + "\n")
