"""DICOM in, end to end: series generated at test time with pydicom go through
`run_script`, `run_batch` and `inspect_label_map` over MCP (the official Python SDK
driving the real `ctmr-skill serve`, which runs the real demo MONAI bundle) and through
the CLI. Every converted volume is compared with an independent converter (SimpleITK:
GDCM's reader, LPS converted to RAS) in affine, shape and voxels to 1e-4; the masks keep
the converted geometry; refusals name the rule; and patient data planted in every file
appears in no output file and not in the server's stderr.

Run: `.venv/bin/python -m pytest -q tests/py/test_dicom_input.py` (after scripts/test.sh
or scripts/setup-demo.sh and a release build).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import nibabel as nib
import numpy as np
import pytest
from conftest import Server, load_json, server_env, sha256_file
from dicom_series import (
    PLANTED_VALUES,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    SeriesSpec,
    files_mentioning,
    oblique_orientation,
    simpleitk_reference,
    sorted_listing_sha256,
    write_series,
    zip_directory,
)

CONVERTED = "input_converted.nii.gz"


def text_of(result) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


# --------------------------------------------------------------------------- the series


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> dict[str, Any]:
    """Every generated case: its directory (or zip), spec and files."""
    root = tmp_path_factory.mktemp("dicom")
    cases: dict[str, Any] = {}

    def add(name: str, spec: SeriesSpec, **kw) -> None:
        files = write_series(root / name, spec, **kw)
        cases[name] = {"dir": root / name, "spec": spec, "files": files, "names": [f.name for f in files]}

    # Axial CT, slope 1 / intercept -1024 (int16 HU); file names run against the slice order.
    add("axial", SeriesSpec(), reverse_names=True)
    # Slope 0.5 / intercept 200.25 (float32), signed pixels, implicit VR, and positions that
    # decrease as InstanceNumber rises (reversed slice order).
    add("rescaled", SeriesSpec(slope=0.5, intercept=200.25, signed=True, slice_step=-3.0,
                               transfer_syntax=ImplicitVRLittleEndian, seed=1))
    # Oblique: the plane rotated 25 degrees about x and -15 about y.
    add("oblique", SeriesSpec(orientation=oblique_orientation(25, -15), slices=10, slice_step=2.0,
                              pixel_spacing=(0.9, 0.75), seed=2))
    # An MR series inside a zip (nested folder, deflated entries).
    mr = SeriesSpec(modality="MR", intercept=0.0, description="T1 AXIAL", seed=3)
    write_series(root / "mr-src" / "study" / "series", mr)
    cases["zip"] = {"dir": zip_directory(root / "mr-src", root / "mr.zip"), "spec": mr,
                    "unzipped": root / "mr-src" / "study" / "series"}
    # Two series in one folder.
    first = SeriesSpec(description="SERIES A", seed=4)
    second = SeriesSpec(description="SERIES B", rows=16, columns=18, slices=8, study_uid=first.study_uid, seed=5)
    write_series(root / "two", first, prefix="A")
    write_series(root / "two", second, prefix="B")
    cases["two"] = {"dir": root / "two", "spec": second, "first": first}
    # Refused: a missing slice (positions jump by two steps after the sixth slice).
    add("gap", SeriesSpec(z_offsets={k: 2.5 for k in range(6, 12)}))
    # Refused: compressed (JPEG 2000) pixel data.
    add("jpeg2000", SeriesSpec(transfer_syntax=JPEG2000Lossless))
    return cases


# --------------------------------------------------------------------------- one MCP session


@pytest.fixture(scope="module")
def calls(series, ctmr_binary: Path, demo_bundle: Path, tmp_path_factory) -> dict[str, Any]:
    """Every call of these tests, in one MCP session (warm worker) for speed."""
    out = tmp_path_factory.mktemp("dicom-runs")
    log = out / "server.stderr.log"
    # Every log line the server can write (dicom-rs's included) lands in `log`, to be searched.
    server = Server(binary=ctmr_binary, cwd=out, env=server_env({"RUST_LOG": "debug"}), errlog=log)
    bundle = str(demo_bundle)
    two = series["two"]

    def run(name: str, **extra) -> dict[str, Any]:
        return {"input": str(series[name]["dir"]), "output_dir": str(out / name), "upstream_root": bundle,
                "device": "cpu", "detail": "full", **extra}

    requests = {
        "axial": ("run_script", run("axial")),
        "rescaled": ("run_script", run("rescaled")),
        "oblique": ("run_script", run("oblique")),
        "zip": ("run_script", run("zip")),
        "two_unchosen": ("run_script", run("two")),
        "two": ("run_script", run("two", series_uid=two["spec"].series_uid)),
        "two_wrong_uid": ("run_script", run("two", series_uid="1.2.3.4")),
        "gap": ("run_script", run("gap")),
        "jpeg2000": ("run_script", run("jpeg2000")),
        "batch": ("run_batch", {"inputs": [str(series["axial"]["dir"]), str(series["zip"]["dir"])],
                                "output_root": str(out / "batch"), "upstream_root": bundle, "device": "cpu",
                                "detail": "full"}),
    }

    async def body():
        results = {}
        async with server.client(mode="legacy") as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            for key, (tool, arguments) in requests.items():
                results[key] = await client.call_tool(tool, arguments)
            axial_mask = out / "axial" / "input_converted" / "input_converted_trans.nii.gz"
            results["inspect"] = await client.call_tool(
                "inspect_label_map", {"mask": str(axial_mask), "reference": str(series["axial"]["dir"]),
                                      "detail": "full"})
        return results, listed

    results, listed = anyio.run(body)
    return {"results": results, "listed": listed, "out": out, "log": log, "server": server}


def succeeded(calls, key: str) -> dict[str, Any]:
    result = calls["results"][key]
    assert not result.is_error, f"{key}: {text_of(result)}\nstderr: {calls['server'].stderr_tail()}"
    return result.structured_content


def refused(calls, key: str) -> str:
    result = calls["results"][key]
    assert result.is_error, f"{key} was not refused: {text_of(result)[:2000]}"
    return text_of(result)


# --------------------------------------------------------------------------- conversions


def assert_matches_simpleitk(pack: Path, reference_dir: Path, series_uid: str | None = None) -> nib.Nifti1Image:
    converted = nib.load(str(pack / CONVERTED))
    affine, voxels = simpleitk_reference(reference_dir, series_uid)
    assert converted.shape == voxels.shape, (converted.shape, voxels.shape)
    diff = np.abs(converted.affine - affine).max()
    assert diff <= 1e-4, f"affine differs from SimpleITK's by {diff}:\n{converted.affine}\n{affine}"
    assert np.allclose(converted.header.get_qform(), converted.affine, atol=1e-4), "qform and sform disagree"
    values = np.asarray(converted.get_fdata(dtype=np.float64))
    worst = np.abs(values - voxels).max()
    assert worst <= 1e-4, f"voxels differ from SimpleITK's by up to {worst}"
    return converted


def assert_evidence_of_conversion(ev: dict[str, Any], pack: Path, spec: SeriesSpec, image: nib.Nifti1Image) -> None:
    inp = ev["input"]
    assert ev["status"] == "succeeded", ev["summary"]
    assert inp["source"] == "dicom_series"
    assert Path(inp["path"]) == pack / CONVERTED
    assert inp["sha256"] == sha256_file(pack / CONVERTED)
    d = inp["dicom"]
    assert d["series_instance_uid"] == spec.series_uid and d["study_instance_uid"] == spec.study_uid
    assert d["dicom_modality"] == spec.modality
    assert d["slice_count"] == spec.slices and (d["rows"], d["columns"]) == (spec.rows, spec.columns)
    assert np.allclose(d["spacing"], image.header.get_zooms()[:3], atol=1e-5)
    assert np.allclose(d["spacing"][:2], spec.pixel_spacing[::-1]) and np.isclose(d["spacing"][2], abs(spec.slice_step))
    assert np.allclose(d["image_orientation_patient"], spec.orientation, atol=1e-6)
    assert {c["check"] for c in d["checks"]} == {
        "transfer_syntax_decodable", "single_frame", "same_grid", "positions_present", "one_orientation",
        "positions_distinct", "no_gantry_tilt", "uniform_spacing"}
    assert all(c["passed"] for c in d["checks"])
    assert d["converted_path"] == str(pack / CONVERTED)
    assert (d["rescale"]["slope_min"], d["rescale"]["intercept_min"]) == (spec.slope, spec.intercept)
    # The mask lies on the converted volume's grid.
    mask = nib.load(ev["output"]["path"])
    assert mask.shape == image.shape and np.abs(mask.affine - image.affine).max() <= 1e-4
    geometry = ev["output"]["geometry"]
    assert geometry["shape_match"] and geometry["affine_match"] and geometry["spacing_match"], geometry
    # manifest.json lists the converted volume and the DICOM files by hash.
    hashes = load_json(pack / "manifest.json")["hashes"]
    assert hashes["input_converted_sha256"] == sha256_file(pack / CONVERTED) == hashes["input_sha256"]
    assert hashes["dicom_files_sha256"] == d["files_sha256"]
    assert load_json(pack / "output.json") == ev


def test_axial_ct_with_rescale_and_names_against_the_slice_order(series, calls):
    ev = succeeded(calls, "axial")
    case, pack = series["axial"], calls["out"] / "axial"
    image = assert_matches_simpleitk(pack, case["dir"])
    assert image.get_data_dtype() == np.int16, "integer HU are written as int16"
    assert_evidence_of_conversion(ev, pack, case["spec"], image)
    assert ev["input"]["dicom"]["output_dtype"] == "int16"
    assert ev["input"]["dicom"]["files_sha256"] == sorted_listing_sha256(case["files"], case["names"], case["spec"])
    assert ev["input"]["dicom"]["container"] == "directory"
    jsonschema.validate(ev, calls["listed"]["run_script"].output_schema)


def test_fractional_rescale_and_reversed_positions(series, calls):
    ev = succeeded(calls, "rescaled")
    case, pack = series["rescaled"], calls["out"] / "rescaled"
    image = assert_matches_simpleitk(pack, case["dir"])
    assert image.get_data_dtype() == np.float32, "a fractional rescale is written as float32"
    assert_evidence_of_conversion(ev, pack, case["spec"], image)
    # Positions fall as InstanceNumber rises: the first voxel slice is the last file.
    assert np.isclose(image.affine[2, 3], case["spec"].position(case["spec"].slices - 1)[2], atol=1e-4)
    assert "Implicit VR Little Endian" in ev["input"]["dicom"]["transfer_syntax"]


def test_oblique_orientation(series, calls):
    ev = succeeded(calls, "oblique")
    case, pack = series["oblique"], calls["out"] / "oblique"
    image = assert_matches_simpleitk(pack, case["dir"])
    assert_evidence_of_conversion(ev, pack, case["spec"], image)
    normal = np.cross(np.array(case["spec"].orientation[:3]), np.array(case["spec"].orientation[3:]))
    assert np.allclose(ev["input"]["dicom"]["slice_normal"], normal, atol=1e-5)


def test_zip_of_an_mr_series_converts_and_warns_about_the_modality(series, calls, tmp_path: Path):
    ev = succeeded(calls, "zip")
    case, pack = series["zip"], calls["out"] / "zip"
    image = assert_matches_simpleitk(pack, case["unzipped"])
    assert_evidence_of_conversion(ev, pack, case["spec"], image)
    d = ev["input"]["dicom"]
    assert d["container"] == "zip"
    warning = d["modality_warning"]
    assert warning and "Modality MR" in warning and "CT_BODY" in warning, d
    gate = next(g for g in ev["gates"] if g["name"] == "modality_known")
    assert gate["status"] == "passed" and "warning" in gate["message"] and "MR" in gate["message"], gate
    with zipfile.ZipFile(case["dir"]) as z:
        names = sorted(n for n in z.namelist() if not n.endswith("/"))
        files = []
        for n in names:
            path = tmp_path / "unzipped" / n
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(z.read(n))
            files.append(path)
    assert d["files_sha256"] == sorted_listing_sha256(files, names, case["spec"])


def test_two_series_are_listed_and_series_uid_chooses(series, calls):
    message = refused(calls, "two_unchosen")
    case = series["two"]
    for spec in (case["first"], case["spec"]):
        assert spec.series_uid in message, message
        assert spec.description in message, message
        assert f"{spec.slices} slices of {spec.columns}x{spec.rows}" in message, message
    assert "series_uid" in message and "CT" in message and "MB" in message
    assert not (calls["out"] / "two_unchosen").exists()

    ev = succeeded(calls, "two")
    pack = calls["out"] / "two"
    image = assert_matches_simpleitk(pack, case["dir"], case["spec"].series_uid)
    assert_evidence_of_conversion(ev, pack, case["spec"], image)
    assert ev["input"]["dicom"]["other_series"] == 1

    message = refused(calls, "two_wrong_uid")
    assert "series_uid" in message and "1.2.3.4" in message and case["first"].series_uid in message, message


def test_refusals_name_the_rule_and_write_nothing(series, calls):
    message = refused(calls, "gap")
    assert "dicom_series_convertible" in message and "uniform_spacing" in message, message
    # Sorted slices 6 and 7 (1-based) are 5 mm apart where the mean gap is larger than 2.5 mm.
    assert "slices 6 and 7" in message and "5.000 mm" in message and "missing" in message, message
    message = refused(calls, "jpeg2000")
    assert "transfer_syntax_decodable" in message and "JPEG 2000" in message, message
    assert "1.2.840.10008.1.2.4.90" in message, message
    for key in ("gap", "jpeg2000", "two_unchosen", "two_wrong_uid"):
        assert not (calls["out"] / key).exists(), f"a refused call ({key}) wrote its pack"


def test_run_batch_takes_dicom_inputs(series, calls):
    cohort = succeeded(calls, "batch")
    rows = {Path(r["input"]).name: r for r in cohort["volumes"]}
    assert set(rows) == {"axial", "mr.zip"}, rows
    for name, row in rows.items():
        assert row["status"] == "succeeded", row
        pack = Path(row["pack_dir"])
        ev = load_json(pack / "output.json")
        assert ev["input"]["source"] == "dicom_series" and Path(ev["input"]["path"]) == pack / CONVERTED
        converted, mask = nib.load(str(pack / CONVERTED)), nib.load(ev["output"]["path"])
        assert mask.shape == converted.shape and np.abs(mask.affine - converted.affine).max() <= 1e-4
    # The same conversion as run_script's.
    axial = Path(rows["axial"]["pack_dir"]) / CONVERTED
    assert sha256_file(axial) == sha256_file(calls["out"] / "axial" / CONVERTED)


def test_inspect_label_map_takes_a_dicom_reference(series, calls):
    report = succeeded(calls, "inspect")
    assert report["reference_path"] == str(series["axial"]["dir"])
    assert report["reference_geometry"]["affine_match"] and report["reference_geometry"]["shape_match"]
    mask = np.asarray(nib.load(str(calls["out"] / "axial" / "input_converted" / "input_converted_trans.nii.gz")).dataobj)
    ref = np.asarray(nib.load(str(calls["out"] / "axial" / CONVERTED)).get_fdata())
    for label in report["labels"]:
        values = ref[mask == label["id"]]
        assert np.isclose(label["intensity"]["mean"], values.mean(), atol=1e-6), label


def test_no_patient_data_in_any_output(series, calls):
    hits = files_mentioning(calls["out"], PLANTED_VALUES)
    assert not hits, f"planted patient data in outputs: {hits[:10]}"
    stderr = calls["log"].read_text(errors="replace")
    assert stderr, "no server stderr captured"
    assert not [v for v in PLANTED_VALUES if v in stderr], "planted patient data in the server's stderr"
    # The refusal listing two series shows UIDs and descriptions, never patient data.
    assert not [v for v in PLANTED_VALUES if v in refused(calls, "two_unchosen")]


# --------------------------------------------------------------------------- CLI


def test_cli_refuses_several_series_with_exit_2_and_inspects_a_dicom_reference(series, calls, ctmr_binary: Path,
                                                                              demo_bundle: Path, tmp_path: Path):
    env = server_env()
    run = subprocess.run(
        [str(ctmr_binary), "run", str(series["two"]["dir"]), "--output-dir", str(tmp_path / "out"),
         "--upstream-root", str(demo_bundle)],
        capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    shown = run.stdout + run.stderr
    assert series["two"]["spec"].series_uid in shown and series["two"]["first"].series_uid in shown, shown[-2000:]
    assert "--series-uid" in shown
    assert not [v for v in PLANTED_VALUES if v in shown]
    mask = calls["out"] / "axial" / "input_converted" / "input_converted_trans.nii.gz"
    inspected = subprocess.run(
        [str(ctmr_binary), "inspect", str(mask), "--reference", str(series["axial"]["dir"]), "--json"],
        capture_output=True, text=True, env=env, timeout=300)
    assert inspected.returncode == 0, inspected.stderr
    report = json.loads(inspected.stdout)
    assert report["reference_path"] == str(series["axial"]["dir"]) and report["reference_geometry"]["affine_match"]
