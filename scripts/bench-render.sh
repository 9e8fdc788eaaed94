#!/usr/bin/env bash
# Render time of a 512x512x400 float32 .nii.gz label map (and its image) against one
# inspection pass of the same file. Prints the figures; writes only under $BENCH_DIR
# (default /tmp/ctmr-bench-render), which it does not delete (the volumes are reused).
#
#   scripts/bench-render.sh            # needs target/release/ctmr-skill and .venv
#
# `ctmr-skill render` = one inspection pass (centroids, volumes) + one pass that keeps
# only the drawn planes; inside a run, the evidence builder's inspection is reused, so
# the picture costs the second pass only ("render - inspect" below).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CTMR_SKILL_BIN:-target/release/ctmr-skill}
PY=${CTMR_SKILL_PYTHON:-.venv/bin/python}
DIR=${BENCH_DIR:-/tmp/ctmr-bench-render}
mkdir -p "$DIR"
if [ ! -f "$DIR/mask.nii.gz" ] || [ ! -f "$DIR/image.nii.gz" ]; then
  "$PY" - "$DIR" <<'PY'
import sys
import nibabel as nib
import numpy as np
out = sys.argv[1]
shape = (512, 512, 400)
x, y = np.meshgrid(np.arange(512) - 256, np.arange(512) - 256, indexing="ij")
mask = np.zeros(shape, dtype=np.float32)
image = np.empty(shape, dtype=np.float32)
rng = np.random.default_rng(0)
body = (x / 220.0) ** 2 + (y / 170.0) ** 2 <= 1
for z in range(shape[2]):
    sl = np.zeros((512, 512), dtype=np.float32)
    sl[body] = 1
    r = 40 + 30 * np.sin(z / 40.0)
    sl[((x + 90) ** 2 + (y + 20) ** 2) <= r * r] = 5
    sl[((x - 100) ** 2 + (y - 30) ** 2) <= (r / 2) ** 2] = 3
    mask[:, :, z] = sl
    image[:, :, z] = np.where(body, 40.0, -1000.0) + rng.normal(0, 20, (512, 512)).astype(np.float32)
affine = np.diag([0.8, 0.8, 1.0, 1.0])
for name, data in (("mask.nii.gz", mask), ("image.nii.gz", image)):
    nib.save(nib.Nifti1Image(data, affine), f"{out}/{name}")
print(f"bench-render: wrote {out}/mask.nii.gz and image.nii.gz, 512x512x400 float32")
PY
fi
# "wall cpu" seconds of a command (cpu = user + sys: the figure that holds on a busy machine).
secs() {
  local TIMEFORMAT='%R %U %S' out
  out=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  set -- $out
  echo "$1 $(echo "$2 + $3" | bc)"
}
read -r inspect_s inspect_cpu < <(secs "$BIN" inspect --json "$DIR/mask.nii.gz")
read -r render_s render_cpu < <(secs "$BIN" render "$DIR/mask.nii.gz" --out "$DIR/mask_only.png")
read -r image_s image_cpu < <(secs "$BIN" render "$DIR/mask.nii.gz" --image "$DIR/image.nii.gz" --out "$DIR/overlay.png")
read -r iinspect_s iinspect_cpu < <(secs "$BIN" inspect --json "$DIR/image.nii.gz")
printf 'bench-render: 512x512x400 float32 .nii.gz (mask %s, image %s); seconds wall / cpu\n' \
  "$(du -h "$DIR/mask.nii.gz" | cut -f1)" "$(du -h "$DIR/image.nii.gz" | cut -f1)"
printf '  inspect the mask (one pass)        %6.2f / %6.2f\n' "$inspect_s" "$inspect_cpu"
printf '  render the mask alone              %6.2f / %6.2f  (inspect + plane pass)\n' "$render_s" "$render_cpu"
printf '  inspect the image (one pass)       %6.2f / %6.2f\n' "$iinspect_s" "$iinspect_cpu"
printf '  render the mask over the image     %6.2f / %6.2f  (inspect + plane pass over both)\n' "$image_s" "$image_cpu"
printf '  picture: %s bytes\n' "$(stat -c %s "$DIR/overlay.png")"
