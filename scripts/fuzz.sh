#!/usr/bin/env bash
# Coverage-guided fuzzing on stable Rust with AFL++ (cargo-afl).
#
#   scripts/fuzz.sh [target...]       every target in fuzz/ when none is named
#
# Installs cargo-afl from crates.io if missing, builds AFL++ from cargo-afl's own source
# (`cargo afl config --build`, once per toolchain), builds the targets of fuzz/Cargo.toml with
# the `afl` feature, seeds each from fuzz/seeds/<target>/ and fuzzes it for FUZZ_SECONDS
# (default 60). Prints execs/s per target. Fails on any crash or hang, copying each crashing
# or hanging input to <crate>/tests/fixtures/fuzz-regressions/<target>/ for a regression test.
#
# Environment: FUZZ_SECONDS (per target, default 60), FUZZ_TIMEOUT_MS (a run longer than
# this is a hang, default 2000), FUZZ_OUT (AFL's output directories, default under the
# target dir), CARGO_TARGET_DIR (the AFL build goes to its afl/ subdirectory).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${FUZZ_SECONDS:-60}
timeout_ms=${FUZZ_TIMEOUT_MS:-2000}
target_dir=${CARGO_TARGET_DIR:-$root/fuzz/target}/afl
out_root=${FUZZ_OUT:-$target_dir/afl-out}

# AFL++ refuses to start when core dumps go to a helper program (a `|` core_pattern, as with
# systemd-coredump or apport): it would then miss crashes that the kernel reports late. The
# targets abort in-process on a panic, which AFL sees as a crash either way, so say so instead
# of changing the machine's core_pattern.
if [[ "$(cat /proc/sys/kernel/core_pattern 2>/dev/null || echo core)" == \|* ]]; then
    export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
fi
# Shared machines: no CPU governor check, no pinning to a core another job may hold, and the
# plain status output instead of the curses UI.
export AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1

if ! cargo afl --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-afl from crates.io"
    cargo install cargo-afl --locked --version '^0.18'
fi
# Builds AFL++ and its runtime for this toolchain; a second run says it is already built.
if ! config_out=$(cargo afl config --build 2>&1); then
    if ! grep -q "already built" <<<"$config_out"; then
        echo "$config_out" >&2
        echo "fuzz: cargo afl config --build failed" >&2
        exit 1
    fi
fi

# Targets: the [[bin]]s of fuzz/Cargo.toml, so a new target is picked up once it has its
# [[bin]] (cargo-fuzz needs that too); a file in fuzz_targets/ without one is an error.
targets_all=$(cargo metadata --no-deps --format-version 1 --manifest-path fuzz/Cargo.toml |
    python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
bins = {t["name"]: t["src_path"] for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]}
files = {os.path.realpath(os.path.join("fuzz/fuzz_targets", f)) for f in os.listdir("fuzz/fuzz_targets") if f.endswith(".rs")}
missing = files - {os.path.realpath(p) for p in bins.values()}
if missing:
    sys.exit("fuzz: no [[bin]] in fuzz/Cargo.toml for " + ", ".join(sorted(missing)))
print("\n".join(sorted(bins)))
')
if [[ $# -gt 0 ]]; then targets="$*"; else targets=$targets_all; fi
for t in $targets; do
    grep -qx "$t" <<<"$targets_all" || { echo "fuzz: unknown target $t (have: $(echo $targets_all))" >&2; exit 1; }
    [[ -n "$(ls -A "fuzz/seeds/$t" 2>/dev/null)" ]] ||
        { echo "fuzz: fuzz/seeds/$t/ is empty: commit a few small valid inputs" >&2; exit 1; }
done

echo "fuzz: building $(echo $targets) for AFL++"
bin_args=()
for t in $targets; do bin_args+=(--bin "$t"); done
CARGO_TARGET_DIR=$target_dir cargo afl build --release --manifest-path fuzz/Cargo.toml \
    --no-default-features --features afl "${bin_args[@]}"

# The crate a target fuzzes: the first workspace crate its source `use`s.
crate_dir() {
    cargo metadata --no-deps --format-version 1 | python3 -c '
import json, os, re, sys
meta = json.load(sys.stdin)
dirs = {p["name"].replace("-", "_"): os.path.dirname(p["manifest_path"]) for p in meta["packages"]}
src = open(sys.argv[1]).read()
for name in re.findall(r"^use (\w+)::", src, re.M):
    if name in dirs:
        print(os.path.relpath(dirs[name]))
        break
' "fuzz/fuzz_targets/$1.rs"
}

failed=0
summary=()
for t in $targets; do
    out=$out_root/$t
    rm -rf "$out"
    mkdir -p "$out"
    echo "fuzz: $t for ${seconds}s (seeds fuzz/seeds/$t, output $out)"
    if ! cargo afl fuzz -i "fuzz/seeds/$t" -o "$out" -V "$seconds" -t "$timeout_ms" -- \
        "$target_dir/release/$t" >"$out/afl.log" 2>&1; then
        tail -n 30 "$out/afl.log" >&2
        echo "fuzz: afl-fuzz could not run $t (a seed that crashes or hangs stops it too)" >&2
        failed=1
        summary+=("$t: afl-fuzz failed, see $out/afl.log")
        continue
    fi
    stats=$out/default/fuzzer_stats
    execs=$(sed -n 's/^execs_done *: *//p' "$stats")
    run_time=$(sed -n 's/^run_time *: *//p' "$stats")
    crashes=$(sed -n 's/^saved_crashes *: *//p' "$stats")
    hangs=$(sed -n 's/^saved_hangs *: *//p' "$stats")
    paths=$(sed -n 's/^corpus_count *: *//p' "$stats")
    rate=$((execs / (run_time > 0 ? run_time : 1)))
    summary+=("$t: $execs execs in ${run_time}s = $rate execs/s, corpus $paths, crashes $crashes, hangs $hangs")
    if [[ "$crashes" != 0 || "$hangs" != 0 ]]; then
        failed=1
        dest=$(crate_dir "$t")/tests/fixtures/fuzz-regressions/$t
        mkdir -p "$dest"
        for f in "$out"/default/crashes/id:* "$out"/default/hangs/id:*; do
            [[ -e "$f" ]] || continue
            case $(basename "$(dirname "$f")") in crashes) kind=crash ;; *) kind=hang ;; esac
            name=$kind-$(sha256sum "$f" | cut -c1-16)
            cp "$f" "$dest/$name"
            echo "fuzz: $t found a $kind: $dest/$name" >&2
        done
        cat >&2 <<EOF
fuzz: replay with   $target_dir/release/$t < <file>   (or cargo +nightly fuzz run $t <file>)
fuzz: then fix the bug, add a test in $(crate_dir "$t")/tests/it/ that feeds the file to what
fuzz: fuzz/fuzz_targets/$t.rs calls, and commit the file with the test.
EOF
    fi
done

echo "fuzz: summary (FUZZ_SECONDS=$seconds)"
printf '  %s\n' "${summary[@]}"
exit $failed
