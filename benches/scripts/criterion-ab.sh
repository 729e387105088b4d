#!/bin/bash
# Two builds' criterion benches side by side: ROUNDS rounds, each running the before and then
# the after binary of every BENCH:FILTER pair, pinned to one core (taskset -c 1), 3 s of
# measurement each; prints every median and the medians of medians.
# usage: benches/scripts/criterion-ab.sh BEFORE_TARGET_DIR AFTER_TARGET_DIR ROUNDS BENCH:FILTER...
#   (the bench binaries built first: cargo bench -p arena-benches --bench BENCH --no-run)
set -u
BEFORE=$(realpath "$1"); AFTER=$(realpath "$2"); ROUNDS=$3; shift 3
cd "$(dirname "$0")/.." || exit 1
out=$(mktemp)
for _ in $(seq "$ROUNDS"); do
  for pair in "$@"; do
    bench=${pair%%:*}; filter=${pair#*:}
    for side in before after; do
      dir=$BEFORE; [ "$side" = after ] && dir=$AFTER
      bin=$(ls -t "$dir"/release/deps/"$bench"-* | grep -v '\.d$' | head -1)
      taskset -c 1 "$bin" --bench --noplot --measurement-time 3 --warm-up-time 1 "$filter" 2>/dev/null |
        awk -v side="$side" '/^[a-z_]+\/[A-Za-z0-9_\/]+/ {name=$1} /time:/ {print name, side, $4, $5}' >> "$out"
    done
  done
done
cat "$out"
python3 - "$out" <<'PY'
import collections, statistics, sys
unit = {"ns": 1e-3, "µs": 1.0, "ms": 1e3, "s": 1e6}
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, side, value, u = line.split()
    runs[(name, side)].append(float(value) * unit[u])
for name in sorted({n for n, _ in runs}):
    b, a = statistics.median(runs[(name, "before")]), statistics.median(runs[(name, "after")])
    print(f"{name}: before {b:.1f} µs, after {a:.1f} µs, after/before {a / b:.2f} (n {len(runs[(name, 'after')])})")
PY
rm -f "$out"
