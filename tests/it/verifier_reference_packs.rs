//! Packs laid out as the reference wrapper (`run_ctmr.py` and its evaluation engine)
//! writes them: `output.json` with `skill`, `input`, `output`, `invocation` (with
//! `exit_code`), `runtime`, and no `status`; `validation_summary.json` with
//! `overall_status`, `schema_status`, `sanity_status`; no `manifest.json`. Written by
//! `verifiers/ct_segmentation_quality_v1/fixtures/build_fixtures.py` (real NIfTI via
//! nibabel). Every report is validated against the published schema.

use crate::common;

use std::path::Path;

use ctmr_skill::verifier::VerifyOptions;
use serde_json::Value;

fn verify(name: &str) -> Value {
    verify_dir(&common::verifier_fixture(name))
}

fn verify_dir(dir: &Path) -> Value {
    common::verify_validated(dir, &VerifyOptions::default())
}

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["target"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {v:#}"))
}

fn reasons(v: &Value) -> String {
    v["overall_reasons"].to_string()
}

#[test]
fn the_fixture_is_laid_out_as_the_reference_writes_it() {
    let dir = common::verifier_fixture("reference_pass_pack");
    let output: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("output.json")).unwrap()).unwrap();
    for key in ["skill", "input", "output", "invocation", "runtime"] {
        assert!(output.get(key).is_some(), "reference field {key} missing");
    }
    for key in ["status", "schema_version", "skill_id"] {
        assert!(output.get(key).is_none(), "{key} is not a reference field");
    }
    assert_eq!(output["invocation"]["exit_code"], 0);
    assert!(!dir.join("manifest.json").exists());
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("validation_summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["overall_status"], "passed");
    assert_eq!(summary["schema_status"], "passed");
    assert_eq!(summary["sanity_status"], "passed");
}

#[test]
fn a_passing_reference_pack_passes_on_its_own_success_signals() {
    let v = verify("reference_pass_pack");
    assert_eq!(v["overall"], "pass", "{}", reasons(&v));
    let run = check(&v, "run_succeeded");
    assert_eq!(run["status"], "pass");
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains("records no status")
            && reason.contains("invocation.exit_code is 0")
            && reason.contains("overall_status is \"passed\""),
        "{reason}"
    );
    assert_eq!(
        v["target"]["run_success_evidence"],
        "exit_code_and_validation"
    );
    assert_eq!(v["target"]["source_exit_code"], 0);
    assert_eq!(v["target"]["source_status"], Value::Null);
    let manifest = check(&v, "manifest_readable");
    assert_eq!(manifest["status"], "pass");
    assert!(manifest["reason"]
        .as_str()
        .unwrap()
        .contains("as in the reference wrapper's packs"));
    // Everything else is still recomputed from the files.
    assert_eq!(v["artifact_inventory"]["verdict"], "pass");
    assert_eq!(v["anatomy_plausibility"]["verdict"], "pass");
}

#[test]
fn a_reference_pack_whose_run_exited_non_zero_fails_and_says_why() {
    let v = verify("reference_failed_run_pack");
    assert_eq!(v["overall"], "fail");
    let run = check(&v, "run_succeeded");
    assert_eq!(run["status"], "fail");
    let reason = run["reason"].as_str().unwrap();
    assert!(reason.contains("invocation.exit_code is 1"), "{reason}");
    assert_eq!(v["target"]["source_exit_code"], 1);
    assert!(reasons(&v).contains("target.run_succeeded"));
}

#[test]
fn a_reference_pack_with_exit_0_but_failed_validation_fails() {
    let v = verify("reference_sanity_failed_pack");
    assert_eq!(v["overall"], "fail");
    let run = check(&v, "run_succeeded");
    assert_eq!(run["status"], "fail");
    assert!(run["reason"]
        .as_str()
        .unwrap()
        .contains("overall_status is \"failed\""));
    assert_eq!(check(&v, "validation_passed")["status"], "fail");
}

#[test]
fn a_pack_recording_neither_status_nor_exit_code_fails_closed() {
    let v = verify("reference_no_signals_pack");
    assert_eq!(v["overall"], "fail");
    // The summary alone says passed; that is not enough.
    assert_eq!(check(&v, "validation_passed")["status"], "pass");
    let run = check(&v, "run_succeeded");
    assert_eq!(run["status"], "fail");
    assert!(run["reason"]
        .as_str()
        .unwrap()
        .contains("neither status nor invocation.exit_code"));
    assert_eq!(v["target"]["run_success_evidence"], "none");
    assert_eq!(reasons(&v).matches("target.").count(), 1, "{}", reasons(&v));
}

#[test]
fn status_wins_over_exit_code_and_a_ctmr_skill_pack_still_needs_its_manifest() {
    let tmp = common::fresh_dir();
    let src = common::verifier_fixture("pass_pack");
    let dst = tmp.path().join("pass_pack");
    copy_dir(&src, &dst);
    // A ctmr-skill pack (schema_version recorded) with exit code 0 but a failed status.
    let out = dst.join("output.json");
    let mut o: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    o["status"] = "upstream_failed".into();
    o["invocation"]["exit_code"] = 0.into();
    std::fs::write(&out, o.to_string()).unwrap();
    std::fs::remove_file(dst.join("manifest.json")).unwrap();
    let v = verify_dir(&dst);
    assert_eq!(v["target"]["run_success_evidence"], "status");
    assert_eq!(check(&v, "run_succeeded")["status"], "fail");
    assert_eq!(check(&v, "manifest_readable")["status"], "fail");
    assert!(check(&v, "manifest_readable")["reason"]
        .as_str()
        .unwrap()
        .contains("manifest.json is missing"));
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
