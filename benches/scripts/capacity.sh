#!/bin/bash
# The capacity point (BENCHMARKS.md): 100 rooms x 10 players, 20 Hz snapshots, on loopback.
# usage: benches/scripts/capacity.sh SERVER_BINARY LABEL [TICK_HZ, default 60]
# Prints the server's and the bots client's CPU (from /proc over the middle 20 s of a 40 s run)
# and the per-room tick p99 (median and worst room); the bots' JSON is in /tmp/cap-LABEL.json.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$1; LABEL=$2; HZ=${3:-60}; PORT=$((18100 + RANDOM % 100))
"$BIN" --bind 127.0.0.1:$PORT --no-lan --bots 0 --max-rooms 128 --room-creates-per-minute 1000 --no-replay \
  --tick-hz "$HZ" --snapshot-hz 20 > /tmp/cap-srv.log 2>&1 &
SRV=$!
sleep 1
"$ROOT/target/release/arena-server" bots --url ws://127.0.0.1:$PORT/ws --count 1000 --rooms 100 --room-bots 0 \
  --input-hz "$HZ" --seconds 40 --json > "/tmp/cap-$LABEL.json" 2> "/tmp/cap-$LABEL.err" &
BOTS=$!
sleep 12
TCK=$(getconf CLK_TCK)
s0=$(awk '{print $14+$15}' /proc/$SRV/stat); b0=$(awk '{print $14+$15}' /proc/$BOTS/stat)
sleep 20
s1=$(awk '{print $14+$15}' /proc/$SRV/stat); b1=$(awk '{print $14+$15}' /proc/$BOTS/stat)
curl -s http://127.0.0.1:$PORT/metrics > "/tmp/cap-metrics-$LABEL.txt"
wait $BOTS
kill $SRV; wait $SRV 2>/dev/null
python3 - "$LABEL" "$s0" "$s1" "$b0" "$b1" "$TCK" <<'PY'
import json, statistics, sys
label, s0, s1, b0, b1, tck = sys.argv[1], *map(float, sys.argv[2:])
p99 = [float(l.split()[-1]) * 1000 for l in open(f"/tmp/cap-metrics-{label}.txt") if l.startswith("arena_room_tick_p99_seconds")]
bots = [json.loads(l) for l in open(f"/tmp/cap-{label}.json") if l.startswith("{")]
print(label, "server cores %.3f bots cores %.3f rooms %d tick p99 median %.2f worst %.2f ms" % (
    (s1 - s0) / tck / 20, (b1 - b0) / tck / 20, len(p99),
    statistics.median(p99) if p99 else -1, max(p99) if p99 else -1))
if bots:
    print({k: v for k, v in bots[-1].items() if not isinstance(v, (list, dict))})
PY
