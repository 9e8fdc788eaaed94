//! run_batch end to end with the real demo bundle through real
//! `python -m monai.bundle run` (CPU): one batch run for a cohort, one evidence pack
//! per volume, the cohort summary, a volume that stops the batch, resume on re-run,
//! per-volume progress, and the refusals that happen before anything runs.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use ctmr_skill::config::Config;
use ctmr_skill::evidence::cohort::{Cohort, CohortStatus, VolumeStatus};
use ctmr_skill::evidence::{Evidence, RunStatus};
use ctmr_skill::runner::slots::RunSlots;
use ctmr_skill::tools::run_batch::{BatchCall, RunBatch};
use ctmr_skill::tools::{CallContext, Progress};

/// A temp world: a copy of the demo bundle with its weights, and a data folder.
struct World {
    _dir: tempfile::TempDir,
    base: PathBuf,
    bundle: PathBuf,
}

impl World {
    fn new() -> World {
        let dir = common::fresh_dir();
        let base = dir.path().canonicalize().unwrap();
        let bundle = base.join("demo-bundle");
        common::demo_bundle_copy(&bundle);
        std::fs::create_dir_all(base.join("data")).unwrap();
        World {
            _dir: dir,
            base,
            bundle,
        }
    }

    /// A small synthetic CT volume at `data/<name>`.
    fn volume(&self, name: &str, seed: u32) -> PathBuf {
        let path = self.base.join("data").join(name);
        common::run_python(
            &common::repo_root().join("scripts/make-demo-volume.py"),
            &[
                path.to_str().unwrap(),
                "--shape",
                "40",
                "40",
                "24",
                "--seed",
                &seed.to_string(),
            ],
        );
        path
    }

    fn runner(&self) -> RunBatch {
        let config = Config::new(self.base.clone(), vec![], None, Some(common::python()), 1);
        let manifest = ctmr_skill::manifest::embedded().unwrap();
        RunBatch::new(
            Arc::new(config),
            Arc::new(manifest),
            Arc::new(RunSlots::new(1)),
        )
    }

    fn args(&self, inputs: &[&Path], out: &Path) -> Map<String, Value> {
        json!({
            "inputs": inputs,
            "modality": "CT_BODY",
            "output_root": out,
            "upstream_root": self.bundle,
            "device": "cpu",
        })
        .as_object()
        .unwrap()
        .clone()
    }

    /// Call the tool, collecting its progress reports.
    fn call(&self, args: Map<String, Value>) -> (BatchCall, Vec<Progress>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let ctx = CallContext::new(
            Arc::new(move |p: Progress| sink.lock().unwrap().push(p)),
            tokio_util::sync::CancellationToken::new(),
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let call = rt.block_on(self.runner().call_tool(args, ctx));
        let seen = seen.lock().unwrap().clone();
        (call, seen)
    }
}

fn cohort(call: BatchCall) -> Cohort {
    match call {
        BatchCall::Ran(c) => *c,
        other => panic!("expected a batch run, got {other:?}"),
    }
}

fn evidence(pack: &Path) -> Evidence {
    serde_json::from_str(&std::fs::read_to_string(pack.join("output.json")).unwrap()).unwrap()
}

/// A .nii.gz whose header is intact but whose compressed stream stops half way: it
/// passes the header-only gates and makes the upstream's loader fail mid-batch.
fn cut_short(from: &Path, to: &Path) {
    let bytes = std::fs::read(from).unwrap();
    std::fs::write(to, &bytes[..bytes.len() / 2]).unwrap();
}

#[test]
fn a_cohort_runs_once_survives_a_bad_volume_and_resumes() {
    let w = World::new();
    let a = w.volume("a.nii.gz", 1);
    let c = w.volume("c.nii.gz", 3);
    let b = w.base.join("data/b.nii.gz");
    cut_short(&w.volume("b-source.nii.gz", 2), &b);
    let out = w.base.join("cohort");

    // First run: a is segmented, b stops the batch, c is run again without b.
    let (call, progress) = w.call(w.args(&[&a, &b, &c], &out));
    let first = cohort(call);
    assert_eq!(first.status, CohortStatus::Partial, "{}", first.summary);
    let status_of = |c: &Cohort, id: &str| {
        c.volumes
            .iter()
            .find(|v| v.id == id)
            .unwrap_or_else(|| panic!("no volume {id}"))
            .status
    };
    assert_eq!(status_of(&first, "a"), VolumeStatus::Succeeded);
    assert_eq!(status_of(&first, "b"), VolumeStatus::UpstreamFailed);
    assert_eq!(status_of(&first, "c"), VolumeStatus::Succeeded);
    assert_eq!(first.attempts.len(), 2, "{:#?}", first.attempts);
    assert_eq!(first.attempts[0].volumes, ["a", "b", "c"]);
    assert_eq!(first.attempts[0].written, ["a"]);
    assert_eq!(first.attempts[0].stopped_at.as_deref(), Some("b"));
    assert_eq!(first.attempts[1].volumes, ["c"]);
    assert_eq!(first.attempts[1].written, ["c"]);
    // Every attempt is the documented batch entry point, once.
    for attempt in &first.attempts {
        assert_eq!(
            &attempt.command[1..5],
            ["-m", "monai.bundle", "run", "--config_file"]
        );
        assert_eq!(
            attempt.command[5],
            "['configs/inference.json', 'configs/batch_inference.json']"
        );
        assert!(attempt.command.contains(&"--input_dir".to_string()));
    }
    assert_eq!(first.failures.len(), 1);
    assert_eq!(first.failures[0].id, "b");
    assert!(
        first.failures[0].reason.contains("in flight"),
        "{}",
        first.failures[0].reason
    );

    // One evidence pack per volume, the same document as run_script.
    for id in ["a", "c"] {
        let pack = out.join(id);
        let e = evidence(&pack);
        assert_eq!(e.status, RunStatus::Succeeded, "{id}: {}", e.summary);
        assert_eq!(e.pack_dir, pack.display().to_string());
        let mask = pack.join(id).join(format!("{id}_trans.nii.gz"));
        assert_eq!(e.output.path.as_deref(), Some(mask.to_str().unwrap()));
        assert!(mask.is_file());
        assert!(e.output.geometry.shape_match && e.output.geometry.affine_match);
        assert_eq!(
            e.invocation.config_files,
            ["configs/inference.json", "configs/batch_inference.json"]
        );
        assert!(
            e.output.class_volumes_ml.contains_key("liver"),
            "{:?}",
            e.output.class_volumes_ml
        );
        assert_eq!(
            e.input.path,
            w.base
                .join(format!("data/{id}.nii.gz"))
                .display()
                .to_string()
        );
        assert!(pack.join("manifest.json").is_file());
        assert!(pack.join("logs/upstream.stderr.log").is_file());
        let validation: Value = serde_json::from_str(
            &std::fs::read_to_string(pack.join("validation_summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(validation["overall_status"], "passed", "{id}: {validation}");
    }
    let failed = evidence(&out.join("b"));
    assert_eq!(failed.status, RunStatus::UpstreamFailed);
    assert!(failed.output.path.is_none());
    assert!(
        failed.logs.stderr_tail.contains("LoadImage"),
        "{}",
        failed.logs.stderr_tail
    );

    // The cohort summary on disk equals the result, and the table has a class column.
    let on_disk: Cohort =
        serde_json::from_str(&std::fs::read_to_string(out.join("cohort.json")).unwrap()).unwrap();
    assert_eq!(on_disk, first);
    let csv = std::fs::read_to_string(out.join("cohort_volumes.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("id,input,status,reason,"), "{header}");
    assert!(header.contains("liver_ml"), "{header}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3);
    assert!(
        rows[0].starts_with("a,") && rows[0].contains(",succeeded,"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].starts_with("b,") && rows[1].contains(",upstream_failed,"),
        "{}",
        rows[1]
    );
    assert_eq!(first.classes["liver"].volumes_present, 2);
    let plot = std::fs::read(out.join("cohort_volumes.png")).unwrap();
    assert_eq!(
        &plot[..8],
        b"\x89PNG\r\n\x1a\n",
        "cohort_volumes.png is not a PNG"
    );

    // Progress: per volume, with the volume in flight, counts never going back.
    let messages: Vec<&str> = progress
        .iter()
        .filter_map(|p| p.message.as_deref())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("current a")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("1/3 volumes done; current b")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("current c")),
        "{messages:?}"
    );
    assert!(
        progress.iter().all(|p| p.total == Some(3.0)),
        "{progress:?}"
    );
    let counts: Vec<f64> = progress.iter().map(|p| p.progress).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert_eq!(counts.last(), Some(&3.0));

    // Re-run without b and with c changed: a is reused, c runs again.
    let a_mask_before = std::fs::read(out.join("a/a/a_trans.nii.gz")).unwrap();
    w.volume("c.nii.gz", 7);
    let (call, _) = w.call(w.args(&[&a, &c], &out));
    let second = cohort(call);
    assert_eq!(second.status, CohortStatus::Succeeded, "{}", second.summary);
    assert_eq!(status_of(&second, "a"), VolumeStatus::Reused);
    assert_eq!(status_of(&second, "c"), VolumeStatus::Succeeded);
    assert_eq!(second.attempts.len(), 1);
    assert_eq!(second.attempts[0].volumes, ["c"]);
    assert_eq!(
        std::fs::read(out.join("a/a/a_trans.nii.gz")).unwrap(),
        a_mask_before
    );
    let c_now = evidence(&out.join("c"));
    assert_eq!(
        c_now.input.sha256.as_deref(),
        Some(ctmr_skill::upstream::sha256_file(&c).unwrap().as_str())
    );
    assert_eq!(second.counts["reused"], 1);
}

#[test]
fn the_cli_runs_a_directory_and_reports_progress_lines() {
    let w = World::new();
    w.volume("p.nii.gz", 1);
    w.volume("sub/q.nii.gz", 2);
    std::fs::write(w.base.join("data/notes.txt"), "not an image").unwrap();
    let out = w.base.join("data/out");
    let output = Command::new(common::binary())
        .current_dir(&w.base)
        .env("CTMR_SKILL_PYTHON", common::python())
        .args([
            "run-batch",
            "--input-dir",
            "data",
            "--output-root",
            "data/out",
        ])
        .args(["--device", "cpu", "--upstream-root"])
        .arg(&w.bundle)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let cohort: Cohort = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(cohort.status, CohortStatus::Succeeded);
    let ids: Vec<&str> = cohort.volumes.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["p", "q"]);
    assert_eq!(cohort.attempts.len(), 1);
    assert!(out.join("q/q/q_trans.nii.gz").is_file());
    assert!(stderr.contains("0/2 volumes done; current p"), "{stderr}");
    assert!(stderr.contains("1/2 volumes done; current q"), "{stderr}");

    // Again: nothing runs, both are reused (the output root inside the input
    // directory is not searched).
    let again = Command::new(common::binary())
        .current_dir(&w.base)
        .env("CTMR_SKILL_PYTHON", common::python())
        .args([
            "run-batch",
            "--input-dir",
            "data",
            "-o",
            "data/out",
            "--device",
            "cpu",
        ])
        .arg("--upstream-root")
        .arg(&w.bundle)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let cohort: Cohort = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(cohort.counts["reused"], 2, "{:?}", cohort.counts);
    assert!(cohort.attempts.is_empty());
}

#[test]
fn refusals_happen_before_anything_runs() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let config = Config::new(base.clone(), vec![], None, Some(common::python()), 1);
    let runner = RunBatch::new(
        Arc::new(config),
        Arc::new(ctmr_skill::manifest::embedded().unwrap()),
        Arc::new(RunSlots::new(1)),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let call = |args: Value| {
        rt.block_on(runner.call_tool(args.as_object().unwrap().clone(), CallContext::detached()))
    };
    // No bundle root anywhere: the whole batch is refused, naming the gate.
    let input = base.join("x.nii.gz");
    std::fs::write(&input, b"not nifti").unwrap();
    match call(
        json!({"inputs": [input], "output_root": base.join("o"), "upstream_root": base.join("nowhere")}),
    ) {
        BatchCall::Refused { message, .. } => {
            assert!(message.contains("upstream_root_valid"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // An empty directory: refused with the suffix and the fix.
    std::fs::create_dir_all(base.join("empty")).unwrap();
    match call(json!({"input_dir": base.join("empty"), "output_root": base.join("o")})) {
        BatchCall::Refused { message, .. } => {
            assert!(message.contains("no file ending in '.nii.gz'"), "{message}");
            assert!(message.contains("input_dir"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Both forms at once.
    match call(json!({"input_dir": base, "inputs": [input], "output_root": base.join("o")})) {
        BatchCall::Refused { message, .. } => assert!(message.contains("input_dir"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(
        !base.join("o").exists(),
        "nothing may be written on refusal"
    );
}

#[test]
fn an_interrupted_cli_batch_resumes_without_redoing_finished_volumes() {
    use std::io::{BufRead, BufReader};
    let w = World::new();
    let first = w.volume("i1.nii.gz", 1);
    let second = w.volume("i2.nii.gz", 2);
    let out = w.base.join("interrupted");
    let mut child = Command::new(common::binary())
        .current_dir(&w.base)
        .env("CTMR_SKILL_PYTHON", common::python())
        .arg("run-batch")
        .args([&first, &second])
        .args(["--device", "cpu", "--output-root"])
        .arg(&out)
        .arg("--upstream-root")
        .arg(&w.bundle)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt (SIGINT, as Ctrl-C) once the first volume is done and the second is in flight.
    // stderr is read to its end: closing it early would break the child's pipe.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let mut interrupted = false;
    for line in stderr.lines() {
        let line = line.unwrap();
        if !interrupted && line.contains("1/2 volumes done; current i2") {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            interrupted = true;
        }
        seen.push(line);
    }
    assert!(
        interrupted,
        "never saw the second volume in flight: {seen:#?}"
    );
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(5), "{seen:#?}");
    let stopped: Cohort = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stopped.status, CohortStatus::Cancelled);
    assert_eq!(stopped.volumes[0].status, VolumeStatus::Succeeded);
    assert_eq!(stopped.volumes[1].status, VolumeStatus::Cancelled);
    assert_eq!(evidence(&out.join("i2")).status, RunStatus::Cancelled);

    // Re-run: the finished volume is kept, only the interrupted one runs.
    let again = Command::new(common::binary())
        .current_dir(&w.base)
        .env("CTMR_SKILL_PYTHON", common::python())
        .arg("run-batch")
        .args([&first, &second])
        .args(["--device", "cpu", "--output-root"])
        .arg(&out)
        .arg("--upstream-root")
        .arg(&w.bundle)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let resumed: Cohort = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(resumed.volumes[0].status, VolumeStatus::Reused);
    assert_eq!(resumed.volumes[1].status, VolumeStatus::Succeeded);
    assert_eq!(resumed.attempts.len(), 1);
    assert_eq!(resumed.attempts[0].volumes, ["i2"]);
}

/// A volume whose mask was written before its batch process died (SIGKILL, as an
/// out-of-memory kill would) keeps its own exit code 0 and passes its sanity checks;
/// the process's code is recorded beside it. Stand-in interpreter
/// (tests/fixtures/run_script), which can die on cue where the real bundle cannot.
#[test]
fn a_volume_finished_before_its_batch_process_died_keeps_its_own_exit_code() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let (bundle, python) = common::standin_bundle(&base, "die_after_first");
    std::fs::write(
        bundle.join("configs/batch_inference.json"),
        std::fs::read(
            common::repo_root().join("examples/demo-bundle/configs/batch_inference.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let inputs: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            let path = base.join(format!("data/{id}.nii.gz"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            common::make_volume(&path, &[]);
            path
        })
        .collect();
    let out = base.join("cohort");
    let config = Config::new(base.clone(), vec![], None, Some(python), 1);
    let runner = RunBatch::new(
        Arc::new(config),
        Arc::new(ctmr_skill::manifest::embedded().unwrap()),
        Arc::new(RunSlots::new(1)),
    );
    let args = json!({"inputs": inputs, "modality": "CT_BODY", "output_root": out,
                      "upstream_root": bundle, "device": "cpu"});
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let call =
        rt.block_on(runner.call_tool(args.as_object().unwrap().clone(), CallContext::detached()));
    let result = cohort(call);
    let first = &result.attempts[0];
    assert_eq!(first.exit_code, Some(137), "{:#?}", result.attempts);
    assert_eq!(first.written, ["a"], "{:#?}", result.attempts);

    let a = evidence(&out.join("a"));
    assert_eq!(a.status, RunStatus::Succeeded, "{}", a.summary);
    assert_eq!(a.invocation.exit_code, Some(0));
    assert_eq!(a.invocation.batch_process_exit_code, Some(137));
    let validation: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("a/validation_summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(validation["overall_status"], "passed", "{validation}");
    // Volumes the later attempts wrote carry no batch process code.
    assert!(
        result.volumes.iter().any(|v| v.id == "c" && v.status.ok()),
        "{:#?}",
        result.volumes
    );
    for v in result
        .volumes
        .iter()
        .filter(|v| v.id != "a" && v.status.ok())
    {
        let e = evidence(Path::new(v.pack_dir.as_deref().unwrap()));
        assert_eq!(e.invocation.batch_process_exit_code, None, "{}", v.id);
    }
}

/// Issue 21 (7b): a volume named with `$`, under an output root with `$` in its path
/// (both beside each other in `co$hort/`), runs as run_script would run it. The staged
/// list the bundle reads as configuration holds no `$` (MONAI would evaluate it).
#[test]
fn a_dollar_in_the_input_and_output_root_paths_runs_and_never_reaches_the_overrides() {
    let w = World::new();
    std::fs::create_dir_all(w.base.join("data/co$hort")).unwrap();
    let input = w.volume("co$hort/a$1.nii.gz", 1);
    let out = w.base.join("data/co$hort/out");
    let mut args = w.args(&[&input], &out);
    args.insert("label_prompts".into(), json!([1, 3]));
    let cohort = cohort(w.call(args).0);
    assert_eq!(cohort.status, CohortStatus::Succeeded, "{}", cohort.summary);
    let pack = out.join("a_1");
    assert_eq!(evidence(&pack).status, RunStatus::Succeeded);
    assert_eq!(evidence(&pack).input.path, input.display().to_string());
    for attempt in &cohort.attempts {
        for key in ["--input_list", "--input_dicts"] {
            let at = attempt.command.iter().position(|a| a == key).unwrap();
            let value = &attempt.command[at + 1];
            assert!(
                value.contains("a_1.nii.gz") && !value.contains('$'),
                "{value}"
            );
        }
    }
}
