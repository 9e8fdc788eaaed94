//! The upstream's documented memory/speed switches `cpu_postprocessing` and `tensorrt`
//! end to end: a real demo-bundle run with the postprocessing moved to the CPU (and
//! proof that the override really switches the bundle's transform on), the refusals
//! that happen before anything runs, and the schemas that advertise both.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::{json, Value};

use ctmr_skill::config::Config;
use ctmr_skill::evidence::{Evidence, RunStatus};
use ctmr_skill::tools::run_batch::{BatchCall, RunBatch};
use ctmr_skill::tools::run_script::{RunCall, RunScript};
use ctmr_skill::tools::CallContext;

const OVERRIDE_KEY: &str = "postprocessing#transforms#0#_disabled_";

fn run_cli(cwd: &Path, python: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(common::binary())
        .current_dir(cwd)
        .env("CTMR_SKILL_PYTHON", python)
        .arg("run")
        .args(args)
        .output()
        .unwrap()
}

fn gate<'a>(document: &'a Value, name: &str) -> &'a Value {
    document["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no gate {name} in {document}"))
}

fn demo_volume(path: &Path) {
    common::run_python(
        &common::repo_root().join("scripts/make-demo-volume.py"),
        &[path.to_str().unwrap(), "--shape", "32", "32", "16"],
    );
}

#[test]
fn cpu_postprocessing_runs_the_demo_bundle_and_is_recorded() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let bundle = base.join("demo-bundle");
    common::demo_bundle_copy(&bundle);
    let input = base.join("ct.nii.gz");
    demo_volume(&input);
    let out = base.join("out");

    let output = run_cli(
        &base,
        &common::python(),
        &[
            input.as_os_str(),
            "--modality".as_ref(),
            "CT_BODY".as_ref(),
            "--output-dir".as_ref(),
            out.as_os_str(),
            "--upstream-root".as_ref(),
            bundle.as_os_str(),
            "--device".as_ref(),
            "cpu".as_ref(),
            "--label-prompts".as_ref(),
            "1,3".as_ref(),
            "--cpu-postprocessing".as_ref(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let evidence: Evidence = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        evidence.status,
        RunStatus::Succeeded,
        "{}",
        evidence.summary
    );
    assert_eq!(evidence.runtime.device, "cpu");
    assert!(evidence.output.any_label_present);
    // Recorded where the other documented overrides are, and in the exact argv.
    assert_eq!(
        evidence
            .invocation
            .overrides
            .get(OVERRIDE_KEY)
            .map(String::as_str),
        Some("False"),
        "{:?}",
        evidence.invocation.overrides
    );
    let command = &evidence.invocation.command;
    let at = command
        .iter()
        .position(|a| a == &format!("--{OVERRIDE_KEY}"))
        .unwrap_or_else(|| panic!("override missing from {command:?}"));
    assert_eq!(command[at + 1], "False");
    assert_eq!(evidence.invocation.config_files, ["configs/inference.json"]);
    assert_eq!(command[5], "configs/inference.json");
    let gates = serde_json::to_value(&evidence).unwrap();
    assert_eq!(
        gate(&gates, "cpu_postprocessing_supported")["status"],
        "passed"
    );
    assert_eq!(gate(&gates, "tensorrt_config_present")["status"], "skipped");
    // The pack on disk says the same.
    let on_disk: Evidence =
        serde_json::from_str(&std::fs::read_to_string(out.join("output.json")).unwrap()).unwrap();
    assert_eq!(on_disk.invocation.overrides, evidence.invocation.overrides);
    assert_eq!(
        on_disk.invocation.config_files,
        evidence.invocation.config_files
    );
    // MONAI received the override (it logs the arguments of `run`).
    let logs = std::fs::read_to_string(out.join("logs/upstream.stdout.log")).unwrap_or_default()
        + &std::fs::read_to_string(out.join("logs/upstream.stderr.log")).unwrap_or_default();
    assert!(logs.contains(OVERRIDE_KEY), "{logs}");
}

/// The override switches the bundle's transform on: with a `ToDeviced` whose key does
/// not exist, the run fails exactly when `cpu_postprocessing` is set.
#[test]
fn the_override_really_enables_the_bundles_transform() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let bundle = base.join("demo-bundle");
    common::demo_bundle_copy(&bundle);
    let config_path = bundle.join("configs/inference.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let first = &mut config["postprocessing"]["transforms"][0];
    assert_eq!(first["_target_"], "ToDeviced");
    assert_eq!(first["_disabled_"], true);
    first["keys"] = json!("no_such_key");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let input = base.join("ct.nii.gz");
    demo_volume(&input);

    let config = Config::new(base.clone(), vec![], None, Some(common::python()), 1);
    let runner = RunScript::new(
        Arc::new(config),
        Arc::new(ctmr_skill::manifest::embedded().unwrap()),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let call = |out: &str, cpu_postprocessing: bool| {
        let args = json!({
            "input": input, "modality": "CT_BODY", "output_dir": base.join(out),
            "upstream_root": bundle, "device": "cpu", "label_prompts": [1],
            "cpu_postprocessing": cpu_postprocessing,
        });
        match rt
            .block_on(runner.call_tool(args.as_object().unwrap().clone(), CallContext::detached()))
        {
            RunCall::Ran(evidence) => *evidence,
            other => panic!("expected a run, got {other:?}"),
        }
    };
    let enabled = call("enabled", true);
    assert_eq!(
        enabled.status,
        RunStatus::UpstreamFailed,
        "{}",
        enabled.summary
    );
    let stderr = std::fs::read_to_string(enabled.logs.stderr_log.as_deref().unwrap()).unwrap();
    assert!(
        stderr.contains("no_such_key") && stderr.contains("ToDeviced"),
        "{stderr}"
    );
    let disabled = call("disabled", false);
    assert_eq!(
        disabled.status,
        RunStatus::Succeeded,
        "{}",
        disabled.summary
    );
    assert!(disabled.invocation.overrides.is_empty());
}

/// A stand-in bundle root (configs/inference.json is `{}`: no postprocessing at all)
/// and the real interpreter; nothing in these cases ever reaches the upstream.
struct Standin {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    input: PathBuf,
}

impl Standin {
    fn new() -> Standin {
        let dir = common::fresh_dir();
        let base = dir.path().canonicalize().unwrap();
        let (root, _wrapper) = common::standin_bundle(&base, "ok");
        let input = base.join("case.nii.gz");
        common::make_volume(&input, &[]);
        Standin {
            _dir: dir,
            base,
            root,
            input,
        }
    }

    /// `ctmr-skill run` on the stand-in, with `extra` flags and `CUDA_VISIBLE_DEVICES` hidden.
    fn run(&self, extra: &[&str]) -> Output {
        let mut cmd = Command::new(common::binary());
        cmd.current_dir(&self.base)
            .env("CTMR_SKILL_PYTHON", common::python())
            .env("CUDA_VISIBLE_DEVICES", "")
            .arg("run")
            .arg(&self.input)
            .arg("--output-dir")
            .arg(self.base.join("out"))
            .arg("--upstream-root")
            .arg(&self.root)
            .args(extra);
        cmd.output().unwrap()
    }

    fn nothing_ran(&self) {
        assert!(
            !self.base.join("out").exists(),
            "a refused run wrote {}",
            self.base.join("out").display()
        );
    }
}

#[test]
fn cpu_postprocessing_is_refused_when_the_bundle_lacks_the_transform() {
    let w = Standin::new();
    let output = w.run(&["--cpu-postprocessing"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let document = common::stdout_json(&output);
    assert_eq!(document["status"], "refused");
    let g = gate(&document, "cpu_postprocessing_supported");
    assert_eq!(g["status"], "failed");
    let message = g["message"].as_str().unwrap();
    for needle in [
        "argument 'cpu_postprocessing'",
        "no config defines `postprocessing`",
        "drop cpu_postprocessing",
        "Fix:",
    ] {
        assert!(message.contains(needle), "missing {needle:?} in {message}");
    }
    w.nothing_ran();

    // A bundle whose first postprocessing transform is something else is named.
    std::fs::write(
        w.root.join("configs/inference.json"),
        r#"{"postprocessing": {"_target_": "Compose", "transforms": [{"_target_": "SaveImaged", "keys": "pred"}]}}"#,
    )
    .unwrap();
    let output = w.run(&["--cpu-postprocessing"]);
    assert_eq!(output.status.code(), Some(2));
    let message = gate(
        &common::stdout_json(&output),
        "cpu_postprocessing_supported",
    )["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("postprocessing.transforms[0] in configs/inference.json is SaveImaged"),
        "{message}"
    );
    w.nothing_ran();
}

#[test]
fn tensorrt_is_refused_without_its_config_or_on_cpu() {
    let w = Standin::new();
    // No configs/inference_trt.json: refused, naming the file and the fix.
    let output = w.run(&["--tensorrt"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let document = common::stdout_json(&output);
    let g = gate(&document, "tensorrt_config_present");
    assert_eq!(g["status"], "failed");
    let message = g["message"].as_str().unwrap();
    let trt = w.root.join("configs/inference_trt.json");
    assert!(message.contains(&trt.display().to_string()), "{message}");
    assert!(message.contains("argument 'tensorrt'"), "{message}");
    assert!(message.contains("drop tensorrt"), "{message}");
    w.nothing_ran();

    // The config present, device cpu: refused by the gate, before any probe.
    std::fs::write(&trt, r#"{"head_trt_enabled": false}"#).unwrap();
    let output = w.run(&["--tensorrt", "--device", "cpu"]);
    assert_eq!(output.status.code(), Some(2));
    let document = common::stdout_json(&output);
    assert_eq!(
        gate(&document, "tensorrt_config_present")["status"],
        "passed"
    );
    let g = gate(&document, "tensorrt_needs_cuda");
    assert_eq!(g["status"], "failed");
    let message = g["message"].as_str().unwrap();
    assert!(message.contains("device 'cpu'"), "{message}");
    assert!(message.contains("drop tensorrt"), "{message}");
    w.nothing_ran();

    // device auto where the run's Python sees no GPU (CUDA_VISIBLE_DEVICES is empty):
    // the probe finds it and nothing runs.
    let output = w.run(&["--tensorrt"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let document = common::stdout_json(&output);
    assert_eq!(document["status"], "not_started");
    let message = document["message"].as_str().unwrap();
    assert!(message.contains("TensorRT needs CUDA"), "{message}");
    assert!(message.contains("nothing ran"), "{message}");
    assert!(!w.base.join("out/case").exists(), "the upstream ran");
    assert!(!w.base.join("out/output.json").exists());
}

#[test]
fn run_batch_refuses_switches_the_bundle_cannot_honour() {
    let w = Standin::new();
    let config = Config::new(w.base.clone(), vec![], None, Some(common::python()), 1);
    let runner = RunBatch::new(
        Arc::new(config),
        Arc::new(ctmr_skill::manifest::embedded().unwrap()),
        Arc::new(ctmr_skill::runner::slots::RunSlots::new(1)),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let call = |extra: Value| {
        let mut args = json!({"inputs": [w.input], "output_root": w.base.join("out"),
            "upstream_root": w.root});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        match rt
            .block_on(runner.call_tool(args.as_object().unwrap().clone(), CallContext::detached()))
        {
            BatchCall::Refused { message, .. } => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    let message = call(json!({"tensorrt": true}));
    assert!(message.contains("tensorrt_config_present"), "{message}");
    assert!(message.contains("configs/inference_trt.json"), "{message}");
    let message = call(json!({"cpu_postprocessing": true}));
    assert!(
        message.contains("cpu_postprocessing_supported"),
        "{message}"
    );
    w.nothing_ran();

    // The batch config is part of a batch volume's config: one that replaces the
    // first postprocessing transform makes the switch unusable for run_batch only.
    std::fs::write(
        w.root.join("configs/inference.json"),
        r#"{"postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "ToDeviced", "keys": "pred", "device": "cpu", "_disabled_": true},
            {"_target_": "SaveImaged", "keys": "pred"}]}}"#,
    )
    .unwrap();
    std::fs::write(
        w.root.join("configs/batch_inference.json"),
        r#"{"postprocessing#transforms#0": {"_target_": "Lambdad", "keys": "pred", "func": "$lambda x: x"}}"#,
    )
    .unwrap();
    let message = call(json!({"cpu_postprocessing": true}));
    assert!(
        message.contains("postprocessing.transforms[0] in configs/batch_inference.json is Lambdad"),
        "{message}"
    );
    w.nothing_ran();
    let config = Config::new(w.base.clone(), vec![], None, Some(common::python()), 1);
    let manifest = ctmr_skill::manifest::embedded().unwrap();
    // The registry's parse path, the one every call takes.
    let runner = ctmr_skill::tools::run_script::RunScript::new(
        std::sync::Arc::new(config.clone()),
        std::sync::Arc::new(manifest.clone()),
    );
    let single = ctmr_skill::tools::registry::parse(
        &runner,
        manifest.tool("run_script").unwrap(),
        json!({"input": w.input, "output_dir": w.base.join("out"), "upstream_root": w.root,
            "cpu_postprocessing": true})
        .as_object()
        .unwrap(),
    )
    .unwrap()
    .request;
    let gated = ctmr_skill::tools::run_script::gates::evaluate(single, &config, &manifest)
        .unwrap_or_else(|refusal| panic!("{}", refusal.message));
    let g = gated
        .gates
        .iter()
        .find(|g| g.name == "cpu_postprocessing_supported")
        .unwrap();
    assert_eq!(
        g.status,
        ctmr_skill::evidence::GateStatus::Passed,
        "{}",
        g.message
    );
}

#[test]
fn the_tool_schemas_advertise_both_switches() {
    let manifest = ctmr_skill::manifest::embedded().unwrap();
    for tool in ["run_script", "run_batch"] {
        let decl = manifest.tool(tool).unwrap();
        let schema = ctmr_skill::manifest::schema::input_schema(decl);
        for name in ["cpu_postprocessing", "tensorrt"] {
            let property = &schema["properties"][name];
            assert_eq!(property["type"], "boolean", "{tool}.{name}: {property}");
            assert_eq!(property["default"], false, "{tool}.{name}");
        }
        let cpu = schema["properties"]["cpu_postprocessing"]["description"]
            .as_str()
            .unwrap();
        assert!(
            cpu.find("patch_size").unwrap() < cpu.find("if it still runs out of memory").unwrap(),
            "{tool}: {cpu}"
        );
        let trt = schema["properties"]["tensorrt"]["description"]
            .as_str()
            .unwrap();
        assert!(
            trt.contains("NVIDIA GPU") && trt.contains("configs/inference_trt.json"),
            "{trt}"
        );
        // The checked-in schema (what clients read) says the same.
        let on_disk: Value = serde_json::from_str(
            &std::fs::read_to_string(
                common::repo_root().join(format!("schemas/tools/{tool}.input.json")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            on_disk["properties"]["tensorrt"],
            schema["properties"]["tensorrt"]
        );
    }
    // The CLI carries the flags.
    for sub in ["run", "run-batch"] {
        let help = Command::new(common::binary())
            .args([sub, "--help"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(
            text.contains("--cpu-postprocessing") && text.contains("--tensorrt"),
            "{text}"
        );
    }
}

/// The TensorRT config list reaches MONAI as a merged list, the TensorRT config last.
/// No GPU here, so the CUDA check is satisfied by a probe that claims CUDA while the run
/// itself is pinned to the CPU, and the demo bundle gets a stand-in
/// `configs/inference_trt.json` whose only setting (the output postfix) shows it won.
#[tokio::test]
async fn the_tensorrt_config_list_is_merged_by_monai_last() {
    use ctmr_skill::upstream::{
        probe_for_request, run, DeviceRequest, RunOptions, RunOutcome, UpstreamRequest,
        DEFAULT_PROBE_TIMEOUT,
    };
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let bundle = base.join("demo-bundle");
    common::demo_bundle_copy(&bundle);
    std::fs::write(
        bundle.join("configs/inference_trt.json"),
        r#"{"_comment": "stand-in, not a TensorRT config", "output_postfix": "trt"}"#,
    )
    .unwrap();
    let input = base.join("ct.nii.gz");
    demo_volume(&input);
    let out = base.join("out");
    let req = UpstreamRequest {
        python: common::python(),
        bundle_root: bundle,
        input,
        output_dir: out.clone(),
        modality: "CT_BODY".into(),
        label_prompts: Some(vec![1]),
        overrides: vec![],
        device: DeviceRequest::Cpu,
        tensorrt: true,
    };
    let opts = RunOptions::new(out.join("logs"), std::time::Duration::from_secs(600));
    let mut probe = probe_for_request(&req, &opts, DEFAULT_PROBE_TIMEOUT)
        .await
        .unwrap();
    assert!(!probe.cuda_available, "the run is pinned to the CPU");
    // Without CUDA the library refuses before starting anything.
    let refused = run(&req, &probe, &opts).await.unwrap_err();
    assert!(
        refused.to_string().contains("TensorRT needs CUDA"),
        "{refused}"
    );
    assert!(!out.exists(), "a refused run created {}", out.display());

    probe.cuda_available = true;
    let result = run(&req, &probe, &opts).await.unwrap();
    assert_eq!(
        result.outcome,
        RunOutcome::Exited {
            code: 0,
            signal: None
        },
        "{}",
        result.stderr_tail
    );
    assert_eq!(
        ctmr_skill::upstream::config_files_of(&result.command).unwrap(),
        ["configs/inference.json", "configs/inference_trt.json"]
    );
    assert!(
        out.join("ct/ct_trt.nii.gz").is_file(),
        "the TensorRT config was not merged last"
    );
    assert!(!out.join("ct/ct_trans.nii.gz").exists());
}
