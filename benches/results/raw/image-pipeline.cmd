sudo WORK=${TMPDIR:-/tmp}/rhcos-images-bench SIZE_MB=64 RUNS=1 benches/image-pipeline/run.sh
