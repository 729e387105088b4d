#!/bin/bash
# `replay verify` speed on the sample, builds interleaved: N runs each, median and best.
# usage: benches/scripts/vbench.sh N BINARY...
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=$1; shift
for _ in $(seq "$N"); do
  for b in "$@"; do
    echo "$b $("$b" replay verify "$ROOT/assets/replays/sample.arenareplay" | grep -o '([0-9]*x' | tr -d '(x')"
  done
done > /tmp/vbench.out
python3 - <<'PY'
import collections, statistics
runs = collections.defaultdict(list)
for line in open("/tmp/vbench.out"):
    binary, speed = line.split()
    runs[binary].append(int(speed))
for binary, speeds in runs.items():
    print(binary, "median %d max %d n %d" % (statistics.median(speeds), max(speeds), len(speeds)))
PY
