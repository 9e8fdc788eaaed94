//! `run_script` with `verify: true` over the raw MCP wire (the real `ctmr-skill serve`,
//! the demo bundle installed by the operator): after a successful run the paired
//! verifier judges the pack, `trust_summary.json` is written there, and the result
//! carries it with one sentence, "ran and verified" or "ran but failed verification,
//! because ...". Without `verify` nothing of the kind appears.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::stdio::Server;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(300);

fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn sha256(path: &Path) -> String {
    ctmr_skill::verifier::load::sha256_file(path).unwrap()
}

struct World {
    _dir: tempfile::TempDir,
    cwd: PathBuf,
    server: Server,
}

fn world() -> World {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let cwd = base.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    common::demo_bundle_copy(&base.join("demo"));
    let roots = PathBuf::from(format!("demo={}", base.join("demo").display()));
    let mut server = Server::start_with_env(
        &cwd,
        Some(&common::python()),
        &[
            ("CTMR_SKILL_BUNDLE_ROOTS", &roots),
            ("CTMR_SKILL_RUNS_DIR", &cwd.join("runs-index")),
        ],
    );
    server.initialize();
    World {
        _dir: dir,
        cwd,
        server,
    }
}

impl World {
    fn run(&mut self, id: i64, input: &Path, out: &str, verify: Option<bool>) -> Value {
        let mut args = json!({
            "input": input.to_str().unwrap(),
            "modality": "CT_BODY",
            "output_dir": out,
            "upstream_root": "demo",
            "device": "cpu",
            // The whole document: these tests read every field of the trust summary.
            "detail": "full",
        });
        if let Some(v) = verify {
            args["verify"] = json!(v);
        }
        self.server.request(
            id,
            "tools/call",
            json!({"name": "run_script", "arguments": args}),
            LIMIT,
        )["result"]
            .clone()
    }
}

#[test]
fn verify_true_runs_the_paired_verifier_and_says_whether_to_trust_the_pack() {
    let mut w = world();
    // The demo volume: its synthetic organs lie inside the adult bounds.
    let demo = w.cwd.join("demo_ct.nii.gz");
    std::fs::copy(
        common::repo_root().join("examples/demo-data/demo_ct.nii.gz"),
        &demo,
    )
    .expect("scripts/setup-demo.sh writes examples/demo-data/demo_ct.nii.gz");

    let result = w.run(2, &demo, "verified", Some(true));
    assert_eq!(result["isError"], false, "{result}");
    let trust = &result["structuredContent"]["trust_summary"];
    assert_eq!(trust["verdict"], "pass", "{trust:#}");
    assert_eq!(trust["trusted"], true);
    assert_eq!(trust["skill_status"], "succeeded");
    assert_eq!(
        trust["verifier_id"],
        "medagent.verifiers.ct_segmentation_quality_v1"
    );
    assert_eq!(trust["failing_checks"], json!([]));
    assert!(
        text(&result).starts_with("Ran and verified"),
        "{}",
        text(&result)
    );
    // The file in the pack says the same, and its hashes are those of the files now.
    let pack = w.cwd.join("verified");
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(pack.join("trust_summary.json")).unwrap())
            .unwrap();
    assert_eq!(&on_disk, trust);
    let judged = trust["judged_files"].as_array().unwrap();
    let roles: Vec<&str> = judged.iter().map(|f| f["role"].as_str().unwrap()).collect();
    for role in [
        "output.json",
        "manifest.json",
        "validation_summary.json",
        "label_map",
        "input_image",
    ] {
        assert!(roles.contains(&role), "{role} not judged: {roles:?}");
    }
    for f in judged {
        let path = Path::new(f["path"].as_str().unwrap());
        assert_eq!(f["sha256"].as_str().unwrap(), sha256(path), "{f}");
    }

    // A volume whose "organs" are not anatomy: the run succeeds, verification fails.
    let noise = w.cwd.join("noise.nii.gz");
    common::make_volume(&noise, &[]);
    let result = w.run(3, &noise, "unverified", Some(true));
    let trust = &result["structuredContent"]["trust_summary"];
    assert_eq!(
        result["structuredContent"]["status"], "succeeded",
        "{result}"
    );
    assert_eq!(trust["verdict"], "fail", "{trust:#}");
    assert_eq!(trust["trusted"], false);
    let failing = trust["failing_checks"].as_array().unwrap();
    assert!(!failing.is_empty());
    let said = text(&result);
    assert!(said.starts_with("Ran but failed verification"), "{said}");
    assert!(said.contains(failing[0].as_str().unwrap()), "{said}");
    assert!(w.cwd.join("unverified/trust_summary.json").exists());

    // Without verify: no trust summary, no file.
    let result = w.run(4, &demo, "plain", None);
    assert_eq!(result["isError"], false, "{result}");
    assert!(result["structuredContent"].get("trust_summary").is_none());
    assert!(!w.cwd.join("plain/trust_summary.json").exists());
}

#[test]
fn run_batch_verify_true_judges_every_succeeded_volume() {
    let mut w = world();
    let demo = w.cwd.join("a.nii.gz");
    std::fs::copy(
        common::repo_root().join("examples/demo-data/demo_ct.nii.gz"),
        &demo,
    )
    .unwrap();
    let noise = w.cwd.join("b.nii.gz");
    common::make_volume(&noise, &[]);
    let result = w.server.request(
        2,
        "tools/call",
        json!({"name": "run_batch", "arguments": {
            "inputs": [demo.to_str().unwrap(), noise.to_str().unwrap()],
            "output_root": "cohort", "upstream_root": "demo", "device": "cpu", "verify": true,
            "detail": "full"
        }}),
        LIMIT,
    )["result"]
        .clone();
    assert_eq!(result["isError"], false, "{result}");
    let trust = result["structuredContent"]["trust_summaries"]
        .as_array()
        .unwrap_or_else(|| panic!("no trust_summaries: {result}"));
    let seen: Vec<(&str, &str, bool)> = trust
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap(),
                t["verdict"].as_str().unwrap(),
                t["trusted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, vec![("a", "pass", true), ("b", "fail", false)]);
    for t in trust {
        let pack = Path::new(t["pack_dir"].as_str().unwrap());
        let on_disk: Value = serde_json::from_str(
            &std::fs::read_to_string(pack.join("trust_summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(on_disk["verdict"], t["verdict"]);
        assert_eq!(on_disk["judged_files"], t["judged_files"]);
    }
    let said = text(&result);
    assert!(
        said.starts_with("Verification: 1 of 2 succeeded volume(s) ran and verified."),
        "{said}"
    );
    assert!(said.contains("- b: Ran but failed verification"), "{said}");
}

#[test]
fn cli_run_verify_exits_by_the_combined_verdict() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    common::demo_bundle_copy(&base.join("demo"));
    let demo = base.join("demo_ct.nii.gz");
    std::fs::copy(
        common::repo_root().join("examples/demo-data/demo_ct.nii.gz"),
        &demo,
    )
    .unwrap();
    let noise = base.join("noise.nii.gz");
    common::make_volume(&noise, &[]);
    for (input, out, code, verdict) in [(&demo, "ok", 0, "pass"), (&noise, "bad", 1, "fail")] {
        let output = std::process::Command::new(common::binary())
            .current_dir(&base)
            .env("CTMR_SKILL_PYTHON", common::python())
            .env_remove("NV_SEGMENT_CTMR_ROOT")
            .args([
                "run",
                input.to_str().unwrap(),
                "--output-dir",
                out,
                "--device",
                "cpu",
            ])
            .arg("--upstream-root")
            .arg(base.join("demo"))
            .arg("--verify")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{stderr}");
        let v: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(v["status"], "succeeded");
        assert_eq!(v["trust_summary"]["verdict"], verdict, "{stderr}");
        assert!(base.join(out).join("trust_summary.json").exists());
    }
}
