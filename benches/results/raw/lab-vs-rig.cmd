sudo VMS=1 IMAGE_MIB=16 OUT=/work/main/benches/results/raw/lab-vs-rig benches/lab-vs-rig/run.sh
