#!/usr/bin/env bash
# Prepare the ctmr-skill DEMO bundle (synthetic intensity-based labels, NOT
# NV-Segment-CTMR, not for clinical use): its weights
# (examples/demo-bundle/models/model.pt) and the synthetic CT volume
# (examples/demo-data/demo_ct.nii.gz, plus its ground truth demo_ct_labels.nii.gz).
# Idempotent: both are deterministic; an existing file is kept unless it is older than
# what it is made from (its generator script, the bundle's metadata.json) or --force.
# Needs the project venv from scripts/setup-python.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${CTMR_VENV:-.venv}"
PY="$VENV/bin/python"
FORCE=0
case "${1:-}" in
  "") ;;
  --force) FORCE=1 ;;
  *) echo "usage: scripts/setup-demo.sh [--force]" >&2; exit 2 ;;
esac

if [ ! -x "$PY" ]; then
  echo "setup-demo: $PY not found. Run scripts/setup-python.sh first (it creates $VENV)." >&2
  exit 1
fi
if ! "$PY" -c "import monai, torch, nibabel" 2>/dev/null; then
  echo "setup-demo: $PY cannot import monai/torch/nibabel. Re-run scripts/setup-python.sh." >&2
  exit 1
fi

WEIGHTS=examples/demo-bundle/models/model.pt
VOLUME=examples/demo-data/demo_ct.nii.gz
LABELS=examples/demo-data/demo_ct_labels.nii.gz

# True when $1 is missing, empty, or older than any of the other arguments.
stale() {
  local target="$1"; shift
  [ "$FORCE" = 1 ] || [ ! -s "$target" ] && return 0
  local source
  for source in "$@"; do [ "$source" -nt "$target" ] && return 0; done
  return 1
}

if stale "$WEIGHTS" scripts/make-demo-weights.py examples/demo-bundle/configs/metadata.json; then
  "$PY" scripts/make-demo-weights.py --out "$WEIGHTS"
else
  echo "setup-demo: $WEIGHTS is up to date (use --force to rewrite)"
fi
if stale "$VOLUME" scripts/make-demo-volume.py || stale "$LABELS" scripts/make-demo-volume.py; then
  "$PY" scripts/make-demo-volume.py "$VOLUME" --labels-out "$LABELS"
else
  echo "setup-demo: $VOLUME is up to date (use --force to rewrite)"
fi
echo "setup-demo: ready. Try:"
echo "  cd examples/demo-bundle && ../../$PY -m monai.bundle run --config_file configs/inference.json \\"
echo "    --input_dict \"{'image': '$PWD/$VOLUME', 'label_prompt': [1, 3]}\" --output_dir $PWD/runs/demo --modality CT_BODY"
