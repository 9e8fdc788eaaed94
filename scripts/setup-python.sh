#!/usr/bin/env bash
# Create (or reuse) the project's Python runtime in .venv: the packages the upstream
# NV-Segment-CTMR bundle needs to run through `python -m monai.bundle run`, plus the
# test-only clients (the official MCP Python SDK, pytest).
# Idempotent: a venv whose stamp matches the requirement list is reused as is.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${CTMR_VENV:-.venv}"
PY="${PYTHON:-python3}"
REQS=(
  "monai>=1.5,<1.6" "numpy<2" nibabel scipy typer PyYAML fire huggingface_hub
  pytorch-ignite einops
  "mcp>=1.20" pytest jsonschema
  # tests/py/test_dicom_input.py: DICOM series written with pydicom, and an independent
  # converter (SimpleITK, GDCM's reader) to compare ctmr-skill's conversion with
  "pydicom>=3" SimpleITK
  # scripts/bench-tokens.py: OpenAI BPE vocabularies shipped inside the package (works offline)
  "bpe-openai>=0.1.4"
)
STAMP="$VENV/.ctmr-skill-requirements"
WANT="$(printf '%s\n' "${REQS[@]}")"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "setup-python: $VENV is up to date ($("$VENV/bin/python" --version))"
  exit 0
fi

echo "setup-python: creating $VENV with $($PY --version)"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
echo "setup-python: installing ${REQS[*]} (torch comes with monai; several GB, about 2 minutes)"
if ! "$VENV/bin/python" -m pip install --quiet --progress-bar off "${REQS[@]}"; then
  echo "setup-python: pip could not install the runtime. Check that the package registry" >&2
  echo "  is reachable (pip config list; PIP_INDEX_URL) and that the disk has ~6 GB free." >&2
  exit 1
fi
"$VENV/bin/python" - <<'PY'
import monai, torch, nibabel, numpy
print(f"setup-python: monai {monai.__version__}, torch {torch.__version__}, "
      f"nibabel {nibabel.__version__}, numpy {numpy.__version__}, cuda={torch.cuda.is_available()}")
PY
printf '%s' "$WANT" > "$STAMP"
