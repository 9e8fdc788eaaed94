//! The verifier on packs written by the project's own `run_script` (its pack writer,
//! with the stand-in upstream interpreter of tests/fixtures/run_script): the reader and
//! the writer must agree on every field the verifier uses, and the verifier must
//! recompute (not copy) what the pack says.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use ctmr_skill::config::Config;
use ctmr_skill::tools::run_script::{RunCall, RunScript};
use ctmr_skill::tools::CallContext;
use ctmr_skill::verifier::VerifyOptions;

/// Run the skill with the stand-in upstream in `mode`; returns the output dir.
fn run(base: &Path, mode: &str, out_name: &str, ground_truth: Option<&Path>) -> PathBuf {
    let (root, wrapper) = common::standin_bundle(&base.join(out_name), mode);
    let input = base.join("case.nii.gz");
    if !input.exists() {
        common::make_volume(&input, &[]);
    }
    let out = base.join(out_name).join("out");
    let config = Config::new(base.to_path_buf(), vec![], None, Some(wrapper), 1);
    let runner = RunScript::new(
        Arc::new(config),
        Arc::new(ctmr_skill::manifest::embedded().unwrap()),
    );
    let mut args = json!({"input": input, "modality": "CT_BODY", "output_dir": out, "upstream_root": root, "label_prompts": [1, 3]});
    if let Some(gt) = ground_truth {
        args["ground_truth"] = json!(gt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(runner.call_tool(args.as_object().unwrap().clone(), CallContext::detached()))
    {
        RunCall::Ran(_) => out,
        other => panic!("expected a run, got {other:?}"),
    }
}

fn verify(dir: &Path) -> Value {
    common::verify_validated(dir, &VerifyOptions::default())
}

fn status<'a>(block: &'a Value, name: &str) -> &'a str {
    block["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {block:#}"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn a_pack_from_run_script_is_read_and_recomputed() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let out = run(&base, "ok", "first", None);
    let v = verify(&out);
    // The run's own account, read from the pack.
    for name in [
        "skill_id_recognised",
        "manifest_readable",
        "run_succeeded",
        "validation_passed",
        "modality_supported",
    ] {
        assert_eq!(
            status(&v["target"], name),
            "pass",
            "{name}: {:#}",
            v["target"]
        );
    }
    // Geometry recomputed against the input image (flipped x axis, offset origin).
    let inv = &v["artifact_inventory"];
    assert_eq!(inv["verdict"], "pass", "{inv:#}");
    assert_eq!(inv["label_map_shape"], json!([24, 20, 16]));
    assert_eq!(inv["label_ids_present"], json!([1, 3]));
    assert_eq!(status(inv, "pack_claims_match_files"), "pass");
    assert_eq!(status(inv, "input_hash_matches_claims"), "pass");
    assert_eq!(v["label_set_subset"]["verdict"], "pass");
    assert_eq!(
        v["target"]["label_names_source"]
            .as_str()
            .unwrap()
            .split(' ')
            .take(4)
            .collect::<Vec<_>>(),
        ["label", "table", "of", "bundle"]
    );
    // The stand-in's balls are far too small for adult organs: anatomy says so.
    assert_eq!(v["anatomy_plausibility"]["verdict"], "fail");
    assert!(v["anatomy_plausibility"]["classes_failing_volume_bounds"]
        .as_array()
        .unwrap()
        .contains(&json!("liver")));
    assert_eq!(v["overall"], "fail");

    // Second run with the first run's mask as ground truth: identical masks.
    let gt = base.join("gt.nii.gz");
    std::fs::copy(out.join("case/case_trans.nii.gz"), &gt).unwrap();
    let out2 = run(&base, "ok", "second", Some(&gt));
    let v = verify(&out2);
    let g = &v["gt_metrics"];
    assert_eq!(g["verdict"], "pass", "{g:#}");
    assert_eq!(status(g, "ground_truth_hash_matches_claims"), "pass");
    for row in g["per_class"].as_array().unwrap() {
        assert_eq!(
            (
                row["dice"].as_f64(),
                row["hd95_mm"].as_f64(),
                row["nsd"].as_f64()
            ),
            (Some(1.0), Some(0.0), Some(1.0)),
            "{row:#}"
        );
    }
}

#[test]
fn unexpected_labels_and_the_sentinel_from_run_script_fail() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let v = verify(&run(&base, "unexpected", "run", None));
    assert_eq!(status(&v["artifact_inventory"], "no_nan_sentinel"), "fail");
    let extras = v["label_set_subset"]["extras"].as_array().unwrap().clone();
    assert!(
        extras.contains(&json!(2)) && extras.contains(&json!(255)),
        "{extras:?}"
    );
    assert_eq!(v["overall"], "fail");
}

#[test]
fn a_crashed_run_fails_on_its_status_and_its_missing_mask() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let v = verify(&run(&base, "crash", "run", None));
    assert_eq!(status(&v["target"], "run_succeeded"), "fail");
    assert_eq!(v["target"]["source_status"], "upstream_failed");
    assert_eq!(
        status(&v["artifact_inventory"], "label_map_readable"),
        "fail"
    );
    assert_eq!(v["overall"], "fail");
}
