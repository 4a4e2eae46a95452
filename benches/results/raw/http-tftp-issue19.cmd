sudo BIN_DIR=<release dir> SIZE_MIB=512 HTTP_CONC='1 4 16' TFTP_SIZES_MIB='1 32' TFTP_CONC='1 16' REPEAT=2 benches/http-tftp/run.sh
