"""Benchmark (prints, asserts nothing): what a warm worker saves per call.

1. N sequential `run_script` calls over MCP (the official Python SDK) against
   `ctmr-skill serve --no-warm` (one-shot: a fresh Python process, import and model load
   per call) and against `ctmr-skill serve` (warm workers), per-call latency and ratio.
   Then one `run_batch` over the same volumes (the documented batch config in one process),
   against the warm per-call times: the figures behind run_batch's choice
   (docs/operating.md, "Warm workers").
2. The one-shot overhead: the raw documented `python -m monai.bundle run` against
   `ctmr-skill run` on the same input, side by side.

Runs the project's DEMO bundle (synthetic labels, NOT NV-Segment-CTMR) on CPU unless told
otherwise. Not for clinical use.

Usage: bench_warm.py BINARY OUT_DIR [N] [--device cpu|auto]
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mcp import Client
from mcp.client.stdio import StdioServerParameters

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "examples" / "demo-bundle"


def volumes(out: Path, n: int, python: str) -> list[Path]:
    paths = []
    for i in range(n):
        p = out / "data" / f"vol{i + 1}.nii.gz"
        p.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([python, str(REPO / "scripts/make-demo-volume.py"), str(p), "--shape", "48", "48", "32",
                        "--seed", str(i + 1)], check=True, capture_output=True)
        paths.append(p)
    return paths


async def mcp_calls(binary: str, warm: bool, inputs: list[Path], out: Path, device: str) -> list[float]:
    env = {"CTMR_SKILL_PYTHON": os.environ["CTMR_SKILL_PYTHON"], "CTMR_SKILL_BUNDLE_ROOTS": f"demo={BUNDLE}",
           "CTMR_SKILL_ALLOWED_DIRS": str(out), "HOME": os.environ.get("HOME", "/tmp")}
    args = ["serve"] + ([] if warm else ["--no-warm"])
    params = StdioServerParameters(command=binary, args=args, env=env, cwd=str(REPO))
    times = []
    async with Client(params, mode="legacy", read_timeout_seconds=600) as client:
        for i, image in enumerate(inputs):
            t0 = time.perf_counter()
            result = await client.call_tool("run_script", {
                "input": str(image), "output_dir": str(out / ("warm" if warm else "one-shot") / f"c{i + 1}"),
                "upstream_root": "demo", "device": device})
            times.append(time.perf_counter() - t0)
            if result.is_error:
                print("  call failed:", result.content[0].text[:300], file=sys.stderr)
    return times


async def mcp_batch(binary: str, inputs: list[Path], out: Path, device: str) -> float:
    """One run_batch call over the same inputs: the documented batch config, one process."""
    env = {"CTMR_SKILL_PYTHON": os.environ["CTMR_SKILL_PYTHON"], "CTMR_SKILL_BUNDLE_ROOTS": f"demo={BUNDLE}",
           "CTMR_SKILL_ALLOWED_DIRS": str(out), "HOME": os.environ.get("HOME", "/tmp")}
    params = StdioServerParameters(command=binary, args=["serve"], env=env, cwd=str(REPO))
    async with Client(params, mode="legacy", read_timeout_seconds=600) as client:
        t0 = time.perf_counter()
        result = await client.call_tool("run_batch", {
            "inputs": [str(p) for p in inputs], "output_root": str(out / "batch"),
            "upstream_root": "demo", "device": device})
        seconds = time.perf_counter() - t0
        if result.is_error:
            print("  batch failed:", result.content[0].text[:300], file=sys.stderr)
    return seconds


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary")
    p.add_argument("out", type=Path)
    p.add_argument("n", type=int, nargs="?", default=5)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    python = os.environ.setdefault("CTMR_SKILL_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    shutil.rmtree(a.out, ignore_errors=True)
    a.out.mkdir(parents=True)
    a.out = a.out.resolve()
    inputs = volumes(a.out, a.n, python)

    print(f"bench-warm: {a.n} sequential run_script calls over MCP, demo bundle, device {a.device}")
    rows = {}
    for label, warm in (("one-shot", False), ("warm", True)):
        times = asyncio.run(mcp_calls(a.binary, warm, inputs, a.out, a.device))
        rows[label] = times
        print(f"  {label:9s} " + "  ".join(f"{t:6.2f}" for t in times) + f"   (s per call)")
    one, warm = rows["one-shot"], rows["warm"]
    if len(one) > 1 and len(warm) > 1:
        o, w = statistics.median(one[1:]), statistics.median(warm[1:])
        print(f"  after the first call: one-shot median {o:.2f} s, warm median {w:.2f} s, ratio {o / w:.1f}x")
    print(f"  first call: one-shot {one[0]:.2f} s, warm {warm[0]:.2f} s (worker start + model load)")
    batch = asyncio.run(mcp_batch(a.binary, inputs, a.out, a.device))
    print(f"  run_batch of the same {a.n} (documented batch config, one process): {batch:.2f} s; "
          f"the same through a fresh warm worker: {sum(warm):.2f} s; through an already warm one: "
          f"{sum(warm[1:]) / max(len(warm) - 1, 1) * a.n:.2f} s (estimated)")

    print(f"bench-warm: one-shot overhead, same input, {a.n} alternating pairs (medians)")
    image = inputs[0]
    raws, clis, inspections = [], [], []
    for i in range(a.n):
        raws.append(timed([python, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
                           "--input_dict", f"{{'image': '{image}'}}", "--output_dir", str(a.out / f"raw{i}"),
                           "--modality", "CT_BODY"], BUNDLE))
        cli_out = a.out / f"cli{i}"
        clis.append(timed([a.binary, "run", str(image), "--modality", "CT_BODY", "--upstream-root", str(BUNDLE),
                           "--device", a.device, "--output-dir", str(cli_out)], REPO))
        phases = json.loads((cli_out / "output.json").read_text())["runtime"].get("phases", {})
        inspections.append(phases.get("inspection_and_writing", 0.0))
    raw, cli, insp = statistics.median(raws), statistics.median(clis), statistics.median(inspections)
    print("  documented command " + "  ".join(f"{t:6.2f}" for t in raws))
    print("  ctmr-skill run     " + "  ".join(f"{t:6.2f}" for t in clis))
    print(f"  medians: documented {raw:.2f} s, ctmr-skill run {cli:.2f} s, overhead {cli - raw:+.2f} s "
          f"(inspection and writing {insp:.2f} s; target: at most 1 s plus that)")
    print("Not for clinical use.")


if __name__ == "__main__":
    main()
