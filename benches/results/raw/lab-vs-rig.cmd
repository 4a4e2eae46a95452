sudo VMS='1 4' IMAGE_MIB=16 REPEAT=3 OUT=benches/results/raw/lab-vs-rig benches/lab-vs-rig/run.sh
