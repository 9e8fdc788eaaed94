"""Test-time generator for tests/it/nifti_reader.rs.

Writes small NIfTI files into OUT_DIR with nibabel (headers through nibabel's own
header writer, so every field is exactly what we ask for) and records nibabel's
own answers after `nib.load` in OUT_DIR/cases.json:

* ok cases: affine, zooms, shape, dtype, sform/qform codes and matrices,
  aff2axcodes, get_slope_inter, data statistics, sampled voxels, and the whole
  of `get_fdata()` as little-endian float64 in x-fastest order (`<name>.f64`) so
  the Rust side can check slice-by-slice streaming value by value;
* error cases: the file and the error kind the Rust reader must report, plus
  what nibabel itself said (for the record only).

Usage: nifti_cases.py OUT_DIR
"""

import gzip
import io
import json
import os
import sys

import nibabel as nib
import numpy as np
from nibabel.nifti1 import Nifti1Extension
from nibabel.openers import ImageOpener

OUT = sys.argv[1]
CASES = []
SHAPE = (7, 6, 5)


def enc(x):
    """A float as its shortest round-trip repr ('nan', 'inf' included): JSON
    numbers would go through a float parser that need not round exactly."""
    return repr(float(x))


def enc_matrix(m):
    return None if m is None else [[enc(v) for v in row] for row in np.asarray(m)]


def rng_data(dtype, shape=SHAPE, seed=0):
    """Values spanning the dtype's range, extremes included."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = int(info.min), int(info.max)
        vals = rng.integers(lo, hi, size=n, dtype=dt, endpoint=True)
        vals[0], vals[1], vals[2] = lo, hi, 0
    else:
        vals = (rng.standard_normal(n) * 1000).astype(dt)
        vals[0], vals[1] = np.finfo(dt).max, np.finfo(dt).tiny
        vals[2] = -0.0
    return vals.reshape(shape, order="F")


def label_data(shape=SHAPE, dtype=np.uint8):
    """A small label map: a few blobs with integer labels."""
    a = np.zeros(shape, dtype=dtype)
    a[1:4, 1:3, 1:4] = 1
    a[4:6, 2:5, 0:2] = 7
    a[0, 5, 4] = 3
    return a


def make_header(version=1, endian="<", dtype=np.int16, shape=SHAPE):
    klass = nib.Nifti1Header if version == 1 else nib.Nifti2Header
    hdr = klass(endianness=endian)
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    return hdr


def raw_file_bytes(hdr, data, pad_to=None, trailing=b""):
    """Header (via nibabel's writer) + extensions + padding up to vox_offset + raw data."""
    buf = io.BytesIO()
    if pad_to is not None:
        hdr["vox_offset"] = pad_to
    hdr.write_to(buf)
    offset = int(hdr["vox_offset"])
    body = buf.getvalue()
    assert len(body) <= offset, (len(body), offset)
    body += b"\0" * (offset - len(body))
    arr = np.asarray(data, dtype=hdr.get_data_dtype())
    return body + arr.tobytes(order="F") + trailing


def write_bytes(name, blob, compress=None):
    path = os.path.join(OUT, name)
    if compress == "gzip":
        blob = gzip.compress(blob, compresslevel=6)
    elif compress == "multi":
        cut = len(blob) // 3
        blob = gzip.compress(blob[:cut]) + gzip.compress(blob[cut : 2 * cut]) + gzip.compress(blob[2 * cut :])
    with open(path, "wb") as fh:
        fh.write(blob)
    return path


def record_ok(name, path, description):
    img = nib.load(path)
    hdr = img.header
    data = img.get_fdata()
    assert data.ndim >= 3
    vol = data.reshape(data.shape[:3]) if data.ndim > 3 else data
    flat = vol.ravel(order="F")
    flat.astype("<f8").tofile(os.path.join(OUT, name + ".f64"))
    sform, scode = hdr.get_sform(coded=True)
    try:
        qform, qcode = hdr.get_qform(coded=True)
    except Exception:  # an invalid quaternion beside a valid sform
        qform, qcode = None, int(hdr["qform_code"])
    # nib.load moves the scaling into the array proxy and blanks the image
    # header's scl_* fields, so read the raw fields from the file's own header.
    with ImageOpener(path) as fh:
        raw_hdr = type(hdr).from_fileobj(fh, check=False)
    finite = flat[~np.isnan(flat)]
    rng = np.random.default_rng(1)
    samples = []
    for _ in range(6):
        ijk = [int(rng.integers(0, s)) for s in vol.shape]
        samples.append({"ijk": ijk, "value": enc(vol[tuple(ijk)])})
    samples.append({"ijk": [s - 1 for s in vol.shape], "value": enc(vol[tuple(s - 1 for s in vol.shape)])})
    CASES.append(
        {
            "name": name,
            "file": os.path.basename(path),
            "description": description,
            "expect": "ok",
            "nibabel": {
                "version": 2 if isinstance(hdr, nib.Nifti2Header) else 1,
                "little_endian": hdr.endianness == "<",
                "shape": [int(s) for s in img.shape],
                "dim": [int(d) for d in hdr["dim"][1 : int(hdr["dim"][0]) + 1]],
                "dtype": str(np.dtype(img.get_data_dtype()).newbyteorder("=")),
                "zooms": [enc(z) for z in hdr.get_zooms()],
                "affine": enc_matrix(img.affine),
                "sform_code": int(scode),
                "qform_code": int(qcode),
                "sform": enc_matrix(sform),
                "qform": enc_matrix(qform),
                "sform_qform_disagree": bool(
                    sform is not None and qform is not None and np.abs(sform - qform).max() > 1e-4
                ),
                "axcodes": [c if c is not None else "?" for c in nib.aff2axcodes(img.affine)],
                "axcodes_tie": orientation_is_tie(img.affine),
                "scl_slope": enc(raw_hdr["scl_slope"]),
                "scl_inter": enc(raw_hdr["scl_inter"]),
                "applied_slope_inter": [enc(img.dataobj.slope), enc(img.dataobj.inter)],
                "vox_offset": int(img.dataobj.offset),
                "descrip": raw_hdr["descrip"].item().decode("latin1"),
                "xyz_units": raw_hdr.get_xyzt_units()[0],
                "sum": enc(finite.sum()) if finite.size else 0.0,
                "min": enc(finite.min()) if finite.size else None,
                "max": enc(finite.max()) if finite.size else None,
                "nan_count": int(np.isnan(flat).sum()),
                "samples": samples,
            },
        }
    )


def record_error(name, path, kind, description):
    try:
        img = nib.load(path)
        img.get_fdata()
        nib_said = None
    except Exception as e:  # recorded for reference only
        nib_said = f"{type(e).__name__}: {e}"[:300]
    CASES.append(
        {
            "name": name,
            "file": os.path.basename(path),
            "description": description,
            "expect": "error",
            "kind": kind,
            "nibabel_error": nib_said,
        }
    )


def orientation_is_tie(affine, gap=1e-9):
    """True when aff2axcodes decides between exactly tied candidates (an exact
    45-degree rotation stored in float32): the answer then hangs on the last
    bit of LAPACK's SVD rounding, which no other implementation reproduces."""
    rzs = np.asarray(affine)[:3, :3]
    zooms = np.sqrt((rzs * rzs).sum(0))
    zooms[zooms == 0] = 1
    p, s, qs = np.linalg.svd(rzs / zooms)
    r = p @ qs
    for col in np.abs(r).T:
        top = np.sort(col)[::-1]
        if top[0] - top[1] < gap:
            return True
    return False


def oblique_affine(shear=0.0, flip=False):
    """A rotation about an oblique axis, scaled, optionally sheared / flipped."""
    from nibabel.eulerangles import euler2mat

    r = euler2mat(0.3, -0.2, 0.5)
    m = r @ np.diag([0.8, 1.25, 2.5])
    if shear:
        m = m @ np.array([[1, shear, 0], [0, 1, 0], [0, 0, 1.0]])
    if flip:
        m = m @ np.diag([-1, 1, 1])
    aff = np.eye(4)
    aff[:3, :3] = m
    aff[:3, 3] = [-100.5, 20.25, 33.0]
    return aff


def main():
    lps = np.diag([-0.75, -0.75, 2.5, 1.0])
    lps[:3, 3] = [120.0, 110.0, -60.0]

    # Every supported datatype, both byte orders, NIfTI-1 and NIfTI-2.
    for dtype in ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]:
        for endian in ["<", ">"]:
            for version in [1, 2]:
                if version == 2 and dtype not in ("int16", "float32", "uint64", "float64", "uint8"):
                    continue
                hdr = make_header(version, endian, dtype)
                hdr.set_sform(lps, code=1)
                hdr.set_qform(lps, code=1)
                data = rng_data(dtype, seed=len(CASES))
                if dtype.startswith("float"):
                    data[3, 2, 1] = np.nan
                    data[4, 2, 1] = np.inf
                name = f"dt_{dtype}_{'le' if endian == '<' else 'be'}_v{version}"
                path = write_bytes(name + ".nii", raw_file_bytes(hdr, data))
                record_ok(name, path, f"{dtype}, {'little' if endian == '<' else 'big'}-endian, NIfTI-{version}")

    # Scaling rules (get_slope_inter): real slope/inter, slope 0, NaN, inf, identity.
    for label, dtype, slope, inter in [
        ("int16_half_minus1024", "int16", 0.5, -1024.0),
        ("uint8_slope2", "uint8", 2.0, 0.0),
        ("uint8_inter_only", "uint8", 1.0, 3.25),
        ("float32_slope_0p1", "float32", 0.1, 7.0),
        ("int32_slope_nan", "int32", float("nan"), 5.0),
        ("int16_slope_zero", "int16", 0.0, 100.0),
        ("int16_slope_inf", "int16", float("inf"), 1.0),
        ("uint64_slope_3", "uint64", 3.0, -1.5),
    ]:
        for version in [1, 2]:
            hdr = make_header(version, "<", dtype)
            hdr.set_sform(np.diag([1.5, 1.5, 3.0, 1.0]), code=2)
            hdr["scl_slope"] = slope
            hdr["scl_inter"] = inter
            name = f"scale_{label}_v{version}"
            path = write_bytes(name + ".nii", raw_file_bytes(hdr, rng_data(dtype, seed=7)))
            record_ok(name, path, f"scl_slope={slope}, scl_inter={inter} on {dtype}")

    # Transform selection.
    hdr = make_header(1, "<", "int16")
    hdr.set_qform(oblique_affine(), code=1)
    hdr.set_sform(None, code=0)
    record_ok("qform_only_oblique", write_bytes("qform_only_oblique.nii", raw_file_bytes(hdr, label_data(dtype=np.int16))), "qform only, oblique rotation")

    hdr = make_header(1, "<", "int16")
    hdr.set_qform(oblique_affine(flip=True), code=2)
    hdr.set_sform(None, code=0)
    record_ok("qform_only_qfac_minus1", write_bytes("qform_only_qfac_minus1.nii", raw_file_bytes(hdr, label_data(dtype=np.int16))), "qform only, left-handed (qfac -1)")
    assert hdr["pixdim"][0] == -1

    hdr = make_header(2, ">", "float32")
    hdr.set_qform(oblique_affine(flip=True), code=1)
    hdr.set_sform(None, code=0)
    record_ok("qform_only_v2_be", write_bytes("qform_only_v2_be.nii", raw_file_bytes(hdr, rng_data("float32"))), "NIfTI-2 big-endian, qform only, qfac -1")

    hdr = make_header(1, "<", "uint8")
    hdr.set_sform(oblique_affine(shear=0.2), code=4)
    hdr.set_qform(None, code=0)
    record_ok("sform_only_sheared", write_bytes("sform_only_sheared.nii", raw_file_bytes(hdr, label_data())), "sform only, sheared oblique")

    hdr = make_header(1, "<", "uint8")
    hdr.set_sform(oblique_affine(shear=0.2), code=1)
    hdr.set_qform(oblique_affine(shear=0.2), code=1)
    record_ok("sform_qform_disagree", write_bytes("sform_qform_disagree.nii", raw_file_bytes(hdr, label_data())), "both set; qform cannot hold the shear")

    hdr = make_header(1, "<", "uint8")
    hdr.set_sform(oblique_affine(), code=1)
    hdr.set_qform(oblique_affine(), code=1)
    record_ok("sform_qform_agree", write_bytes("sform_qform_agree.nii", raw_file_bytes(hdr, label_data())), "both set, same rigid oblique")

    for version in [1, 2]:
        hdr = make_header(version, "<", "uint8")
        hdr.set_zooms((0.9, 1.1, 2.7))
        hdr.set_sform(None, code=0)
        hdr.set_qform(None, code=0)
        name = f"fallback_v{version}"
        record_ok(name, write_bytes(name + ".nii", raw_file_bytes(hdr, label_data())), "neither code: get_base_affine")

    # nibabel's on-load fixes: negative / zero pixdim, qfac 0, invalid xform codes.
    hdr = make_header(1, "<", "uint8")
    hdr.set_qform(np.diag([2.0, 3.0, 4.0, 1.0]), code=1)
    hdr.set_sform(None, code=0)
    hdr["pixdim"][1] = -2.0
    hdr["pixdim"][3] = 0.0
    hdr["pixdim"][0] = 0.0
    record_ok("fix_negative_zero_pixdim_qfac0", write_bytes("fix_negative_zero_pixdim_qfac0.nii", raw_file_bytes(hdr, label_data())), "pixdim -2, 0 and qfac 0 fixed on load")

    hdr = make_header(1, "<", "uint8")
    hdr.set_zooms((1.0, 2.0, 3.0))
    hdr.set_qform(None, code=0)
    hdr["pixdim"][2] = -2.0
    record_ok("fallback_negative_pixdim", write_bytes("fallback_negative_pixdim.nii", raw_file_bytes(hdr, label_data())), "fallback affine with a negative pixdim")

    hdr = make_header(1, "<", "uint8")
    hdr.set_qform(lps, code=1)
    hdr.set_sform(oblique_affine(), code=1)
    hdr["sform_code"] = 9
    record_ok("invalid_sform_code", write_bytes("invalid_sform_code.nii", raw_file_bytes(hdr, label_data())), "sform_code 9 treated as 0: qform wins")

    hdr = make_header(1, "<", "uint8")
    rot180 = np.diag([1.0, -1.0, -1.0, 1.0])
    rot180[:3, :3] *= 1.5
    hdr.set_qform(rot180, code=1)
    hdr.set_sform(None, code=0)
    record_ok("qform_180_w0", write_bytes("qform_180_w0.nii", raw_file_bytes(hdr, label_data())), "180-degree rotation: quaternion w = 0")

    # Shapes: singleton time, singleton 5th dim, single slice.
    for label, shape in [("t1", SHAPE + (1,)), ("t1_u1", SHAPE + (1, 1)), ("nz1", (7, 6, 1))]:
        hdr = make_header(1, "<", "int16", shape)
        hdr.set_sform(lps, code=1)
        data = rng_data("int16", shape=shape, seed=3)
        name = f"shape_{label}"
        record_ok(name, write_bytes(name + ".nii", raw_file_bytes(hdr, data)), f"shape {shape}")

    # NIfTI-2 dims beyond NIfTI-1's int16 range.
    hdr = make_header(2, ">", "uint8", (40000, 2, 3))
    hdr.set_sform(lps, code=1)
    record_ok("v2_wide_dim", write_bytes("v2_wide_dim.nii.gz", raw_file_bytes(hdr, rng_data("uint8", shape=(40000, 2, 3))), "gzip"), "NIfTI-2, dim 40000")

    # Orientation coverage: random rotations, permutations and flips, plus exact 45-degree ties.
    from nibabel.eulerangles import euler2mat

    orng = np.random.default_rng(42)
    for i in range(16):
        if i < 2:
            rot = euler2mat(np.pi / 4 if i == 0 else 0.0, 0.0, np.pi / 4 if i == 1 else 0.0)
        else:
            rot = euler2mat(*orng.uniform(-np.pi, np.pi, 3))
        perm = np.eye(3)[orng.permutation(3)] @ np.diag(orng.choice([-1.0, 1.0], 3))
        aff = np.eye(4)
        aff[:3, :3] = rot @ perm @ np.diag(orng.uniform(0.3, 3.0, 3))
        aff[:3, 3] = orng.uniform(-200, 200, 3)
        hdr = make_header(1, "<", "uint8", (3, 2, 2))
        hdr.set_sform(aff, code=1)
        hdr.set_qform(aff, code=1)
        name = f"orient_{i:02d}"
        record_ok(name, write_bytes(name + ".nii", raw_file_bytes(hdr, np.arange(12, dtype=np.uint8).reshape(3, 2, 2))), "orientation coverage")

    # Containers: gzip, multi-member gzip, padding, extensions, trailing bytes.
    hdr = make_header(1, "<", "float32")
    hdr.set_sform(oblique_affine(), code=1)
    hdr.set_qform(oblique_affine(), code=1)
    blob = raw_file_bytes(hdr, rng_data("float32", seed=11))
    record_ok("gz_single", write_bytes("gz_single.nii.gz", blob, "gzip"), ".nii.gz, one member")
    record_ok("gz_multi", write_bytes("gz_multi.nii.gz", blob, "multi"), ".nii.gz, three members")

    for version, pad in [(1, 1024), (2, 2000)]:
        hdr = make_header(version, ">", "int16")
        hdr.set_sform(lps, code=1)
        name = f"padded_v{version}"
        blob = raw_file_bytes(hdr, rng_data("int16", seed=5), pad_to=pad)
        record_ok(name, write_bytes(name + ".nii", blob), f"vox_offset {pad} without extensions")
        record_ok(name + "_gz", write_bytes(name + ".nii.gz", blob, "gzip"), f"vox_offset {pad}, gzip")

    hdr = make_header(1, "<", "int16")
    hdr.set_sform(lps, code=1)
    hdr["descrip"] = b"ctmr test extensions"
    hdr.extensions.append(Nifti1Extension("comment", b"a comment extension, padded by nibabel"))
    hdr.extensions.append(Nifti1Extension("afni", b"<AFNI_attributes/>" * 9))
    blob = raw_file_bytes(hdr, rng_data("int16", seed=6))
    record_ok("extensions", write_bytes("extensions.nii", blob), "two header extensions before the data")
    record_ok("extensions_gz", write_bytes("extensions.nii.gz", blob, "multi"), "extensions, multi-member gzip")

    hdr = make_header(1, "<", "uint8")
    hdr.set_sform(lps, code=1)
    blob = raw_file_bytes(hdr, label_data(), trailing=b"\xde\xad" * 5000)
    record_ok("trailing_bytes", write_bytes("trailing_bytes.nii", blob), "bytes after the data are ignored")
    record_ok("trailing_bytes_gz", write_bytes("trailing_bytes.nii.gz", blob, "gzip"), "gzip with bytes after the data")

    # Oddities nibabel tolerates: pair magic with in-file data, a wrong
    # sizeof_hdr (recognised by magic), zero padding and junk after gzip members,
    # a long run of zeros after the data inside the member.
    pair_magic = bytearray(blob)
    pair_magic[344:348] = b"ni1\0"
    record_ok("pair_magic_in_file", write_bytes("pair_magic_in_file.nii", bytes(pair_magic)), "ni1 magic, data at vox_offset 352")
    record_ok("wrong_sizeof_hdr", write_bytes("wrong_sizeof_hdr.nii", b"\x00\x01\x02\x03" + blob[4:]), "sizeof_hdr garbage, NIfTI-1 magic")
    hdr = make_header(1, ">", "float32")
    hdr.set_qform(lps, code=1)
    be = raw_file_bytes(hdr, rng_data("float32", seed=9))
    record_ok("wrong_sizeof_hdr_be", write_bytes("wrong_sizeof_hdr_be.nii", b"\x07\x07\x07\x07" + be[4:]), "big-endian, sizeof_hdr garbage")
    record_ok("gz_zero_padding", write_bytes("gz_zero_padding.nii.gz", gzip.compress(be[:200]) + b"\0" * 512 + gzip.compress(be[200:]) + b"\0" * 1000), "zero padding between and after gzip members")
    record_ok("gz_trailing_junk", write_bytes("gz_trailing_junk.nii.gz", gzip.compress(be) + b"not gzip at all"), "junk after the last gzip member is never read")
    record_ok("gz_long_zero_tail", write_bytes("gz_long_zero_tail.nii.gz", be + b"\0" * (16 << 20), "gzip"), "16 MiB of zeros after the data in the same member")

    for version, unit in [(1, "meter"), (2, "micron")]:
        hdr = make_header(version, "<", "uint8")
        hdr.set_sform(np.diag([0.001, 0.001, 0.002, 1.0]), code=1)
        hdr.set_xyzt_units(unit, "sec")
        name = f"units_{unit}_v{version}"
        record_ok(name, write_bytes(name + ".nii", raw_file_bytes(hdr, label_data())), f"xyzt_units {unit}")

    # A realistic file through the ordinary nib.save path.
    img = nib.Nifti1Image(label_data((33, 29, 17), np.uint8), lps)
    nib.save(img, os.path.join(OUT, "nib_save.nii.gz"))
    record_ok("nib_save", os.path.join(OUT, "nib_save.nii.gz"), "ordinary nib.save of a label map")

    # ---- Error cases ----
    hdr = make_header(1, "<", "int16")
    hdr.set_sform(lps, code=1)
    good = raw_file_bytes(hdr, rng_data("int16"))
    record_error("truncated_data", write_bytes("truncated_data.nii", good[:-100]), "truncated", "data shorter than the header claims")
    record_error("truncated_header", write_bytes("truncated_header.nii", good[:200]), "truncated", "file ends inside the header")
    record_error("truncated_gz", write_bytes("truncated_gz.nii.gz", gzip.compress(good)[:-300]), "truncated", "gzip stream cut short")
    record_error("truncated_gz_content", write_bytes("truncated_gz_content.nii.gz", good[:-50], "gzip"), "truncated", "complete gzip of a short image")
    record_error("empty", write_bytes("empty.nii", b""), "not_nifti", "empty file")
    record_error("empty_gz", write_bytes("empty_gz.nii.gz", b"", "gzip"), "not_nifti", "gzip of nothing")
    bad_magic = bytearray(good)
    bad_magic[344:348] = b"xyz\0"
    record_error("wrong_magic", write_bytes("wrong_magic.nii", bytes(bad_magic)), "not_nifti", "magic xyz")
    pair_header = bytearray(good[:348])
    pair_header[344:348] = b"ni1\0"
    pair_header[108:112] = np.array(0, dtype="<f4").tobytes()
    record_error("pair_header", write_bytes("pair_header.hdr", bytes(pair_header)), "not_nifti", "ni1 header of a .hdr/.img pair")
    record_error("text_file", write_bytes("text_file.nii", b"this is not an image at all\n" * 20), "not_nifti", "plain text")
    record_error("gzip_garbage", write_bytes("gzip_garbage.nii.gz", b"\x1f\x8b" + bytes(range(256)) * 4), "gzip", "gzip magic then garbage")
    corrupt = bytearray(gzip.compress(good, compresslevel=1))
    for i in range(len(corrupt) // 2, len(corrupt) // 2 + 40):
        corrupt[i] ^= 0x5A
    record_error("gzip_corrupt_middle", write_bytes("gzip_corrupt_middle.nii.gz", bytes(corrupt)), "gzip", "deflate data damaged mid-stream")
    crc = bytearray(gzip.compress(good))
    crc[-8] ^= 0xFF
    record_error("gzip_bad_crc", write_bytes("gzip_bad_crc.nii.gz", bytes(crc)), "gzip", "CRC-32 mismatch")

    def mutated(version, endian, dtype, shape_field, name, kind, description, mutate=None):
        h = make_header(version, endian, dtype)
        h.set_sform(lps, code=1)
        blob = bytearray(raw_file_bytes(h, rng_data(dtype)))
        # Rewrite dim in place (nibabel's setter refuses these values).
        fmt = endian + ("h" if version == 1 else "q")
        off, width = (40, 2) if version == 1 else (16, 8)
        for i, v in enumerate(shape_field):
            blob[off + width * i : off + width * (i + 1)] = np.array(v, dtype=fmt).tobytes()
        if mutate:
            mutate(blob)
        record_error(name, write_bytes(name, bytes(blob)), kind, description)

    mutated(1, "<", "int16", [3, 30000, 30000, 30000], "absurd_slice.nii", "too_large", "30000^3 voxels")
    mutated(2, "<", "int16", [3, 10000, 10000, 30000], "absurd_total_v2.nii", "too_large", "3e12 voxels, NIfTI-2")
    mutated(2, ">", "int16", [3, 1 << 40, 1 << 40, 1 << 40], "absurd_overflow_v2.nii", "too_large", "product overflows u64")
    mutated(1, "<", "int16", [3, 7, -6, 5], "negative_dim.nii", "invalid_header", "negative dim")
    mutated(1, "<", "int16", [3, 7, 0, 5], "zero_dim.nii", "invalid_header", "zero dim")
    mutated(1, "<", "int16", [0, 7, 6, 5], "zero_ndim.nii", "invalid_header", "dim[0] = 0")
    mutated(1, "<", "int16", [9, 7, 6, 5], "ndim_9.nii", "invalid_header", "dim[0] = 9")
    mutated(1, "<", "int16", [4, 7, 6, 1, 2], "true_4d.nii", "not_3d", "two volumes")
    mutated(1, "<", "int16", [2, 7, 6], "two_d.nii", "not_3d", "2-D image")
    mutated(1, ">", "int16", [4, 7, 6, 5, 3], "true_4d_be.nii", "not_3d", "three volumes, big-endian")

    def set_i16(off, v, endian="<"):
        def m(blob):
            blob[off : off + 2] = np.array(v, dtype=endian + "i2").tobytes()

        return m

    def set_f32(off, v):
        def m(blob):
            blob[off : off + 4] = np.array(v, dtype="<f4").tobytes()

        return m

    mutated(1, "<", "int16", [3, 7, 6, 5], "rgb24.nii", "unsupported", "RGB24 datatype", set_i16(70, 128))
    mutated(1, "<", "int16", [3, 7, 6, 5], "complex64.nii", "unsupported", "complex64 datatype", set_i16(70, 32))
    mutated(1, "<", "int16", [3, 7, 6, 5], "unknown_dtype.nii", "unsupported", "datatype 999", set_i16(70, 999))
    mutated(1, "<", "int16", [3, 7, 6, 5], "vox_offset_low.nii", "invalid_header", "vox_offset 100", set_f32(108, 100.0))
    mutated(1, "<", "int16", [3, 7, 6, 5], "vox_offset_nan.nii", "invalid_header", "vox_offset NaN", set_f32(108, float("nan")))
    mutated(1, "<", "int16", [3, 7, 6, 5], "vox_offset_huge.nii", "truncated", "vox_offset far past the end", set_f32(108, 1e9))
    mutated(1, "<", "int16", [3, 7, 6, 5], "vox_offset_absurd.nii", "too_large", "vox_offset 1e12", set_f32(108, 1e12))
    mutated(1, "<", "int16", [3, 7, 6, 5], "inter_inf.nii", "invalid_header", "valid slope, infinite intercept", lambda b: (set_f32(112, 2.0)(b), set_f32(116, float("inf"))(b)))

    def bad_quaternion(blob):
        set_i16(252, 1)(blob)  # qform_code
        set_i16(254, 0)(blob)  # sform_code
        set_f32(256, 0.9)(blob)
        set_f32(260, 0.9)(blob)

    mutated(1, "<", "int16", [3, 7, 6, 5], "bad_quaternion.nii", "invalid_header", "b^2+c^2+d^2 > 1 with no sform", bad_quaternion)

    def bad_eol(blob):
        blob[8:12] = b"\r\n\n\n"

    mutated(2, "<", "int16", [3, 7, 6, 5], "bad_eol_v2.nii", "invalid_header", "NIfTI-2 eol_check damaged", bad_eol)

    # A tiny .nii.gz claiming one 2 GiB float64 slice: must fail at the end of
    # the real data, never allocating the claim.
    h = make_header(1, "<", "float64", (16000, 16000, 1))
    record_error("huge_slice_claim", write_bytes("huge_slice_claim.nii.gz", raw_file_bytes(h, np.zeros(1000)), "gzip"), "truncated", "2 GiB slice claimed, 8 KB present")

    # A gzip "bomb": a tiny compressed file whose header claims an absurd volume.
    h = make_header(1, "<", "uint8")
    blob = bytearray(raw_file_bytes(h, rng_data("uint8")))
    blob[40:48] = np.array([3, 32767, 32767, 32767], dtype="<i2").tobytes()
    record_error("gzip_bomb_header", write_bytes("gzip_bomb_header.nii.gz", bytes(blob) + b"\0" * (1 << 20), "gzip"), "too_large", "absurd dims in a small gzip")

    with open(os.path.join(OUT, "cases.json"), "w") as fh:
        json.dump({"nibabel_version": nib.__version__, "cases": CASES}, fh, indent=1)
    print(len(CASES))


if __name__ == "__main__":
    main()
