//! run_script end to end through the library: gates with their messages, and the
//! evidence on success, crash, timeout, cancellation, stale output and unexpected
//! labels. The upstream here is a stand-in interpreter
//! (tests/fixtures/run_script/standin_upstream.py) so each case takes a second; the
//! real `python -m monai.bundle run` is exercised beside it by tests/run_demo_bundle.rs
//! and the Python end-to-end tests.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use ctmr_skill::config::Config;
use ctmr_skill::evidence::{Evidence, RunStatus, WeightsProvenance};
use ctmr_skill::tools::run_script::{RunCall, RunScript};
use ctmr_skill::tools::CallContext;

struct World {
    dir: tempfile::TempDir,
    root: PathBuf,
    input: PathBuf,
    runner: RunScript,
}

impl World {
    fn new(mode: &str) -> World {
        let dir = common::fresh_dir();
        let base = dir.path().canonicalize().unwrap();
        let (root, wrapper) = common::standin_bundle(&base, mode);
        let input = base.join("case 1.nii.gz");
        common::make_volume(&input, &[]);
        let config = Config::new(base.clone(), vec![], None, Some(wrapper), 1);
        let manifest = ctmr_skill::manifest::embedded().unwrap();
        World {
            runner: RunScript::new(Arc::new(config), Arc::new(manifest)),
            dir,
            root,
            input,
        }
    }

    fn base(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    fn args(&self, extra: Value) -> Map<String, Value> {
        let mut args = json!({
            "input": self.input,
            "modality": "CT_BODY",
            "output_dir": self.base().join("out"),
            "upstream_root": self.root,
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                args.as_object_mut().unwrap().remove(k);
            } else {
                args[k] = v.clone();
            }
        }
        args.as_object().unwrap().clone()
    }

    fn call(&self, extra: Value) -> RunCall {
        self.call_with(extra, CallContext::detached())
    }

    fn call_with(&self, extra: Value, ctx: CallContext) -> RunCall {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(self.runner.call_tool(self.args(extra), ctx))
    }
}

fn ran(call: RunCall) -> Evidence {
    match call {
        RunCall::Ran(e) => *e,
        other => panic!("expected a run, got {other:?}"),
    }
}

fn refused(call: RunCall) -> String {
    match call {
        RunCall::Refused { message, .. } => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn success_writes_a_complete_pack_whose_numbers_match_the_mask() {
    let world = World::new("ok");
    let evidence = ran(world.call(json!({})));
    assert_eq!(
        evidence.status,
        RunStatus::Succeeded,
        "{}",
        evidence.summary
    );
    let out = world.base().join("out");
    let mask = out.join("case 1/case 1_trans.nii.gz");
    assert_eq!(
        evidence.output.path.as_deref(),
        Some(mask.to_str().unwrap())
    );

    // Recount the mask independently with nibabel.
    let script = world.base().join("count.py");
    std::fs::write(
        &script,
        "import sys, json, nibabel as nib, numpy as np\nimg = nib.load(sys.argv[1])\na = img.get_fdata()\n\
         u, c = np.unique(a, return_counts=True)\nprint(json.dumps({str(int(k)): int(v) for k, v in zip(u, c) if k != 0}))\n",
    )
    .unwrap();
    let counts: Value =
        serde_json::from_str(&common::run_python(&script, &[mask.to_str().unwrap()])).unwrap();
    assert_eq!(evidence.output.label_ids_present, vec![1, 3]);
    for class in &evidence.output.classes {
        assert_eq!(
            counts[class.id.to_string()],
            json!(class.voxels),
            "class {}",
            class.id
        );
        assert!((class.volume_ml - class.voxels as f64 * 2.0 * 2.5 * 3.0 / 1000.0).abs() < 1e-9);
    }
    assert_eq!(evidence.output.classes[0].name, "liver");
    assert_eq!(evidence.output.classes[1].name, "spleen");
    assert_eq!(
        evidence.output.class_counts["liver"],
        evidence.output.classes[0].voxels
    );
    assert!(evidence.output.geometry.shape_match && evidence.output.geometry.affine_match);

    // How it ran: the sandbox (this machine's kernel has Landlock, or the evidence says
    // why not) and the bundle's fingerprint against the published upstream.
    let sandbox = evidence
        .runtime
        .sandbox
        .as_ref()
        .expect("the evidence records the sandbox");
    match ctmr_skill::upstream::landlock_abi() {
        Ok(abi) => {
            assert!(sandbox.enforced, "{sandbox:?}");
            assert_eq!(sandbox.abi, Some(abi));
            assert!(
                sandbox.writable.iter().any(|w| Path::new(w) == out),
                "{sandbox:?}"
            );
            assert_eq!(sandbox.network_denied, abi >= 4);
        }
        Err(_) => assert!(!sandbox.enforced && sandbox.reason.is_some(), "{sandbox:?}"),
    }
    let fingerprint = evidence
        .invocation
        .bundle_fingerprint
        .as_ref()
        .expect("the evidence fingerprints the bundle");
    assert!(fingerprint.files.contains_key("configs/inference.json"));
    assert!(
        !fingerprint.matches_published,
        "a stand-in bundle is not the published one"
    );
    assert_eq!(fingerprint.digest.len(), 64);

    assert!(evidence.output.geometry.spacing_match);
    assert_eq!(evidence.output.geometry.input_spacing, vec![2.0, 2.5, 3.0]);
    assert!(
        evidence.output.label_set_valid,
        "{:?}",
        evidence.output.unexpected_label_ids
    );
    assert_eq!(evidence.invocation.exit_code, Some(0));
    assert_eq!(evidence.weights.provenance, WeightsProvenance::Upstream);
    assert!(
        evidence
            .sanity_checks
            .iter()
            .all(|c| c.status == ctmr_skill::evidence::sanity::CheckStatus::Passed),
        "{:#?}",
        evidence.sanity_checks
    );
    assert_eq!(evidence.input.sha256.as_ref().unwrap().len(), 64);

    // The exact documented argv, cwd = bundle root.
    let calls: Value = serde_json::from_str(
        std::fs::read_to_string(out.join("standin_calls.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let argv: Vec<&str> = calls["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        &argv[..6],
        [
            "-m",
            "monai.bundle",
            "run",
            "--config_file",
            "configs/inference.json",
            "--input_dict"
        ]
    );
    assert_eq!(calls["input_dict"], json!({"image": world.input}));
    assert_eq!(
        &argv[7..],
        [
            "--output_dir",
            out.to_str().unwrap(),
            "--modality",
            "CT_BODY"
        ]
    );
    assert_eq!(calls["cwd"], json!(world.root));
    assert_eq!(
        evidence.invocation.command[1..],
        argv.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]
    );

    // The pack on disk says the same.
    assert_eq!(
        read_json(&out.join("output.json")),
        serde_json::to_value(&evidence).unwrap()
    );
    let summary = read_json(&out.join("validation_summary.json"));
    assert_eq!(summary["overall_status"], "passed");
    let manifest = read_json(&out.join("manifest.json"));
    assert_eq!(
        manifest["hashes"]["mask_sha256"],
        json!(evidence.output.sha256)
    );
    assert_eq!(manifest["skill_id"], "medagent.nv_segment_ctmr");
    assert!(out.join("logs/upstream.stdout.log").exists());
    let labels = read_json(&out.join("labels.json"));
    assert!(labels.to_string().contains("liver"), "{labels}");
    assert!(out.join("labels.ctbl").exists() && out.join("labels_itksnap.txt").exists());
    // Nothing was written into the bundle.
    let mut entries: Vec<String> = walk(&world.root);
    entries.sort();
    assert_eq!(
        entries,
        [
            "configs/inference.json",
            "configs/label_dict.json",
            "configs/label_mappings.json",
            "configs/metadata.json",
            "models/model.pt",
            "standin_mode.txt"
        ]
    );
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out
}

#[test]
fn argv_form_runs_the_same_request() {
    let world = World::new("ok");
    let out = world.base().join("argv-out");
    let args = json!({"script": "scripts/run_ctmr.py", "args": [
        world.input, "--modality", "CT_BODY", "--output-dir", out, "--upstream-root", world.root, "--label-prompts", "1,3"]});
    let rt = tokio::runtime::Runtime::new().unwrap();
    let evidence = ran(rt.block_on(
        world
            .runner
            .call_tool(args.as_object().unwrap().clone(), CallContext::detached()),
    ));
    assert_eq!(evidence.status, RunStatus::Succeeded);
    assert_eq!(evidence.output.label_prompts_requested, Some(vec![1, 3]));
    assert_eq!(evidence.output.expected_label_ids, vec![1, 3]);
    let calls = std::fs::read_to_string(out.join("standin_calls.jsonl")).unwrap();
    assert!(calls.contains("'label_prompt': [1, 3]"), "{calls}");
}

#[test]
fn structures_resolve_to_prompts_and_expand() {
    let world = World::new("ok");
    let evidence = ran(world.call(json!({"structures": ["liver", "kidney"]})));
    assert_eq!(evidence.invocation.label_prompts, Some(vec![1, 2]));
    // Prompt 2 (kidney) expands to right and left kidney.
    assert_eq!(evidence.output.expected_label_ids, vec![1, 5, 14]);
    // Spleen (3) was not asked for: it is unexpected.
    assert_eq!(evidence.output.unexpected_label_ids, vec![3]);
    assert!(!evidence.output.label_set_valid);
}

#[test]
fn unexpected_ids_and_the_nan_sentinel_are_reported_apart() {
    let world = World::new("unexpected");
    let evidence = ran(world.call(json!({})));
    assert_eq!(evidence.status, RunStatus::Succeeded);
    assert_eq!(evidence.output.nan_sentinel_255_voxels, 1);
    assert_eq!(evidence.output.unexpected_label_ids, vec![2, 255]);
    assert!(!evidence.output.label_set_valid);
    let failed: Vec<&str> = evidence
        .sanity_checks
        .iter()
        .filter(|c| c.status == ctmr_skill::evidence::sanity::CheckStatus::Failed)
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(failed, ["output.label_set_valid"]);
}

#[test]
fn a_crash_is_recorded_with_logs() {
    let world = World::new("crash");
    let evidence = ran(world.call(json!({})));
    assert_eq!(evidence.status, RunStatus::UpstreamFailed);
    assert_eq!(evidence.invocation.exit_code, Some(1));
    assert!(evidence.logs.stderr_tail.contains("stand-in crash"));
    assert!(evidence.output.path.is_none());
    let summary = read_json(&world.base().join("out/validation_summary.json"));
    assert_eq!(summary["overall_status"], "failed");
    let full = std::fs::read_to_string(world.base().join("out/logs/upstream.stderr.log")).unwrap();
    assert!(full.contains("RuntimeError"));
}

fn pid_alive(pid: i32) -> bool {
    // Zombies are dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.split(") ").nth(1).unwrap_or("").starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let world = World::new("sleep");
    let evidence = ran(world.call(json!({"timeout_seconds": 2})));
    assert_eq!(evidence.status, RunStatus::TimedOut);
    assert_eq!(evidence.invocation.exit_code, Some(124));
    let grandchild: i32 = std::fs::read_to_string(world.base().join("out/standin_grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !pid_alive(grandchild),
        "grandchild {grandchild} survived the timeout"
    );
    assert_eq!(
        read_json(&world.base().join("out/output.json"))["status"],
        "timed_out"
    );
}

#[test]
fn cancellation_kills_the_group_and_marks_the_pack() {
    let world = World::new("sleep");
    let ctx = CallContext::detached();
    let cancel = ctx.cancel.clone();
    let grandchild_file = world.base().join("out/standin_grandchild.pid");
    let watcher = std::thread::spawn(move || {
        for _ in 0..2400 {
            if grandchild_file.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        cancel.cancel();
    });
    let evidence = ran(world.call_with(json!({}), ctx));
    watcher.join().unwrap();
    assert_eq!(evidence.status, RunStatus::Cancelled);
    let grandchild: i32 = std::fs::read_to_string(world.base().join("out/standin_grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!pid_alive(grandchild));
    assert_eq!(
        read_json(&world.base().join("out/output.json"))["status"],
        "cancelled"
    );
}

#[test]
fn a_stale_mask_is_moved_aside_and_never_adopted() {
    let world = World::new("no_mask");
    let stale = world.base().join("out/case 1/case 1_trans.nii.gz");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    common::make_volume(&stale, &[]);
    let evidence = ran(world.call(json!({})));
    assert_eq!(
        evidence.status,
        RunStatus::UpstreamFailed,
        "a mask this run did not write must not count"
    );
    let moved = evidence
        .output
        .stale_output
        .expect("the stale mask is reported");
    assert_eq!(moved.original, stale.display().to_string());
    assert!(Path::new(&moved.moved_to).exists());
    assert!(!stale.exists());
}

#[test]
fn gates_refuse_with_the_argument_rule_and_fix() {
    let world = World::new("ok");
    let base = world.base();
    let not_nifti = base.join("notes.nii.gz");
    std::fs::write(&not_nifti, b"plain text").unwrap();
    let four_d = base.join("four_d.nii.gz");
    common::make_volume(&four_d, &["--four-d"]);
    let empty_root = base.join("empty-bundle");
    std::fs::create_dir_all(empty_root.join("configs")).unwrap();
    std::fs::write(empty_root.join("configs/inference.json"), "{}").unwrap();
    let cases: Vec<(Value, &[&str])> = vec![
        (
            json!({"input": base.join("missing.nii.gz")}),
            &["input_exists", "argument 'input'", "does not exist"],
        ),
        (
            json!({"input": not_nifti}),
            &["input_is_nifti", "notes.nii.gz"],
        ),
        (json!({"input": four_d}), &["input_is_3d", "four_d.nii.gz"]),
        (
            json!({"modality": "MRI_BRAIN"}),
            &[
                "brain_preprocessing_acknowledged",
                "preprocessed_brain_input",
            ],
        ),
        (
            json!({"output_dir": "/proc/ctmr-out"}),
            &["output_dir_allowed", "not inside an allowed directory"],
        ),
        (
            json!({"output_dir": world.root.join("out")}),
            &["output_dir_allowed", "argument 'output_dir'"],
        ),
        (
            json!({"label_prompts": [9999]}),
            &["label_prompts_known", "9999 is not a class"],
        ),
        (
            json!({"structures": ["hepar"]}),
            &["structures_resolve", "hepar"],
        ),
        (
            json!({"structures": (0..40).map(|i| format!("hepar{i}")).collect::<Vec<_>>()}),
            &["hepar9'", "and 30 more names that do not resolve"],
        ),
        (
            json!({"ground_truth": not_nifti}),
            &["ground_truth_readable"],
        ),
        (
            json!({"upstream_root": base.join("nowhere")}),
            &["upstream_root_valid"],
        ),
        (
            json!({"upstream_root": empty_root}),
            &["model_weights_present", "model.pt"],
        ),
    ];
    for (extra, needles) in cases {
        let message = refused(world.call(extra.clone()));
        for needle in needles {
            assert!(
                message.contains(needle),
                "{extra}: missing {needle:?} in\n{message}"
            );
        }
        assert!(message.contains("Fix:"), "{message}");
    }
    // A deprecated class cannot be prompted.
    let table = ctmr_skill::labels::LabelTable::load_bundle(&world.root).unwrap();
    let deprecated = table
        .iter()
        .find(|c| c.deprecated)
        .expect("the upstream has deprecated classes");
    let message = refused(world.call(json!({"label_prompts": [deprecated.id]})));
    assert!(message.contains("deprecated"), "{message}");
    // Nothing ran for any refusal.
    assert!(!base.join("out").exists());
}

#[test]
fn schema_level_refusals_name_the_argument() {
    let world = World::new("ok");
    for (extra, argument) in [
        (json!({"modality": "CT"}), "modality"),
        (json!({"label_prompts": [3, "x"]}), "label_prompts[1]"),
        (json!({"timeout_seconds": 0}), "timeout_seconds"),
        (json!({"patch_size": [64]}), "patch_size"),
        (json!({"bogus": 1}), "bogus"),
    ] {
        let message = refused(world.call(extra.clone()));
        assert!(
            message.contains(&format!("argument '{argument}'")),
            "{extra}: {message}"
        );
    }
}

#[test]
fn a_second_run_waits_for_the_slot_and_reports_its_queue_position() {
    let world = World::new("sleep");
    let messages = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = messages.clone();
    let queued_ctx = CallContext::new(
        Arc::new(move |p: ctmr_skill::tools::Progress| sink.lock().unwrap().extend(p.message)),
        tokio_util::sync::CancellationToken::new(),
    );
    let first_args =
        world.args(json!({"output_dir": world.base().join("first"), "timeout_seconds": 3}));
    let second_args =
        world.args(json!({"output_dir": world.base().join("second"), "timeout_seconds": 2}));
    let started = world.base().join("first/standin_grandchild.pid");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (first, second) = rt.block_on(async {
        let first = world.runner.call_tool(first_args, CallContext::detached());
        let second = async {
            while !started.exists() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            world.runner.call_tool(second_args, queued_ctx).await
        };
        tokio::join!(first, second)
    });
    assert_eq!(ran(first).status, RunStatus::TimedOut);
    assert_eq!(ran(second).status, RunStatus::TimedOut);
    let messages = messages.lock().unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("queued for ") && m.contains(": position 1;")),
        "{messages:?}"
    );
}
