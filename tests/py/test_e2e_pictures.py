"""End-to-end pictures over MCP with the official Python SDK: run_script on the demo
bundle answers with an `image` content item (a real PNG of the demo organs, the same
bytes as the pack's preview.png), render_overlay and inspect_label_map draw on request,
and list_labels works with no bundle root at all (the built-in upstream table).

Run: `.venv/bin/python -m pytest -q tests/py/test_e2e_pictures.py` once the binary and
the demo assets exist (scripts/test.sh builds them).
"""

from __future__ import annotations

import base64
import json
import os
import struct
import zlib
from pathlib import Path

import anyio
import nibabel as nib
import numpy as np
from conftest import REPO_ROOT, Server, python_path, sha256_file

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEMO_LABELS = REPO_ROOT / "examples" / "demo-data" / "demo_ct_labels.nii.gz"
def _upstream_configs() -> Path:
    """The shared upstream data build.rs embeds (same search order): the independent copy
    the built-in table is compared with."""
    candidates = [os.environ.get("CTMR_SKILL_UPSTREAM_DATA"),
                  REPO_ROOT / ".." / "shared" / "upstream-data" / "NV-Segment-CTMR" / "configs",
                  "/work/shared/upstream-data/NV-Segment-CTMR/configs"]
    for c in candidates:
        if c and (Path(c) / "metadata.json").is_file():
            return Path(c)
    raise FileNotFoundError(f"upstream data not found at {candidates}; set CTMR_SKILL_UPSTREAM_DATA")


BUILT_IN_METADATA = _upstream_configs() / "metadata.json"


def decode_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB PNG (as the server writes them) → H×W×3 array; stdlib zlib only."""
    assert data[:8] == PNG_SIGNATURE, f"not a PNG: {data[:8]!r}"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert (depth, colour, interlace) == (8, 2, 0), f"expected 8-bit RGB, got {header}"
    raw = zlib.decompress(idat)
    stride = width * 3
    out = np.zeros((height, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int32)
        cur = np.zeros(stride, dtype=np.int32)
        for x in range(stride):
            a = cur[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + pred) & 0xFF
        out[y] = cur
        prev = cur
    return out.reshape(height, width, 3).astype(np.uint8)


def images_of(result) -> list[bytes]:
    """The decoded PNG bytes of every image content item."""
    found = []
    for block in result.content:
        if getattr(block, "type", None) == "image":
            assert block.mime_type == "image/png", block.mime_type
            found.append(base64.b64decode(block.data))
    return found


def colours(picture: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in px) for px in picture.reshape(-1, 3)}


def test_run_script_answers_with_the_pack_preview(server: Server, demo_bundle: Path, demo_ct: Path, tmp_path: Path):
    out, quiet = tmp_path / "pack", tmp_path / "quiet"
    args = {"input": str(demo_ct), "output_dir": str(out), "upstream_root": str(demo_bundle), "device": "cpu"}

    async def body():
        async with server.client(mode="legacy") as client:
            shown = await client.call_tool("run_script", args)
            hidden = await client.call_tool("run_script", {**args, "output_dir": str(quiet), "preview": False})
            return shown, hidden

    shown, hidden = anyio.run(body)
    assert not shown.is_error, f"{shown.content}\n{server.stderr_tail()}"
    pictures = images_of(shown)
    assert len(pictures) == 1, f"expected one image item, got {len(pictures)}"
    png = pictures[0]
    assert png[:8] == PNG_SIGNATURE and len(png) < 1_000_000, len(png)
    picture = decode_png(png)
    assert picture.shape[0] > 200 and picture.shape[1] > 400, picture.shape
    assert len(colours(picture)) > 50, "the picture is (nearly) one colour"
    # The same bytes as the pack's preview.png, whose hash the manifest records.
    preview = out / "preview.png"
    assert preview.read_bytes() == png
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hashes"]["preview_png_sha256"] == sha256_file(preview)
    # The demo organs are drawn in their label-table colours (labels.json sidecar).
    sidecar = json.loads((out / "labels.json").read_text())
    by_id = {int(key): tuple(entry["colour"]) for key, entry in sidecar["labels"].items()}
    drawn = colours(picture)
    for organ in (1, 3):  # liver, spleen
        assert by_id[organ] in drawn, f"class {organ}'s colour {by_id[organ]} is not in the picture"
    # preview: false answers without the image; the pack still has its picture and the
    # structured result has the same shape.
    assert not hidden.is_error
    assert images_of(hidden) == []
    assert (quiet / "preview.png").is_file()
    assert set(hidden.structured_content) == set(shown.structured_content)


def test_render_overlay_and_inspect_preview_over_mcp(server: Server, demo_ct: Path, tmp_path: Path):
    written = tmp_path / "overlay.png"

    async def body():
        async with server.client(mode="legacy") as client:
            rendered = await client.call_tool(
                "render_overlay",
                {"mask": str(DEMO_LABELS), "image": str(demo_ct), "structures": ["liver", "spleen"], "out": str(written)},
            )
            inspected = await client.call_tool("inspect_label_map", {"mask": str(DEMO_LABELS), "preview": True})
            plain = await client.call_tool("inspect_label_map", {"mask": str(DEMO_LABELS)})
            return rendered, inspected, plain

    rendered, inspected, plain = anyio.run(body)
    assert not rendered.is_error, f"{rendered.content}\n{server.stderr_tail()}"
    info = rendered.structured_content
    assert [row["id"] for row in info["structures"]] == [1, 3]
    assert info["window"]["kind"] == "soft_tissue"
    png = images_of(rendered)[0]
    assert written.read_bytes() == png
    picture = decode_png(png)
    assert (picture.shape[1], picture.shape[0]) == (info["width"], info["height"])
    # The liver's centroid pixel in the axial panel carries the liver's colour (blended).
    liver = info["structures"][0]
    x, y = liver["panels"][0]["centroid_px"]
    pixel = picture[y, x].astype(int)
    grey_free = np.abs(pixel - pixel.mean()).max()
    assert grey_free > 10, f"centroid pixel {pixel} looks uncoloured"
    assert "Not for clinical use" in info["not_for_clinical_use"]
    assert not inspected.is_error and len(images_of(inspected)) == 1
    assert images_of(plain) == []


def test_list_labels_works_with_no_bundle_root(ctmr_binary: Path, tmp_path: Path):
    """A machine with only the binary: no NV_SEGMENT_CTMR_ROOT, no bundle roots, no
    workbench under the server's working directory."""
    env = {"CTMR_SKILL_PYTHON": str(python_path())}
    bare = Server(binary=ctmr_binary, cwd=tmp_path, env=env, errlog=tmp_path / "server.stderr.log")
    mask = tmp_path / "mask.nii.gz"
    data = np.zeros((8, 8, 8), dtype=np.float32)
    data[2:5, 2:5, 2:5] = 1
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(mask))

    async def body():
        async with bare.client(mode="legacy") as client:
            labels = await client.call_tool("list_labels", {"resolve": ["liver", "left kidney"]})
            inspected = await client.call_tool("inspect_label_map", {"mask": str(mask), "detail": "full"})
            return labels, inspected

    labels, inspected = anyio.run(body)
    assert not labels.is_error, f"{labels.content}\n{bare.stderr_tail()}"
    doc = labels.structured_content
    channel_def = json.loads(BUILT_IN_METADATA.read_text())["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert doc["label_source"] == "built_in"
    assert doc["total_classes"] == len([k for k in channel_def if k != "0"])
    assert [r["id"] for r in doc["resolved"]] == [1, 14]
    assert not inspected.is_error
    names = {row["id"]: row.get("name") for row in inspected.structured_content["labels"]}
    assert names[1] == channel_def["1"], names
