#!/usr/bin/env python3
"""Independent oracle for the verifier's surface metrics.

Usage: verifier_surface_oracle.py PRED.nii.gz GT.nii.gz IDS(comma) TOLERANCE_MM

Rebuilds DeepMind surface-distance's computation from other parts: MONAI's
`get_mask_edges(..., spacing=...)` (corner-grid border points and surfel areas from
MONAI's copy of DeepMind's neighbour-code table) and scipy's exact EDT with the
header spacing; then DeepMind's formulas for the robust Hausdorff distance
(sorted distances, cumulative area, searchsorted), the surface Dice at tolerance and
the area-weighted mean distance. Prints {id: {hd95_mm, hausdorff_mm, nsd, assd_mm}}.
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from monai.metrics.utils import get_mask_edges  # noqa: E402
from scipy.ndimage import distance_transform_edt  # noqa: E402


def percentile(dist, area, percent):
    order = np.lexsort((area, dist))
    dist, area = dist[order], area[order]
    cum = np.cumsum(area) / np.sum(area)
    idx = np.searchsorted(cum, percent / 100.0)
    return float(dist[min(idx, len(dist) - 1)])


def main():
    pred_img, gt_img = nib.load(sys.argv[1]), nib.load(sys.argv[2])
    pred, gt = np.asarray(pred_img.dataobj), np.asarray(gt_img.dataobj)
    spacing = [float(z) for z in pred_img.header.get_zooms()[:3]]
    tol = float(sys.argv[4])
    out = {}
    for label in (int(s) for s in sys.argv[3].split(",")):
        p, g = pred == label, gt == label
        ep, eg, ap, ag = get_mask_edges(p, g, spacing=spacing, always_return_as_numpy=True)
        ep, eg, ap, ag = (np.asarray(x) for x in (ep, eg, ap, ag))
        d_gt = distance_transform_edt(~ep, sampling=spacing)[eg]
        d_pred = distance_transform_edt(~eg, sampling=spacing)[ep]
        a_gt, a_pred = ag[eg].astype(np.float64), ap[ep].astype(np.float64)
        total = a_gt.sum() + a_pred.sum()
        out[str(label)] = {
            "hd95_mm": max(percentile(d_gt, a_gt, 95), percentile(d_pred, a_pred, 95)),
            "hausdorff_mm": max(percentile(d_gt, a_gt, 100), percentile(d_pred, a_pred, 100)),
            "nsd": float((a_gt[d_gt <= tol].sum() + a_pred[d_pred <= tol].sum()) / total),
            "assd_mm": float(((d_gt * a_gt).sum() + (d_pred * a_pred).sum()) / total),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
