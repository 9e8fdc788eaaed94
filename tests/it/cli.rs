//! The CLI faces of the library, through the real binary: exit codes and stdout JSON.

use crate::common;

use std::process::{Command, Output};

use serde_json::Value;

fn ctmr(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(common::binary())
        .args(args)
        .current_dir(cwd)
        .env_remove("NV_SEGMENT_CTMR_ROOT")
        .env("CTMR_SKILL_PYTHON", common::python())
        .output()
        .expect("run ctmr-skill")
}

#[test]
fn labels_lists_and_resolves_from_the_upstream_table() {
    let dir = common::fresh_dir();
    let (root, _) = common::standin_bundle(dir.path(), "ok");
    let root = root.to_str().unwrap();
    let out = ctmr(
        &[
            "labels",
            "--upstream-root",
            root,
            "--resolve",
            "left kidney",
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let doc = common::stdout_json(&out);
    assert_eq!(doc["total_classes"], 345);
    assert_eq!(doc["resolved"][0]["id"], 14);

    let out = ctmr(
        &["labels", "--upstream-root", root, "--resolve", "hepar"],
        dir.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unresolvable name is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hepar"));

    let out = ctmr(
        &[
            "labels",
            "kidney",
            "--upstream-root",
            root,
            "--modality",
            "CT_BODY",
            "--json",
        ],
        dir.path(),
    );
    let ids: Vec<u64> = common::stdout_json(&out)["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_u64().unwrap())
        .collect();
    assert!(
        ids.contains(&5) && ids.contains(&14) && !ids.contains(&2),
        "{ids:?}: 2 is a prompt, not an output class"
    );
}

#[test]
fn run_refusals_exit_2_with_a_json_document() {
    let dir = common::fresh_dir();
    let (root, _) = common::standin_bundle(dir.path(), "ok");
    let out = ctmr(
        &[
            "run",
            "missing.nii.gz",
            "--output-dir",
            "out",
            "--upstream-root",
            root.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let doc = common::stdout_json(&out);
    assert_eq!(doc["status"], "refused");
    assert!(doc["message"].as_str().unwrap().contains("input_exists"));
    assert!(!dir.path().join("out").exists());

    let out = ctmr(&["run", "x.nii.gz", "--modality", "PET"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stdout_json(&out)["message"]
        .as_str()
        .unwrap()
        .contains("argument 'modality'"));
}

#[test]
fn run_exit_codes_follow_the_evidence_status() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let (root, python) = common::standin_bundle(&base, "crash");
    let input = base.join("ct.nii.gz");
    common::make_volume(&input, &[]);
    let run = |out: &str| {
        Command::new(common::binary())
            .args([
                "run",
                input.to_str().unwrap(),
                "--output-dir",
                out,
                "--upstream-root",
                root.to_str().unwrap(),
            ])
            .current_dir(&base)
            .env("CTMR_SKILL_PYTHON", &python)
            .output()
            .unwrap()
    };
    let crashed = run("crashed");
    assert_eq!(
        crashed.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    assert_eq!(common::stdout_json(&crashed)["status"], "upstream_failed");
    std::fs::write(root.join("standin_mode.txt"), "ok").unwrap();
    let ok = run("fine");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let evidence = common::stdout_json(&ok);
    assert_eq!(evidence["status"], "succeeded");
    assert_eq!(
        evidence,
        serde_json::from_str::<Value>(
            &std::fs::read_to_string(base.join("fine/output.json")).unwrap()
        )
        .unwrap()
    );
    // Progress goes to stderr, never stdout.
    assert!(String::from_utf8_lossy(&ok.stderr).contains("inference"));
}

/// One check of `doctor --json`'s answer, by name.
fn doctor_check(doc: &Value, name: &str) -> Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no check {name}: {doc}"))
}

#[test]
fn doctor_reports_each_prerequisite() {
    let dir = common::fresh_dir();
    let (root, _) = common::standin_bundle(dir.path(), "ok");
    let out = ctmr(
        &[
            "doctor",
            "--upstream-root",
            root.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    let doc = common::stdout_json(&out);
    let check = |name: &str| doctor_check(&doc, name);
    assert_eq!(check("python")["ok"], true);
    assert_eq!(check("monai")["ok"], true, "{doc}");
    assert_eq!(check("bundle_root")["ok"], true);
    assert_eq!(check("label_table")["detail"], "345 classes");
    // The stand-in bundle has none of the optional modes: noted, not a failure.
    for optional in ["batch_config", "cpu_postprocessing", "tensorrt"] {
        assert_eq!(check(optional)["ok"], false, "{optional}: {doc}");
        assert!(check(optional)["fix"].is_string(), "{optional}: {doc}");
    }
    assert!(check("cpu_postprocessing")["detail"]
        .as_str()
        .unwrap()
        .starts_with("not supported: "));
    assert_eq!(out.status.code(), Some(0));

    // The demo bundle has the batch config and the ToDeviced(cpu) transform.
    let demo = dir.path().join("demo-bundle");
    common::demo_bundle_copy(&demo);
    let out = ctmr(
        &[
            "doctor",
            "--upstream-root",
            demo.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    let doc = common::stdout_json(&out);
    let check = |name: &str| doctor_check(&doc, name);
    assert_eq!(check("batch_config")["ok"], true, "{doc}");
    assert_eq!(check("cpu_postprocessing")["ok"], true, "{doc}");
    assert_eq!(check("tensorrt")["ok"], false, "{doc}");
    assert_eq!(out.status.code(), Some(0));

    let out = ctmr(
        &[
            "doctor",
            "--upstream-root",
            dir.path().join("nowhere").to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let doc = common::stdout_json(&out);
    let root_check = doctor_check(&doc, "bundle_root");
    assert_eq!(root_check["ok"], false);
    assert!(root_check["fix"]
        .as_str()
        .unwrap()
        .contains("NV-Segment-CTMR"));
}

/// `verify` and `labels` print to a pipe that closes early: a quiet end, never a panic.
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::process::Stdio;
    let dir = common::fresh_dir();
    let (root, _) = common::standin_bundle(dir.path(), "ok");
    let mut child = Command::new(common::binary())
        .args([
            "labels",
            "--upstream-root",
            root.to_str().unwrap(),
            "--json",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ctmr-skill");
    drop(child.stdout.take()); // the reader is gone before anything is written
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}

/// Issue 21 (7a): a result that cannot be written (a full disk: `/dev/full`) ends with
/// one line on stderr and exit code 1, never a panic (exit 101).
#[test]
fn an_unwritable_stdout_fails_with_one_line_on_stderr() {
    use ctmr_skill::nifti::writer::{nifti1_bytes, Volume, Voxels};
    let dir = common::fresh_dir();
    let mask = dir.path().join("mask.nii");
    let mut affine = [[0.0; 4]; 4];
    (0..4).for_each(|i| affine[i][i] = 1.0);
    let volume = Volume {
        shape: [4, 4, 4],
        affine,
        voxels: Voxels::Int16((0..64).map(|i| i % 3).collect()),
        description: String::new(),
    };
    std::fs::write(&mask, nifti1_bytes(&volume).unwrap()).unwrap();
    let mask = mask.to_str().unwrap();
    for args in [
        vec!["inspect", mask],
        vec!["inspect", mask, "--json"],
        vec!["verify", "no-such-pack"],
        vec!["labels", "kidney"],
    ] {
        let out = Command::new(common::binary())
            .args(&args)
            .current_dir(dir.path())
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .expect("run ctmr-skill");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("ctmr-skill: cannot write the result to standard output: "),
            "{args:?}: {stderr}"
        );
    }
}
