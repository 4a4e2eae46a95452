sudo N='10 100 1000' ARRIVAL_MS=10000 KERNEL_MIB=1 INITRD_MIB=1 OUT=benches/results/raw/bootstorm benches/bootstorm/run.sh
