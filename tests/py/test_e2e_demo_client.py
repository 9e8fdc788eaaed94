"""End-to-end: scripts/demo_client.py (the README's first command runs it) completes a real
MCP session against the binary on the demo bundle and reports what the pack says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from conftest import CALL_TIMEOUT_S, REPO_ROOT, load_json, server_env

DEMO_CLIENT = REPO_ROOT / "scripts" / "demo_client.py"


def run_demo_client(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **server_env()}
    env.pop("NV_SEGMENT_CTMR_ROOT", None)  # the demo path, whatever the caller's shell has
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, str(DEMO_CLIENT), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=CALL_TIMEOUT_S
    )


def test_demo_client_runs_the_demo_and_reports(ctmr_binary: Path, demo_bundle: Path, demo_ct: Path, tmp_path: Path):
    out = tmp_path / "demo-pack"
    proc = run_demo_client("--binary", str(ctmr_binary), "--output-dir", str(out))
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    text = proc.stdout

    ev = load_json(out / "output.json")
    assert ev["status"] == "succeeded"
    assert f"Evidence pack: {out.resolve()}" in text, text
    assert "Status: succeeded" in text
    assert "Tools: " in text and "run_script" in text and "verify_evidence" in text
    # Every class the mask holds is printed with its voxel count, from the real mask.
    mask = np.asanyarray(nib.load(ev["output"]["path"]).dataobj).astype(np.int64)
    ids, counts = np.unique(mask, return_counts=True)
    for label_id, count in zip(ids.tolist(), counts.tolist()):
        if label_id == 0:
            continue
        row = next(r for r in ev["output"]["classes"] if r["id"] == label_id)
        line = next((l for l in text.splitlines() if l.split()[:1] == [str(label_id)]), None)
        assert line is not None and row["name"] in line and str(count) in line, f"class {label_id} line: {line!r}"
    # Gates, weights provenance with the plain warning, the disclaimer, the verdict.
    assert "Gates:" in text and "[ passed]" in text
    assert "Weights: demo_bundle" in text and "This is not a segmentation" in text
    assert "Not for clinical use" in text
    assert "Verifier" in text and ("PASS" in text or "FAIL" in text), text[-1500:]
    assert re.search(r"^\s+\[\s*\d+\.\ds ", text, re.M), f"no progress line printed:\n{text[:1500]}"


def test_demo_client_refuses_missing_prerequisites_with_the_fix(tmp_path: Path):
    proc = run_demo_client("--binary", str(tmp_path / "no-binary"), "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "no ctmr-skill binary" in proc.stderr and "cargo build --release" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_demo_client_needs_input_for_the_real_bundle(ctmr_binary: Path, tmp_path: Path):
    proc = run_demo_client(
        "--binary", str(ctmr_binary), "--output-dir", str(tmp_path / "o"), env_extra={"NV_SEGMENT_CTMR_ROOT": str(tmp_path)}
    )
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "--input" in proc.stderr, proc.stderr
