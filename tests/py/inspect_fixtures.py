"""Write label maps with nibabel and the numbers `inspect` must report for them,
computed independently with numpy / scipy (scipy.ndimage.label with a 3x3x3
structure for 26-connected components).

Usage: inspect_fixtures.py OUT_DIR
Writes OUT_DIR/<case>/{mask,reference,gt}.nii[.gz] and OUT_DIR/<case>/expected.json,
and prints the list of cases as JSON on stdout.

expected.json holds a subset of the report's structure; the Rust test checks that
every number in it is present in the report and equal (floats to 1e-9 relative).
"""

import json
import os
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

RNG = np.random.default_rng(20261129)
STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)


def rotated_affine(spacing, origin, angle_deg, flip_x=True):
    """A non-diagonal affine: rotation about z, optional x flip, given spacing."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    if flip_x:
        rot = rot @ np.diag([-1.0, 1.0, 1.0])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag(spacing)
    aff[:3, 3] = origin
    return aff


def ellipsoid(shape, center, radii):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    d = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii))
    return d <= 1.0


def classify(data):
    nan = np.isnan(data)
    with np.errstate(invalid="ignore"):
        frac = np.zeros(data.shape, dtype=bool)
        finite = np.isfinite(data)
        frac[finite] = np.mod(data[finite], 1.0) != 0
    non_integer = ~nan & (frac | ~np.isfinite(data))
    integer = ~nan & ~non_integer
    return nan, non_integer, integer


def label_expectations(data, affine, zooms, reference, components):
    nan, non_integer, integer = classify(data)
    shape = np.array(data.shape)
    voxel_ml = float(np.prod(np.asarray(zooms[:3], dtype=np.float64))) / 1000.0
    ids = np.unique(data[integer & (data != 0)])
    labels = []
    for value in ids.tolist():
        m = integer & (data == value)
        idx = np.argwhere(m)
        centroid = idx.mean(axis=0)
        entry = {
            "id": int(value),
            "voxels": int(m.sum()),
            "volume_ml": int(m.sum()) * voxel_ml,
            "bbox_min": idx.min(axis=0).tolist(),
            "bbox_max": idx.max(axis=0).tolist(),
            "centroid_voxel": centroid.tolist(),
            "centroid_mm": (affine[:3, :3] @ centroid + affine[:3, 3]).tolist(),
            "touches_border": bool((idx == 0).any() or (idx == shape - 1).any()),
        }
        if components:
            lab, n = ndimage.label(m, structure=STRUCTURE_26)
            sizes = np.bincount(lab.ravel())[1:]
            entry["components"] = {
                "count": int(n),
                "largest_voxels": int(sizes.max()),
                "largest_fraction": float(sizes.max()) / float(m.sum()),
            }
        if reference is not None:
            vals = reference[m]
            fin = vals[np.isfinite(vals)]
            entry["intensity"] = {
                "mean": float(fin.mean()),
                "std": float(fin.std()),
                "min": float(fin.min()),
                "max": float(fin.max()),
                "voxels": int(fin.size),
                "non_finite_voxels": int(vals.size - fin.size),
            }
        labels.append(entry)
    return {
        "total_voxels": int(data.size),
        "background_voxels": int((integer & (data == 0)).sum()),
        "non_integer_voxels": int(non_integer.sum()),
        "nan_voxels": int(nan.sum()),
        "value_255_voxels": int((data == 255).sum()),
        "integer_valued": bool(not non_integer.any() and not nan.any()),
        "voxel_volume_ml": voxel_ml,
        "labels": labels,
    }


def comparison_expectations(pred, gt):
    pred_nan, pred_nonint, pred_int = classify(pred)
    gt_nan, gt_nonint, gt_int = classify(gt)
    both = pred_int & gt_int
    p = pred[both].astype(np.int64)
    g = gt[both].astype(np.int64)
    pairs, counts = np.unique(np.stack([p, g], axis=1), axis=0, return_counts=True)
    confusion = [
        {"pred": int(a), "gt": int(b), "voxels": int(c)} for (a, b), c in zip(pairs, counts)
    ]
    labels = []
    for lid in sorted(set(np.unique(p).tolist()) | set(np.unique(g).tolist())):
        if lid == 0:
            continue
        pv = int((p == lid).sum())
        gv = int((g == lid).sum())
        inter = int(((p == lid) & (g == lid)).sum())
        status = "ok" if pv and gv else ("pred_empty" if gv else "gt_empty")
        labels.append(
            {
                "label_id": int(lid),
                "pred_voxels": pv,
                "gt_voxels": gv,
                "intersection": inter,
                "dice": 2.0 * inter / (pv + gv),
                "iou": inter / (pv + gv - inter),
                "status": status,
            }
        )
    return {
        "total_voxels": int(pred.size),
        "compared_voxels": int(both.sum()),
        "excluded_voxels": int((~both).sum()),
        "pred_nan_voxels": int(pred_nan.sum()),
        "pred_non_integer_voxels": int(pred_nonint.sum()),
        "gt_nan_voxels": int(gt_nan.sum()),
        "gt_non_integer_voxels": int(gt_nonint.sum()),
        "confusion": confusion,
        "labels": labels,
    }


def save(arr, affine, path, dtype, slope=None):
    img = nib.Nifti1Image(arr.astype(dtype), affine)
    img.set_data_dtype(dtype)
    if slope is not None:
        img.header.set_slope_inter(slope, 0.0)
    nib.save(img, path)
    back = nib.load(path)
    return back.get_fdata(), back.affine, back.header.get_zooms()


def upstream_like_volume():
    """float32 body-like map: ellipsoids, 255, NaN and non-integer voxels,
    border contact, several components per label, corner-only contacts and noise."""
    shape = (41, 37, 29)
    m = np.zeros(shape, dtype=np.float32)
    m[ellipsoid(shape, (20, 18, 14), (12, 10, 8))] = 1
    m[ellipsoid(shape, (10, 10, 10), (5, 4, 3))] = 2
    m[ellipsoid(shape, (30, 25, 18), (4, 6, 5))] = 3
    # label 4: three blobs, one touching the x=max face
    m[ellipsoid(shape, (5, 30, 5), (3, 3, 3))] = 4
    m[ellipsoid(shape, (38, 5, 25), (4, 3, 3))] = 4
    m[2:5, 2:5, 22:25] = 4
    # label 5: voxels joined only through corners (26- but not 6-connected)
    for k in range(5):
        m[15 + k, 30 + k, 2 + k] = 5
    m[25, 33, 2] = 5
    # label 255 (upstream NaN stand-in or MRI-brain class)
    m[0:6, 0:3, 0:4] = 255
    # noisy region: many small components of labels 6, 7
    box = (slice(22, 34), slice(2, 14), slice(2, 10))
    noise = RNG.random(m[box].shape)
    region = m[box]
    region[noise < 0.25] = 6
    region[(noise >= 0.25) & (noise < 0.4)] = 7
    m[box] = region
    # NaN and non-integer voxels
    m[40, 36, 28] = np.nan
    m[1, 20, 20] = np.nan
    m[12, 12, 12] = 2.5
    m[13, 12, 12] = 0.001
    m[14, 12, 12] = np.inf
    return m


def write_case(out, name, files, expected):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"files": files, "expected": expected}, f, indent=1)


def main():
    out = sys.argv[1]
    cases = []

    # 1. float32 upstream-like map with components, a reference image and a ground truth.
    name = "float32_full"
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    aff = rotated_affine([0.8, 0.9, 1.5], [-100.0, 50.0, 20.0], 30.0)
    mask = upstream_like_volume()
    data, affine, zooms = save(mask, aff, os.path.join(d, "mask.nii.gz"), np.float32)
    ref = (RNG.normal(40.0, 25.0, mask.shape)).astype(np.float32)
    ref[20, 18, 14] = np.nan  # non-finite reference voxel under label 1
    ref_data, _, _ = save(ref, aff, os.path.join(d, "reference.nii.gz"), np.float32)
    gt = data.copy()
    gt = np.where(np.isnan(gt) | (np.mod(np.nan_to_num(gt), 1) != 0), 0, gt)
    gt = np.roll(gt, 2, axis=0)  # shifted copy: partial overlaps
    gt[gt == 3] = 0  # label 3 only in the prediction -> gt_empty
    gt[30:35, 30:35, 20:25] = 9  # label 9 only in the ground truth -> pred_empty
    gt[0, 0, 0] = 1.5  # one non-integer gt voxel -> excluded
    gt_data, _, _ = save(gt, aff, os.path.join(d, "gt.nii.gz"), np.float32)
    exp = label_expectations(data, affine, zooms, ref_data, components=True)
    exp["ground_truth"] = comparison_expectations(data, gt_data)
    write_case(out, name, {"mask": "mask.nii.gz", "reference": "reference.nii.gz", "ground_truth": "gt.nii.gz"}, exp)
    cases.append(name)

    # 2. uint8 map (255 as a real class), uncompressed .nii, RAS diagonal affine,
    #    int16 reference with a scale slope (intensities are the scaled values).
    name = "uint8_nii"
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    aff = np.diag([1.25, 1.25, 3.0, 1.0])
    aff[:3, 3] = [-30.0, -40.0, 12.0]
    shape = (33, 28, 17)
    m = np.zeros(shape, dtype=np.uint8)
    m[ellipsoid(shape, (16, 14, 8), (10, 9, 6))] = 255
    m[ellipsoid(shape, (16, 14, 8), (4, 4, 3))] = 17
    m[:, :, 0][ellipsoid(shape[:2], (5, 5), (3, 3))] = 200
    data, affine, zooms = save(m, aff, os.path.join(d, "mask.nii"), np.uint8)
    ref = RNG.integers(-1000, 1500, size=shape).astype(np.int16)
    ref_data, _, _ = save(ref, aff, os.path.join(d, "reference.nii.gz"), np.int16, slope=0.5)
    exp = label_expectations(data, affine, zooms, ref_data, components=True)
    write_case(out, name, {"mask": "mask.nii", "reference": "reference.nii.gz"}, exp)
    cases.append(name)

    # 3. int16 map: negative and large ids, no components requested.
    name = "int16_ids"
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    aff = rotated_affine([0.5, 0.7, 2.0], [10.0, -5.0, 3.0], -12.0, flip_x=False)
    shape = (24, 19, 13)
    m = np.zeros(shape, dtype=np.int16)
    m[2:8, 3:9, 1:5] = -3
    m[10:20, 5:15, 4:12] = 345
    m[12:14, 0:19, 6] = 30000
    m[23, 18, 12] = 1000
    data, affine, zooms = save(m, aff, os.path.join(d, "mask.nii.gz"), np.int16)
    exp = label_expectations(data, affine, zooms, None, components=False)
    write_case(out, name, {"mask": "mask.nii.gz"}, exp)
    cases.append(name)

    # 4. Components stress test: dense random labels near the percolation threshold,
    #    so components merge late, split, and touch only through edges and corners.
    name = "noise_components"
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    aff = np.diag([0.7, 0.7, 2.5, 1.0])
    shape = (64, 48, 40)
    u = RNG.random(shape)
    m = np.zeros(shape, dtype=np.float32)
    m[u < 0.12] = 1
    m[(u >= 0.12) & (u < 0.22)] = 2
    m[(u >= 0.22) & (u < 0.25)] = 3
    m[:, :, 20:][u[:, :, 20:] < 0.3] = 4  # a denser half: one big component of 4
    data, affine, zooms = save(m, aff, os.path.join(d, "mask.nii.gz"), np.float32)
    exp = label_expectations(data, affine, zooms, None, components=True)
    write_case(out, name, {"mask": "mask.nii.gz"}, exp)
    cases.append(name)

    # 5. Geometry: a reference on the same grid but shifted and resampled in z, and a
    #    reference with another shape.
    name = "geometry"
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    aff = np.diag([1.0, 1.0, 1.5, 1.0])
    shape = (12, 10, 8)
    m = np.zeros(shape, dtype=np.float32)
    m[3:6, 3:6, 2:4] = 1
    save(m, aff, os.path.join(d, "mask.nii.gz"), np.float32)
    shifted = aff.copy()
    shifted[2, 2] = 3.0
    shifted[0, 3] = 0.5
    shifted[:3, :3] = np.diag([-1.0, 1.0, 3.0])
    save(RNG.random(shape).astype(np.float32), shifted, os.path.join(d, "reference.nii.gz"), np.float32)
    save(np.zeros((12, 10, 9), np.float32), aff, os.path.join(d, "other_shape.nii.gz"), np.float32)
    # An image where everything differs, as a TotalSegmentator mask against a brain MRI:
    # shape, spacing, affine, orientation and the sform/qform codes. Its facts, read back
    # by nibabel, go into all_differ.json for the test to compare with.
    lps = np.diag([-0.8, -0.9, 2.0, 1.0])
    lps[:3, 3] = [40.0, 30.0, -20.0]
    img = nib.Nifti1Image(RNG.random((9, 11, 7)).astype(np.float32), lps)
    img.header.set_sform(lps, code=1)
    img.header.set_qform(lps, code=1)
    nib.save(img, os.path.join(d, "all_differ.nii.gz"))
    facts = {}
    for key, fname in (("a", "mask.nii.gz"), ("b", "all_differ.nii.gz")):
        back = nib.load(os.path.join(d, fname))
        facts[key] = {
            "shape": [int(v) for v in back.shape],
            "spacing": [float(v) for v in back.header.get_zooms()[:3]],
            "affine": back.affine.tolist(),
            "orientation": "".join(nib.aff2axcodes(back.affine)),
            "sform_code": int(back.header["sform_code"]),
            "qform_code": int(back.header["qform_code"]),
        }
    diff = np.abs(np.array(facts["a"]["affine"]) - np.array(facts["b"]["affine"]))
    facts["affine_max_abs_diff"] = float(diff.max())
    facts["affine_max_abs_diff_at"] = [int(v) for v in np.unravel_index(int(np.argmax(diff)), diff.shape)]
    with open(os.path.join(d, "all_differ.json"), "w") as f:
        json.dump(facts, f, indent=2)
    write_case(out, name, {"mask": "mask.nii.gz", "reference": "reference.nii.gz"}, {})
    cases.append(name)

    print(json.dumps(cases))


if __name__ == "__main__":
    main()
