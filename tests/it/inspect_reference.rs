//! `inspect` against independent numbers: label maps written by nibabel (float32 as the
//! upstream writes them, uint8, int16; .nii.gz and .nii), expected figures computed by
//! numpy / scipy in `tests/py/inspect_fixtures.py` (components by
//! `scipy.ndimage.label` with a 3x3x3 structure). Every number in the expectation
//! must be in the report and equal (floats to 1e-9 relative).

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ctmr_skill::inspect::{
    compare_label_maps, inspect, InspectError, InspectOptions, InspectReport, OverlapStatus,
};
use serde_json::Value;

/// Fixtures are generated once per test run into cargo's integration-test tmp dir
/// (replacing those of the previous run).
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inspect_fixtures");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = common::repo_root().join("tests/py/inspect_fixtures.py");
        common::run_python(&script, &[dir.to_str().unwrap()]);
        dir
    })
}

struct Case {
    dir: PathBuf,
    files: Value,
    expected: Value,
}

fn case(name: &str) -> Case {
    let dir = fixtures().join(name);
    let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    Case {
        dir,
        files: v["files"].clone(),
        expected: v["expected"].clone(),
    }
}

impl Case {
    fn file(&self, role: &str) -> Option<PathBuf> {
        self.files[role].as_str().map(|f| self.dir.join(f))
    }

    fn wants_components(&self) -> bool {
        self.expected["labels"][0].get("components").is_some()
    }

    fn options(&self) -> InspectOptions {
        InspectOptions {
            components: self.wants_components(),
            reference: self.file("reference"),
            ground_truth: self.file("ground_truth"),
            ..InspectOptions::default()
        }
    }

    fn report(&self) -> InspectReport {
        inspect(&self.file("mask").unwrap(), &self.options()).expect("inspect succeeds")
    }
}

/// Every value in `want` must be present in `got` and equal; integers exactly, other
/// numbers to 1e-9 relative.
fn assert_subset(path: &str, got: &Value, want: &Value) {
    match want {
        Value::Object(map) => {
            for (k, w) in map {
                let g = got
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing from the report"));
                assert_subset(&format!("{path}.{k}"), g, w);
            }
        }
        Value::Array(items) => {
            let g = got
                .as_array()
                .unwrap_or_else(|| panic!("{path}: expected an array, got {got}"));
            assert_eq!(g.len(), items.len(), "{path}: length (got {got})");
            for (i, (g, w)) in g.iter().zip(items).enumerate() {
                assert_subset(&format!("{path}[{i}]"), g, w);
            }
        }
        Value::Number(w) => {
            if w.is_f64() {
                let (w, g) = (w.as_f64().unwrap(), got.as_f64().expect("a number"));
                let tol = 1e-9 * w.abs().max(1.0);
                assert!((g - w).abs() <= tol, "{path}: got {g}, want {w}");
            } else {
                assert_eq!(got.as_i64(), w.as_i64(), "{path}: got {got}, want {w}");
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

#[test]
fn float32_map_with_components_reference_and_ground_truth_matches_numpy() {
    let c = case("float32_full");
    let report = c.report();
    assert_eq!(report.mask.dtype, "float32");
    assert!(
        !report.integer_valued,
        "NaN / non-integer voxels must flag the map"
    );
    assert!(report.value_255_voxels > 0);
    let got = serde_json::to_value(&report).unwrap();
    assert_subset("report", &got, &c.expected);
    // Geometry of identical grids matches.
    let geo = report.reference_geometry.as_ref().unwrap();
    assert!(geo.differences.is_empty(), "{:?}", geo.differences);
    let gt = report.ground_truth.as_ref().unwrap();
    assert!(gt.geometry.differences.is_empty());
    // The fixture has every non-trivial status.
    let statuses: Vec<OverlapStatus> = gt.labels.iter().map(|l| l.status).collect();
    assert!(statuses.contains(&OverlapStatus::PredEmpty));
    assert!(statuses.contains(&OverlapStatus::GtEmpty));
    assert!(statuses.contains(&OverlapStatus::Ok));
}

#[test]
fn uint8_nii_int16_and_noisy_float32_maps_match_numpy_and_scipy() {
    for (name, dtype) in [
        ("uint8_nii", "uint8"),
        ("int16_ids", "int16"),
        ("noise_components", "float32"),
    ] {
        let c = case(name);
        let report = c.report();
        assert_eq!(report.mask.dtype, dtype);
        assert!(report.integer_valued);
        let got = serde_json::to_value(&report).unwrap();
        assert_subset(name, &got, &c.expected);
        if !c.wants_components() {
            assert!(report.labels.iter().all(|l| l.components.is_none()));
        }
        if c.file("reference").is_none() {
            assert!(report.labels.iter().all(|l| l.intensity.is_none()));
            assert!(report.reference_geometry.is_none());
        }
    }
}

#[test]
fn compare_label_maps_matches_numpy_and_labels_both_empty() {
    let c = case("float32_full");
    let cmp =
        compare_label_maps(&c.file("mask").unwrap(), &c.file("ground_truth").unwrap()).unwrap();
    let got = serde_json::to_value(&cmp).unwrap();
    assert_subset("comparison", &got, &c.expected["ground_truth"]);
    let absent = cmp.overlap(12345);
    assert_eq!(absent.status, OverlapStatus::BothEmpty);
    assert_eq!((absent.dice, absent.iou), (None, None));
    // JSON never carries a NaN: every dice is a number or null with both_empty.
    for l in got["labels"].as_array().unwrap() {
        assert!(l["dice"].is_number(), "{l}");
    }
}

#[test]
fn reference_geometry_differences_are_named() {
    let c = case("geometry");
    let report = c.report();
    let geo = report.reference_geometry.expect("reference given");
    assert!(geo.shape_match);
    assert!(!geo.spacing_match && !geo.affine_match && !geo.orientation_match);
    assert_eq!(geo.orientation_a, "RAS");
    assert_eq!(geo.orientation_b, "LAS");
    assert_eq!(geo.affine_max_abs_diff, 2.0);
    assert_eq!(
        geo.differences,
        vec![
            "spacing differs on axis 2: 1.5 vs 3.0".to_string(),
            "affine differs: max abs difference 2.0 at element [0][0] (1.0 vs -1.0) exceeds \
             tolerance 0.0001"
                .to_string(),
            "orientation differs: RAS vs LAS".to_string(),
        ]
    );
    // A generous tolerance accepts the spacing and affine, not the orientation.
    let loose = inspect(
        &c.file("mask").unwrap(),
        &InspectOptions {
            geometry_tolerance: 5.0,
            ..c.options()
        },
    )
    .unwrap()
    .reference_geometry
    .unwrap();
    assert_eq!(
        loose.differences,
        vec!["orientation differs: RAS vs LAS".to_string()]
    );
}

#[test]
fn a_second_image_off_the_grid_is_an_answer_naming_every_difference() {
    // As a TotalSegmentator mask against a brain MRI: shape, spacing, affine,
    // orientation and the sform/qform codes all differ. Expected facts from nibabel.
    let c = case("geometry");
    let mask = c.file("mask").unwrap();
    let other = c.dir.join("all_differ.nii.gz");
    let facts: Value =
        serde_json::from_str(&std::fs::read_to_string(c.dir.join("all_differ.json")).unwrap())
            .unwrap();
    let (a, b) = (&facts["a"], &facts["b"]);
    let plain = inspect(&mask, &InspectOptions::default()).unwrap();
    for (role, opts) in [
        (
            "reference",
            InspectOptions {
                components: true,
                reference: Some(other.clone()),
                ..InspectOptions::default()
            },
        ),
        (
            "ground truth",
            InspectOptions {
                components: true,
                ground_truth: Some(other.clone()),
                ..InspectOptions::default()
            },
        ),
    ] {
        let report = inspect(&mask, &opts).unwrap_or_else(|e| panic!("{role}: {e}"));
        let geo = if role == "reference" {
            assert!(report.ground_truth_geometry.is_none());
            report
                .reference_geometry
                .clone()
                .expect("reference geometry")
        } else {
            assert!(report.ground_truth.is_none(), "no overlap off the grid");
            assert!(report.reference_geometry.is_none());
            report
                .ground_truth_geometry
                .clone()
                .expect("ground-truth geometry")
        };
        assert!(
            !geo.shape_match
                && !geo.spacing_match
                && !geo.affine_match
                && !geo.orientation_match
                && !geo.codes_match
        );
        let json = serde_json::to_value(&geo).unwrap();
        for key in [
            "shape",
            "spacing",
            "orientation",
            "sform_code",
            "qform_code",
        ] {
            assert_eq!(json[format!("{key}_a")], a[key], "{role} {key}_a");
            assert_eq!(json[format!("{key}_b")], b[key], "{role} {key}_b");
        }
        assert!(
            (geo.affine_max_abs_diff - facts["affine_max_abs_diff"].as_f64().unwrap()).abs() < 1e-9
        );
        assert_eq!(
            json["affine_max_abs_diff_at"],
            facts["affine_max_abs_diff_at"]
        );
        let kinds: Vec<&str> = geo
            .differences
            .iter()
            .map(|d| d.split(' ').next().unwrap())
            .collect();
        for kind in [
            "shape",
            "spacing",
            "affine",
            "orientation",
            "sform_code",
            "qform_code",
        ] {
            assert!(
                kinds.contains(&kind),
                "{role}: no {kind} difference in {kinds:?}"
            );
        }
        // Every difference at once in the message, and what was skipped.
        let note = report.geometry_note().expect("a note");
        for d in &geo.differences {
            assert!(note.contains(d.as_str()), "{role}: {d} not in {note}");
        }
        assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
        let skipped = &report.skipped[0];
        let what = if role == "reference" {
            "intensities"
        } else {
            "Dice"
        };
        assert!(
            skipped.contains(what) && skipped.contains("all_differ.nii.gz"),
            "{skipped}"
        );
        let table = report.render_table();
        assert!(
            table.contains("SKIPPED") && table.contains("qform_code differs"),
            "{table}"
        );
        // Only the figures needing matching grids are skipped: counts and components stay.
        assert!(report.labels.iter().all(|l| l.intensity.is_none()));
        assert_eq!(report.labels.len(), plain.labels.len());
        assert_eq!(report.labels[0].voxels, plain.labels[0].voxels);
        assert!(report.labels[0].components.is_some());
    }
    // On the grid, nothing is skipped and there is no note.
    let on_grid = c.report();
    assert!(on_grid.skipped.is_empty());
    assert!(on_grid.labels.iter().all(|l| l.intensity.is_some()));
}

#[test]
fn compare_label_maps_still_needs_the_grid_and_unreadable_files_are_clear_errors() {
    let c = case("geometry");
    let mask = c.file("mask").unwrap();
    let other = c.dir.join("other_shape.nii.gz");
    let err = compare_label_maps(&mask, &other).unwrap_err();
    assert!(err.to_string().contains("ground truth"), "{err}");

    let missing = c.dir.join("does_not_exist.nii.gz");
    let err = inspect(&missing, &InspectOptions::default()).unwrap_err();
    assert!(matches!(err, InspectError::Nifti(_)), "{err:?}");
    assert!(err.to_string().contains("does_not_exist.nii.gz"), "{err}");

    let not_nifti = c.dir.join("expected.json");
    let err = inspect(
        &mask,
        &InspectOptions {
            reference: Some(not_nifti),
            ..InspectOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("expected.json"), "{err}");
}

#[test]
fn a_truncated_input_is_an_error_naming_it_even_mid_stream() {
    // The read-ahead threads must hand a mid-volume failure back, whichever input fails.
    let c = case("float32_full");
    let dir = common::fresh_dir();
    let cut = |name: &str| {
        let bytes = std::fs::read(c.file(name).unwrap()).unwrap();
        let path = dir.path().join(format!("cut_{name}.nii.gz"));
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        path
    };
    let mask = c.file("mask").unwrap();
    let cut_mask = cut("mask");
    let err = inspect(&cut_mask, &InspectOptions::default()).unwrap_err();
    assert!(matches!(err, InspectError::Nifti(_)), "{err:?}");
    assert!(err.to_string().contains("cut_mask.nii.gz"), "{err}");

    let cut_reference = cut("reference");
    let opts = InspectOptions {
        components: true,
        reference: Some(cut_reference),
        ground_truth: c.file("ground_truth"),
        ..InspectOptions::default()
    };
    let err = inspect(&mask, &opts).unwrap_err();
    assert!(err.to_string().contains("cut_reference.nii.gz"), "{err}");

    let cut_gt = cut("ground_truth");
    let err = compare_label_maps(&mask, &cut_gt).unwrap_err();
    assert!(err.to_string().contains("cut_ground_truth.nii.gz"), "{err}");
}

#[test]
fn reports_validate_against_the_published_schema_and_round_trip() {
    let dir = common::fresh_dir();
    let mut paths = Vec::new();
    for name in ["float32_full", "uint8_nii", "int16_ids", "geometry"] {
        let mut report = case(name).report();
        report.attach_names(|id| (id % 2 == 1).then(|| format!("class {id}")));
        let json = serde_json::to_string_pretty(&report).unwrap();
        let back: InspectReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report, "{name}: JSON round trip");
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, json).unwrap();
        paths.push(path.to_str().unwrap().to_string());
    }
    // A report with both second images off the grid (geometry only, figures skipped).
    let c = case("geometry");
    let off = c.dir.join("all_differ.nii.gz");
    let report = inspect(
        &c.file("mask").unwrap(),
        &InspectOptions {
            reference: Some(off.clone()),
            ground_truth: Some(off),
            ..InspectOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.skipped.len(), 2);
    let json = serde_json::to_string_pretty(&report).unwrap();
    let back: InspectReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report, "off-grid: JSON round trip");
    let path = dir.path().join("off_grid.json");
    std::fs::write(&path, json).unwrap();
    paths.push(path.to_str().unwrap().to_string());
    let schema = common::repo_root().join("schemas/inspect_report.schema.json");
    let mut args = vec![schema.to_str().unwrap()];
    args.extend(paths.iter().map(String::as_str));
    let out = common::run_python(
        &common::repo_root().join("tests/py/inspect_validate_schema.py"),
        &args,
    );
    assert!(out.contains("5 report(s) valid"), "{out}");

    // And the schema rejects a report that breaks it (so the check can fail).
    let mut broken: Value =
        serde_json::from_str(&std::fs::read_to_string(&paths[0]).unwrap()).unwrap();
    broken["labels"][0]["voxels"] = Value::from(-1);
    broken["unexpected_field"] = Value::from(1);
    let bad = dir.path().join("broken.json");
    std::fs::write(&bad, broken.to_string()).unwrap();
    let status = std::process::Command::new(common::python())
        .arg(common::repo_root().join("tests/py/inspect_validate_schema.py"))
        .arg(&schema)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !status.status.success(),
        "a broken report must not validate"
    );
}

#[test]
fn table_names_labels_warnings_and_the_clinical_disclaimer() {
    let mut report = case("float32_full").report();
    report.attach_names(|id| (id == 1).then(|| "liver".to_string()));
    assert_eq!(report.labels[0].name.as_deref(), Some("liver"));
    assert_eq!(report.labels[1].name, None);
    let table = report.render_table();
    assert!(table.contains("liver"), "{table}");
    assert!(
        table.contains("WARNING: not integer-valued: 3 non-integer and 2 NaN voxels"),
        "{table}"
    );
    assert!(table.contains("value 255"), "{table}");
    assert!(
        table.contains("pred_empty") && table.contains("gt_empty"),
        "{table}"
    );
    assert!(table.contains(ctmr_skill::NOT_FOR_CLINICAL_USE), "{table}");
    for l in &report.labels {
        assert!(
            table
                .lines()
                .any(|line| line.trim_start().starts_with(&format!("{} ", l.id))),
            "label {} has a row:\n{table}",
            l.id
        );
    }
}

#[test]
fn off_grid_geometry_is_an_answer_over_the_cli_and_in_the_tool_summary() {
    let c = case("geometry");
    let mask = c.file("mask").unwrap();
    let other = c.dir.join("all_differ.nii.gz");
    let run = |json: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctmr-skill"));
        cmd.arg("inspect").arg(&mask).arg("--reference").arg(&other);
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let out = run(true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let differences = v["reference_geometry"]["differences"].as_array().unwrap();
    // Three shape axes, three spacing axes, the affine, orientation, both codes.
    assert_eq!(differences.len(), 3 + 3 + 1 + 1 + 2, "{differences:?}");
    assert_eq!(v["skipped"].as_array().unwrap().len(), 1);
    let out = run(false);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    for d in differences {
        assert!(table.contains(d.as_str().unwrap()), "{d} not in {table}");
    }

    // The MCP tool's summary carries every difference and what was skipped.
    let report = inspect(
        &mask,
        &InspectOptions {
            reference: Some(other),
            ..InspectOptions::default()
        },
    )
    .unwrap();
    match ctmr_skill::tools::inspect_label_map::outcome(Ok((report, None))) {
        ctmr_skill::call::ToolOutcome::Success { summary, .. } => {
            for d in differences {
                assert!(
                    summary.contains(d.as_str().unwrap()),
                    "{d} not in {summary}"
                );
            }
            assert!(
                summary.contains("Skipped: per-label intensities"),
                "{summary}"
            );
        }
        other => panic!("{other:?}"),
    }
}
