//! Shared helpers for integration tests: a fresh world per test, the project's
//! Python interpreter, and the built binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of the project's runtime (`scripts/setup-python.sh`):
/// `$CTMR_SKILL_PYTHON`, else `<repo>/.venv/bin/python`. Panics with the fix when
/// neither exists, because these tests compare against nibabel and MONAI for real.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CTMR_SKILL_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python runtime at {}: run scripts/setup-python.sh (or set CTMR_SKILL_PYTHON)",
        venv.display()
    );
    venv
}

/// Run a Python script from the repo with arguments; panic with its stderr on failure.
pub fn run_python(script: &Path, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("spawn python");
    assert!(
        out.status.success(),
        "{} failed: {}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// The `ctmr-skill` binary built for this test run.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ctmr-skill"))
}

/// A fresh, empty directory that lives as long as the returned guard.
pub fn fresh_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// The real upstream data files (`metadata.json`, `label_dict.json`,
/// `label_mappings.json`): `<repo>/../shared/upstream-data/NV-Segment-CTMR/configs`, or
/// `$CTMR_SKILL_UPSTREAM_DATA` when set.
pub fn upstream_configs() -> PathBuf {
    if let Some(p) = std::env::var_os("CTMR_SKILL_UPSTREAM_DATA") {
        return PathBuf::from(p);
    }
    let candidates = [
        repo_root().join("../shared/upstream-data/NV-Segment-CTMR/configs"),
        PathBuf::from("/work/shared/upstream-data/NV-Segment-CTMR/configs"),
    ];
    candidates
        .iter()
        .find(|p| p.join("metadata.json").exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "upstream data files not found at {:?}; set CTMR_SKILL_UPSTREAM_DATA",
                candidates
            )
        })
}
