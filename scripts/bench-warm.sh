#!/usr/bin/env bash
# Benchmark (no assertions): N sequential run_script calls over MCP, one-shot against warm
# workers, and the raw documented command against `ctmr-skill run`; see scripts/bench_warm.py.
# DEMO bundle (synthetic labels, NOT NV-Segment-CTMR); not for clinical use.
#
# Usage: scripts/bench-warm.sh [N]   (default 5)
# Env: CTMR_SKILL_BIN (default target/release/ctmr-skill, built if missing),
#      BENCH_OUT (default bench-out/warm-<time>), BENCH_DEVICE (default cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
bin="${CTMR_SKILL_BIN:-target/release/ctmr-skill}"
[ -x "$py" ] || { echo "bench-warm: run scripts/setup-python.sh first" >&2; exit 1; }
[ -x "$bin" ] || cargo build --release --quiet
[ -f examples/demo-bundle/models/model.pt ] || bash scripts/setup-demo.sh
export CTMR_SKILL_PYTHON="${CTMR_SKILL_PYTHON:-$PWD/$py}"
exec "$py" scripts/bench_warm.py "$bin" "${BENCH_OUT:-bench-out/warm-$(date -u +%Y%m%dT%H%M%SZ)}" "${1:-5}" \
  --device "${BENCH_DEVICE:-cpu}"
