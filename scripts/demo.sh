#!/usr/bin/env bash
# README command 1: set up everything (Rust build, Python runtime, demo bundle weights,
# demo volume) and run the main job: a real MCP client session that calls run_script
# and then verify_evidence, printing where the evidence pack is and a short summary.
# With NV_SEGMENT_CTMR_ROOT pointing at a real checkout with weights, the real model runs
# instead of the demo bundle (input: $CTMR_DEMO_INPUT, default the demo volume).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh
cargo build --release --locked
bash scripts/setup-demo.sh

out="${CTMR_DEMO_OUTPUT:-runs/demo-$(date -u +%Y%m%dT%H%M%SZ)}"
input="${CTMR_DEMO_INPUT:-examples/demo-data/demo_ct.nii.gz}"
args=(--binary target/release/ctmr-skill --input "$input" --output-dir "$out")
if [ -n "${NV_SEGMENT_CTMR_ROOT:-}" ] && [ -f "$NV_SEGMENT_CTMR_ROOT/models/model.pt" ]; then
  echo "demo: NV_SEGMENT_CTMR_ROOT is set: running the real bundle at $NV_SEGMENT_CTMR_ROOT"
  args+=(--upstream-root "$NV_SEGMENT_CTMR_ROOT")
else
  echo "demo: running the project's DEMO bundle (synthetic labels, not NV-Segment-CTMR)"
  args+=(--upstream-root examples/demo-bundle)
fi
exec .venv/bin/python scripts/demo_client.py "${args[@]}"
