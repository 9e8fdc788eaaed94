"""End-to-end: run_batch through the real `ctmr-skill serve` with the official MCP Python
SDK and the real demo MONAI bundle. One batch run for a small cohort, per-volume
progress, per-volume evidence re-derived from the masks with nibabel, the cohort table,
and the wait:false / get_run / list_runs pair.

Run: scripts/test.sh, or `.venv/bin/python -m pytest tests/py/test_e2e_batch.py` once the
binary and the demo assets exist.
"""

from __future__ import annotations

import csv
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import nibabel as nib
import numpy as np
from conftest import MAKE_DEMO_VOLUME, Server, load_json, python_path


def make_volume(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(python_path()), str(MAKE_DEMO_VOLUME), str(path), "--shape", "40", "40", "24", "--seed", str(seed)],
        check=True,
        capture_output=True,
    )
    return path


def text_of(result) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def test_run_batch_cohort_with_progress_and_evidence(server: Server, demo_bundle: Path, tmp_path: Path):
    inputs = [make_volume(tmp_path / "cohort" / f"case{i}.nii.gz", i) for i in (1, 2)]
    out = tmp_path / "out"
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def body():
        async with server.client(mode="legacy") as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            assert {"run_batch", "get_run", "list_runs"} <= set(listed)
            result = await client.call_tool(
                "run_batch",
                {
                    "input_dir": str(tmp_path / "cohort"),
                    "output_root": str(out),
                    "modality": "CT_BODY",
                    "upstream_root": str(demo_bundle),
                    "device": "cpu",
                    "detail": "full",
                },
                progress_callback=on_progress,
            )
            return result, listed["run_batch"].output_schema

    result, schema = anyio.run(body)
    assert not result.is_error, f"{text_of(result)}\nstderr: {server.stderr_tail()}"
    cohort = result.structured_content
    jsonschema.validate(cohort, schema)
    assert cohort["status"] == "succeeded", cohort["summary"]
    assert [v["id"] for v in cohort["volumes"]] == ["case1", "case2"]
    assert len(cohort["attempts"]) == 1, "one upstream run for the whole cohort"
    assert cohort["attempts"][0]["command"][5] == "['configs/inference.json', 'configs/batch_inference.json']"
    assert load_json(out / "cohort.json") == cohort
    # The cohort plot beside the CSV: a PNG with one row per class (dots drawn).
    plot = (out / "cohort_volumes.png").read_bytes()
    assert plot[:8] == b"\x89PNG\r\n\x1a\n", plot[:8]
    width, height = struct.unpack(">II", plot[16:24])
    assert width == 960 and height >= 110 + 22 * len(cohort["classes"]), (width, height, sorted(cohort["classes"]))

    # Each pack's evidence agrees with its mask, recounted with nibabel.
    rows = {r["id"]: r for r in csv.DictReader((out / "cohort_volumes.csv").open())}
    for image, row in zip(inputs, cohort["volumes"]):
        ev = load_json(Path(row["pack_dir"]) / "output.json")
        assert ev["status"] == "succeeded" and ev["input"]["path"] == str(image)
        mask_img = nib.load(ev["output"]["path"])
        mask = np.asarray(mask_img.dataobj)
        assert mask.shape == nib.load(str(image)).shape
        voxel_ml = float(np.prod(mask_img.header.get_zooms()[:3])) / 1000.0
        for cls in ev["output"]["classes"]:
            assert int((mask == cls["id"]).sum()) == cls["voxels"], cls
        for name, ml in ev["output"]["class_volumes_ml"].items():
            assert abs(float(rows[row["id"]][f"{name}_ml"]) - ml) < 1e-6
            voxels = sum(c["voxels"] for c in ev["output"]["classes"] if c["name"] == name)
            assert abs(voxels * voxel_ml - ml) < 1e-3, (name, ml)

    messages = [m for _, _, m in progress if m]
    assert any("current case1" in m for m in messages), messages
    assert any(m.startswith("1/2 volumes done; current case2") for m in messages), messages
    values = [p[0] for p in progress]
    assert all(b > a for a, b in zip(values, values[1:])), f"progress must increase: {values}"


def test_wait_false_then_get_run_and_list_runs(server: Server, demo_bundle: Path, tmp_path: Path):
    image = make_volume(tmp_path / "one" / "solo.nii.gz", 4)
    server.extra_env["CTMR_SKILL_RUNS_DIR"] = str(tmp_path / "runs-index")

    async def body():
        async with server.client(mode="legacy") as client:
            started = await client.call_tool(
                "run_batch",
                {
                    "inputs": [str(image)],
                    "output_root": str(tmp_path / "bg"),
                    "upstream_root": str(demo_bundle),
                    "device": "cpu",
                    "wait": False,
                },
            )
            assert not started.is_error, text_of(started)
            record = started.structured_content
            assert record["state"] == "running" and record["tool"] == "run_batch"
            deadline = time.monotonic() + 600
            while True:
                view = await client.call_tool("get_run", {"run_id": record["run_id"], "detail": "full"})
                assert not view.is_error, text_of(view)
                state = view.structured_content["run"]["state"]
                if state != "running":
                    break
                assert time.monotonic() < deadline, "the background run did not finish"
                await anyio.sleep(0.5)
            listed = await client.call_tool("list_runs", {})
            return record, view.structured_content, listed.structured_content

    record, view, listed = anyio.run(body)
    assert view["run"]["state"] == "succeeded", f"{view}\nstderr: {server.stderr_tail()}"
    assert view["result"]["status"] == "succeeded"
    assert view["result"]["volumes"][0]["id"] == "solo"
    assert [r["run_id"] for r in listed["runs"]] == [record["run_id"]]
    assert (tmp_path / "bg" / ".runs" / f"{record['run_id']}.json").is_file()
