#!/usr/bin/env bash
# Image pipeline benchmark: rhcos-images' fetch + sha256 + gunzip + sha256 against the shell
# pipeline a user would write, both reading the same raw.gz from a loopback nginx in the same run.
#
#   SIZE_MB=256 benches/image-pipeline/run.sh       # quick
#   benches/image-pipeline/run.sh                   # 1 GiB (default)
#
# Environment:
#   SIZE_MB   raw image size in MiB (default 1024)
#   RUNS      runs of each contender, alternating; the best of each is reported (default 2)
#   WORK      directory for the generated image, cached across runs by size
#             (default ${TMPDIR:-/tmp}/rhcos-images-bench)
#   GZIP_LEVEL gzip level for the image (default 6, like RHCOS builds)
#
# Contenders (each writes the raw image to a file in $WORK and checks both hashes):
#   ours      fetch-images --output FILE --decompress (BufWriter to the file, no fsync)
#   ours+cache fetch-images --dest DIR --decompress (temp file, verify, fsync, rename)
#   pipeline  curl -s URL | tee >(sha256sum >&2) | gzip -dc | tee >(sha256sum >&2) > out
#   pipeline+sync  the same, then `sync out` so it is as durable as ours+cache
# Needs: nginx (nginx-light), curl, gzip, python3, /usr/bin/time (package `time`), cargo.
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-2}
GZIP_LEVEL=${GZIP_LEVEL:-6}
WORK=${WORK:-${TMPDIR:-/tmp}/rhcos-images-bench}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

for tool in nginx curl gzip python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (run scripts/install-deps.sh)" >&2; exit 1; }
done

mkdir -p "$WORK"
RUN=$(mktemp -d "$WORK/run.XXXXXX")
NGINX_PID=
cleanup() {
    if [ -n "$NGINX_PID" ]; then kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
    rm -rf "$RUN"
}
trap cleanup EXIT INT TERM

# 1. A deterministic raw image: per 1 MiB block, zeros / PRNG noise / PRNG noise / text-like
#    records, which gzip -6 compresses to roughly half like a real metal image.
IMG=$WORK/image-${SIZE_MB}m.raw
GZ=$IMG.gz
if [ ! -s "$GZ" ] || [ ! -s "$IMG.sha256" ]; then
    echo "generating ${SIZE_MB} MiB raw image and gzip -$GZIP_LEVEL (cached in $WORK)" >&2
    python3 - "$IMG" "$SIZE_MB" <<'PY'
import random, sys
path, mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261124)
words = [("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))).encode() for _ in range(4096)]
with open(path, "wb") as f:
    for i in range(mb):
        kind = i % 4
        if kind == 0:
            f.write(bytes(1 << 20))
        elif kind in (1, 2) and i % 8 < 4:
            f.write(rng.randbytes(1 << 20))
        else:
            out = bytearray()
            while len(out) < (1 << 20):
                out += b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
            f.write(bytes(out[: 1 << 20]))
PY
    gzip -"$GZIP_LEVEL" -c "$IMG" >"$GZ.tmp" && mv "$GZ.tmp" "$GZ"
    sha256sum "$IMG" | cut -d' ' -f1 >"$IMG.sha256"
    rm -f "$IMG"
fi
RAW_SHA=$(cat "$IMG.sha256")
GZ_SHA=$(sha256sum "$GZ" | cut -d' ' -f1)
GZ_BYTES=$(stat -c %s "$GZ")
RAW_BYTES=$((SIZE_MB * 1024 * 1024))

# 2. nginx in the foreground on a free loopback port, config and logs in $RUN.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$RUN/www" "$RUN/nginx"
ln "$GZ" "$RUN/www/image.raw.gz" 2>/dev/null || cp "$GZ" "$RUN/www/image.raw.gz"
cat >"$RUN/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $RUN/nginx/nginx.pid;
error_log $RUN/nginx/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    default_type application/octet-stream;
    client_body_temp_path $RUN/nginx/body;
    proxy_temp_path $RUN/nginx/proxy;
    fastcgi_temp_path $RUN/nginx/fastcgi;
    uwsgi_temp_path $RUN/nginx/uwsgi;
    scgi_temp_path $RUN/nginx/scgi;
    server {
        listen 127.0.0.1:$PORT;
        root $RUN/www;
    }
}
CONF
nginx -c "$RUN/nginx/nginx.conf" -e "$RUN/nginx/error.log" &
NGINX_PID=$!
URL=http://127.0.0.1:$PORT/image.raw.gz
for _ in $(seq 100); do curl -sfI "$URL" >/dev/null && break; sleep 0.05; done
curl -sfI "$URL" >/dev/null || { echo "nginx did not come up" >&2; cat "$RUN/nginx/error.log" >&2; exit 1; }

cat >"$RUN/stream.json" <<JSON
{"stream": "bench", "architectures": {"x86_64": {"artifacts": {"metal": {"release": "bench",
  "formats": {"raw.gz": {"disk": {"location": "$URL", "sha256": "$GZ_SHA",
  "uncompressed-sha256": "$RAW_SHA"}}}}}}}}
JSON

# 3. Our binary, release build.
(cd "$ROOT" && cargo build --release -q -p examples --example fetch-images)
BIN=$ROOT/target/release/examples/fetch-images

now() { date +%s.%N; }
best() { python3 -c 'import sys; print(min(float(x) for x in sys.argv[1:]))' "$@"; }
declare -A TIMES RSS

run_ours() {
    rm -f "$RUN/out.ours"
    local t0 t1
    t0=$(now)
    /usr/bin/time -v -o "$RUN/time.ours" "$BIN" --stream "$RUN/stream.json" --artifacts raw.gz \
        --decompress --quiet --output "$RUN/out.ours" >"$RUN/log.ours" 2>&1 \
        || { cat "$RUN/log.ours" >&2; exit 1; }
    t1=$(now)
    grep -q "sha256 $RAW_SHA" "$RUN/log.ours" || { echo "ours: wrong hash" >&2; cat "$RUN/log.ours" >&2; exit 1; }
    TIMES[ours]+="$(echo "$t1 - $t0" | bc -l) "
    RSS[ours]+="$(awk -F': ' '/Maximum resident/ {print $2}' "$RUN/time.ours") "
    rm -f "$RUN/out.ours"
}

run_cache() {
    rm -rf "$RUN/cache"
    local t0 t1
    t0=$(now)
    /usr/bin/time -v -o "$RUN/time.cache" "$BIN" --stream "$RUN/stream.json" --artifacts raw.gz \
        --decompress --quiet --dest "$RUN/cache" >"$RUN/log.cache" 2>&1 \
        || { cat "$RUN/log.cache" >&2; exit 1; }
    t1=$(now)
    [ -f "$RUN/cache/$RAW_SHA" ] || { echo "ours+cache: no verified file" >&2; cat "$RUN/log.cache" >&2; exit 1; }
    TIMES[cache]+="$(echo "$t1 - $t0" | bc -l) "
    RSS[cache]+="$(awk -F': ' '/Maximum resident/ {print $2}' "$RUN/time.cache") "
    rm -rf "$RUN/cache"
}

run_pipeline() {  # $1 = pipeline | pipeline+sync
    rm -f "$RUN/out.pipe"
    local t0 t1
    t0=$(now)
    bash -c 'set -o pipefail; curl -s "$1" | tee >(sha256sum >&2) | gzip -dc | tee >(sha256sum >&2) > "$2"; wait' \
        _ "$URL" "$RUN/out.pipe" 2>"$RUN/log.pipe"
    [ "$1" = pipeline+sync ] && sync "$RUN/out.pipe"
    t1=$(now)
    # The process substitutions can print just after the pipeline ends.
    for _ in $(seq 50); do [ "$(grep -c . "$RUN/log.pipe")" -ge 2 ] && break; sleep 0.1; done
    grep -q "$RAW_SHA" "$RUN/log.pipe" && grep -q "$GZ_SHA" "$RUN/log.pipe" \
        || { echo "pipeline: wrong hash" >&2; cat "$RUN/log.pipe" >&2; exit 1; }
    TIMES[$1]+="$(echo "$t1 - $t0" | bc -l) "
    rm -f "$RUN/out.pipe"
}

command -v bc >/dev/null || bc() { python3 -c 'import sys; print(eval(sys.stdin.read()))'; }

# Warm the page cache for the served file so neither contender pays for the first read.
cat "$RUN/www/image.raw.gz" >/dev/null
for _ in $(seq "$RUNS"); do
    run_pipeline pipeline
    run_ours
    run_pipeline pipeline+sync
    run_cache
done

echo
echo "image: ${SIZE_MB} MiB raw ($RAW_BYTES bytes), $GZ_BYTES bytes gzip -$GZIP_LEVEL; best of $RUNS runs; $(nproc) CPUs"
printf '%-15s %9s %12s %12s %12s\n' contender seconds 'raw MB/s' 'gz MB/s' 'peak RSS'
for c in pipeline ours pipeline+sync cache; do
    # shellcheck disable=SC2086
    s=$(best ${TIMES[$c]})
    rss=-
    # shellcheck disable=SC2086
    [ -n "${RSS[$c]:-}" ] && rss="$(python3 -c 'import sys; print(max(int(x) for x in sys.argv[1:]))' ${RSS[$c]}) KiB"
    name=$c; [ "$c" = cache ] && name=ours+cache
    printf '%-15s %9.2f %12.1f %12.1f %12s\n' "$name" "$s" \
        "$(python3 -c "print($RAW_BYTES/$s/1e6)")" "$(python3 -c "print($GZ_BYTES/$s/1e6)")" "$rss"
    eval "BEST_${c//[^a-z]/_}=$s"
done
echo
python3 - "$BEST_pipeline" "$BEST_ours" "$BEST_pipeline_sync" "$BEST_cache" <<'PY'
import sys
p, o, ps, c = map(float, sys.argv[1:])
print(f"ratio ours / pipeline (no fsync either side):      {p / o:.2f}x")
print(f"ratio ours+cache / pipeline+sync (both durable):    {ps / c:.2f}x")
PY
echo "all runs: ${TIMES[*]}" >&2
