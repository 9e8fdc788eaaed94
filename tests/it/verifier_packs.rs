//! The paired verifier against deterministic evidence packs written by
//! `verifiers/ct_segmentation_quality_v1/fixtures/build_fixtures.py` (real NIfTI files
//! from nibabel). Every fixture's verdict and reasons are asserted, and every report
//! is validated against the published JSON Schema with Python's jsonschema.

use crate::common;

use std::path::{Path, PathBuf};

use ctmr_skill::verifier::{
    verify_pack, LabelSource, VerifierReport, VerifyOptions, VerifyUsageError, VERIFIER_ID,
};
use serde_json::Value;

fn pack(name: &str) -> PathBuf {
    common::verifier_fixture(name)
}

/// Verify with default options, then validate the report against the schema.
fn verify(name: &str) -> (VerifierReport, Value) {
    verify_dir(&pack(name), &VerifyOptions::default())
}

fn verify_dir(dir: &Path, opts: &VerifyOptions) -> (VerifierReport, Value) {
    let report =
        verify_pack(dir, opts).unwrap_or_else(|e| panic!("{}: usage error {e}", dir.display()));
    let value = report.to_value();
    validate_against_schema(&value);
    (report, value)
}

fn validate_against_schema(report: &Value) {
    let dir = common::fresh_dir();
    let file = dir.path().join("report.json");
    std::fs::write(&file, serde_json::to_string_pretty(report).unwrap()).unwrap();
    let schema =
        common::repo_root().join("verifiers/ct_segmentation_quality_v1/report.schema.json");
    let validator = common::repo_root().join("tests/py/verifier_validate_reports.py");
    common::run_python(
        &validator,
        &[schema.to_str().unwrap(), file.to_str().unwrap()],
    );
}

fn check<'a>(block: &'a Value, name: &str) -> &'a Value {
    block["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {block:#}"))
}

fn failed(block: &Value, name: &str) -> String {
    let c = check(block, name);
    assert_eq!(c["status"], "fail", "{name} should fail: {c:#}");
    c["reason"].as_str().unwrap().to_string()
}

fn reasons(v: &Value) -> String {
    v["overall_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn copy_pack(name: &str, into: &Path) -> PathBuf {
    let src = pack(name);
    let dst = into.join(name);
    copy_dir(&src, &dst);
    dst
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

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn pass_pack_passes_every_block() {
    let (report, v) = verify("pass_pack");
    assert!(report.passed(), "{}", reasons(&v));
    assert_eq!(v["overall"], "pass");
    assert_eq!(v["verifier"]["id"], VERIFIER_ID);
    assert_eq!(v["target"]["skill_id"], "medagent.nv_segment_ctmr");
    assert_eq!(v["target"]["modality_supported"], true);
    let inv = &v["artifact_inventory"];
    assert_eq!(
        (
            inv["label_map_readable"].as_bool(),
            inv["shape_match"].as_bool(),
            inv["affine_match"].as_bool()
        ),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(inv["label_map_shape"], serde_json::json!([40, 40, 40]));
    assert_eq!(inv["voxel_volume_ml"], 1.0);
    assert_eq!(inv["label_ids_present"], serde_json::json!([1, 3, 5, 14]));
    assert_eq!(check(inv, "pack_claims_match_files")["status"], "pass");
    let a = &v["anatomy_plausibility"];
    assert_eq!(a["verdict"], "pass");
    assert_eq!(a["cross_class"]["liver_gt_spleen"]["status"], "pass");
    assert_eq!(a["cross_class"]["bilateral_symmetry"]["status"], "pass");
    // Names come from the real upstream table, keyed by id.
    let names: Vec<&str> = a["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["liver", "spleen", "right kidney", "left kidney"]
    );
    let liver = &a["per_class"][0];
    assert_eq!(
        (liver["voxel_count"].as_u64(), liver["volume_ml"].as_f64()),
        (Some(925), Some(925.0))
    );
    assert_eq!(
        (
            liver["component_count"].as_u64(),
            liver["largest_cc_fraction"].as_f64()
        ),
        (Some(1), Some(1.0))
    );
    // Prompt 2 (kidney) expands to 5 and 14.
    let s = &v["label_set_subset"];
    assert_eq!(
        (s["verdict"].as_str(), s["basis"].as_str()),
        (Some("pass"), Some("prompts"))
    );
    assert_eq!(s["requested"], serde_json::json!([1, 3, 5, 14]));
    assert_eq!(s["prompts"], serde_json::json!([1, 2, 3]));
    assert_eq!(v["gt_metrics"]["verdict"], "skipped");
    assert_eq!(v["gt_metrics"]["acceptable"], true);
    assert!(report.summary().contains(": pass"), "{}", report.summary());
}

#[test]
fn report_serialises_with_sorted_keys_as_a_plain_struct() {
    // Plain `serde_json::to_string` of the struct (what a caller will write) must be
    // byte-identical to the key-sorted value: field order is sorted at every level.
    let (report, v) = verify("gt_shifted_pack");
    let plain = serde_json::to_string(&report).unwrap();
    assert_eq!(plain, serde_json::to_string(&v).unwrap());
    let pos = |k: &str| plain.find(&format!("\"{k}\":")).unwrap();
    assert!(
        pos("anatomy_plausibility") < pos("artifact_inventory") && pos("overall") < pos("verifier")
    );
}

#[test]
fn fragmented_spleen_fails_plausibility() {
    let (report, v) = verify("fragmented_pack");
    assert!(!report.passed());
    let a = &v["anatomy_plausibility"];
    assert_eq!(a["verdict"], "fail");
    assert_eq!(a["classes_overfragmented"], serde_json::json!(["spleen"]));
    let spleen = a["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label_id"] == 3)
        .unwrap();
    assert_eq!(spleen["component_count"], 60);
    assert!((spleen["largest_cc_fraction"].as_f64().unwrap() - 1.0 / 60.0).abs() < 1e-12);
    assert!(failed(a, "no_fragmented_classes").contains("spleen: 60 components (max 1)"));
    assert!(
        reasons(&v).contains("anatomy_plausibility"),
        "{}",
        reasons(&v)
    );
}

#[test]
fn identical_ground_truth_scores_perfectly() {
    let (report, v) = verify("gt_identical_pack");
    assert!(report.passed(), "{}", reasons(&v));
    let g = &v["gt_metrics"];
    assert_eq!(
        (g["verdict"].as_str(), g["acceptable"].as_bool()),
        (Some("pass"), Some(true))
    );
    assert!(g["ground_truth_path"]
        .as_str()
        .unwrap()
        .ends_with("gt_identical_pack_gt.nii.gz"));
    assert!(g["conventions"]["empty_masks"]
        .as_str()
        .unwrap()
        .contains("both_empty"));
    let rows = g["per_class"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in rows {
        assert_eq!(r["status"], "ok");
        assert_eq!(
            (
                r["dice"].as_f64(),
                r["iou"].as_f64(),
                r["hd95_mm"].as_f64(),
                r["nsd"].as_f64()
            ),
            (Some(1.0), Some(1.0), Some(0.0), Some(1.0)),
            "{r:#}"
        );
        assert_eq!(r["dice_ok"], true);
        assert_eq!(r["scored"], true);
    }
}

#[test]
fn shifted_ground_truth_gives_hand_checked_surface_distances() {
    let (_, v) = verify("gt_shifted_pack");
    let rows = v["gt_metrics"]["per_class"].as_array().unwrap();
    let liver = rows.iter().find(|r| r["label_id"] == 1).unwrap();
    // The liver ball moved one voxel (10 mm) along x: the farthest surface point is
    // exactly 10 mm away, some surfels coincide (0 mm), and nothing lies in between
    // on the 10 mm lattice; NSD at 1 mm counts only the coinciding surfels.
    assert_eq!(liver["hausdorff_mm"], 10.0);
    assert_eq!(liver["hd95_mm"], 10.0);
    let nsd = liver["nsd"].as_f64().unwrap();
    assert!(nsd > 0.0 && nsd < 1.0, "{nsd}");
    let dice = liver["dice"].as_f64().unwrap();
    assert!(dice > 0.8 && dice < 1.0, "{dice}");
    // Unmoved classes are perfect.
    let spleen = rows.iter().find(|r| r["label_id"] == 3).unwrap();
    assert_eq!(
        (spleen["dice"].as_f64(), spleen["hd95_mm"].as_f64()),
        (Some(1.0), Some(0.0))
    );
}

#[test]
fn surface_metrics_match_an_independent_oracle() {
    // The oracle rebuilds DeepMind's computation from MONAI's copy of DeepMind's
    // surfel table and scipy's exact EDT (tests/py/verifier_surface_oracle.py), on an
    // isotropic pack and on an anisotropic one with classes moved along each axis.
    for name in ["gt_shifted_pack", "gt_anisotropic_pack"] {
        let (_, v) = verify(name);
        let out: Value =
            serde_json::from_str(&std::fs::read_to_string(pack(name).join("output.json")).unwrap())
                .unwrap();
        let mask = out["output"]["path"].as_str().unwrap();
        let gt = out["input"]["ground_truth_path"].as_str().unwrap();
        let oracle = common::repo_root().join("tests/py/verifier_surface_oracle.py");
        let text = common::run_python(&oracle, &[mask, gt, "1,3,5,14", "1.0"]);
        let expected: Value = serde_json::from_str(&text).unwrap();
        let rows = v["gt_metrics"]["per_class"].as_array().unwrap();
        assert_eq!(rows.len(), 4, "{name}");
        for r in rows {
            let id = r["label_id"].to_string();
            let e = &expected[&id];
            for key in ["hd95_mm", "hausdorff_mm", "nsd", "assd_mm"] {
                let (got, want) = (r[key].as_f64().unwrap(), e[key].as_f64().unwrap());
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{name} label {id} {key}: {got} vs oracle {want}"
                );
            }
        }
        if name == "gt_anisotropic_pack" {
            // Liver moved 2 voxels along axis 1 (2 × 1.25 mm), spleen 1 along axis 2
            // (2 mm), right kidney 1 along axis 0 (0.8 mm), left kidney not at all: a
            // translation bounds every surface distance by its length (spacings are float32 in the header).
            for (id, shift) in [(1, 2.5), (3, 2.0), (5, 0.8), (14, 0.0)] {
                let r = rows.iter().find(|r| r["label_id"] == id).unwrap();
                let hd = r["hausdorff_mm"].as_f64().unwrap();
                assert!(
                    hd <= shift + 1e-6 && (hd > 0.0) == (shift > 0.0),
                    "label {id}: {hd} vs shift {shift}"
                );
            }
        }
    }
}

#[test]
fn missed_ground_truth_class_is_scored_as_pred_empty() {
    let (report, v) = verify("gt_missing_class_pack");
    assert!(!report.passed());
    let g = &v["gt_metrics"];
    assert_eq!(g["verdict"], "fail");
    let spleen = g["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label_id"] == 3)
        .unwrap();
    assert_eq!(spleen["status"], "pred_empty");
    assert_eq!(
        (spleen["dice"].as_f64(), spleen["nsd"].as_f64()),
        (Some(0.0), Some(0.0))
    );
    assert!(spleen["hd95_mm"].is_null());
    assert_eq!(
        (spleen["scored"].as_bool(), spleen["dice_ok"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(failed(g, "no_scored_class_missed").contains("spleen"));
    assert!(failed(g, "all_scored_classes_meet_dice_floor").contains("spleen Dice 0.0000 < 0.85"));
}

#[test]
fn flipped_affine_fails_geometry_recomputed_from_the_input() {
    let (report, v) = verify("flipped_affine_pack");
    assert!(!report.passed());
    let inv = &v["artifact_inventory"];
    assert_eq!(inv["affine_match"], false);
    assert_eq!(inv["shape_match"], true);
    assert!(inv["affine_max_abs_diff"].as_f64().unwrap() >= 20.0);
    assert!(failed(inv, "affine_match").contains("max |mask − input| affine difference"));
    // The pack itself admitted the mismatch, so its claims are consistent.
    assert_eq!(inv["claimed"]["affine_match"], false);
    assert_eq!(check(inv, "pack_claims_match_files")["status"], "pass");
    assert!(reasons(&v).contains("artifact_inventory.affine_match"));
}

#[test]
fn a_false_geometry_claim_is_caught() {
    let dir = common::fresh_dir();
    let p = copy_pack("flipped_affine_pack", dir.path());
    edit_json(&p.join("output.json"), |v| {
        v["output"]["geometry"]["affine_match"] = Value::Bool(true)
    });
    let (_, v) = verify_dir(&p, &VerifyOptions::default());
    let reason = failed(&v["artifact_inventory"], "pack_claims_match_files");
    assert!(
        reason.contains("geometry.affine_match claimed true, recomputed false"),
        "{reason}"
    );
}

#[test]
fn nan_sentinel_voxels_fail() {
    let (report, v) = verify("sentinel_pack");
    assert!(!report.passed());
    let inv = &v["artifact_inventory"];
    assert_eq!(inv["nan_sentinel_255_voxels"], 8);
    assert!(failed(inv, "no_nan_sentinel").starts_with("8 voxels equal 255"));
    // Reported as a class without bounds, and outside the expected label set.
    assert_eq!(v["label_set_subset"]["extras"], serde_json::json!([255]));
}

#[test]
fn non_integer_voxels_fail() {
    let (report, v) = verify("non_integer_pack");
    assert!(!report.passed());
    let inv = &v["artifact_inventory"];
    assert_eq!(inv["non_integer_voxels"], 1);
    assert!(failed(inv, "integer_labels").starts_with("1 non-integer, 0 NaN voxels"));
}

#[test]
fn recorded_ground_truth_that_is_missing_fails() {
    let (report, v) = verify("missing_gt_pack");
    assert!(!report.passed());
    let g = &v["gt_metrics"];
    assert_eq!(
        (g["verdict"].as_str(), g["acceptable"].as_bool()),
        (Some("fail"), Some(false))
    );
    let reason = failed(g, "ground_truth_readable");
    assert!(
        reason.contains("does_not_exist.nii.gz does not exist"),
        "{reason}"
    );
    assert!(reasons(&v).contains("gt_metrics"));
}

#[test]
fn mri_brain_packs_are_not_covered_and_cannot_pass() {
    let (report, v) = verify("mri_brain_pack");
    assert!(!report.passed());
    assert_eq!(v["target"]["modality_supported"], false);
    assert_eq!(v["target"]["input_modality"], "MRI_BRAIN");
    assert_eq!(v["anatomy_plausibility"]["verdict"], "not_applicable");
    let reason = failed(&v["target"], "modality_supported");
    assert!(
        reason.contains("no verifier covers MRI_BRAIN") && reason.contains("brain structures"),
        "{reason}"
    );
    // The rest is still checked.
    assert_eq!(v["artifact_inventory"]["verdict"], "pass");
}

#[test]
fn failed_skill_run_fails() {
    let (report, v) = verify("failed_run_pack");
    assert!(!report.passed());
    assert!(failed(&v["target"], "run_succeeded").contains("\"upstream_failed\""));
    assert!(failed(&v["target"], "validation_passed").contains("\"failed\""));
    assert_eq!(v["target"]["source_status"], "upstream_failed");
    assert_eq!(v["target"]["source_overall_status"], "failed");
}

#[test]
fn corrupt_mask_fails_closed_with_the_reason() {
    let (report, v) = verify("corrupt_mask_pack");
    assert!(!report.passed());
    let inv = &v["artifact_inventory"];
    assert_eq!(inv["label_map_readable"], false);
    let reason = failed(inv, "label_map_readable");
    assert!(reason.contains("synthetic_ct_trans.nii.gz"), "{reason}");
    assert_eq!(v["anatomy_plausibility"]["verdict"], "fail");
}

#[test]
fn extras_outside_the_requested_prompts_fail_the_subset_check() {
    let dir = common::fresh_dir();
    let p = copy_pack("pass_pack", dir.path());
    edit_json(&p.join("output.json"), |v| {
        v["output"]["label_prompts_requested"] = serde_json::json!([3])
    });
    let (report, v) = verify_dir(&p, &VerifyOptions::default());
    assert!(!report.passed());
    let s = &v["label_set_subset"];
    assert_eq!(s["verdict"], "fail");
    assert_eq!(s["requested"], serde_json::json!([3]));
    assert_eq!(s["extras"], serde_json::json!([1, 5, 14]));
}

#[test]
fn without_prompts_the_everything_set_is_the_basis() {
    let (report, v) = verify("no_prompts_pack");
    assert!(report.passed(), "{}", reasons(&v));
    let s = &v["label_set_subset"];
    assert_eq!(
        (s["basis"].as_str(), s["verdict"].as_str()),
        (Some("everything_set"), Some("pass"))
    );
    let requested: Vec<u64> = s["requested"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert!([1, 3, 5, 14].iter().all(|id| requested.contains(id)));
    assert!(
        !requested.contains(&2) && !requested.contains(&255),
        "CT_BODY everything-set excludes 2 and 255"
    );
    assert!(s["basis_source"].as_str().is_some());
    // With no table and no prompts there is no expected set: skipped, and said so.
    let opts = VerifyOptions {
        labels: Some(LabelSource::IdsOnly),
        ..VerifyOptions::default()
    };
    let (_, v) = verify_dir(&pack("no_prompts_pack"), &opts);
    assert_eq!(
        (
            v["label_set_subset"]["basis"].as_str(),
            v["label_set_subset"]["verdict"].as_str()
        ),
        (Some("none"), Some("skipped"))
    );
}

#[test]
fn a_swapped_mask_is_caught_by_its_hash() {
    let dir = common::fresh_dir();
    let p = copy_pack("pass_pack", dir.path());
    // Replace the mask with the fragmented pack's (same geometry, other content).
    let mask_rel = Path::new("synthetic_ct/synthetic_ct_trans.nii.gz");
    std::fs::copy(pack("fragmented_pack").join(mask_rel), p.join(mask_rel)).unwrap();
    edit_json(&p.join("output.json"), |v| {
        v["output"]["path"] = Value::String(p.join(mask_rel).display().to_string())
    });
    let (report, v) = verify_dir(&p, &VerifyOptions::default());
    assert!(!report.passed());
    let reason = failed(&v["artifact_inventory"], "pack_claims_match_files");
    assert!(reason.contains("mask sha256 claimed"), "{reason}");
}

#[test]
fn names_fall_back_to_ids_when_asked() {
    let opts = VerifyOptions {
        labels: Some(LabelSource::IdsOnly),
        ..VerifyOptions::default()
    };
    let (_, v) = verify_dir(&pack("pass_pack"), &opts);
    assert_eq!(
        v["anatomy_plausibility"]["per_class"][0]["name"],
        "label_id_1"
    );
    assert!(v["target"]["label_names_source"]
        .as_str()
        .unwrap()
        .starts_with("ids only"));
}

#[test]
fn usage_errors_name_the_path() {
    let dir = common::fresh_dir();
    let missing = dir.path().join("nope");
    let e = verify_pack(&missing, &VerifyOptions::default()).unwrap_err();
    assert!(matches!(e, VerifyUsageError::PackDirMissing(_)));
    assert!(e.to_string().contains("nope"));
    let e = verify_pack(dir.path(), &VerifyOptions::default()).unwrap_err();
    assert!(e.to_string().contains("output.json is missing"), "{e}");
    std::fs::write(dir.path().join("output.json"), "{oops").unwrap();
    let e = verify_pack(dir.path(), &VerifyOptions::default()).unwrap_err();
    assert!(
        matches!(e, VerifyUsageError::OutputJsonInvalid { .. }),
        "{e}"
    );
    let opts = VerifyOptions {
        surface_tolerance_mm: Some(f64::NAN),
        ..VerifyOptions::default()
    };
    let e = verify_pack(&pack("pass_pack"), &opts).unwrap_err();
    assert!(e.to_string().contains("surface tolerance"), "{e}");
}

#[test]
fn an_empty_output_json_fails_closed_on_every_block() {
    let dir = common::fresh_dir();
    std::fs::write(dir.path().join("output.json"), "{}").unwrap();
    let (report, v) = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(!report.passed());
    for name in [
        "skill_id_recognised",
        "manifest_readable",
        "run_succeeded",
        "validation_passed",
    ] {
        failed(&v["target"], name);
    }
    assert!(
        failed(&v["artifact_inventory"], "label_map_readable").contains("output.path is absent")
    );
    // No modality recorded: not a CT_BODY pack as far as anyone can show.
    assert!(failed(&v["target"], "modality_supported").contains("an unrecorded modality"));
    assert_eq!(v["anatomy_plausibility"]["verdict"], "not_applicable");
}

/// The verifier manifest's own sanity checks, in the skill manifest's vocabulary.
fn manifest_sanity_failures(report: &Value) -> Vec<String> {
    use ctmr_skill::evidence::sanity::{evaluate_all, CheckStatus, SanityCheck};
    let text = std::fs::read_to_string(
        common::repo_root().join("verifiers/ct_segmentation_quality_v1/skill_manifest.yaml"),
    )
    .unwrap();
    let manifest: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(manifest["id"].as_str(), Some(VERIFIER_ID));
    let raw = manifest["validation"]["sanity_checks"]
        .as_sequence()
        .expect("sanity_checks list")
        .clone();
    let checks = SanityCheck::parse_all(&raw).expect("every sanity check parses");
    evaluate_all(&checks, report)
        .into_iter()
        .filter(|r| r.status == CheckStatus::Failed)
        .map(|r| format!("{} {}: {}", r.path, r.op, r.reason))
        .collect()
}

#[test]
fn verifier_manifest_sanity_checks_hold_exactly_on_passing_reports() {
    let (_, v) = verify("pass_pack");
    assert_eq!(manifest_sanity_failures(&v), Vec::<String>::new());
    for name in [
        "gt_identical_pack",
        "mri_pack",
        "mri_gt_shifted_pack",
        "reference_pass_pack",
    ] {
        let (_, v) = verify(name);
        assert_eq!(manifest_sanity_failures(&v), Vec::<String>::new(), "{name}");
    }
    for name in [
        "fragmented_pack",
        "flipped_affine_pack",
        "sentinel_pack",
        "mri_brain_pack",
        "mri_fragmented_pack",
        "reference_failed_run_pack",
        "reference_no_signals_pack",
        "failed_run_pack",
        "missing_gt_pack",
        "corrupt_mask_pack",
    ] {
        let (_, v) = verify(name);
        let failures = manifest_sanity_failures(&v);
        assert!(
            failures.iter().any(|f| f.starts_with("overall eq")),
            "{name}: {failures:?}"
        );
        assert!(
            failures.len() >= 2,
            "{name}: a failing report trips a specific check too: {failures:?}"
        );
    }
}

#[test]
fn verification_is_reproducible() {
    let (_, a) = verify("gt_shifted_pack");
    let (_, b) = verify("gt_shifted_pack");
    assert_eq!(a, b);
}

#[test]
fn misaligned_ground_truth_fails_with_the_difference() {
    let (report, v) = verify("gt_misaligned_pack");
    assert!(!report.passed());
    let g = &v["gt_metrics"];
    let reason = failed(g, "ground_truth_aligned");
    assert!(
        reason.contains("not on the same grid") && reason.contains("affine"),
        "{reason}"
    );
    assert_eq!(g["geometry"]["affine_match"], false);
    assert_eq!(g["geometry"]["shape_match"], true);
    assert!(
        g["per_class"].as_array().unwrap().is_empty(),
        "nothing is scored across grids"
    );
    assert!(
        report.summary().contains("gt_metrics"),
        "{}",
        report.summary()
    );
}

#[test]
fn relative_paths_resolve_against_the_pack() {
    let dir = common::fresh_dir();
    let p = copy_pack("pass_pack", dir.path());
    edit_json(&p.join("output.json"), |v| {
        v["output"]["path"] = Value::String("synthetic_ct/synthetic_ct_trans.nii.gz".into())
    });
    let (report, v) = verify_dir(&p, &VerifyOptions::default());
    assert!(report.passed(), "{}", reasons(&v));
    assert_eq!(
        v["artifact_inventory"]["label_map_path"].as_str().unwrap(),
        p.join("synthetic_ct/synthetic_ct_trans.nii.gz")
            .display()
            .to_string()
    );
}

#[test]
fn a_missing_input_image_fails_geometry_instead_of_trusting_the_pack() {
    let dir = common::fresh_dir();
    let p = copy_pack("pass_pack", dir.path());
    edit_json(&p.join("output.json"), |v| {
        v["input"]["path"] = Value::String("/nonexistent/ct.nii.gz".into())
    });
    let (report, v) = verify_dir(&p, &VerifyOptions::default());
    assert!(!report.passed());
    let inv = &v["artifact_inventory"];
    assert_eq!(inv["input_image_readable"], false);
    assert!(failed(inv, "input_image_readable").contains("/nonexistent/ct.nii.gz does not exist"));
    // The pack claims a match; the verifier does not repeat it.
    assert_eq!(inv["claimed"]["affine_match"], true);
    assert_eq!(inv["affine_match"], false);
}

#[test]
fn cli_verify_prints_the_report_and_exits_by_verdict() {
    let run = |dir: &Path| {
        std::process::Command::new(common::binary())
            .arg("verify")
            .arg(dir)
            .output()
            .unwrap()
    };
    let out = run(&pack("pass_pack"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["overall"], "pass");
    validate_against_schema(&v);
    let out = run(&pack("fragmented_pack"));
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["overall"], "fail");
    let dir = common::fresh_dir();
    let out = run(&dir.path().join("absent"));
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("absent"), "{v}");
}

#[test]
fn every_recorded_hash_and_skill_id_is_checked() {
    let dir = common::fresh_dir();
    let p = copy_pack("gt_identical_pack", dir.path());
    let zeros = "0".repeat(64);
    edit_json(&p.join("manifest.json"), |v| {
        v["hashes"]["ground_truth_sha256"] = Value::String(zeros.clone());
        v["hashes"]["input_sha256"] = Value::String(zeros.clone());
        v["skill_id"] = Value::String("medagent.some_other_skill".into());
    });
    let (report, v) = verify_dir(&p, &VerifyOptions::default());
    assert!(!report.passed());
    let gt = failed(&v["gt_metrics"], "ground_truth_hash_matches_claims");
    assert!(
        gt.contains("manifest.json hashes.ground_truth_sha256 records 0000"),
        "{gt}"
    );
    let input = failed(&v["artifact_inventory"], "input_hash_matches_claims");
    assert!(
        input.contains("manifest.json hashes.input_sha256")
            && !input.contains("output.json input.sha256"),
        "{input}"
    );
    let ids = failed(&v["target"], "skill_ids_agree");
    assert!(
        ids.contains("medagent.some_other_skill") && ids.contains("nv_segment_ctmr"),
        "{ids}"
    );
    // Untouched, the same pack's hashes all check out.
    let (_, v) = verify("gt_identical_pack");
    assert_eq!(
        check(&v["gt_metrics"], "ground_truth_hash_matches_claims")["status"],
        "pass"
    );
    assert!(
        check(&v["artifact_inventory"], "input_hash_matches_claims")["reason"]
            .as_str()
            .unwrap()
            .contains("equals 2 recorded")
    );
}
