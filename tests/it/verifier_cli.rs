//! `ctmr-skill verify` flags (`--labels`, `--bounds`, `--surface-tolerance`) through the
//! real binary, on the deterministic fixture packs that
//! `verifiers/ct_segmentation_quality_v1/fixtures/build_fixtures.py` writes with nibabel.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// A usage error: exit code 2, the message as `{"error": ...}` on stdout; returned.
fn usage_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
    common::stdout_json(out)["error"]
        .as_str()
        .expect("an error message")
        .to_string()
}

fn pack(name: &str) -> PathBuf {
    common::verifier_fixture(name)
}

fn verify(pack_dir: &Path, flags: &[&str]) -> Output {
    std::process::Command::new(common::binary())
        .arg("verify")
        .arg(pack_dir)
        .args(flags)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn liver_row(report: &Value) -> &Value {
    report["anatomy_plausibility"]["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label_id"] == 1)
        .unwrap_or_else(|| panic!("no liver row in {report:#}"))
}

/// The embedded bounds with the liver's minimum volume raised above the fixture's
/// 925 mL liver.
fn strict_liver_bounds(dir: &Path) -> PathBuf {
    let embedded =
        common::repo_root().join("verifiers/ct_segmentation_quality_v1/anatomy_bounds.json");
    let mut bounds: Value =
        serde_json::from_str(&std::fs::read_to_string(embedded).unwrap()).unwrap();
    bounds["classes"]["1"]["volume_ml_min"] = 1000.0.into();
    let path = dir.join("strict_liver_bounds.json");
    std::fs::write(&path, serde_json::to_string_pretty(&bounds).unwrap()).unwrap();
    path
}

#[test]
fn a_custom_bounds_file_fails_a_passing_pack_and_shows_in_the_report() {
    let dir = common::fresh_dir();
    let passing = verify(&pack("pass_pack"), &[]);
    assert_eq!(passing.status.code(), Some(0), "{}", stderr(&passing));
    let default_liver = liver_row(&common::stdout_json(&passing)).clone();
    assert_eq!(default_liver["bounds"]["volume_ml_min"], 800.0);
    assert_eq!(default_liver["volume_bounds_ok"], true);

    let bounds = strict_liver_bounds(dir.path());
    let out = verify(&pack("pass_pack"), &["--bounds", bounds.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a fail verdict: {}",
        stderr(&out)
    );
    let report = common::stdout_json(&out);
    assert_eq!(report["overall"], "fail");
    assert_eq!(report["anatomy_plausibility"]["verdict"], "fail");
    let liver = liver_row(&report);
    assert_eq!(liver["bounds"]["volume_ml_min"], 1000.0, "{liver:#}");
    assert_eq!(liver["volume_bounds_ok"], false, "{liver:#}");
    let reasons = report["overall_reasons"].to_string();
    assert!(reasons.contains("liver"), "{reasons}");
    assert!(stderr(&out).contains(": fail"), "{}", stderr(&out));
}

#[test]
fn a_broken_or_missing_bounds_file_is_a_usage_error_naming_the_flag() {
    let dir = common::fresh_dir();
    let missing = dir.path().join("no_such_bounds.json");
    let out = verify(&pack("pass_pack"), &["--bounds", missing.to_str().unwrap()]);
    let error = usage_error(&out);
    assert!(
        error.starts_with("--bounds ") && error.contains("no_such_bounds.json"),
        "{error}"
    );
    assert!(stderr(&out).contains(&error), "{}", stderr(&out));

    let broken = dir.path().join("broken_bounds.json");
    std::fs::write(&broken, r#"{"classes": {"liver": {}}}"#).unwrap();
    let out = verify(&pack("pass_pack"), &["--bounds", broken.to_str().unwrap()]);
    let error = usage_error(&out);
    assert!(
        error.starts_with("--bounds: ") && error.contains("broken_bounds.json"),
        "{error}"
    );
}

#[test]
fn bad_surface_tolerances_are_refused_with_exit_2() {
    for bad in ["0", "-1", "nan", "inf", "one"] {
        let out = verify(&pack("pass_pack"), &["--surface-tolerance", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("--surface-tolerance") && err.contains("greater than 0"),
            "{bad}: {err}"
        );
        assert!(out.stdout.is_empty(), "{bad}: nothing ran, no report");
    }
}

#[test]
fn the_surface_tolerance_reaches_the_ground_truth_metrics() {
    let default = common::stdout_json(&verify(&pack("gt_shifted_pack"), &[]));
    let out = verify(&pack("gt_shifted_pack"), &["--surface-tolerance", "15"]);
    let wide = common::stdout_json(&out);
    assert_eq!(default["gt_metrics"]["surface_tolerance_mm"], 1.0);
    assert_eq!(wide["gt_metrics"]["surface_tolerance_mm"], 15.0);
    let nsd = |report: &Value| -> f64 {
        report["gt_metrics"]["per_class"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["label_id"] == 1)
            .and_then(|r| r["nsd"].as_f64())
            .unwrap_or_else(|| panic!("no liver NSD in {report:#}"))
    };
    // The liver is shifted by one 10 mm voxel: within 15 mm all of its surface counts.
    assert!(nsd(&default) < 1.0, "{}", nsd(&default));
    assert_eq!(nsd(&wide), 1.0);
}

#[test]
fn labels_from_a_bundle_root_or_a_missing_file_named_in_the_error() {
    let root = common::upstream_data_root();
    let out = verify(&pack("pass_pack"), &["--labels", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = common::stdout_json(&out);
    assert_eq!(liver_row(&report)["name"], "liver");
    let source = report["target"]["label_names_source"].as_str().unwrap();
    assert!(source.contains(root.to_str().unwrap()), "{source}");

    let dir = common::fresh_dir();
    let missing = dir.path().join("missing_labels.json");
    let out = verify(&pack("pass_pack"), &["--labels", missing.to_str().unwrap()]);
    let error = usage_error(&out);
    assert!(
        error.starts_with("--labels ") && error.contains(missing.to_str().unwrap()),
        "{error}"
    );
    assert!(error.contains("labels.json sidecar or an NV-Segment-CTMR bundle root"));

    let not_labels = dir.path().join("not_labels.json");
    std::fs::write(&not_labels, "{}").unwrap();
    let out = verify(
        &pack("pass_pack"),
        &["--labels", not_labels.to_str().unwrap()],
    );
    let error = usage_error(&out);
    assert!(
        error.starts_with("--labels: ") && error.contains("not_labels.json"),
        "{error}"
    );
}

/// `--render` draws the classes the verdict failed (here the liver, under stricter bounds).
#[test]
fn render_draws_the_failing_classes() {
    let dir = common::fresh_dir();
    let bounds = strict_liver_bounds(dir.path());
    let png_path = dir.path().join("failing.png");
    let out = verify(
        &pack("pass_pack"),
        &[
            "--bounds",
            bounds.to_str().unwrap(),
            "--render",
            png_path.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failing classes [1]"),
        "{}",
        stderr(&out)
    );
    let bytes = std::fs::read(&png_path).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let liver = ctmr_skill::labels::colour_for(1);
    let drawn = buf[..frame.buffer_size()]
        .chunks(3)
        .filter(|p| *p == liver)
        .count();
    assert!(drawn > 50, "the liver's colour covers only {drawn} pixels");
}
