"""Fixtures for the end-to-end tests: real MCP clients (the official Python SDK) driving
the real `ctmr-skill serve` binary, which runs the real demo MONAI bundle.

These fixtures build nothing and skip nothing silently: when the binary or the demo
assets are missing they FAIL with the command that creates them (`scripts/test.sh`).
The only skip is the opt-in real-upstream test, which says why it is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIX = "run scripts/test.sh (it builds target/release/ctmr-skill and creates the demo bundle weights and demo volume)"

DEMO_BUNDLE = REPO_ROOT / "examples" / "demo-bundle"
DEMO_CT = REPO_ROOT / "examples" / "demo-data" / "demo_ct.nii.gz"
MAKE_DEMO_VOLUME = REPO_ROOT / "scripts" / "make-demo-volume.py"

# A demo run takes seconds on an idle machine; the generous bound only stops a hung server
# from hanging the suite (it is a limit, never an assertion on speed).
CALL_TIMEOUT_S = float(os.environ.get("CTMR_E2E_CALL_TIMEOUT_S", "600"))


def binary_path() -> Path:
    """`$CTMR_SKILL_BIN`, else the release build in this checkout."""
    env = os.environ.get("CTMR_SKILL_BIN")
    return Path(env) if env else REPO_ROOT / "target" / "release" / "ctmr-skill"


def python_path() -> Path:
    """The project's Python runtime, as the server is told to use it (`CTMR_SKILL_PYTHON`)."""
    env = os.environ.get("CTMR_SKILL_PYTHON")
    if env:
        return Path(env)
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return venv if venv.exists() else Path(sys.executable)


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a spawned server. The SDK passes only a safe subset of ours
    (HOME, PATH, ...), so everything the server needs is named here."""
    # The operator (this harness) installed the demo bundle; clients may name it.
    env = {"CTMR_SKILL_PYTHON": str(python_path()), "CTMR_SKILL_BUNDLE_ROOTS": f"demo={DEMO_BUNDLE}"}
    # The server's allowed temp dir must be the one pytest's tmp_path lives under.
    for name in ("TMPDIR", "RUST_LOG", "RUST_BACKTRACE"):
        if name in os.environ:
            env[name] = os.environ[name]
    if extra:
        env.update(extra)
    return env


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def processes_mentioning(needle: str) -> list[tuple[int, str]]:
    """(pid, cmdline) of every live process whose command line contains `needle`
    (zombies excluded: they hold no resources and will be reaped by their parent)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            found.append((int(entry.name), cmdline.strip()))
    return found


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], pgid is [2])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_group_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else None


def live_group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes in process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def wait_for(predicate, timeout_s: float, interval_s: float = 0.05):
    """Poll `predicate` until it returns a truthy value or the timeout passes; return the last value."""
    deadline = time.monotonic() + timeout_s
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval_s)
        value = predicate()
    return value


@dataclass
class Server:
    """How to start one `ctmr-skill serve` under test."""

    binary: Path
    cwd: Path
    env: dict[str, str]
    errlog: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    # Extra `serve` flags, e.g. --no-warm for tests of the one-shot process group.
    extra_args: list[str] = field(default_factory=list)

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            text = self.errlog.read_text(errors="replace")
        except OSError:
            return "(no server stderr captured)"
        return text[-n:] if text else "(server stderr empty)"

    @asynccontextmanager
    async def client(self, mode: str = "legacy", **kwargs: Any) -> AsyncIterator[Any]:
        """An entered `mcp.Client` talking to a fresh server process over stdio.
        The server's stderr goes to `self.errlog` (shown by failing tests)."""
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(
            command=str(self.binary), args=["serve", *self.extra_args], env={**self.env, **self.extra_env}, cwd=str(self.cwd)
        )
        with open(self.errlog, "a") as errlog:
            transport = stdio_client(params, errlog=errlog)
            async with Client(transport, mode=mode, read_timeout_seconds=CALL_TIMEOUT_S, **kwargs) as client:
                yield client


@pytest.fixture(scope="session")
def ctmr_binary() -> Path:
    path = binary_path()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"ctmr-skill binary not found at {path} (set CTMR_SKILL_BIN or {FIX})", pytrace=False)
    return path


@pytest.fixture(scope="session")
def demo_bundle() -> Path:
    missing = [p for p in (DEMO_BUNDLE / "configs" / "inference.json", DEMO_BUNDLE / "models" / "model.pt") if not p.is_file()]
    if missing:
        pytest.fail(f"demo bundle incomplete, missing {', '.join(map(str, missing))}: {FIX}", pytrace=False)
    return DEMO_BUNDLE


@pytest.fixture(scope="session")
def demo_ct() -> Path:
    if not DEMO_CT.is_file():
        pytest.fail(f"demo volume missing at {DEMO_CT}: {FIX}", pytrace=False)
    return DEMO_CT


@pytest.fixture(scope="session")
def python_exe() -> Path:
    path = python_path()
    if not path.exists():
        pytest.fail(f"no Python runtime at {path}: run scripts/setup-python.sh (or set CTMR_SKILL_PYTHON)", pytrace=False)
    return path


@pytest.fixture
def server(ctmr_binary: Path, tmp_path: Path) -> Server:
    """A server started from the repository root (so relative paths resolve as the README's)."""
    return Server(binary=ctmr_binary, cwd=REPO_ROOT, env=server_env(), errlog=tmp_path / "server.stderr.log")


@pytest.fixture(scope="session")
def session_server(ctmr_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """Like `server`, for session-scoped fixtures (one stderr log for the session)."""
    log = tmp_path_factory.mktemp("server-logs") / "server.stderr.log"
    return Server(binary=ctmr_binary, cwd=REPO_ROOT, env=server_env(), errlog=log)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())
