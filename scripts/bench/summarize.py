"""Summarise the inspect benchmark: parse `/usr/bin/time -v` logs, print wall time,
peak RSS and ratios, and check that both methods counted the same voxels.

Usage: summarize.py BENCH_DIR
Reads BENCH_DIR/{reference,counts,components,gt,compare}.time, reference_counts.json
and counts.json.
"""

import json
import os
import re
import sys

d = sys.argv[1]


def parse(name):
    path = os.path.join(d, f"{name}.time")
    if not os.path.exists(path):
        return None
    text = open(path).read()
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
    h, mnt, s = m.groups()
    wall = int(h or 0) * 3600 + int(mnt) * 60 + float(s)
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    status = int(re.search(r"Exit status: (\d+)", text).group(1))
    return wall, rss_kib / 1024.0, status


rows = [
    ("reference", "(a) nibabel get_fdata + astype(int64) + np.unique"),
    ("counts", "(b) inspect --json (counts)"),
    ("components", "(c) inspect --components"),
    ("gt", "(d) inspect --ground-truth (two-map pass)"),
    ("compare", "(e) compare_label_maps pred gt"),
]
res = {k: parse(k) for k, _ in rows}
print(f"{'method':<52} {'wall s':>8} {'peak RSS MiB':>13} {'exit':>5}")
for key, label in rows:
    r = res[key]
    if r:
        print(f"{label:<52} {r[0]:>8.2f} {r[1]:>13.1f} {r[2]:>5}")
ref, counts = res["reference"], res["counts"]
if ref and counts:
    print(f"\nspeed-up counts vs reference: {ref[0] / counts[0]:.1f}x (target >= 30x)")
    print(f"memory: reference {ref[1]:.0f} MiB vs inspect {counts[1]:.1f} MiB (target < 32 MiB)")
for key in ("components", "gt", "compare"):
    if res[key] and counts:
        print(f"{key} pass / counts pass: {res[key][0] / counts[0]:.2f}x (target <= 2x)")

want = json.load(open(os.path.join(d, "reference_counts.json")))
report = json.load(open(os.path.join(d, "counts.json")))
got = {str(l["id"]): l["voxels"] for l in report["labels"]}
agree = got == want
print(f"\nper-label counts agree with the reference: {agree} ({len(got)} labels, "
      f"{sum(got.values())} labelled voxels of {report['total_voxels']})")
sys.exit(0 if agree else 1)
