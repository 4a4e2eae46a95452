sudo WORK=${TMPDIR:-/tmp}/rhcos-images-bench SIZE_MB=1024 RUNS=2 benches/image-pipeline/run.sh
