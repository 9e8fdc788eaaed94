"""Local check (not in CI: needs the real upstream code): warm worker against the documented
one-shot command on the REAL NV-Segment-CTMR bundle code with stand-in weights.

Prerequisites (see docs/operating.md "Warm workers"):
  fetch NVIDIA-Medtech/NV-Segment-CTMR into .workbench_data/upstreams/NV-Segment-CTMR (ignored),
  scripts/make-standin-weights.py --root <that>/NV-Segment-CTMR

A sequence of different inputs and settings goes through ONE warm worker (`ctmr-skill serve`,
official MCP Python SDK); each request is repeated one-shot with `ctmr-skill run`, and the
masks are compared voxel for voxel and header for header (affine, shape, dtype). Prints
timings and the verdict per call; exits 1 if any pair differs. Stand-in weights are random:
the masks are not segmentations, only the identity of the two ways of running matters.
Not for clinical use.

Usage: compare_warm_real.py BINARY BUNDLE_ROOT OUT_DIR [--device cpu|auto]
"""

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from mcp import Client
from mcp.client.stdio import StdioServerParameters

REPO = Path(__file__).resolve().parents[1]

# (volume, settings): different inputs, prompts and knobs through one worker.
CALLS = [
    ("a", {"label_prompts": [1, 3]}),
    ("b", {"label_prompts": [5]}),
]


def make_volumes(out: Path, python: str) -> dict[str, Path]:
    paths = {}
    for seed, name in enumerate(["a", "b"], start=1):
        p = out / "data" / f"{name}.nii.gz"
        p.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([python, str(REPO / "scripts/make-demo-volume.py"), str(p), "--shape", "64", "64", "48",
                        "--spacing", "1.5", "1.5", "1.5", "--seed", str(seed)], check=True, capture_output=True)
        paths[name] = p
    return paths


def cli_flags(settings: dict) -> list[str]:
    flags = []
    if "label_prompts" in settings:
        flags += ["--label-prompts", ",".join(map(str, settings["label_prompts"]))]
    if settings.get("cpu_postprocessing"):
        flags += ["--cpu-postprocessing"]
    return flags


def mask_of(pack: Path, stem: str) -> Path:
    return pack / stem / f"{stem}_trans.nii.gz"


def same(a: Path, b: Path) -> str | None:
    ia, ib = nib.load(str(a)), nib.load(str(b))
    if ia.shape != ib.shape:
        return f"shape {ia.shape} != {ib.shape}"
    if not np.array_equal(ia.affine, ib.affine):
        return "affine differs"
    if ia.get_data_dtype() != ib.get_data_dtype():
        return "dtype differs"
    va, vb = np.asarray(ia.dataobj), np.asarray(ib.dataobj)
    if not np.array_equal(va, vb, equal_nan=True):
        return f"{int((va != vb).sum())} voxels differ"
    return None


async def warm_calls(binary: str, root: Path, vols: dict, out: Path, device: str) -> list[float]:
    env = {"CTMR_SKILL_PYTHON": os.environ["CTMR_SKILL_PYTHON"], "CTMR_SKILL_BUNDLE_ROOTS": f"real={root}",
           "CTMR_SKILL_ALLOWED_DIRS": str(out), "HOME": os.environ.get("HOME", "/tmp")}
    params = StdioServerParameters(command=binary, args=["serve"], env=env, cwd=str(REPO))
    times = []
    async with Client(params, mode="legacy", read_timeout_seconds=3600) as client:
        for i, (vol, settings) in enumerate(CALLS):
            t0 = time.perf_counter()
            result = await client.call_tool("run_script", {
                "input": str(vols[vol]), "output_dir": str(out / f"warm{i}"), "upstream_root": "real",
                "device": device, "modality": "CT_BODY", **settings})
            times.append(time.perf_counter() - t0)
            if result.is_error:
                sys.exit(f"warm call {i} failed: {result.content[0].text[:500]}")
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary")
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    python = os.environ.setdefault("CTMR_SKILL_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    shutil.rmtree(a.out, ignore_errors=True)
    a.out.mkdir(parents=True)
    a.out = a.out.resolve()
    vols = make_volumes(a.out, python)
    warm = asyncio.run(warm_calls(a.binary, a.root.resolve(), vols, a.out, a.device))
    differ = 0
    for i, (vol, settings) in enumerate(CALLS):
        t0 = time.perf_counter()
        subprocess.run([a.binary, "run", str(vols[vol]), "--modality", "CT_BODY", "--upstream-root", str(a.root),
                        "--device", a.device, "--output-dir", str(a.out / f"cold{i}"), *cli_flags(settings)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        cold = time.perf_counter() - t0
        why = same(mask_of(a.out / f"warm{i}", vol), mask_of(a.out / f"cold{i}", vol))
        differ += why is not None
        print(f"call {i} ({vol}, {settings}): warm {warm[i]:.1f} s, one-shot {cold:.1f} s: "
              f"{'IDENTICAL' if why is None else 'DIFFERENT: ' + why}")
    print("stand-in weights (random): masks are not segmentations. Not for clinical use.")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
