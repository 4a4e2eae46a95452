sudo SIZE_MIB=64 HTTP_CONC='1 4 16' TFTP_SIZES_MIB='1' TFTP_CONC='1 4 16' REPEAT=1 benches/http-tftp/run.sh
