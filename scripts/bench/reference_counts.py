"""The reference wrapper's way to count labels (skills/nv-segment-ctmr/scripts/run_ctmr.py,
`_mask_summary`): load the whole volume, cast to int64, np.unique with counts.

Usage: reference_counts.py MASK OUT_JSON   (writes {"id": count, ...} without 0)
"""

import json
import sys

import nibabel as nib
import numpy as np

arr = np.asarray(nib.load(sys.argv[1]).get_fdata()).astype(np.int64)
unique, counts = np.unique(arr, return_counts=True)
with open(sys.argv[2], "w") as f:
    json.dump({str(int(u)): int(c) for u, c in zip(unique, counts) if u != 0}, f)
