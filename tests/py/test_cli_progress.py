"""End-to-end: `ctmr-skill run-batch` progress on stderr, through the real binary and the
real demo MONAI bundle. Under a pseudo-terminal the CLI draws a bar redrawn in place
(carriage return, `k/N`, clear-to-end-of-line); with stderr piped it prints today's
plain lines; `--progress bar|none` force a style whatever stderr is. stdout carries the
cohort JSON either way.

Run: scripts/test.sh, or `.venv/bin/python -m pytest tests/py/test_cli_progress.py` once
the binary and the demo assets exist.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import termios
import threading
from pathlib import Path

from conftest import CALL_TIMEOUT_S, REPO_ROOT, server_env
from test_e2e_batch import make_volume

COLUMNS = 100


def batch_argv(binary: Path, bundle: Path, cohort: Path, out: Path) -> list[str]:
    return [
        str(binary),
        "run-batch",
        "--input-dir",
        str(cohort),
        "--output-root",
        str(out),
        "--upstream-root",
        str(bundle),
        "--device",
        "cpu",
    ]


def run_with_terminal_stderr(argv: list[str], env: dict[str, str]) -> tuple[int, bytes, str]:
    """Run `argv` with stderr on a pseudo-terminal COLUMNS wide and stdout on a pipe;
    return (exit code, stdout, everything the terminal received)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
    # Raw output: the terminal shows the bytes as written (no \n -> \r\n translation).
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=REPO_ROOT
    )
    os.close(slave)
    received: list[bytes] = []

    def drain() -> None:
        # Read until the child's side closes (EIO on Linux): a full pty would block it.
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            received.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        stdout, _ = proc.communicate(timeout=CALL_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=30)
        os.close(master)
    return proc.returncode, stdout, b"".join(received).decode("utf-8", errors="replace")


def test_run_batch_draws_a_bar_on_a_terminal_and_plain_lines_on_a_pipe(
    ctmr_binary: Path, demo_bundle: Path, tmp_path: Path
):
    cohort = tmp_path / "cohort"
    for i in (1, 2):
        make_volume(cohort / f"case{i}.nii.gz", i)
    env = {**os.environ, **server_env(), "TERM": "xterm"}
    env.pop("COLUMNS", None)

    code, stdout, screen = run_with_terminal_stderr(
        batch_argv(ctmr_binary, demo_bundle, cohort, tmp_path / "tty"), env
    )
    assert code == 0, screen
    cohort_doc = json.loads(stdout)
    assert cohort_doc["status"] == "succeeded", cohort_doc["summary"]

    # Redrawn in place: carriage return, the bar, k/N, clear to end of line.
    frames = re.findall(r"\r(\[[#.]+\] (\d+)/2 [^\r\n\x1b]*)\x1b\[K", screen)
    assert frames, f"no bar frames on the terminal: {screen!r}"
    counts = [int(k) for _, k in frames]
    assert counts == sorted(counts), f"the count went backwards: {counts}"
    assert {0, 2} <= set(counts), f"expected the first and the final state: {counts}"
    assert any("case1" in f for f, _ in frames) and any("case2" in f for f, _ in frames), frames
    final = frames[-1][0]
    assert final.startswith("[####################] 2/2  100%"), final
    # Every frame fits the terminal (one column spare), so the redraw never wraps.
    assert all(len(f) < COLUMNS for f, _ in frames), max(frames, key=lambda f: len(f[0]))
    # The bar's line is ended before the summary, and the plain lines are not printed.
    assert "\x1b[K\n" in screen, screen
    assert cohort_doc["summary"] in screen.split("\x1b[K\n", 1)[1], screen
    assert "volumes done;" not in screen, screen

    # stderr piped: today's plain lines, no control sequences.
    piped = subprocess.run(
        batch_argv(ctmr_binary, demo_bundle, cohort, tmp_path / "pipe"),
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=CALL_TIMEOUT_S,
    )
    stderr = piped.stderr.decode()
    assert piped.returncode == 0, stderr
    assert json.loads(piped.stdout)["status"] == "succeeded"
    assert "ctmr-skill run-batch: 0/2 volumes done; current case1" in stderr, stderr
    assert "ctmr-skill run-batch: 1/2 volumes done; current case2" in stderr, stderr
    assert "\r" not in stderr and "\x1b" not in stderr, repr(stderr)

    # --progress forces a style whatever stderr is. Rerun over the finished output root:
    # every volume is reused, so nothing is segmented again.
    out = tmp_path / "pipe"

    def rerun(mode: str) -> str:
        again = subprocess.run(
            [str(ctmr_binary), "--progress", mode, *batch_argv(ctmr_binary, demo_bundle, cohort, out)[1:]],
            env={**env, "COLUMNS": "60"},
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=CALL_TIMEOUT_S,
        )
        assert again.returncode == 0, again.stderr.decode()
        assert json.loads(again.stdout)["status"] == "succeeded"
        return again.stderr.decode()

    forced = rerun("bar")
    assert re.search(r"\r\[#{20}\] 2/2  100%[^\r\n]*\x1b\[K\n", forced), repr(forced)
    assert all(len(line) < 60 for line in re.findall(r"\r([^\r\x1b]*)\x1b\[K", forced)), repr(forced)
    quiet = rerun("none")
    assert "volumes done" not in quiet and "\r" not in quiet, repr(quiet)
    assert "2 reused" in quiet, repr(quiet)
