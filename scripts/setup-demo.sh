#!/usr/bin/env bash
# Prepare the ctmr-skill DEMO bundle (synthetic intensity-based labels, NOT
# NV-Segment-CTMR, not for clinical use): its weights
# (examples/demo-bundle/models/model.pt) and the synthetic CT volume
# (examples/demo-data/demo_ct.nii.gz, plus its ground truth demo_ct_labels.nii.gz).
# Idempotent: both are deterministic; existing files are kept unless --force.
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

if [ "$FORCE" = 1 ] || [ ! -s "$WEIGHTS" ]; then
  "$PY" scripts/make-demo-weights.py --out "$WEIGHTS"
else
  echo "setup-demo: $WEIGHTS exists (use --force to rewrite)"
fi
if [ "$FORCE" = 1 ] || [ ! -s "$VOLUME" ] || [ ! -s "$LABELS" ]; then
  "$PY" scripts/make-demo-volume.py "$VOLUME" --labels-out "$LABELS"
else
  echo "setup-demo: $VOLUME exists (use --force to rewrite)"
fi
echo "setup-demo: ready. Try:"
echo "  cd examples/demo-bundle && ../../$PY -m monai.bundle run --config_file configs/inference.json \\"
echo "    --input_dict \"{'image': '$PWD/$VOLUME', 'label_prompt': [1, 3]}\" --output_dir $PWD/runs/demo --modality CT_BODY"
