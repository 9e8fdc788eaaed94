"""Test-time generator for tests/nifti_streaming.rs.

Writes a label map shaped like the upstream's output (float32, gzip, LPS-ish
affine) with nibabel's ordinary `nib.save`, and nibabel's own per-label voxel
counts, so the Rust side can stream it and check both the counts and that
memory stayed flat.

Usage: nifti_stream_volume.py OUT_PATH NX NY NZ
Prints a JSON object: {"counts": {"label": n, ...}, "sum": float, "shape": [...]}
"""

import json
import sys

import nibabel as nib
import numpy as np

out, nx, ny, nz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = np.zeros((nx, ny, nz), dtype=np.float32)
x, y, z = np.ogrid[:nx, :ny, :nz]
# A few overlapping ellipsoids with upstream-like label ids; later ones win.
for label, (cx, cy, cz, rx, ry, rz) in {
    1: (0.5, 0.5, 0.5, 0.35, 0.3, 0.45),
    3: (0.3, 0.4, 0.5, 0.1, 0.08, 0.2),
    5: (0.7, 0.4, 0.45, 0.1, 0.09, 0.2),
    28: (0.5, 0.6, 0.3, 0.06, 0.05, 0.1),
    132: (0.5, 0.5, 0.9, 0.2, 0.2, 0.05),
}.items():
    inside = ((x - cx * nx) / (rx * nx)) ** 2 + ((y - cy * ny) / (ry * ny)) ** 2 + ((z - cz * nz) / (rz * nz)) ** 2 <= 1
    data[inside] = label
affine = np.diag([-0.8, -0.8, 1.5, 1.0])
affine[:3, 3] = [200.0, 180.0, -300.0]
nib.save(nib.Nifti1Image(data, affine), out)

loaded = nib.load(out).get_fdata()
labels, counts = np.unique(loaded, return_counts=True)
print(json.dumps({
    "counts": {repr(float(k)): int(v) for k, v in zip(labels, counts)},
    "sum": repr(float(loaded.sum())),
    "shape": list(loaded.shape),
}))
