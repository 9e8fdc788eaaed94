#!/usr/bin/env python3
"""Print MONAI's copy of DeepMind's neighbour-code surfel-area table.

Usage: verifier_monai_area_table.py S0,S1,S2 [S0,S1,S2 ...]
Prints {"S0,S1,S2": [256 areas]} — the oracle for the verifier's derived table.
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")

from monai.metrics.utils import create_table_neighbour_code_to_surface_area  # noqa: E402

out = {}
for arg in sys.argv[1:]:
    spacing = [float(s) for s in arg.split(",")]
    table, _kernel = create_table_neighbour_code_to_surface_area(spacing)
    out[arg] = [float(v) for v in table.cpu().numpy()]
print(json.dumps(out))
