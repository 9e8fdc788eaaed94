"""Summarise the inspect benchmark: parse `/usr/bin/time -v` logs, print wall time,
peak RSS and ratios, and check that both methods counted the same voxels.

Usage: summarize.py BENCH_DIR
Reads BENCH_DIR/{reference,counts,components,gt,compare}.time.N (one per repeat; the
median wall time and the largest peak RSS are reported), reference_counts.json and
counts.json.
"""

import glob
import json
import os
import re
import statistics
import sys

d = sys.argv[1]


def parse_one(path):
    text = open(path).read()
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
    h, mnt, s = m.groups()
    wall = int(h or 0) * 3600 + int(mnt) * 60 + float(s)
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    status = int(re.search(r"Exit status: (\d+)", text).group(1))
    cpu = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1)) + float(
        re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))
    return wall, rss_kib / 1024.0, status, cpu


def parse(name):
    """(median wall s, max peak RSS MiB, worst exit status, all walls, median CPU s)
    over the repeats."""
    paths = sorted(glob.glob(os.path.join(d, f"{name}.time.*")))
    if not paths:
        return None
    runs = [parse_one(p) for p in paths]
    walls = [r[0] for r in runs]
    cpu = statistics.median(r[3] for r in runs)
    return statistics.median(walls), max(r[1] for r in runs), max(r[2] for r in runs), walls, cpu


rows = [
    ("reference", "(a) nibabel get_fdata + astype(int64) + np.unique"),
    ("counts", "(b) inspect --json (counts)"),
    ("components", "(c) inspect --components"),
    ("gt", "(d) inspect --ground-truth (two-map pass)"),
    ("compare", "(e) compare_label_maps pred gt"),
]
res = {k: parse(k) for k, _ in rows}
print(f"{'method':<52} {'wall s':>8} {'CPU s':>7} {'peak RSS MiB':>13} {'exit':>5}  runs (wall s)")
for key, label in rows:
    r = res[key]
    if r:
        runs = " ".join(f"{w:.2f}" for w in r[3])
        print(f"{label:<52} {r[0]:>8.2f} {r[4]:>7.2f} {r[1]:>13.1f} {r[2]:>5}  {runs}")
ref, counts = res["reference"], res["counts"]
if ref and counts:
    print(f"\nspeed-up counts vs reference: {ref[0] / counts[0]:.1f}x wall, "
          f"{ref[4] / counts[4]:.1f}x CPU (target >= 30x)")
    print(f"memory: reference {ref[1]:.0f} MiB vs inspect {counts[1]:.1f} MiB (target < 32 MiB)")
for key in ("components", "gt", "compare"):
    if res[key] and counts:
        print(f"{key} pass / counts pass: {res[key][0] / counts[0]:.2f}x wall, "
              f"{res[key][4] / counts[4]:.2f}x CPU (target <= 2x)")

want = json.load(open(os.path.join(d, "reference_counts.json")))
report = json.load(open(os.path.join(d, "counts.json")))
got = {str(l["id"]): l["voxels"] for l in report["labels"]}
agree = got == want
print(f"\nper-label counts agree with the reference: {agree} ({len(got)} labels, "
      f"{sum(got.values())} labelled voxels of {report['total_voxels']})")
sys.exit(0 if agree else 1)
