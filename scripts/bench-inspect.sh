#!/usr/bin/env bash
# Benchmark of the one-pass label-map statistics engine (`inspect`). Prints figures,
# asserts nothing about time (it fails only when the two methods disagree on counts).
#
# 1. generates a realistic whole-body label map (512x512x400 float32, ~100 labels,
#    ~40% labelled, .nii.gz level 1) and a shifted "ground truth" into bench-out/inspect/
#    (reused when present; BENCH_REGENERATE=1 forces a new one);
# 2. builds the release binaries;
# 3. times, in the same run, with /usr/bin/time -v (wall time, peak RSS):
#    (a) the reference wrapper's method: nib.load(p).get_fdata().astype(np.int64),
#        np.unique(..., return_counts=True);
#    (b) inspect --json (counts); (c) with --components; (d) with --ground-truth
#        (one pass over both maps); (e) compare_label_maps (pred vs gt only).
#
# (b)-(d) time `ctmr-skill inspect` when it works (the example binary `inspect_bench`,
# the same library call with JSON on stdout, stands in otherwise); (e) always runs
# the example, as compare_label_maps has no subcommand.
# Env: BENCH_SHAPE (default 512,512,400), BENCH_LABELS (100), BENCH_REPEAT (3 runs of
# each inspect method, median reported), PYTHON (.venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-.venv/bin/python}"
OUT="bench-out/inspect"
SHAPE="${BENCH_SHAPE:-512,512,400}"
LABELS="${BENCH_LABELS:-100}"
REPEAT="${BENCH_REPEAT:-3}"  # runs of each inspect method; the median is reported
mkdir -p "$OUT"

if [ ! -x /usr/bin/time ]; then
  echo "bench-inspect: /usr/bin/time is missing; install it: apt-get update && apt-get install -y time" >&2
  exit 2
fi

PRED="$OUT/body_pred.nii.gz"
GT="$OUT/body_gt.nii.gz"
STAMP="$OUT/shape-$SHAPE-labels-$LABELS"
if [ "${BENCH_REGENERATE:-0}" = 1 ] || [ ! -f "$STAMP" ] || [ ! -f "$PRED" ] || [ ! -f "$GT" ]; then
  rm -f "$OUT"/shape-*
  "$PY" scripts/bench/generate_body_map.py "$OUT" --shape "$SHAPE" --labels "$LABELS"
  touch "$STAMP"
fi

echo "bench-inspect: cargo build --release"
cargo build --release --quiet --bin ctmr-skill --example inspect_bench

# Prefer the real subcommand when it answers; otherwise the example stands in.
# compare_label_maps has no subcommand of its own: the example calls it.
COMPARE=(target/release/examples/inspect_bench --compare)
if target/release/ctmr-skill inspect "$PRED" --json >/dev/null 2>&1; then
  INSPECT=(target/release/ctmr-skill inspect)
  echo "bench-inspect: timing target/release/ctmr-skill inspect"
else
  INSPECT=(target/release/examples/inspect_bench)
  echo "bench-inspect: 'ctmr-skill inspect' does not answer; timing examples/inspect_bench"
fi

# Warm the page cache so every method reads the files from memory alike.
cat "$PRED" "$GT" >/dev/null

timed() { # name, command... (stdout of the last repeat goes to the caller)
  local name="$1"; shift
  local i
  for i in $(seq 1 "$REPEAT"); do
    if [ "$i" -lt "$REPEAT" ]; then
      /usr/bin/time -v -o "$OUT/$name.time.$i" "$@" >/dev/null
    else
      /usr/bin/time -v -o "$OUT/$name.time.$i" "$@"
    fi
  done
}

rm -f "$OUT"/*.time.*
echo "bench-inspect: (a) reference method (nibabel + numpy), once"
REPEAT=1 timed reference "$PY" scripts/bench/reference_counts.py "$PRED" "$OUT/reference_counts.json"
echo "bench-inspect: (b)-(e) $REPEAT runs each"
echo "bench-inspect: (b) inspect counts"
timed counts "${INSPECT[@]}" "$PRED" --json >"$OUT/counts.json"
echo "bench-inspect: (c) inspect --components"
timed components "${INSPECT[@]}" "$PRED" --json --components >"$OUT/components.json"
echo "bench-inspect: (d) inspect --ground-truth"
timed gt "${INSPECT[@]}" "$PRED" --json --ground-truth "$GT" >"$OUT/gt.json"
echo "bench-inspect: (e) compare_label_maps"
timed compare "${COMPARE[@]}" "$PRED" "$GT" >"$OUT/compare.json"

echo
echo "== inspect benchmark: $SHAPE float32, $LABELS labels, $(du -m "$PRED" | cut -f1) MiB .nii.gz; $(nproc) CPUs =="
"$PY" scripts/bench/summarize.py "$OUT"
