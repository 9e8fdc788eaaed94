#!/usr/bin/env python3
# Copyright (c) ctmr-skill authors. Licensed under the Apache License, Version 2.0.
# Written for ctmr-skill; not derived from NV-Segment-CTMR code.
"""Write a small synthetic CT volume (and optionally its ground-truth label map).

SYNTHETIC DATA for the ctmr-skill DEMO bundle: a body outline with ellipsoid
"organs" at plausible Hounsfield values. It is not a patient scan and the labels
are not anatomy; it exists so that tests and the README's first command exercise
real NIfTI geometry (an oblique, axis-flipped affine) on CPU in seconds.

Organ ids and names are real NV-Segment-CTMR label ids (configs/metadata.json);
the demo bundle's intensity-band weights (scripts/make-demo-weights.py) are tuned
to the HU values below.

Usage:
  make-demo-volume.py [OUT_PATH] [--labels-out PATH] [--shape X Y Z]
                      [--spacing SX SY SZ] [--seed N]
Default OUT_PATH: examples/demo-data/demo_ct.nii.gz (relative to the repo root).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "examples" / "demo-data" / "demo_ct.nii.gz"

AIR_HU = -1000.0
SOFT_TISSUE_HU = 0.0
NOISE_SD_HU = 2.0

# World coordinates are RAS+ (nibabel/NIfTI): +x towards the patient's Right,
# +y Anterior, +z Superior. Centres are relative to the volume centre.
# (label id, upstream name, HU, centre mm, semi-axes mm); painted in this order.
# Sizes sit inside adult volume ranges (liver ~1.1 L, kidneys ~0.1 L) so the paired
# verifier's anatomy bounds apply meaningfully to the demo.
ORGANS = [
    (1, "liver", 60.0, (55.0, 5.0, -5.0), (85.0, 60.0, 55.0)),
    (3, "spleen", 45.0, (-80.0, -20.0, 10.0), (30.0, 30.0, 40.0)),
    (5, "right kidney", 32.0, (55.0, -60.0, -45.0), (27.0, 24.0, 42.0)),
    (14, "left kidney", 20.0, (-55.0, -60.0, -45.0), (27.0, 24.0, 42.0)),
    (30, "right lung upper lobe", -850.0, (70.0, -5.0, 90.0), (55.0, 65.0, 45.0)),
    (28, "left lung upper lobe", -780.0, (-70.0, -5.0, 90.0), (55.0, 65.0, 45.0)),
]
# One vertebral body: a cylinder along z (label id, name, HU, centre, radius, half-height).
VERTEBRA = (37, "vertebrae L1", 700.0, (0.0, -80.0, -10.0), 20.0, 15.0)
# Body outline: elliptic cylinder along z with these semi-axes (x, y) in mm.
BODY_SEMI_AXES = (150.0, 110.0)


def demo_affine(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """An oblique voxel-to-world affine with flipped in-plane axes (as DICOM-derived
    LPS-stored volumes have), centred on the world origin, so that orientation,
    resampling and their inversion are all exercised."""
    flip = np.diag([-1.0, -1.0, 1.0])  # voxel i grows to the Left, j grows Posterior
    a, b = math.radians(9.0), math.radians(6.0)  # yaw about z, then tilt about x
    rot_z = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rot_x = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    linear = rot_x @ rot_z @ flip @ np.diag(spacing)
    centre_voxel = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = -linear @ centre_voxel
    return affine


def synthesize(shape, spacing, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (hu float32, labels uint8, affine) for the given grid."""
    affine = demo_affine(shape, spacing)
    ijk = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"), axis=-1)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    x, y, z = world[..., 0], world[..., 1], world[..., 2]

    hu = np.full(shape, AIR_HU, dtype=np.float64)
    labels = np.zeros(shape, dtype=np.uint8)
    body = (x / BODY_SEMI_AXES[0]) ** 2 + (y / BODY_SEMI_AXES[1]) ** 2 <= 1.0
    hu[body] = SOFT_TISSUE_HU
    for label_id, _name, value, centre, semi in ORGANS:
        inside = sum(((c - o) / s) ** 2 for c, o, s in zip((x, y, z), centre, semi)) <= 1.0
        inside &= body
        hu[inside] = value
        labels[inside] = label_id
    label_id, _name, value, (cx, cy, cz), radius, half_height = VERTEBRA
    inside = ((x - cx) ** 2 + (y - cy) ** 2 <= radius**2) & (np.abs(z - cz) <= half_height) & body
    hu[inside] = value
    labels[inside] = label_id

    rng = np.random.default_rng(seed)
    hu += rng.normal(0.0, NOISE_SD_HU, size=shape)
    return hu.astype(np.float32), labels, affine


def save(array: np.ndarray, affine: np.ndarray, path: Path, description: str) -> None:
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = description.encode()[:79]
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help="output .nii.gz path")
    parser.add_argument("--labels-out", type=Path, help="also write the ground-truth label map here")
    parser.add_argument("--shape", type=int, nargs=3, default=[96, 96, 64], metavar=("X", "Y", "Z"))
    parser.add_argument("--spacing", type=float, nargs=3, default=[3.5, 3.5, 4.0], metavar=("SX", "SY", "SZ"))
    parser.add_argument("--seed", type=int, default=20250101)
    args = parser.parse_args(argv)

    if any(n < 8 or n > 512 for n in args.shape):
        parser.error(f"--shape {args.shape}: each dimension must be between 8 and 512")
    if any(not (0.1 <= s <= 20.0) for s in args.spacing):
        parser.error(f"--spacing {args.spacing}: each spacing must be between 0.1 and 20 mm")
    if not str(args.out).endswith((".nii.gz", ".nii")):
        parser.error(f"OUT_PATH {args.out}: must end in .nii.gz or .nii")

    hu, labels, affine = synthesize(tuple(args.shape), tuple(args.spacing), args.seed)
    save(hu, affine, args.out, "ctmr-skill SYNTHETIC demo CT, not a patient")
    print(f"make-demo-volume: wrote {args.out} shape={list(hu.shape)} spacing={args.spacing}", file=sys.stderr)
    if args.labels_out is not None:
        save(labels, affine, args.labels_out, "ctmr-skill SYNTHETIC demo ground truth")
        present = sorted(int(v) for v in np.unique(labels) if v)
        print(f"make-demo-volume: wrote {args.labels_out} label ids={present}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
