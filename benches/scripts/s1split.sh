#!/bin/bash
# Scenario S1's server CPU split into user and kernel time (/proc over 15 s of a 25 s window).
# usage: benches/scripts/s1split.sh SERVER_BINARY [N, default 400]
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$1; N=${2:-400}; PORT=$((9700 + RANDOM % 50))
"$BIN" --scenario s1 --no-lan --bind 127.0.0.1:$PORT > /tmp/split-srv.log 2>&1 &
SRV=$!
sleep 1
LOADGEN_THREADS=1 "$ROOT/target/release/loadgen" --url ws://127.0.0.1:$PORT/ws --clients "$N" --warmup 3 --window 25 --json \
  > /tmp/split-lg.log 2>&1 &
LG=$!
sleep 10
read -r u0 s0 <<< "$(awk '{print $14, $15}' /proc/$SRV/stat)"
sleep 15
read -r u1 s1 <<< "$(awk '{print $14, $15}' /proc/$SRV/stat)"
wait $LG
kill $SRV; wait $SRV 2>/dev/null
python3 -c "
t = $(getconf CLK_TCK); n = $N
u = ($u1 - $u0) / t / 15; s = ($s1 - $s0) / t / 15
print('user %.3f sys %.3f cores; ms/client-s user %.3f sys %.3f total %.3f' % (u, s, u * 1000 / n, s * 1000 / n, (u + s) * 1000 / n))"
