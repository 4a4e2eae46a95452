sudo VMS='1 4' IMAGE_MIB=16 OUT=/work/main/benches/results/full/raw/lab-vs-rig benches/lab-vs-rig/run.sh
