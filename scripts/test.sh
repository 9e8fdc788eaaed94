#!/usr/bin/env bash
# Run every test: sets up what it needs (idempotent), then the Rust tests, the Python
# end-to-end tests through the official MCP SDK, and the TypeScript SDK smoke test.
# This is README command 2, and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

step "Python runtime"
bash scripts/setup-python.sh
export CTMR_SKILL_PYTHON="$PWD/.venv/bin/python"

step "Rust build (release, for the end-to-end tests)"
cargo build --release --locked
export CTMR_SKILL_BIN="$PWD/target/release/ctmr-skill"

if [ -f scripts/setup-demo.sh ]; then
  step "Demo bundle weights and demo volume"
  bash scripts/setup-demo.sh
fi

step "Lint (rustfmt, clippy with warnings as errors)"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings

step "Docs (cargo doc, warnings as errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --document-private-items

step "One-node Slurm cluster (tests/it/slurm_cluster.rs)"
bash scripts/setup-slurm.sh

step "Rust tests"
cargo test --locked --all-targets

step "Python tests (demo bundle, end-to-end through the MCP Python SDK)"
.venv/bin/python -m pytest -q tests/py

if [ -f tests/ts/run.sh ]; then
  step "TypeScript SDK smoke test"
  bash tests/ts/run.sh
fi
step "all tests passed"
