sudo N='2000 4000' RATE=100 KERNEL_MIB=8 INITRD_MIB=32 OUT=benches/results/raw/bootstorm-rate benches/bootstorm/run.sh
