sudo N='10 100 1000' ARRIVAL_MS=10000 KERNEL_MIB=8 INITRD_MIB=32 OUT=benches/results/raw/bootstorm benches/bootstorm/run.sh
