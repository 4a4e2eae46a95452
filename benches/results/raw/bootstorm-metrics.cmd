sudo N='1000' STATUS='0 1 0 1' ARRIVAL_MS=10000 KERNEL_MIB=8 INITRD_MIB=32 benches/bootstorm/run.sh
