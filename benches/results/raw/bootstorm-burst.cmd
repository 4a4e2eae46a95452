sudo N='1000' PATTERN=burst KERNEL_MIB=8 INITRD_MIB=32 OUT=benches/results/raw/bootstorm-burst benches/bootstorm/run.sh
