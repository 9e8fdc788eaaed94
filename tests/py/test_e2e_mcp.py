"""End-to-end: the official MCP Python SDK drives the real `ctmr-skill serve` binary,
which runs the real demo MONAI bundle (`python -m monai.bundle run`); every claim of
the returned evidence is re-derived from the files with nibabel/numpy/scipy.

Run: scripts/test.sh (builds the binary and the demo assets first), or
`.venv/bin/python -m pytest tests/py/test_e2e_mcp.py` once they exist.
The real-upstream test runs only when NV_SEGMENT_CTMR_ROOT is set.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import nibabel as nib
import numpy as np
import pytest
from conftest import (
    CALL_TIMEOUT_S,
    MAKE_DEMO_VOLUME,
    REPO_ROOT,
    Server,
    live_group_members,
    load_json,
    process_group_of,
    processes_mentioning,
    server_env,
    sha256_file,
    wait_for,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

TOOLS = {"run_script", "run_batch", "get_run", "cancel_run", "list_runs", "inspect_label_map", "list_labels", "verify_evidence", "render_overlay"}
DEMO_STEM = "demo_ct"
# Ids the demo bundle labels in the demo volume (real NV-Segment-CTMR ids).
DEMO_CORE_IDS = {1, 3, 5, 14}  # liver, spleen, right kidney, left kidney
DEMO_BUNDLE_MODEL = REPO_ROOT / "examples" / "demo-bundle" / "models" / "model.pt"


# --------------------------------------------------------------------------- helpers


def run_async(fn, *args):
    """Run one async test body on asyncio (the SDK's transport is anyio-based)."""
    return anyio.run(fn, *args)


def text_of(result) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def as_dict(result) -> dict[str, Any]:
    """The wire shape of a CallToolResult (camelCase keys), for messages and comparisons."""
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")


def argv_arguments(image: Path, out: Path, bundle: Path, *extra: str) -> dict[str, Any]:
    """run_script in the reference skill's argv form."""
    return {
        "script": "scripts/run_ctmr.py",
        "args": [str(image), "--modality", "CT_BODY", "--output-dir", str(out), "--upstream-root", str(bundle), *extra],
        # These tests re-derive the whole evidence document; the summary is tested on its own.
        "detail": "full",
    }


def bbox_of(mask: np.ndarray, label_id: int) -> tuple[list[int], list[int]]:
    idx = np.nonzero(mask == label_id)
    return [int(a.min()) for a in idx], [int(a.max()) for a in idx]


def touches_border(mask: np.ndarray, label_id: int) -> bool:
    lo, hi = bbox_of(mask, label_id)
    return any(l == 0 for l in lo) or any(h == n - 1 for h, n in zip(hi, mask.shape))


def assert_evidence_matches_files(
    ev: dict[str, Any], image: Path, out: Path, *, prompts: list[int] | None = None, server: Server | None = None
) -> dict[int, int]:
    """Re-derive every checkable claim of a succeeded demo run from the files; return {id: voxels}."""
    ctx = f"\nserver stderr tail:\n{server.stderr_tail()}" if server else ""
    assert ev["status"] == "succeeded", f"status {ev['status']!r}; gates={ev.get('gates')} logs={ev.get('logs')}{ctx}"
    assert ev["schema_version"] == "ctmr-skill.evidence/1"
    assert ev["skill"] == "nv_segment_ctmr" and ev["skill_id"] == "medagent.nv_segment_ctmr"
    assert "Not for clinical use" in ev["intended_use_disclaimer"]
    assert Path(ev["pack_dir"]).resolve() == out.resolve()

    # Weights: the demo bundle, and the evidence says plainly what that means.
    weights = ev["weights"]
    assert weights["provenance"] == "demo_bundle", weights
    assert "demo" in weights["note"].lower(), weights["note"]
    assert weights["sha256"] == sha256_file(DEMO_BUNDLE_MODEL), "weights.sha256 is not the demo model.pt's"

    # The documented entry point ran, in the bundle, with our output dir.
    inv = ev["invocation"]
    assert inv["official_entrypoint"] == "python -m monai.bundle run"
    assert inv["exit_code"] == 0
    assert Path(inv["upstream_root"]).resolve() == DEMO_BUNDLE_MODEL.parent.parent.resolve()
    assert inv["command"][1:4] == ["-m", "monai.bundle", "run"], inv["command"]
    assert str(out.resolve()) in inv["command"], f"--output_dir {out} not in {inv['command']}"
    assert inv["modality"] == "CT_BODY"
    assert inv["model_inventory"]["model_pt_present"] is True

    # The input, as nibabel reads it.
    in_img = nib.load(str(image))
    inp = ev["input"]
    assert Path(inp["path"]).is_absolute() and Path(inp["path"]).resolve() == image.resolve()
    assert inp["shape"] == list(in_img.shape) and inp["ndim"] == 3
    assert np.allclose(inp["spacing"], in_img.header.get_zooms()[:3], atol=1e-6)
    assert np.allclose(np.array(inp["affine"]), in_img.affine, atol=1e-6), "input.affine differs from nibabel's"
    assert inp["sha256"] == sha256_file(image)
    assert inp["modality"] == "CT_BODY"

    # The mask: where the upstream writes it, re-read with nibabel.
    outp = ev["output"]
    mask_path = Path(outp["path"])
    assert mask_path.is_absolute(), outp["path"]
    assert mask_path.resolve() == (out / DEMO_STEM / f"{DEMO_STEM}_trans.nii.gz").resolve()
    assert outp["sha256"] == sha256_file(mask_path)
    mask_img = nib.load(str(mask_path))
    data = np.asanyarray(mask_img.dataobj)
    assert not np.isnan(data).any(), "the demo mask holds NaN"
    assert np.array_equal(data, np.round(data)), "the demo mask holds non-integer voxels"
    assert outp["non_integer_voxels"] == 0 and outp["nan_voxels"] == 0
    mask = data.astype(np.int64)

    # Geometry: the mask lies on the input's grid.
    assert mask.shape == in_img.shape
    assert outp["shape"] == list(mask.shape)
    assert np.allclose(mask_img.affine, in_img.affine, atol=1e-4), "mask affine differs from the input's"
    geo = outp["geometry"]
    assert geo["shape_match"] and geo["spacing_match"] and geo["affine_match"], geo
    assert geo["input_shape"] == geo["output_shape"] == list(in_img.shape)
    assert math.isclose(geo["affine_max_abs_diff"], float(np.max(np.abs(mask_img.affine - in_img.affine))), abs_tol=1e-6)

    # Classes: counts, volumes, bounding boxes, from numpy.
    ids, counts = np.unique(mask, return_counts=True)
    expected = {int(i): int(c) for i, c in zip(ids, counts) if i != 0}
    assert expected, "the demo mask is empty"
    assert outp["label_ids_present"] == sorted(expected)
    claimed = {c["id"]: c for c in outp["classes"]}
    assert {i: c["voxels"] for i, c in claimed.items()} == expected
    voxel_ml = float(np.prod(np.asarray(mask_img.header.get_zooms()[:3], dtype=np.float64))) / 1000.0
    assert math.isclose(outp["voxel_volume_ml"], voxel_ml, rel_tol=1e-6)
    for label_id, count in expected.items():
        row = claimed[label_id]
        assert math.isclose(row["volume_ml"], count * voxel_ml, rel_tol=1e-6, abs_tol=1e-3), row
        assert outp["class_counts"][row["name"]] == count, (row["name"], outp["class_counts"])
        assert math.isclose(outp["class_volumes_ml"][row["name"]], count * voxel_ml, rel_tol=1e-6, abs_tol=1e-3)
        lo, hi = bbox_of(mask, label_id)
        assert (row["bbox_min"], row["bbox_max"]) == (lo, hi), (label_id, row, lo, hi)
        assert row["touches_border"] == touches_border(mask, label_id), row
    assert len(outp["class_counts"]) == len(expected), outp["class_counts"]
    assert outp["any_label_present"] is True and outp["label_set_valid"] is True
    assert outp["unexpected_label_ids"] == []
    if 1 in claimed:
        assert claimed[1]["name"] == "liver"

    # What the demo bundle labels in the demo volume.
    if prompts is None:
        assert DEMO_CORE_IDS <= set(expected), f"demo labels {sorted(expected)} lack {sorted(DEMO_CORE_IDS - set(expected))}"
    else:
        assert outp["label_prompts_requested"] == prompts
        assert set(expected) == set(prompts), f"prompted {prompts}, mask holds {sorted(expected)}"

    # Gates and sanity checks all hold on a good run.
    assert ev["gates"], "no gates recorded"
    bad_gates = [g for g in ev["gates"] if g["status"] not in ("passed", "skipped")]
    assert not bad_gates, bad_gates
    assert ev["sanity_checks"], "no sanity checks recorded"
    bad_checks = [s for s in ev["sanity_checks"] if s["status"] != "passed"]
    assert not bad_checks, bad_checks
    return expected


def assert_pack_complete(ev: dict[str, Any], out: Path) -> None:
    """The pack on disk: output.json is the returned evidence; the rest agrees with it."""
    assert load_json(out / "output.json") == ev, "output.json differs from structuredContent"
    manifest = load_json(out / "manifest.json")
    assert manifest["schema_version"] == "ctmr-skill.manifest/1"
    assert manifest["skill_id"] == "medagent.nv_segment_ctmr"
    assert manifest["run_id"] == ev["run_id"]
    assert manifest["hashes"]["input_sha256"] == ev["input"]["sha256"]
    assert manifest["hashes"]["mask_sha256"] == sha256_file(Path(ev["output"]["path"]))
    assert manifest["hashes"]["model_sha256"] == ev["weights"]["sha256"]
    assert manifest["command"] == ev["invocation"]["command"]
    assert manifest["not_for_clinical_use"]
    summary = load_json(out / "validation_summary.json")
    assert summary["schema_version"] == "ctmr-skill.validation/1"
    assert summary["status"] == ev["status"]
    assert summary["overall_status"] == "passed", summary
    assert summary["gates"] == ev["gates"] and summary["sanity_checks"] == ev["sanity_checks"]
    for name in ("upstream.stdout.log", "upstream.stderr.log"):
        assert (out / "logs" / name).is_file(), f"logs/{name} missing"
    # The upstream's engine logs its run; the captured stderr/stdout hold it.
    logs = (out / "logs" / "upstream.stdout.log").read_text() + (out / "logs" / "upstream.stderr.log").read_text()
    assert "Engine run" in logs or "Epoch" in logs, "upstream logs do not show the MONAI engine running"
    for name in ("labels.json", "labels.ctbl", "labels_itksnap.txt"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, f"{name} missing or empty"



async def call_and_check_schema(client, name: str, arguments: dict[str, Any], **kwargs):
    """Call a tool; on success also validate structuredContent against the listed outputSchema
    explicitly (the SDK does too, but a silent SDK change must not hide a schema break)."""
    listed = {t.name: t for t in (await client.list_tools()).tools}
    result = await client.call_tool(name, arguments, **kwargs)
    if not result.is_error:
        schema = listed[name].output_schema
        assert schema is not None, f"{name} lists no outputSchema"
        jsonschema.validate(result.structured_content, schema)
    return result


# --------------------------------------------------------------------------- tools/list


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28", "auto"])
def test_tools_listed_in_both_protocol_eras(server: Server, mode: str):
    async def body():
        async with server.client(mode=mode) as client:
            if mode == "legacy":
                assert client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
                assert client.server_info is not None and client.server_info.name
            else:
                # "auto" probes server/discover first: a modern answer means the server speaks 2026-07-28.
                assert client.protocol_version == "2026-07-28", f"negotiated {client.protocol_version}"
            return (await client.list_tools()).tools

    tools = run_async(body)
    by_name = {t.name: t for t in tools}
    assert set(by_name) == TOOLS, f"tools: {sorted(by_name)}; stderr: {server.stderr_tail()}"
    for tool in tools:
        schema = tool.input_schema
        assert schema["type"] == "object", (tool.name, schema)
        assert schema.get("additionalProperties") is False, (tool.name, "additionalProperties must be false")
        jsonschema.Draft202012Validator.check_schema(schema)
        assert tool.output_schema is not None and tool.output_schema.get("type") == "object", tool.name
        jsonschema.Draft202012Validator.check_schema(tool.output_schema)
        assert "clinical" in (tool.description or "").lower(), f"{tool.name} description does not mention clinical use"
    run_props = by_name["run_script"].input_schema["properties"]
    for arg in ("script", "args", "input", "modality", "output_dir", "label_prompts", "structures", "upstream_root",
                "patch_size", "sw_batch_size", "cpu_postprocessing", "tensorrt"):
        assert arg in run_props, f"run_script lacks {arg}"
    batch_props = by_name["run_batch"].input_schema["properties"]
    for knob in ("cpu_postprocessing", "tensorrt"):
        for props in (run_props, batch_props):
            assert props[knob]["type"] == "boolean" and props[knob]["default"] is False, props[knob]
    assert set(run_props["modality"]["enum"]) == {"CT_BODY", "MRI_BODY", "MRI_BRAIN"}
    assert by_name["inspect_label_map"].input_schema.get("required") == ["mask"]
    assert by_name["verify_evidence"].input_schema.get("required") == ["pack_dir"]
    assert by_name["inspect_label_map"].annotations and by_name["inspect_label_map"].annotations.read_only_hint is True
    assert by_name["run_script"].annotations is None or by_name["run_script"].annotations.read_only_hint is not True


# --------------------------------------------------------------------------- run_script


@pytest.fixture(scope="session")
def argv_run(session_server: Server, demo_bundle: Path, demo_ct: Path, tmp_path_factory) -> dict[str, Any]:
    """One run_script call in the reference skill's argv form, shared by the tests that read its pack."""
    out = tmp_path_factory.mktemp("argv-run") / "pack"

    async def body():
        async with session_server.client(mode="legacy") as client:
            return await call_and_check_schema(client, "run_script", argv_arguments(demo_ct, out, demo_bundle))

    result = run_async(body)
    assert not result.is_error, f"run_script failed: {text_of(result)}\nstderr: {session_server.stderr_tail()}"
    return {"result": result, "evidence": result.structured_content, "out": out}


def test_run_script_argv_form_evidence_matches_mask(argv_run, demo_ct: Path, session_server: Server):
    assert_evidence_matches_files(argv_run["evidence"], demo_ct, argv_run["out"], server=session_server)
    assert text_of(argv_run["result"]).strip(), "no text content beside structuredContent"


def test_run_script_writes_complete_pack(argv_run):
    assert_pack_complete(argv_run["evidence"], argv_run["out"])


def test_run_script_structured_form_reports_progress(server: Server, demo_bundle: Path, demo_ct: Path, tmp_path: Path):
    """Structured arguments with label prompts, on a 2026-07-28 connection, with a progress token."""
    out = tmp_path / "structured"
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def body():
        async with server.client(mode="2026-07-28") as client:
            return await call_and_check_schema(
                client,
                "run_script",
                {
                    "detail": "full",
                    "input": str(demo_ct),
                    "modality": "CT_BODY",
                    "output_dir": str(out),
                    "label_prompts": [1, 3],
                    "upstream_root": str(demo_bundle),
                    "device": "cpu",
                },
                progress_callback=on_progress,
            )

    result = run_async(body)
    assert not result.is_error, f"{text_of(result)}\nstderr: {server.stderr_tail()}"
    ev = result.structured_content
    assert_evidence_matches_files(ev, demo_ct, out, prompts=[1, 3], server=server)
    assert ev["runtime"]["device"] == "cpu" and ev["runtime"]["device_requested"] == "cpu"
    assert load_json(out / "output.json") == ev

    assert progress, "no notifications/progress received for a call with a progress token"
    values = [p[0] for p in progress]
    assert all(b > a for a, b in zip(values, values[1:])), f"progress must increase: {values}"
    for value, total, _ in progress:
        assert total is None or value <= total, progress
    assert any(m for _, _, m in progress), f"no progress message says what is happening: {progress}"


def test_run_script_structures_resolve_to_ids(server: Server, demo_bundle: Path, demo_ct: Path, tmp_path: Path):
    """`structures` names are resolved against the label table before anything runs:
    an unknown name is refused with close real names (no upstream run needed)."""

    async def body():
        async with server.client() as client:
            return await client.call_tool(
                "run_script",
                {
                    "input": str(demo_ct),
                    "output_dir": str(tmp_path / "never"),
                    "structures": ["livr"],
                    "upstream_root": str(demo_bundle),
                },
            )

    result = run_async(body)
    assert result.is_error, as_dict(result)
    message = text_of(result)
    assert "structures" in message and "livr" in message, message
    assert "liver" in message, f"no closest real name suggested: {message}"
    assert not (tmp_path / "never" / DEMO_STEM).exists(), "a refused call must not run the upstream"


# --------------------------------------------------------------------------- cancellation


def test_cancel_kills_upstream_process_group(server: Server, demo_bundle: Path, demo_ct: Path, tmp_path: Path):
    """Cancel mid-flight (SDK task cancellation sends notifications/cancelled): the upstream's
    whole process group dies, the pack says "cancelled", and the server keeps serving."""
    server.extra_args.append("--no-warm")  # the one-shot process group; warm workers have their own tests
    out = tmp_path / "cancelled-run"
    seen_upstream: list[list[tuple[int, str]]] = []
    groups: set[int] = set()
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def body():
        async with server.client(mode="legacy") as client:
            finished = []
            async with anyio.create_task_group() as tg:

                async def call():
                    # The slowest sliding window the schema allows keeps the run going.
                    finished.append(
                        await client.call_tool(
                            "run_script",
                            {
                                "input": str(demo_ct),
                                "output_dir": str(out),
                                "upstream_root": str(demo_bundle),
                                "patch_size": [16, 16, 16],
                                "device": "cpu",
                            },
                            progress_callback=on_progress,
                        )
                    )
                    tg.cancel_scope.cancel()

                tg.start_soon(call)
                # Cancel once the upstream is really running (its argv carries our output dir).
                with anyio.fail_after(CALL_TIMEOUT_S):
                    while not (procs := processes_mentioning(str(out))):
                        await anyio.sleep(0.05)
                seen_upstream.append(procs)
                groups.update(g for g in (process_group_of(pid) for pid, _ in procs) if g is not None)
                # Cancelling the caller's task is how the SDK cancels: it sends notifications/cancelled.
                tg.cancel_scope.cancel()
            assert not finished, f"run_script finished before it could be cancelled: {finished}"

            # The server writes the cancelled pack after killing the group.
            output_json = out / "output.json"
            with anyio.fail_after(120):
                while not output_json.is_file():
                    await anyio.sleep(0.1)
            leftovers = wait_for(
                lambda: not processes_mentioning(str(out)) and not any(live_group_members(g) for g in groups), timeout_s=30
            )
            # Still serving after a cancel.
            labels = await client.call_tool("list_labels", {"query": "liver", "upstream_root": str(demo_bundle)})
            return leftovers, labels

    leftovers, labels = run_async(body)
    assert seen_upstream, "the upstream process never started"
    assert groups, f"no process group read for {seen_upstream}"
    assert any("monai.bundle" in cmd for _, cmd in seen_upstream[0]), f"cancelled before the upstream ran: {seen_upstream}"
    assert os.getpgid(0) not in groups, "the upstream ran in the test's own process group"
    survivors = {g: live_group_members(g) for g in groups}
    assert leftovers, f"the cancelled run left processes: {processes_mentioning(str(out))}, groups {survivors}"
    for pid, _ in seen_upstream[0]:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"pid {pid} of the cancelled run is alive"
    ev = load_json(out / "output.json")
    assert ev["status"] == "cancelled", f"status {ev['status']!r}\n{server.stderr_tail()}"
    assert "Not for clinical use" in ev["intended_use_disclaimer"]
    summary = load_json(out / "validation_summary.json")
    assert summary["status"] == "cancelled" and summary["overall_status"] == "failed", summary
    assert not labels.is_error, text_of(labels)
    assert any(row.get("id") == 1 for row in _label_rows(labels.structured_content)), labels.structured_content


def test_client_disconnect_mid_run_leaves_no_upstream(server: Server, demo_bundle: Path, demo_ct: Path, tmp_path: Path):
    """A host that drops the session mid-run (stdin EOF with no notifications/cancelled, as a
    crashed host does) must not leave the upstream running. The SDK clients always send a
    courtesy cancel first, so this speaks raw JSON-RPC lines over the same stdio transport."""
    out = tmp_path / "abandoned-run"
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw-e2e", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "run_script", "arguments": {
            "input": str(demo_ct), "output_dir": str(out), "upstream_root": str(demo_bundle), "patch_size": [16, 16, 16]}}},
    ]
    with open(server.errlog, "a") as errlog:
        proc = subprocess.Popen(
            [str(server.binary), "serve", "--no-warm"], cwd=server.cwd, env={**os.environ, **server.env},
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errlog, text=True,
        )
        try:
            for message in messages:
                proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            procs = wait_for(lambda: processes_mentioning(str(out)), timeout_s=CALL_TIMEOUT_S)
            assert procs, f"the upstream never started\n{server.stderr_tail()}"
            groups = {g for g in (process_group_of(pid) for pid, _ in procs) if g is not None}
            proc.stdin.close()  # the host is gone
            exit_code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    gone = wait_for(lambda: not processes_mentioning(str(out)) and not any(live_group_members(g) for g in groups), timeout_s=30)
    assert gone, f"upstream left running after the host went away: {processes_mentioning(str(out))}"
    assert exit_code == 0, f"serve exited {exit_code} on end of input\n{server.stderr_tail()}"
    # The server had exited: whatever the pack says now is final.
    assert (out / "output.json").is_file(), f"no evidence written for the abandoned run: {sorted(p.name for p in out.rglob('*'))}"
    assert load_json(out / "output.json")["status"] == "cancelled"


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _label_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The label rows of a list_labels result (`labels`), for a containment check."""
    rows = doc.get("labels")
    assert isinstance(rows, list), f"list_labels result has no labels list: {sorted(doc)}"
    return rows


# --------------------------------------------------------------------------- bad arguments


def test_bad_arguments_are_tool_errors_naming_the_argument(server: Server, demo_bundle: Path, demo_ct: Path, tmp_path: Path):
    out = str(tmp_path / "out")
    base = {"input": str(demo_ct), "output_dir": out, "upstream_root": str(demo_bundle)}
    missing = tmp_path / "no_such_ct.nii.gz"
    cases = [
        ("modality", {**base, "modality": "CT"}, ["modality", "CT_BODY"]),
        ("label_prompts out of range", {**base, "label_prompts": [99999]}, ["label_prompts", "99999"]),
        ("label_prompts unknown id", {**base, "label_prompts": [1000]}, ["label_prompts", "1000"]),
        ("missing input", {**base, "input": str(missing)}, ["input", str(missing)]),
        ("output_dir in bundle", {**base, "output_dir": str(demo_bundle / "eval")}, ["output_dir"]),
        ("unknown argument", {**base, "outputdir": out}, ["outputdir"]),
        ("argv and structured mixed", {**argv_arguments(demo_ct, Path(out), demo_bundle), "modality": "CT_BODY"}, [("script", "args")]),
        ("MRI_BRAIN unacknowledged", {**base, "modality": "MRI_BRAIN"}, ["preprocessed_brain_input"]),
    ]

    async def body():
        results = []
        async with server.client(mode="legacy") as client:
            for label, arguments, _ in cases:
                results.append((label, await client.call_tool("run_script", arguments)))
            # The server keeps working after every refusal.
            after = await client.call_tool("list_labels", {"resolve": ["liver"], "upstream_root": str(demo_bundle)})
            tools = await client.list_tools()
        return results, after, tools

    results, after, tools = run_async(body)
    for (label, _, words), (_, result) in zip(cases, results):
        assert result.is_error, f"{label}: not an error: {as_dict(result)}"
        message = text_of(result)
        for word in words:
            alternatives = word if isinstance(word, tuple) else (word,)
            assert any(w in message for w in alternatives), f"{label}: message names none of {alternatives}: {message!r}"
    assert not (demo_bundle / "eval").exists(), "a refused call wrote into the bundle"
    assert not Path(out, DEMO_STEM).exists(), "a refused call ran the upstream"
    assert not after.is_error, text_of(after)
    assert {t.name for t in tools.tools} == TOOLS


# --------------------------------------------------------------------------- inspect_label_map


def test_inspect_label_map_counts_match_numpy(server: Server, demo_bundle: Path, tmp_path: Path):
    from scipy import ndimage

    shape = (23, 19, 17)
    mask = np.zeros(shape, dtype=np.int16)
    mask[2:10, 3:9, 4:12] = 1  # liver: a box
    mask[12:20, 10:18, 1:6] = 3  # spleen: an interior box
    mask[0:3, 0:2, 0:17] = 5  # right kidney: touches three faces
    mask[15:18, 2:4, 10:12] = 14  # left kidney, part one
    mask[20:22, 2:4, 14:16] = 14  # left kidney, part two (a separate 26-component)
    affine = np.array([[-1.5, 0.1, 0.0, 40.0], [0.0, 2.0, 0.2, -30.0], [0.0, 0.0, 2.5, 12.0], [0, 0, 0, 1]])
    path = tmp_path / "mask.nii.gz"
    img = nib.Nifti1Image(mask, affine)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    reread = nib.load(str(path))

    async def body():
        async with server.client(mode="2026-07-28") as client:
            return await call_and_check_schema(
                client, "inspect_label_map", {"mask": str(path), "components": True, "upstream_root": str(demo_bundle), "detail": "full"}
            )

    result = run_async(body)
    assert not result.is_error, f"{text_of(result)}\n{server.stderr_tail()}"
    report = result.structured_content
    assert report["mask"]["shape"] == list(shape)
    assert np.allclose(np.array(report["mask"]["affine"]), reread.affine, atol=1e-6)
    assert np.allclose(report["mask"]["spacing"], reread.header.get_zooms()[:3], atol=1e-6)
    voxel_ml = float(np.prod(np.asarray(reread.header.get_zooms()[:3], dtype=np.float64))) / 1000.0
    assert math.isclose(report["voxel_volume_ml"], voxel_ml, rel_tol=1e-9)
    assert report["total_voxels"] == mask.size
    assert report["background_voxels"] == int((mask == 0).sum())
    assert report["non_integer_voxels"] == 0 and report["nan_voxels"] == 0 and report["integer_valued"] is True

    ids, counts = np.unique(mask, return_counts=True)
    expected = {int(i): int(c) for i, c in zip(ids, counts) if i != 0}
    rows = {row["id"]: row for row in report["labels"]}
    assert {i: r["voxels"] for i, r in rows.items()} == expected
    structure = np.ones((3, 3, 3), dtype=bool)
    names = {1: "liver", 3: "spleen", 5: "right kidney", 14: "left kidney"}
    for label_id, count in expected.items():
        row = rows[label_id]
        assert row["name"] == names[label_id], row
        assert math.isclose(row["volume_ml"], count * voxel_ml, rel_tol=1e-9)
        assert (row["bbox_min"], row["bbox_max"]) == bbox_of(mask, label_id)
        assert row["touches_border"] == touches_border(mask, label_id), row
        centroid = np.argwhere(mask == label_id).mean(axis=0)
        assert np.allclose(row["centroid_voxel"], centroid, atol=1e-9)
        assert np.allclose(row["centroid_mm"], reread.affine[:3, :3] @ centroid + reread.affine[:3, 3], atol=1e-6)
        _, n_components = ndimage.label(mask == label_id, structure=structure)
        assert row["components"]["count"] == n_components, (label_id, row["components"])
    assert rows[14]["components"]["count"] == 2
    assert "clinical" in report["not_for_clinical_use"].lower()


# --------------------------------------------------------------------------- verify_evidence


def test_verify_evidence_on_a_real_pack(argv_run, session_server: Server, tmp_path: Path):
    """The paired verifier recomputes from the files: an intact pack's artifacts pass (the
    overall verdict may fail on anatomy: demo labels are not anatomy, and it must say why);
    a copy whose output.json lies about the mask fails."""
    out = argv_run["out"]
    tampered = tmp_path / "tampered-pack"
    shutil.copytree(out, tampered)
    doc = load_json(tampered / "output.json")
    doc["output"]["sha256"] = "0" * 64
    doc["output"]["label_ids_present"] = sorted(doc["output"]["label_ids_present"] + [2])
    (tampered / "output.json").write_text(json.dumps(doc, indent=2))

    async def body():
        async with session_server.client(mode="legacy") as client:
            good = await call_and_check_schema(client, "verify_evidence", {"pack_dir": str(out), "detail": "full"})
            bad = await call_and_check_schema(client, "verify_evidence", {"pack_dir": str(tampered), "detail": "full"})
            missing = await client.call_tool("verify_evidence", {"pack_dir": str(tmp_path / "no-such-pack")})
            return good, bad, missing

    good, bad, missing = run_async(body)
    assert not good.is_error, f"{text_of(good)}\n{session_server.stderr_tail()}"
    report = good.structured_content
    assert report["overall"] in ("pass", "fail"), report["overall"]
    assert "ct_segmentation_quality_v1" in report["verifier"]["id"]
    assert "clinical" in report["not_for_clinical_use"].lower()
    inventory = report["artifact_inventory"]
    assert inventory["verdict"] == "pass", [c for c in inventory["checks"] if c["status"] != "pass"]
    assert inventory["label_map_sha256"] == sha256_file(Path(argv_run["evidence"]["output"]["path"]))
    assert inventory["label_ids_present"] == argv_run["evidence"]["output"]["label_ids_present"]
    if report["overall"] == "fail":
        assert report["overall_reasons"], "a fail verdict without reasons"
    else:
        assert report["overall_reasons"] == []

    assert not bad.is_error, text_of(bad)
    lie = bad.structured_content
    assert lie["overall"] == "fail" and lie["artifact_inventory"]["verdict"] == "fail", lie["artifact_inventory"]["checks"]
    failed = [c["name"] for c in lie["artifact_inventory"]["checks"] if c["status"] == "fail"]
    assert failed, "the tampered pack failed without a failing check"
    assert lie["overall_reasons"]

    # The refusal names the argument or the path it got (COMMON: "naming the path/argument").
    assert missing.is_error, as_dict(missing)
    assert "pack_dir" in text_of(missing) or str(tmp_path / "no-such-pack") in text_of(missing), text_of(missing)


# --------------------------------------------------------------------------- CLI


def test_cli_run_prints_the_evidence(ctmr_binary: Path, demo_bundle: Path, demo_ct: Path, tmp_path: Path):
    """The CLI path the README shows: same pack, evidence JSON on stdout, exit 0."""
    out = tmp_path / "cli-run"
    proc = subprocess.run(
        [str(ctmr_binary), "run", str(demo_ct), "--modality", "CT_BODY", "--output-dir", str(out), "--upstream-root", "examples/demo-bundle"],
        cwd=REPO_ROOT,
        env={**os.environ, **server_env()},
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}"
    ev = json.loads(proc.stdout)
    assert_evidence_matches_files(ev, demo_ct, out)
    assert load_json(out / "output.json") == ev


def test_cli_run_refuses_bad_modality_with_exit_2(ctmr_binary: Path, demo_bundle: Path, demo_ct: Path, tmp_path: Path):
    proc = subprocess.run(
        [str(ctmr_binary), "run", str(demo_ct), "--modality", "CT", "--output-dir", str(tmp_path / "o"), "--upstream-root", str(demo_bundle)],
        cwd=REPO_ROOT,
        env={**os.environ, **server_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "modality" in (proc.stderr + proc.stdout)
    assert not (tmp_path / "o" / DEMO_STEM).exists()


# --------------------------------------------------------------------------- real upstream (opt-in)


@pytest.mark.skipif(
    not os.environ.get("NV_SEGMENT_CTMR_ROOT"),
    reason="opt-in: set NV_SEGMENT_CTMR_ROOT to an NV-Segment-CTMR bundle root with models/model.pt to run the real upstream",
)
def test_real_upstream_two_prompts(ctmr_binary: Path, python_exe: Path, tmp_path: Path):
    root = Path(os.environ["NV_SEGMENT_CTMR_ROOT"])
    assert (root / "configs" / "inference.json").is_file(), f"NV_SEGMENT_CTMR_ROOT={root} has no configs/inference.json"
    assert (root / "models" / "model.pt").is_file(), f"NV_SEGMENT_CTMR_ROOT={root} has no models/model.pt"
    image = tmp_path / "small_ct.nii.gz"
    subprocess.run(
        # One 64^3 window at the bundle's 1.5 mm grid: small enough for a CPU run.
        [str(python_exe), str(MAKE_DEMO_VOLUME), str(image), "--shape", "32", "32", "24", "--spacing", "3", "3", "3"],
        check=True,
        timeout=120,
    )
    out = tmp_path / "real"
    server = Server(
        binary=ctmr_binary,
        cwd=REPO_ROOT,
        env=server_env({"NV_SEGMENT_CTMR_ROOT": str(root)}),
        errlog=tmp_path / "server.stderr.log",
    )

    async def body():
        async with server.client(mode="legacy") as client:
            return await call_and_check_schema(
                client,
                "run_script",
                {"input": str(image), "output_dir": str(out), "label_prompts": [1, 3], "patch_size": [64, 64, 64], "detail": "full"},
            )

    result = run_async(body)
    assert not result.is_error, f"{text_of(result)}\n{server.stderr_tail()}"
    ev = result.structured_content
    assert ev["status"] == "succeeded", ev["logs"]
    assert ev["weights"]["provenance"] in ("upstream", "stand_in_random_init"), ev["weights"]
    assert Path(ev["invocation"]["upstream_root"]).resolve() == root.resolve()
    mask_img = nib.load(ev["output"]["path"])
    in_img = nib.load(str(image))
    assert mask_img.shape == in_img.shape and np.allclose(mask_img.affine, in_img.affine, atol=1e-4)
    data = np.asanyarray(mask_img.dataobj)
    ids, counts = np.unique(data[~np.isnan(data)].astype(np.int64), return_counts=True)
    present = {int(i): int(c) for i, c in zip(ids, counts) if i != 0}
    assert set(present) <= {1, 3}, f"prompted [1, 3], mask holds {sorted(present)}"
    claimed = {c["id"]: c["voxels"] for c in ev["output"]["classes"]}
    assert claimed == present
    assert ev["output"]["label_prompts_requested"] == [1, 3]
    assert "--patch_size" in " ".join(ev["invocation"]["command"])
