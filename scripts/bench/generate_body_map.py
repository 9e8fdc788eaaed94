"""Generate a realistic whole-body label map for the inspect benchmark, fast.

Usage: generate_body_map.py OUT_DIR [--shape 512,512,400] [--labels 100]
Writes OUT_DIR/body_pred.nii.gz (float32, as the upstream writes label maps) and
OUT_DIR/body_gt.nii.gz (the same map shifted by a few voxels and with a few labels
dropped / added: a plausible "ground truth" for the two-map pass). gzip level 1.

The map: a grid of cells, one jittered ellipsoid per label (ids 1..N, a few with
a second detached blob), covering ~40% of the voxels; only each ellipsoid's
bounding box is evaluated, so generation takes seconds.
"""

import argparse
import os
import time

import nibabel as nib
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shape", default="512,512,400")
    ap.add_argument("--labels", type=int, default=100)
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    n_labels = args.labels
    rng = np.random.default_rng(7)
    t0 = time.time()

    # Cells: as close to cubic as possible, >= n_labels of them.
    cells = [5, 5, 4]
    while np.prod(cells) < n_labels:
        cells[int(np.argmin(cells))] += 1
    cell = [s // c for s, c in zip(shape, cells)]
    vol = np.zeros(shape, dtype=np.float32)
    slots = rng.permutation(int(np.prod(cells)))[:n_labels]
    for label, slot in enumerate(slots, start=1):
        ci = np.unravel_index(slot, cells)
        lo = [c * w for c, w in zip(ci, cell)]
        radii = [w * rng.uniform(0.40, 0.52) for w in cell]
        center = [l + w / 2 + rng.uniform(-0.05, 0.05) * w for l, w in zip(lo, cell)]
        blobs = [(center, radii)]
        if label % 10 == 0:  # a detached second blob: two components
            blobs = [(center, [r * 0.8 for r in radii]), (
                [c + 0.38 * w for c, w in zip(center, cell)], [r * 0.25 for r in radii])]
        for c, r in blobs:
            b0 = [max(0, int(np.floor(ci - ri))) for ci, ri in zip(c, r)]
            b1 = [min(s, int(np.ceil(ci + ri)) + 1) for ci, ri, s in zip(c, r, shape)]
            grid = np.ogrid[tuple(slice(a, b) for a, b in zip(b0, b1))]
            inside = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip(grid, c, r)) <= 1.0
            box = vol[tuple(slice(a, b) for a, b in zip(b0, b1))]
            box[inside] = label
    affine = np.diag([0.78125, 0.78125, 1.25, 1.0])
    affine[:3, 3] = [-200.0, -200.0, -250.0]
    covered = float(np.count_nonzero(vol)) / vol.size
    t1 = time.time()

    os.makedirs(args.out, exist_ok=True)
    pred = os.path.join(args.out, "body_pred.nii.gz")
    gt_path = os.path.join(args.out, "body_gt.nii.gz")
    nib.save(nib.Nifti1Image(vol, affine), pred)
    gt = np.roll(vol, 3, axis=0)
    gt[gt == 7] = 0
    gt[gt == 13] = 0
    gt[10:40, 10:40, 10:40] = n_labels + 1
    nib.save(nib.Nifti1Image(gt, affine), gt_path)
    t2 = time.time()
    print(
        f"generated {shape} float32, {n_labels} labels, {covered:.1%} labelled "
        f"in {t1 - t0:.1f} s; wrote {pred} ({os.path.getsize(pred) / 2**20:.1f} MiB) "
        f"and {gt_path} in {t2 - t1:.1f} s"
    )


if __name__ == "__main__":
    main()
