#!/usr/bin/env python3
# Copyright (c) ctmr-skill authors. Licensed under the Apache License, Version 2.0.
"""A real MCP client session against `ctmr-skill serve` (official MCP Python SDK, stdio).

Starts the server, lists its tools, calls `run_script` (printing progress as it comes),
prints where the evidence pack is and what it says, then asks the paired verifier
(`verify_evidence`) for its verdict. Not for clinical use.

Without NV_SEGMENT_CTMR_ROOT it runs the project's DEMO bundle (examples/demo-bundle:
synthetic intensity-based labels, NOT NV-Segment-CTMR) on the demo volume
(examples/demo-data/demo_ct.nii.gz); `scripts/setup-demo.sh` creates both. With
NV_SEGMENT_CTMR_ROOT set it runs the real bundle there on --input.

Usage:
  scripts/demo_client.py [--binary PATH] [--input IMAGE] [--output-dir DIR]
                         [--upstream-root DIR] [--modality CT_BODY] [--label-prompts 1,3]
                         [--verbose]
Exit codes: 0 the run succeeded (whatever the verifier's verdict), 1 the run did not
succeed or the server failed, 2 bad usage or missing prerequisites.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_BUNDLE = REPO_ROOT / "examples" / "demo-bundle"
DEMO_CT = REPO_ROOT / "examples" / "demo-data" / "demo_ct.nii.gz"
SETUP_HINT = "run scripts/setup-demo.sh (demo weights and volume) and cargo build --release (the binary)"
NOT_A_SEGMENTATION = {
    "demo_bundle": "DEMO bundle weights: synthetic intensity-based labels, NOT NV-Segment-CTMR. This is not a segmentation.",
    "stand_in_random_init": "STAND-IN random weights: this output is NOT a segmentation.",
    "missing": "No weights file was found: there is no segmentation.",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", type=Path, default=Path(os.environ.get("CTMR_SKILL_BIN", REPO_ROOT / "target" / "release" / "ctmr-skill")),
                   help="the ctmr-skill executable (default $CTMR_SKILL_BIN, else target/release/ctmr-skill)")
    p.add_argument("--input", type=Path, help="CT/MRI NIfTI volume (default: the demo volume; required with NV_SEGMENT_CTMR_ROOT)")
    p.add_argument("--output-dir", type=Path, default=Path("runs") / "demo",
                   help="evidence pack directory, under the working directory or the temp dir (default runs/demo)")
    p.add_argument("--upstream-root", type=Path,
                   help="bundle root (default: $NV_SEGMENT_CTMR_ROOT when set, else examples/demo-bundle)")
    p.add_argument("--modality", default="CT_BODY", choices=["CT_BODY", "MRI_BODY", "MRI_BRAIN"])
    p.add_argument("--label-prompts", help="comma-separated class ids, e.g. 1,3 (default: everything)")
    p.add_argument("--verbose", action="store_true", help="show the server's own log (stderr) as it runs")
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The run_script arguments, the server's extra environment, and any problems found."""
    problems: list[str] = []
    real_root = os.environ.get("NV_SEGMENT_CTMR_ROOT", "").strip()
    env: dict[str, str] = {}
    if args.upstream_root is not None:
        root = args.upstream_root
    elif real_root:
        root = Path(real_root)
        env["NV_SEGMENT_CTMR_ROOT"] = real_root
    else:
        root = DEMO_BUNDLE
    if args.input is not None:
        image = args.input
    elif real_root and args.upstream_root is None:
        problems.append("NV_SEGMENT_CTMR_ROOT is set: pass --input IMAGE (the demo volume is for the demo bundle)")
        image = DEMO_CT
    else:
        image = DEMO_CT
    if not args.binary.is_file():
        problems.append(f"no ctmr-skill binary at {args.binary}: {SETUP_HINT}, or pass --binary")
    if not image.is_file():
        problems.append(f"input {image} does not exist" + (f": {SETUP_HINT}" if image == DEMO_CT else ""))
    if not (root / "configs" / "inference.json").is_file():
        problems.append(f"upstream root {root} has no configs/inference.json" + (f": {SETUP_HINT}" if root == DEMO_BUNDLE else ""))
    elif root == DEMO_BUNDLE and not (root / "models" / "model.pt").is_file():
        problems.append(f"the demo bundle has no weights at {root / 'models' / 'model.pt'}: {SETUP_HINT}")
    # This script starts the server, so it is the operator: it installs the bundle root
    # the client then names (a client alone cannot introduce one).
    env["CTMR_SKILL_BUNDLE_ROOTS"] = str(root.resolve())
    arguments: dict[str, Any] = {
        "input": str(image.resolve()),
        "modality": args.modality,
        "output_dir": str(args.output_dir.resolve()),
        "upstream_root": str(root.resolve()),
        # The report below prints every class and check: the whole evidence document.
        "detail": "full",
    }
    if args.label_prompts:
        try:
            arguments["label_prompts"] = [int(v) for v in args.label_prompts.split(",") if v.strip()]
        except ValueError:
            problems.append(f"--label-prompts {args.label_prompts!r}: expected comma-separated integers such as 1,3")
    python = os.environ.get("CTMR_SKILL_PYTHON") or (str(REPO_ROOT / ".venv" / "bin" / "python") if (REPO_ROOT / ".venv" / "bin" / "python").exists() else "")
    if python:
        env["CTMR_SKILL_PYTHON"] = python
    for name in ("TMPDIR", "CTMR_SKILL_ALLOWED_DIRS", "RUST_LOG"):
        if name in os.environ:
            env[name] = os.environ[name]
    return arguments, env, problems


def text_of(result) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def print_evidence(ev: dict[str, Any]) -> None:
    out = ev.get("output", {})
    print(f"\nEvidence pack: {ev.get('pack_dir')}")
    print(f"  output.json, manifest.json, validation_summary.json, logs/ ; mask: {out.get('path')}")
    print(f"Status: {ev.get('status')}")
    if ev.get("summary"):
        print(f"Summary: {ev['summary']}")
    classes = out.get("classes") or []
    if classes:
        print(f"\nClasses ({len(classes)}; voxel volume {out.get('voxel_volume_ml')} mL):")
        print(f"  {'id':>5}  {'name':<28} {'voxels':>10} {'volume mL':>11}")
        for row in classes:
            print(f"  {row['id']:>5}  {row['name']:<28} {row['voxels']:>10} {row['volume_ml']:>11.2f}")
    elif ev.get("status") == "succeeded":
        print("\nClasses: none (the mask is empty)")
    geo = out.get("geometry") or {}
    if geo:
        print(f"Geometry vs input: shape {'ok' if geo.get('shape_match') else 'MISMATCH'}, "
              f"spacing {'ok' if geo.get('spacing_match') else 'MISMATCH'}, "
              f"affine {'ok' if geo.get('affine_match') else 'MISMATCH'} (max |diff| {geo.get('affine_max_abs_diff')})")
    gates = ev.get("gates") or []
    if gates:
        print("\nGates:")
        for gate in gates:
            print(f"  [{gate.get('status'):>7}] {gate.get('name')}: {gate.get('message')}")
    checks = ev.get("sanity_checks") or []
    if checks:
        failed = [c for c in checks if c.get("status") != "passed"]
        print(f"Sanity checks: {len(checks) - len(failed)}/{len(checks)} passed")
        for check in failed:
            print(f"  FAILED {check.get('path')} {check.get('op')} {check.get('expected')!r}: got {check.get('actual')!r} ({check.get('reason')})")
    weights = ev.get("weights") or {}
    provenance = weights.get("provenance")
    print(f"\nWeights: {provenance} ({weights.get('path')}, sha256 {str(weights.get('sha256'))[:16]}…)")
    if weights.get("note"):
        print(f"  {weights['note']}")
    if provenance in NOT_A_SEGMENTATION:
        print(f"  NOTE: {NOT_A_SEGMENTATION[provenance]}")
    print(f"\n{ev.get('intended_use_disclaimer', 'Not for clinical use.')}")


def print_verdict(report: dict[str, Any]) -> None:
    """The paired verifier's verdict: overall pass/fail, each block's verdict, and why."""
    verifier = report.get("verifier") or {}
    print(f"\nVerifier {verifier.get('id', 'ct_segmentation_quality_v1')} {verifier.get('version', '')}: "
          f"{str(report.get('overall')).upper()}")
    for block in ("artifact_inventory", "anatomy_plausibility", "label_set_subset", "gt_metrics"):
        section = report.get(block) or {}
        if "verdict" in section:
            print(f"  {block}: {section['verdict']}")
        for check in section.get("checks") or []:
            if check.get("status") == "fail":
                print(f"    FAIL {check.get('name')}: {check.get('reason')}")
    for reason in report.get("overall_reasons") or []:
        print(f"  reason: {reason}")


async def session(args: argparse.Namespace, arguments: dict[str, Any], env: dict[str, str], errlog) -> int:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=str(args.binary), args=["serve"], env=env, cwd=os.getcwd())
    async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
        info = client.server_info
        print(f"Connected to {info.name if info else 'ctmr-skill'} {info.version if info else ''} (MCP {client.protocol_version})")
        tools = (await client.list_tools()).tools
        print("Tools: " + ", ".join(t.name for t in tools))

        print(f"\nrun_script {json.dumps(arguments)}")
        started = time.monotonic()

        last_message: list[str | None] = [None]

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            # Heartbeats repeat the last message: show each new message once, one line each.
            if message == last_message[0]:
                return
            last_message[0] = message
            share = f"{100 * progress / total:5.1f}%" if total else f"{progress:g}"
            line = " ".join((message or "").split())
            line = line if len(line) <= 110 else line[:109] + "…"
            print(f"  [{time.monotonic() - started:6.1f}s {share}] {line}", flush=True)

        result = await client.call_tool("run_script", arguments, progress_callback=on_progress)
        ev = result.structured_content
        if result.is_error:
            print(f"\nrun_script refused or failed:\n{text_of(result)}")
        if ev:
            print_evidence(ev)
        if result.is_error or not ev or ev.get("status") != "succeeded":
            return 1

        verdict = await client.call_tool("verify_evidence", {"pack_dir": ev["pack_dir"], "detail": "full"})
        if verdict.is_error:
            print(f"\nverify_evidence failed: {text_of(verdict)}")
        else:
            print_verdict(verdict.structured_content)
        return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    arguments, env, problems = plan(args)
    if problems:
        for problem in problems:
            print(f"demo_client: {problem}", file=sys.stderr)
        return 2
    try:
        import anyio  # noqa: F401 (the MCP SDK's runtime)
        import mcp  # noqa: F401
    except ImportError as err:
        print(f"demo_client: the MCP Python SDK is missing ({err}): run scripts/setup-python.sh and use .venv/bin/python", file=sys.stderr)
        return 2
    import anyio

    if args.verbose:
        return anyio.run(session, args, arguments, env, sys.stderr)
    with tempfile.NamedTemporaryFile("w", prefix="ctmr-skill-serve-", suffix=".log", delete=False) as errlog:
        try:
            code = anyio.run(session, args, arguments, env, errlog)
        except Exception as err:  # the session failed outright: show where the server said why
            print(f"demo_client: the MCP session failed: {err!r}; server log: {errlog.name}", file=sys.stderr)
            return 1
    if code != 0:
        print(f"(server log: {errlog.name})", file=sys.stderr)
    else:
        os.unlink(errlog.name)
    return code


if __name__ == "__main__":
    sys.exit(main())
