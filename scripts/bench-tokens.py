#!/usr/bin/env python3
"""Token cost of ctmr-skill's answers: prints, asserts nothing.

Drives the real binary over stdio (newline-delimited JSON-RPC, protocol 2025-06-18) on
the demo bundle and prints the size in bytes and tokens of `tools/list` and of each tool
result, in `detail: summary` and `detail: full`; then the same for a synthetic evidence
document with 117 classes (a CT_BODY "everything" run), served through get_run.

Tokenizer: `tiktoken` when its BPE file is available (it downloads it on first use);
otherwise `bpe-openai` (PyPI), which ships the same OpenAI vocabularies (o200k_base,
cl100k_base) inside the package, so it works offline. Needs the demo assets
(scripts/setup-demo.sh) and a built binary (cargo build).

Usage: .venv/bin/python scripts/bench-tokens.py [--binary target/debug/ctmr-skill]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENCODING = "o200k_base"


def tokenizer():
    try:
        import tiktoken

        enc = tiktoken.get_encoding(ENCODING)
        return f"tiktoken {ENCODING}", lambda s: len(enc.encode(s))
    except Exception as e:  # no network for the BPE file, or not installed
        why = type(e).__name__
    import bpe_openai

    enc = bpe_openai.get_encoding(ENCODING)
    return f"bpe-openai {bpe_openai.__version__} {ENCODING} (tiktoken unavailable: {why})", lambda s: len(enc.encode(s))


class Server:
    def __init__(self, binary: Path, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [str(binary), "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            cwd=ROOT, env=env, text=True,
        )
        self.next_id = 0
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "bench-tokens", "version": "0"}})
        self.notify("notifications/initialized")

    def notify(self, method: str) -> None:
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}) + "\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict) -> tuple[dict, str]:
        self.next_id += 1
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}) + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"server closed during {method}")
            msg = json.loads(line)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise SystemExit(f"{method}: {msg['error']}")
                return msg["result"], line.strip()

    def call(self, name: str, arguments: dict) -> tuple[dict, str]:
        return self.request("tools/call", {"name": name, "arguments": arguments})

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def parts(result: dict) -> dict[str, str]:
    """The parts of a result a client may put into a model's context."""
    text = "\n".join(b.get("text", "") for b in result.get("content", []) if b.get("type") == "text")
    links = [b for b in result.get("content", []) if b.get("type") == "resource_link"]
    return {
        "text": text,
        "structured": json.dumps(result.get("structuredContent"), separators=(",", ":")) if "structuredContent" in result else "",
        "links": json.dumps(links, separators=(",", ":")) if links else "",
    }


def row(count, label: str, result: dict, wire: str) -> str:
    p = parts(result)
    if result.get("isError"):
        label += " (ERROR: " + p["text"][:60] + ")"
    return (f"{label:<44} {count(p['text']):>7} {count(p['structured']):>9} {count(p['links']):>7} "
            f"{count(wire):>7} {len(wire.encode()):>9}")


def synthetic_117(doc: dict) -> dict:
    """The demo evidence with 117 classes present, as a CT_BODY everything run reports them."""
    doc = copy.deepcopy(doc)
    out = doc["output"]
    template = out["classes"][0]
    classes, counts, volumes = [], {}, {}
    for i in range(1, 118):
        c = dict(template, id=i, name=f"structure_{i:03d}", voxels=1000 * i, volume_ml=round(0.049 * 1000 * i, 3),
                 bbox_min=[i % 7, i % 11, i % 13], bbox_max=[40 + i % 7, 50 + i % 11, 60 + i % 13])
        classes.append(c)
        counts[c["name"]] = c["voxels"]
        volumes[c["name"]] = c["volume_ml"]
    out.update(classes=classes, class_counts=counts, class_volumes_ml=volumes, label_prompts_requested=[],
               expected_label_ids=list(range(1, 118)), label_ids_present=list(range(1, 118)))
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.environ.get("CTMR_SKILL_BIN", str(ROOT / "target" / "debug" / "ctmr-skill")))
    args = ap.parse_args()
    name, count = tokenizer()
    bundle = ROOT / "examples" / "demo-bundle"
    ct = ROOT / "examples" / "demo-data" / "demo_ct.nii.gz"
    work = Path(tempfile.mkdtemp(prefix="ctmr-bench-", dir=ROOT / "target"))
    env = {**os.environ, "CTMR_SKILL_RUNS_DIR": str(work / "runs-index"), "NV_SEGMENT_CTMR_ROOT": str(bundle)}
    env.setdefault("CTMR_SKILL_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    server = Server(Path(args.binary), env)

    print(f"tokenizer: {name}")
    listed, wire = server.request("tools/list", {})
    print(f"tools/list: {len(wire.encode())} bytes, {count(wire)} tokens (JSON-RPC line)")
    print()
    print(f"{'result (tokens; bytes of the whole line)':<44} {'text':>7} {'struct':>9} {'links':>7} {'line':>7} {'bytes':>9}")

    base = {"input": str(ct), "device": "cpu"}
    runs = {}
    for label, extra in (("prompts [1, 3]", {"label_prompts": [1, 3]}), ("everything", {})):
        for detail in ("summary", "full"):
            out = work / f"{label.split()[0]}-{detail}"
            result, wire = server.call("run_script", {**base, **extra, "output_dir": str(out), "detail": detail})
            runs[(label, detail)] = (result, out)
            print(row(count, f"run_script {label}, {detail}", result, wire))
    _, pack = runs[("prompts [1, 3]", "full")]
    ev = json.loads((pack / "output.json").read_text())
    for tool, arguments in (
        ("inspect_label_map", {"mask": ev["output"]["path"]}),
        ("verify_evidence", {"pack_dir": str(pack)}),
        ("run_batch", {"inputs": [str(ct)], "device": "cpu", "label_prompts": [1, 3]}),
    ):
        for detail in ("summary", "full"):
            a = dict(arguments, detail=detail)
            if tool == "run_batch":
                a["output_root"] = str(work / f"batch-{detail}")
            result, wire = server.call(tool, a)
            print(row(count, f"{tool}, {detail}", result, wire))

    # get_run on a finished background run, then on the same run with a 117-class result.
    started, _ = server.call("run_script", {**base, "label_prompts": [1, 3], "output_dir": str(work / "bg"), "wait": False})
    run_id = started["structuredContent"]["run_id"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        view, _ = server.call("get_run", {"run_id": run_id, "detail": "summary"})
        if view["structuredContent"]["run"]["state"] != "running":
            break
        time.sleep(1)
    for detail in ("summary", "full"):
        result, wire = server.call("get_run", {"run_id": run_id, "detail": detail})
        print(row(count, f"get_run (demo), {detail}", result, wire))
    everything = synthetic_117(json.loads((work / "bg" / "output.json").read_text()))
    (work / "bg" / "output.json").write_text(json.dumps(everything, indent=2))
    # A fresh server reads the finished run's result from its pack (the first one cached it).
    server.close()
    server = Server(Path(args.binary), env)
    print(f"synthetic 117-class evidence document: {len(json.dumps(everything))} bytes, "
          f"{count(json.dumps(everything))} tokens")
    for detail in ("summary", "full"):
        result, wire = server.call("get_run", {"run_id": run_id, "detail": detail})
        print(row(count, f"get_run (117 classes), {detail}", result, wire))
        if detail == "summary":
            summary_117 = parts(result)["text"]
    server.close()
    print()
    print("summary text, run_script with prompts [1, 3]:")
    print(parts(runs[("prompts [1, 3]", "summary")][0])["text"])
    print()
    print("summary text, get_run of the synthetic 117-class run:")
    print(summary_117)
    print()
    print("text: text content; struct: structuredContent; links: resource_link items; "
          "line: the whole JSON-RPC answer. Scratch files under", work)


if __name__ == "__main__":
    sys.exit(main())
