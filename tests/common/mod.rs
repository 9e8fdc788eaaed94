//! Shared helpers for integration tests: a fresh world per test, the project's
//! Python interpreter, and the built binary.
#![allow(dead_code)]

pub(crate) mod stdio;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of the project's runtime (`scripts/setup-python.sh`):
/// `$CTMR_SKILL_PYTHON`, else `<repo>/.venv/bin/python`. Panics with the fix when
/// neither exists, because these tests compare against nibabel and MONAI for real.
pub(crate) fn python() -> PathBuf {
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
pub(crate) fn run_python(script: &Path, args: &[&str]) -> String {
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
pub(crate) fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ctmr-skill"))
}

/// A fresh, empty directory that lives as long as the returned guard.
pub(crate) fn fresh_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// The real upstream data files (`metadata.json`, `label_dict.json`,
/// `label_mappings.json`): `<repo>/../shared/upstream-data/NV-Segment-CTMR/configs`, or
/// `$CTMR_SKILL_UPSTREAM_DATA` when set.
pub(crate) fn upstream_configs() -> PathBuf {
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

/// The real upstream's data as a bundle root (`upstream_configs()`'s parent), for
/// tools that take a root.
pub(crate) fn upstream_data_root() -> PathBuf {
    upstream_configs()
        .parent()
        .expect("the configs folder has a parent")
        .to_path_buf()
}

/// A fixture evidence pack of the verifier, by name: the packs are built once per test
/// binary by `verifiers/ct_segmentation_quality_v1/fixtures/build_fixtures.py`, under
/// cargo's per-target temp dir.
pub(crate) fn verifier_fixture(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("verifier_fixtures_{binary}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script =
            repo_root().join("verifiers/ct_segmentation_quality_v1/fixtures/build_fixtures.py");
        let root = upstream_data_root();
        run_python(
            &script,
            &[
                dir.to_str().unwrap(),
                "--upstream-root",
                root.to_str().unwrap(),
            ],
        );
        dir
    })
    .join(name)
}

/// A bundle root for the stand-in upstream (tests/fixtures/run_script/standin_upstream.py)
/// under `base`, with the real upstream label files, and an interpreter wrapper that
/// runs the stand-in. `mode` is one of the stand-in's modes (ok, unexpected, crash,
/// no_mask, sleep). Returns (bundle root, interpreter).
pub(crate) fn standin_bundle(base: &Path, mode: &str) -> (PathBuf, PathBuf) {
    let root = base.join("bundle");
    std::fs::create_dir_all(root.join("configs")).unwrap();
    std::fs::create_dir_all(root.join("models")).unwrap();
    std::fs::write(root.join("configs/inference.json"), "{}").unwrap();
    for file in ["metadata.json", "label_dict.json", "label_mappings.json"] {
        std::fs::copy(
            upstream_configs().join(file),
            root.join("configs").join(file),
        )
        .unwrap();
    }
    std::fs::write(root.join("models/model.pt"), b"not real weights").unwrap();
    std::fs::write(root.join("standin_mode.txt"), mode).unwrap();
    let wrapper = base.join("python");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
            python().display(),
            repo_root()
                .join("tests/fixtures/run_script/standin_upstream.py")
                .display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    (root, wrapper)
}

/// A synthetic demo CT of `shape` voxels (scripts/make-demo-volume.py) at `path`.
pub(crate) fn demo_volume(path: &Path, shape: [&str; 3]) {
    run_python(
        &repo_root().join("scripts/make-demo-volume.py"),
        &[
            path.to_str().unwrap(),
            "--shape",
            shape[0],
            shape[1],
            shape[2],
        ],
    );
}

/// Write a small synthetic NIfTI volume (tests/fixtures/run_script/make_volume.py).
pub(crate) fn make_volume(path: &Path, extra: &[&str]) {
    let mut args = vec![path.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_python(
        &repo_root().join("tests/fixtures/run_script/make_volume.py"),
        &args,
    );
}

/// A copy of the project's demo bundle at `dest`, with its deterministic weights
/// generated there (the copy keeps tests from writing into the repository's bundle).
pub(crate) fn demo_bundle_copy(dest: &Path) {
    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            // Run artefacts of the repository's bundle (ignored by git): not part of a copy.
            if name == "__pycache__" || name == "model.pt" || name == "training.log" {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                copy_tree(&entry.path(), &to.join(&name));
            } else {
                std::fs::copy(entry.path(), to.join(&name)).unwrap();
            }
        }
    }
    copy_tree(&repo_root().join("examples/demo-bundle"), dest);
    let model = dest.join("models/model.pt");
    run_python(
        &repo_root().join("scripts/make-demo-weights.py"),
        &[
            "--bundle-root",
            dest.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
        ],
    );
}

/// The paired verifier's report on the pack `dir`, as JSON, after checking that its
/// verdict agrees with `overall` and that it validates against the published report
/// schema (tests/py/verifier_validate_reports.py, jsonschema).
pub(crate) fn verify_validated(
    dir: &Path,
    opts: &ctmr_skill::verifier::VerifyOptions,
) -> serde_json::Value {
    let report = ctmr_skill::verifier::verify_pack(dir, opts)
        .unwrap_or_else(|e| panic!("{}: usage error {e}", dir.display()));
    let value = report.to_value();
    assert_eq!(report.passed(), value["overall"] == "pass");
    let tmp = fresh_dir();
    let file = tmp.path().join("report.json");
    std::fs::write(&file, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    let schema = repo_root().join("verifiers/ct_segmentation_quality_v1/report.schema.json");
    run_python(
        &repo_root().join("tests/py/verifier_validate_reports.py"),
        &[schema.to_str().unwrap(), file.to_str().unwrap()],
    );
    value
}

/// A command's stdout as JSON; the panic shows both streams.
pub(crate) fn stdout_json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
