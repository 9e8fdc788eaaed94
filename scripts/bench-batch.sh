#!/usr/bin/env bash
# Benchmark (no assertions): N demo volumes as N single `ctmr-skill run` calls versus
# one `ctmr-skill run-batch`, on the project's DEMO bundle (synthetic labels, NOT
# NV-Segment-CTMR; not for clinical use). Prints each wall time and the ratio; the
# difference is what N-1 extra process start-ups and model loads cost.
#
# Usage: scripts/bench-batch.sh [N] [SHAPE_X SHAPE_Y SHAPE_Z]   (default: 3 volumes, 48 48 32)
# Env: CTMR_SKILL_BIN (default target/debug/ctmr-skill, built if missing),
#      BENCH_OUT (default bench-out/batch-<time>), BENCH_DEVICE (default cpu).
set -euo pipefail
cd "$(dirname "$0")/.."

n="${1:-3}"
shape=("${2:-48}" "${3:-48}" "${4:-32}")
py=.venv/bin/python
bin="${CTMR_SKILL_BIN:-target/debug/ctmr-skill}"
device="${BENCH_DEVICE:-cpu}"
out="${BENCH_OUT:-bench-out/batch-$(date -u +%Y%m%dT%H%M%SZ)}"

if [ ! -x "$py" ]; then
  echo "bench-batch: $py not found; run scripts/setup-python.sh first" >&2
  exit 1
fi
[ -x "$bin" ] || cargo build --quiet
[ -f examples/demo-bundle/models/model.pt ] || bash scripts/setup-demo.sh

mkdir -p "$out/data"
for i in $(seq 1 "$n"); do
  "$py" scripts/make-demo-volume.py "$out/data/vol$i.nii.gz" --shape "${shape[@]}" --seed "$i" >/dev/null
done
export CTMR_SKILL_PYTHON="${CTMR_SKILL_PYTHON:-$PWD/$py}"

now() { date +%s.%N; }

t0=$(now)
for i in $(seq 1 "$n"); do
  "$bin" run "$out/data/vol$i.nii.gz" --modality CT_BODY --device "$device" \
    --upstream-root examples/demo-bundle --output-dir "$out/single/vol$i" >/dev/null 2>"$out/single-vol$i.stderr" \
    || echo "bench-batch: single run $i failed (see $out/single-vol$i.stderr)" >&2
done
t1=$(now)
"$bin" run-batch --input-dir "$out/data" --modality CT_BODY --device "$device" \
  --upstream-root examples/demo-bundle --output-root "$out/batch" >"$out/cohort.json" 2>"$out/batch.stderr" \
  || echo "bench-batch: run-batch exited $? (see $out/batch.stderr)" >&2
t2=$(now)

"$py" - "$n" "$t0" "$t1" "$t2" "$out" <<'PY'
import json, sys
n = int(sys.argv[1]); t0, t1, t2 = map(float, sys.argv[2:5]); out = sys.argv[5]
single, batch = t1 - t0, t2 - t1
print(f"volumes:             {n} (demo bundle, synthetic; not NV-Segment-CTMR)")
print(f"{n} x ctmr-skill run:  {single:8.1f} s  ({single / n:.1f} s per volume)")
print(f"1 x run-batch:       {batch:8.1f} s  ({batch / n:.1f} s per volume)")
print(f"ratio single/batch:  {single / batch:8.2f}")
try:
    cohort = json.load(open(f"{out}/cohort.json"))
    attempts = cohort.get("attempts", [])
    upstream = sum(a["seconds"] for a in attempts)
    print(f"batch: status {cohort['status']}, {len(attempts)} upstream attempt(s), {upstream:.1f} s in the upstream")
except Exception as e:  # the figures above stand on their own
    print(f"(no cohort summary: {e})")
print(f"outputs: {out}")
PY
