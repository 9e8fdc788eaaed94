//! The verifier on MRI_BODY packs: organ volumes do not depend on the modality, so
//! anatomy plausibility, the label-set check and ground-truth metrics apply; only the
//! classes of the MRI_BODY (TotalSegmentatorMR) set are bounded. Packs written by
//! `verifiers/ct_segmentation_quality_v1/fixtures/build_fixtures.py` (real NIfTI via
//! nibabel), names from the real upstream label table; every report is validated
//! against the published schema.

use crate::common;

use std::path::PathBuf;

use ctmr_skill::verifier::VerifyOptions;
use serde_json::Value;

fn verify_with(name: &str, opts: &VerifyOptions) -> Value {
    common::verify_validated(&common::verifier_fixture(name), opts)
}

fn verify(name: &str) -> Value {
    verify_with(name, &VerifyOptions::default())
}

fn check<'a>(block: &'a Value, name: &str) -> &'a Value {
    block["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {block:#}"))
}

fn row(v: &Value, id: u64) -> &Value {
    v["anatomy_plausibility"]["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label_id"] == id)
        .unwrap_or_else(|| panic!("no row {id}"))
}

#[test]
fn an_mri_body_pack_gets_anatomy_and_label_set_checks_and_passes() {
    let v = verify("mri_pack");
    assert_eq!(v["overall"], "pass", "{}", v["overall_reasons"]);
    assert_eq!(v["target"]["modality_supported"], true);
    let note = v["target"]["modality_note"].as_str().unwrap();
    assert!(
        note.contains("MRI_BODY is covered") && note.contains("[1, 3, 4, 5, 14]"),
        "{note}"
    );
    assert_eq!(check(&v["target"], "modality_supported")["status"], "pass");
    assert_eq!(v["anatomy_plausibility"]["verdict"], "pass");
    assert_eq!(row(&v, 1)["bounds"]["name"], "liver");
    assert_eq!(row(&v, 1)["volume_bounds_ok"], true);
    assert_eq!(
        v["anatomy_plausibility"]["cross_class"]["liver_gt_spleen"]["status"],
        "pass"
    );
    assert_eq!(v["label_set_subset"]["verdict"], "pass");
}

#[test]
fn mri_body_anatomy_fails_a_fragmented_organ_and_the_nan_sentinel() {
    let v = verify("mri_fragmented_pack");
    assert_eq!(v["overall"], "fail");
    assert_eq!(v["anatomy_plausibility"]["verdict"], "fail");
    assert!(v["anatomy_plausibility"]["classes_overfragmented"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c.as_str().is_some_and(|s| s.contains("spleen")) || c == 3));

    let v = verify("mri_sentinel_pack");
    assert_eq!(v["overall"], "fail");
    let c = check(&v["artifact_inventory"], "no_nan_sentinel");
    assert_eq!(c["status"], "fail");
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .contains("not a MRI_BODY class"),
        "{c}"
    );
}

#[test]
fn mri_body_ground_truth_metrics_apply_with_the_dice_floors() {
    let v = verify("mri_gt_shifted_pack");
    assert_eq!(v["overall"], "pass", "{}", v["overall_reasons"]);
    let gt = &v["gt_metrics"];
    assert_eq!(gt["verdict"], "pass");
    let liver = gt["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label_id"] == 1)
        .unwrap();
    assert_eq!(liver["dice_floor"], 0.85);
    assert_eq!(liver["dice_ok"], true);
    // 925 voxels, shifted by one along x: the same figures as the CT twin.
    let ct = verify("gt_shifted_pack");
    let ct_liver = ct["gt_metrics"]["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label_id"] == 1)
        .unwrap();
    assert_eq!(liver["dice"], ct_liver["dice"]);
    assert_eq!(liver["hd95_mm"], ct_liver["hd95_mm"]);
}

/// The embedded bounds plus rectum (18, a CT_BODY class outside the MRI_BODY set),
/// bounded so tightly that the fixture's ~33 mL rectum fails where it is bounded.
fn bounds_with_rectum() -> (tempfile::TempDir, PathBuf) {
    let dir = common::fresh_dir();
    let mut b: Value =
        serde_json::from_str(ctmr_skill::verifier::bounds::EMBEDDED_BOUNDS_JSON).unwrap();
    b["classes"]["18"] = serde_json::json!({
        "name": "rectum", "volume_ml_min": 0.0, "volume_ml_max": 1.0,
        "max_components": 1, "largest_cc_fraction_min": 0.85
    });
    let path = dir.path().join("bounds.json");
    std::fs::write(&path, b.to_string()).unwrap();
    (dir, path)
}

#[test]
fn a_class_outside_the_mri_body_set_is_reported_not_bounded() {
    let (_dir, bounds) = bounds_with_rectum();
    let opts = VerifyOptions {
        bounds_path: Some(bounds),
        ..VerifyOptions::default()
    };
    let mri = verify_with("mri_extra_class_pack", &opts);
    assert_eq!(mri["overall"], "pass", "{}", mri["overall_reasons"]);
    let rectum = row(&mri, 18);
    assert_eq!(rectum["bounds"], Value::Null);
    assert_eq!(rectum["volume_bounds_ok"], Value::Null);
    assert!(rectum["volume_ml"].as_f64().unwrap() > 1.0);
    let note = mri["target"]["modality_note"].as_str().unwrap();
    assert!(note.contains("reported not bounded: [18]"), "{note}");
    // The same mask in CT_BODY is bounded by the same file, and fails.
    let ct = verify_with("ct_extra_class_pack", &opts);
    assert_eq!(ct["overall"], "fail");
    assert_eq!(row(&ct, 18)["volume_bounds_ok"], false);
    assert_eq!(ct["anatomy_plausibility"]["verdict"], "fail");
}
