//! Warm workers produce what the documented command produces: the demo bundle (a real
//! `monai.bundle` workflow) runs a sequence of different inputs and settings through
//! one worker, and each mask is compared, voxel for voxel and header for header (the
//! uncompressed NIfTI bytes), with a one-shot `python -m monai.bundle run` of the same
//! request. A prompt of one call must not leak into the next, and one call's output
//! directory must not receive another's files.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use ctmr_skill::config::Config;
use ctmr_skill::evidence::{Evidence, RunMode, RunStatus};
use ctmr_skill::tools::run_script::{RunCall, RunScript};
use ctmr_skill::tools::CallContext;

struct World {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    warm: RunScript,
    cold: RunScript,
    rt: tokio::runtime::Runtime,
}

fn world() -> World {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("demo-bundle");
    common::demo_bundle_copy(&root);
    for (name, shape) in [("x", ["40", "40", "24"]), ("y", ["48", "40", "20"])] {
        common::demo_volume(&base.join(format!("{name}.nii.gz")), shape);
    }
    let runner = |warm: bool| {
        let mut config = Config::new(base.clone(), vec![], None, Some(common::python()), 1);
        config.warm_workers = warm;
        RunScript::new(
            Arc::new(config),
            Arc::new(ctmr_skill::manifest::embedded().unwrap()),
        )
    };
    World {
        warm: runner(true),
        cold: runner(false),
        rt: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap(),
        _dir: dir,
        base,
        root,
    }
}

impl World {
    fn args(&self, input: &str, out: &str, extra: Value) -> Map<String, Value> {
        let mut args = json!({
            "input": self.base.join(format!("{input}.nii.gz")),
            "output_dir": self.base.join(out),
            "upstream_root": self.root,
            "device": "cpu",
        });
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        args.as_object().unwrap().clone()
    }

    fn run(&self, runner: &RunScript, args: Map<String, Value>) -> Evidence {
        match self
            .rt
            .block_on(runner.call_tool(args, CallContext::detached()))
        {
            RunCall::Ran(evidence) => {
                assert_eq!(
                    evidence.status,
                    RunStatus::Succeeded,
                    "{}",
                    evidence.summary
                );
                *evidence
            }
            other => panic!("the run did not happen: {other:?}"),
        }
    }
}

/// The uncompressed bytes of a `.nii.gz` (header, extensions and voxels).
fn nifti_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_warm_worker_writes_what_the_documented_command_writes() {
    let w = world();
    let calls = [
        ("x", "a", json!({"label_prompts": [1, 3]})),
        ("y", "b", json!({"label_prompts": [1]})),
        (
            "x",
            "c",
            json!({"patch_size": [64, 64, 64], "cpu_postprocessing": true}),
        ),
        ("y", "d", json!({})),
    ];
    let mut worker_id = None;
    for (served, (input, out, extra)) in (1..).zip(&calls) {
        let warm = w.run(&w.warm, w.args(input, out, extra.clone()));
        let cold = w.run(
            &w.cold,
            w.args(input, &format!("{out}-one-shot"), extra.clone()),
        );
        assert_eq!(warm.invocation.mode, RunMode::WarmWorker, "{warm:?}");
        assert_eq!(cold.invocation.mode, RunMode::OneShot);
        let worker = warm.invocation.worker.as_ref().unwrap();
        assert_eq!(worker.requests_served, served, "one worker served them all");
        assert_eq!(worker_id.get_or_insert(worker.id.clone()), &worker.id);
        // Phases and cost: the first warm call starts the worker and loads the model,
        // later ones do neither; both modes measure the upstream's CPU time.
        let phases = &warm.runtime.phases;
        assert_eq!(
            phases.contains_key("worker_start"),
            served == 1,
            "{phases:?}"
        );
        assert_eq!(phases.contains_key("model_load"), served == 1, "{phases:?}");
        assert!(phases.contains_key("upstream") && phases.contains_key("inspection_and_writing"));
        assert!(cold.runtime.phases.contains_key("probe"));
        for ev in [&warm, &cold] {
            let cost = ev.runtime.cost.as_ref().unwrap();
            assert!(cost.cpu_seconds.unwrap() > 0.0, "{cost:?}");
            assert!(
                cost.wall_seconds >= ev.runtime.subprocess_seconds,
                "{cost:?}"
            );
            assert!(!cost.gpu.measured && cost.gpu.reason.is_some());
        }
        // The recorded command is the documented one, for the real output directory.
        let dir = w.base.join(out);
        assert!(
            warm.invocation.command.iter().any(|a| Path::new(a) == dir),
            "{:?}",
            warm.invocation.command
        );
        let (warm_mask, cold_mask) = (
            warm.output.path.as_deref().unwrap(),
            cold.output.path.as_deref().unwrap(),
        );
        assert!(Path::new(warm_mask).starts_with(&dir));
        assert!(
            nifti_bytes(Path::new(warm_mask)) == nifti_bytes(Path::new(cold_mask)),
            "call {served} ({input}, {extra}): the warm mask differs from the documented command's"
        );
        assert_eq!(warm.output.label_ids_present, cold.output.label_ids_present);
        assert_eq!(warm.sanity_checks, cold.sanity_checks);
        // Only this call's files in its pack.
        let stems: Vec<String> = entries(&dir)
            .into_iter()
            .filter(|n| n == "x" || n == "y")
            .collect();
        assert_eq!(
            stems,
            vec![input.to_string()],
            "{out} holds another call's output"
        );
    }
    // Each pack replays without ctmr-skill: its replay.sh runs the documented command
    // into a fresh directory and writes the same mask.
    for (input, out) in [("x", "a"), ("x", "c")] {
        let pack = w.base.join(out);
        let fresh = w.base.join(format!("{out}-replayed"));
        let status = std::process::Command::new("bash")
            .arg(pack.join("replay.sh"))
            .arg(&fresh)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{out}/replay.sh failed");
        let mask = format!("{input}/{input}_trans.nii.gz");
        assert!(
            nifti_bytes(&fresh.join(&mask)) == nifti_bytes(&pack.join(&mask)),
            "{out}: the replay differs"
        );
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(pack.join("manifest.json")).unwrap())
                .unwrap();
        let script = std::fs::read(pack.join("replay.sh")).unwrap();
        assert_eq!(
            manifest["hashes"]["replay_sh_sha256"],
            json!(sha256_hex(&script)),
        );
        let lock = std::fs::read_to_string(pack.join("environment.lock")).unwrap();
        assert!(lock.lines().any(|l| l.starts_with("monai==")), "{lock}");
        assert_eq!(
            manifest["hashes"]["environment_lock_sha256"],
            json!(sha256_hex(lock.as_bytes())),
        );
    }
    // A prompt does not leak: call 2 asked for [1] only, call 4 (same input) for everything.
    let two = w.base.join("b/y/y_trans.nii.gz");
    let four = w.base.join("d/y/y_trans.nii.gz");
    assert_ne!(nifti_bytes(&two), nifti_bytes(&four));
}
