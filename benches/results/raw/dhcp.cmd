sudo RATES='1000 2000' CLIENTS=500 PERIOD=3 benches/dhcp/run.sh
