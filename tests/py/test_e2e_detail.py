"""`detail: summary | full`, resource links and resources, driven by the official MCP
Python SDK against the real binary and the real demo bundle (not for clinical use).

The SDK validates every tool result's structuredContent against the listed
outputSchema; `call_and_check_schema` validates it again explicitly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Server, load_json
from test_e2e_mcp import call_and_check_schema, run_async

MODES = ["legacy", "2026-07-28"]


def texts(result) -> list[str]:
    return [b.text for b in result.content if getattr(b, "type", None) == "text"]


def links(result) -> dict[str, Any]:
    return {b.name: b for b in result.content if getattr(b, "type", None) == "resource_link"}


def run_args(demo_ct: Path, out: Path, bundle: Path, **extra: Any) -> dict[str, Any]:
    return {"input": str(demo_ct), "output_dir": str(out), "upstream_root": str(bundle), "label_prompts": [1, 3], **extra}


@pytest.mark.parametrize("mode", MODES)
def test_summary_is_small_valid_and_links_the_pack(server: Server, demo_bundle: Path, demo_ct: Path, tmp_path: Path, mode: str):
    out = tmp_path / "pack"
    (tmp_path / "outside.json").write_text("{}")  # exists, next to the pack: still refused

    async def body():
        async with server.client(mode=mode) as client:
            summary = await call_and_check_schema(client, "run_script", run_args(demo_ct, out, demo_bundle))
            listed = await client.list_resources()
            uri = str(links(summary)["output.json"].uri)
            read = await client.read_resource(uri)
            refused = None
            try:
                await client.read_resource(str(links(summary)["output.json"].uri).replace("output.json", "../outside.json"))
            except Exception as e:  # the server answers an error, the SDK raises it
                refused = str(e)
            mask_refused = None
            mask_name = next(n for n in links(summary) if n.endswith(".nii.gz"))
            try:
                await client.read_resource(str(links(summary)[mask_name].uri))
            except Exception as e:
                mask_refused = str(e)
            return summary, listed, read, refused, mask_refused

    summary, listed, read, refused, mask_refused = run_async(body)
    assert not summary.is_error, texts(summary)
    on_disk = load_json(out / "output.json")
    # Text: what a model needs to act, not the document again.
    [text] = texts(summary)
    assert "succeeded" in text and str(out) in text, text
    assert "requested structures" in text and "liver (1)" in text, text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert len(text) < 2400, f"summary text of a few structures is {len(text)} chars"
    # structuredContent: a documented subset of the full document, with what was cut in _meta.
    sc = summary.structured_content
    for key in ("schema_version", "run_id", "pack_dir", "status"):
        assert sc[key] == on_disk[key], key
    assert len(json.dumps(sc)) < len(json.dumps(on_disk)), "summary structuredContent is not smaller"
    cuts = (summary.meta or {}).get("ctmr/summary")
    assert cuts and cuts["detail"] == "summary" and cuts["omitted"], cuts
    for path in cuts["omitted"]:
        *parents, leaf = path.split(".")[1:]
        full, cut = on_disk, sc
        for part in parents:
            full, cut = full[part], cut[part]
        assert leaf in full and leaf not in cut, path
    # Resource links: the pack's files, under the ctmr://pack scheme.
    names = set(links(summary))
    assert {"output.json", "manifest.json", "labels.json"} <= names, names
    assert any(n.endswith("_trans.nii.gz") for n in names), names
    for link in links(summary).values():
        assert str(link.uri).startswith("ctmr://pack/"), link.uri
        assert (Path(str(link.uri)[len("ctmr://pack"):])).is_file(), link.uri
    # resources/list knows the pack; resources/read gives the whole evidence.
    assert any(str(r.uri) == str(links(summary)["output.json"].uri) for r in listed.resources), listed
    [contents] = read.contents
    assert contents.mime_type == "application/json"
    assert json.loads(contents.text) == on_disk
    # Outside the pack, and binary files, are refused.
    assert refused and "not inside" in refused, refused
    assert mask_refused and "not a text file" in mask_refused, mask_refused


def test_full_is_the_whole_document(server: Server, demo_bundle: Path, demo_ct: Path, tmp_path: Path):
    out = tmp_path / "pack"

    async def body():
        async with server.client(mode="legacy") as client:
            full = await call_and_check_schema(client, "run_script", run_args(demo_ct, out, demo_bundle, detail="full"))
            summary = await call_and_check_schema(client, "verify_evidence", {"pack_dir": str(out)})
            verified = await call_and_check_schema(client, "verify_evidence", {"pack_dir": str(out), "detail": "full"})
            inspected = await call_and_check_schema(client, "inspect_label_map", {"mask": full.structured_content["output"]["path"]})
            return full, summary, verified, inspected

    full, summary, verified, inspected = run_async(body)
    assert not full.is_error, texts(full)
    on_disk = load_json(out / "output.json")
    assert full.structured_content == on_disk
    # Full keeps today's JSON text block, and links the pack too.
    assert any(t.startswith("{") and json.loads(t) == on_disk for t in texts(full))
    assert "output.json" in links(full)
    assert (full.meta or {}).get("ctmr/summary") is None
    # verify_evidence: the summary names the verdict; full is the whole report.
    assert summary.structured_content["overall"] == verified.structured_content["overall"]
    assert verified.structured_content["overall"] in texts(summary)[0]
    assert "output.json" in links(summary) and "output.json" in links(verified)
    assert not inspected.is_error and "labels:" in texts(inspected)[0], texts(inspected)
