#!/usr/bin/env python3
# Copyright (c) ctmr-skill authors. Licensed under the Apache License, Version 2.0.
# Written for ctmr-skill; not derived from NV-Segment-CTMR code.
"""Create randomly initialised STAND-IN weights for the real NV-Segment-CTMR bundle.

Without NVIDIA's weights (no network access, or before the download) the real
bundle cannot start: configs/inference.json loads models/model.pt through its
CheckpointLoader. This writes a state dict of the very network that config
instantiates (`network_def`, e.g. monai.networks.nets.vista3d132), randomly
initialised from a fixed seed, so the real pipeline runs end to end.

Its output is NOT a segmentation. A marker beside it records that:
  BUNDLE_ROOT/models/STAND_IN_WEIGHTS.json
  {"stand_in": true, "sha256": <of model.pt>, "created_at", "note", ...}
ctmr-skill reports such weights as provenance "stand_in_random_init".

Refuses to overwrite a model.pt that is not a stand-in (no marker, or a marker
whose sha256 does not match the file, e.g. real weights downloaded over it)
unless --force.

Usage: make-standin-weights.py --root BUNDLE_ROOT [--seed N] [--force]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path

MARKER_NAME = "STAND_IN_WEIGHTS.json"
NOTE = "randomly initialised; output is NOT a segmentation"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def overwrite_refusal(model: Path, marker: Path) -> str | None:
    """Why writing over `model` would destroy something that is not ours, or None."""
    if not model.exists():
        return None
    if not marker.exists():
        return f"{model} exists and has no {MARKER_NAME} marker, so it may be real weights"
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError) as err:
        return f"{marker} is unreadable ({err}), so {model} may be real weights"
    if recorded.get("stand_in") is not True:
        return f"{marker} does not say stand_in: true"
    if recorded.get("sha256") != sha256_file(model):
        return f"{model} does not match the sha256 in {marker} (replaced after the stand-in was made?)"
    return None


def build_network(bundle_root: Path, config_name: str):
    """Instantiate `network_def` from the bundle's own config, on CPU."""
    from monai.bundle import ConfigParser

    config_path = bundle_root / "configs" / config_name
    if not config_path.is_file():
        raise SystemExit(f"make-standin-weights: {config_path} not found; --root must be the bundle directory "
                         "(the one holding configs/inference.json, e.g. <clone>/NV-Segment-CTMR)")
    sys.path.insert(0, str(bundle_root))  # the config's "$import scripts" is the bundle's own package
    parser = ConfigParser()
    parser.read_config(str(config_path))
    parser["bundle_root"] = str(bundle_root)
    parser["device"] = "$torch.device('cpu')"
    if "network_def" not in parser:
        raise SystemExit(f"make-standin-weights: {config_path} has no network_def")
    return parser.get_parsed_content("network_def"), parser.config["network_def"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="bundle root (holds configs/inference.json)")
    ap.add_argument("--config", default="inference.json", help="config under configs/ that defines network_def")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    ap.add_argument("--force", action="store_true", help="overwrite a model.pt that is not a stand-in")
    args = ap.parse_args(argv)

    root = args.root.resolve()
    model = root / "models" / "model.pt"
    marker = root / "models" / MARKER_NAME
    refusal = overwrite_refusal(model, marker)
    if refusal and not args.force:
        print(f"make-standin-weights: refusing to overwrite: {refusal}. Pass --force to replace it.", file=sys.stderr)
        return 2

    import torch

    torch.manual_seed(args.seed)
    network, network_def = build_network(root, args.config)
    model.parent.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)  # never leave a marker that vouches for a half-written file
    tmp = model.with_name(model.name + ".tmp")
    # A bare state dict: what the bundle's CheckpointLoader(load_dict={"model": network}) accepts,
    # and what its CheckpointSaver writes for a single-entry save_dict. Streamed to disk: ~0.9 GB.
    torch.save(network.state_dict(), tmp)
    digest = sha256_file(tmp)
    size = tmp.stat().st_size
    tmp.replace(model)
    record = {
        "stand_in": True,
        "sha256": digest,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "note": NOTE,
        "network_def": network_def,
        "seed": args.seed,
        "parameters": int(sum(p.numel() for p in network.parameters())),
        "torch_version": torch.__version__,
        "created_by": "ctmr-skill scripts/make-standin-weights.py",
    }
    marker.write_text(json.dumps(record, indent=2) + "\n")
    print(f"make-standin-weights: wrote {model} ({size} bytes, sha256={digest}) and {marker}. "
          f"STAND-IN weights: {NOTE}.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
