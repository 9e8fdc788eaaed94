#!/usr/bin/env python3
# Copyright (c) ctmr-skill authors. Licensed under the Apache License, Version 2.0.
# Written for ctmr-skill; not derived from NV-Segment-CTMR code.
"""Write the ctmr-skill DEMO bundle's weights: BUNDLE/models/model.pt.

ctmr-skill DEMO bundle: synthetic intensity-based labels, NOT NV-Segment-CTMR,
not for clinical use. The "weights" are the intensity bands of the demo's
IntensityBandNet, one [lower, upper) Hounsfield range per label id, tuned to
the synthetic volume of scripts/make-demo-volume.py. The file is a plain
PyTorch state dict, loaded by the bundle's CheckpointLoader like any network's.

Deterministic: the same bands give a byte-identical model.pt (its sha256 is
printed). The label ids are read from the bundle's configs/metadata.json so the
checkpoint always matches the network the config builds.

Usage: make-demo-weights.py [--bundle-root DIR] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = REPO_ROOT / "examples" / "demo-bundle"

# label id -> (lower, upper) HU band. Volume values: left kidney 20, right kidney 32,
# spleen 45, liver 60, vertebra 700, left lung -780, right lung -850, soft tissue 0.
BANDS_HU = {
    14: (13.0, 26.0),
    5: (26.0, 38.5),
    3: (38.5, 52.5),
    1: (52.5, 80.0),
    37: (400.0, 1200.0),
    28: (-815.0, -700.0),
    30: (-900.0, -815.0),
}


def demo_class_ids(bundle_root: Path) -> list[int]:
    """The ids configs/inference.json builds the network with (channel_def keys > 0, in file order)."""
    metadata_path = bundle_root / "configs" / "metadata.json"
    try:
        metadata = json.loads(metadata_path.read_text())
        channel_def = metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
    except (OSError, ValueError, KeyError) as err:
        raise SystemExit(f"make-demo-weights: cannot read channel_def from {metadata_path}: {err}")
    if metadata.get("ctmr_skill_demo") is not True:
        raise SystemExit(f"make-demo-weights: {metadata_path} is not the ctmr-skill demo bundle (no ctmr_skill_demo: true)")
    return [int(k) for k in channel_def if int(k) > 0]


def state_dict_for(class_ids: list[int]) -> dict[str, torch.Tensor]:
    missing = [i for i in class_ids if i not in BANDS_HU]
    if missing:
        raise SystemExit(f"make-demo-weights: no intensity band defined for label id(s) {missing}")
    bands = torch.tensor([BANDS_HU[i] for i in class_ids], dtype=torch.float32)
    return {"class_ids": torch.tensor(class_ids, dtype=torch.long), "bands": bands}


def serialise(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle-root", type=Path, default=DEFAULT_BUNDLE, help="demo bundle directory")
    parser.add_argument("--out", type=Path, help="where to write (default BUNDLE/models/model.pt)")
    args = parser.parse_args(argv)

    out = args.out or args.bundle_root / "models" / "model.pt"
    data = serialise(state_dict_for(demo_class_ids(args.bundle_root)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    print(f"make-demo-weights: wrote {out} sha256={hashlib.sha256(data).hexdigest()} (DEMO weights)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
