//! Viewer sidecars written next to a mask, parsed back: labels.json through
//! `load_labels_json` and as plain JSON, the 3D Slicer colour table and the
//! ITK-SNAP label description line by line.

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use ctmr_skill::labels::{write_sidecars, LabelError, LabelTable, Sidecars};
use serde_json::Value;

fn upstream_root() -> PathBuf {
    let beside = common::repo_root().join("../shared/upstream-data/NV-Segment-CTMR");
    let shared = PathBuf::from("/work/shared/upstream-data/NV-Segment-CTMR");
    [beside, shared]
        .into_iter()
        .find(|c| c.join("configs/metadata.json").is_file())
        .expect("upstream label files under ../shared/upstream-data/NV-Segment-CTMR/configs")
}

const MASK_SHA: &str = "ab12000000000000000000000000000000000000000000000000000000000000";

/// Liver, right/left kidney, a deprecated class, brain classes (255 is also
/// upstream's NaN fill value), and 400, which the vocabulary does not define.
fn present() -> BTreeSet<u32> {
    BTreeSet::from([1, 5, 14, 162, 255, 337, 400])
}

fn write(dir: &std::path::Path) -> (LabelTable, Sidecars) {
    let table = LabelTable::load_bundle(&upstream_root()).unwrap();
    let mask = dir.join("case_trans.nii.gz");
    let sidecars = write_sidecars(&table, &present(), Some((&mask, MASK_SHA)), dir).unwrap();
    (table, sidecars)
}

#[test]
fn labels_json_is_the_source_of_truth_and_reads_back() {
    let dir = common::fresh_dir();
    let (table, sidecars) = write(dir.path());
    assert_eq!(sidecars.labels_json, dir.path().join("labels.json"));

    let json: Value =
        serde_json::from_slice(&std::fs::read(&sidecars.labels_json).unwrap()).unwrap();
    assert_eq!(json["format"], "ctmr-skill/labels/v1");
    assert!(json["note"]
        .as_str()
        .unwrap()
        .contains("Not for clinical use"));
    assert_eq!(json["mask"]["file"], "case_trans.nii.gz");
    assert_eq!(json["mask"]["sha256"], MASK_SHA);
    let files = json["source"]["files"].as_array().unwrap();
    assert_eq!(files.len(), table.sources().len());
    for (file, source) in files.iter().zip(table.sources()) {
        assert_eq!(file["sha256"], source.sha256.as_str());
    }
    let keys: BTreeSet<&str> = json["labels"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["0", "1", "5", "14", "162", "255", "337", "400"])
    );
    assert_eq!(json["labels"]["0"]["name"], "background");
    assert_eq!(json["labels"]["14"]["name"], "left kidney");
    assert_eq!(json["labels"]["162"]["deprecated"], true);
    assert_eq!(json["labels"]["255"]["name"], "Left-AnG---angular-gyrus");
    assert_eq!(json["labels"]["255"]["in_vocabulary"], true);
    assert!(json["warnings"][0].as_str().unwrap().contains("NaN"));
    assert_eq!(json["labels"]["400"]["in_vocabulary"], false);
    assert_eq!(
        json["labels"]["400"]["name"],
        "unlisted id 400 (not in the vocabulary)"
    );
    let colour: Vec<u64> = json["labels"]["5"]["colour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(colour, table.get(5).unwrap().colour.map(u64::from));

    let back = LabelTable::load_labels_json(&sidecars.labels_json).unwrap();
    let ids: BTreeSet<u32> = back.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        BTreeSet::from([1, 5, 14, 162, 255, 337]),
        "vocabulary entries only"
    );
    for class in back.iter() {
        assert_eq!(
            Some(class),
            table.get(class.id),
            "round trip of {}",
            class.id
        );
    }
    assert_eq!(back.sources(), table.sources());
    assert_eq!(back.resolve("kidney_left"), Ok(14));
}

#[test]
fn slicer_colour_table_lists_the_same_entries() {
    let dir = common::fresh_dir();
    let (table, sidecars) = write(dir.path());
    assert_eq!(sidecars.slicer_ctbl, dir.path().join("labels.ctbl"));
    let text = std::fs::read_to_string(&sidecars.slicer_ctbl).unwrap();
    let (comments, rows): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.starts_with('#'));
    assert!(text.starts_with('#'), "header first");
    assert!(comments.iter().any(|l| l.contains("Not for clinical use")));
    assert!(comments.iter().any(|l| l.contains(MASK_SHA)));
    assert!(comments.contains(&"# 8 values"));
    let mut ids = Vec::new();
    for row in &rows {
        let fields: Vec<&str> = row.split(' ').collect();
        assert_eq!(fields.len(), 6, "id name R G B A: {row}");
        let id: u32 = fields[0].parse().unwrap();
        let rgba: Vec<u8> = fields[2..].iter().map(|f| f.parse().unwrap()).collect();
        if let Some(class) = table.get(id) {
            assert_eq!(fields[1], class.name.replace(' ', "_"));
            assert_eq!(&rgba[..3], &class.colour);
            assert_eq!(rgba[3], 255);
        }
        ids.push(id);
    }
    assert_eq!(ids, vec![0, 1, 5, 14, 162, 255, 337, 400]);
    assert_eq!(rows[0], "0 background 0 0 0 0");
    assert!(rows
        .iter()
        .any(|r| r.starts_with("162 uterus_(deprecated) ")));
}

#[test]
fn itksnap_description_has_clear_label_and_quoted_names() {
    let dir = common::fresh_dir();
    let (table, sidecars) = write(dir.path());
    assert_eq!(sidecars.itksnap_txt, dir.path().join("labels_itksnap.txt"));
    let text = std::fs::read_to_string(&sidecars.itksnap_txt).unwrap();
    assert!(text
        .lines()
        .any(|l| l == "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL"));
    let rows: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(rows.len(), 8);
    for row in &rows {
        let (numbers, label) = row.split_once('"').expect("quoted label");
        let label = label.strip_suffix('"').expect("closing quote");
        let fields: Vec<f64> = numbers
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        assert_eq!(fields.len(), 7, "IDX R G B A VIS MSH: {row}");
        let id = fields[0] as u32;
        if id == 0 {
            assert_eq!(label, "Clear Label");
            assert_eq!(&fields[1..], &[0.0; 6]);
        } else if let Some(class) = table.get(id) {
            assert_eq!(label, class.name);
            let rgb: Vec<f64> = class.colour.iter().map(|&c| f64::from(c)).collect();
            assert_eq!(&fields[1..4], rgb.as_slice());
            assert_eq!(&fields[4..], &[1.0, 1.0, 1.0]);
        } else {
            assert_eq!(
                (id, label),
                (400, "unlisted id 400 (not in the vocabulary)")
            );
        }
    }
}

#[test]
fn rewriting_is_deterministic_and_leaves_no_temporaries() {
    let dir = common::fresh_dir();
    let (_, first) = write(dir.path());
    let before: Vec<Vec<u8>> = [&first.labels_json, &first.slicer_ctbl, &first.itksnap_txt]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let (_, second) = write(dir.path());
    let after: Vec<Vec<u8>> = [
        &second.labels_json,
        &second.slicer_ctbl,
        &second.itksnap_txt,
    ]
    .iter()
    .map(|p| std::fs::read(p).unwrap())
    .collect();
    assert_eq!(before, after);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["labels.ctbl", "labels.json", "labels_itksnap.txt"]);
}

#[test]
fn a_255_outside_the_vocabulary_is_named_as_the_nan_fill_value() {
    let dir = common::fresh_dir();
    let full = LabelTable::load_bundle(&upstream_root()).unwrap();
    let small = LabelTable::from_classes(vec![full.get(1).unwrap().clone()]);
    let ids = BTreeSet::from([1, 255]);
    let sidecars = write_sidecars(&small, &ids, None, dir.path()).unwrap();
    let json: Value =
        serde_json::from_slice(&std::fs::read(&sidecars.labels_json).unwrap()).unwrap();
    assert_eq!(json["labels"]["255"]["in_vocabulary"], false);
    assert!(json["labels"]["255"]["name"]
        .as_str()
        .unwrap()
        .contains("NaN"));
    assert!(json.get("warnings").is_none());
}

#[test]
fn without_a_mask_the_mask_section_is_null() {
    let dir = common::fresh_dir();
    let table = LabelTable::load_bundle(&upstream_root()).unwrap();
    let sidecars = write_sidecars(&table, &BTreeSet::new(), None, dir.path()).unwrap();
    let json: Value =
        serde_json::from_slice(&std::fs::read(&sidecars.labels_json).unwrap()).unwrap();
    assert!(json["mask"].is_null());
    assert_eq!(
        json["labels"].as_object().unwrap().len(),
        1,
        "background only"
    );
    assert!(LabelTable::load_labels_json(&sidecars.labels_json)
        .unwrap()
        .is_empty());
}

#[test]
fn reading_something_else_as_labels_json_fails_with_the_path() {
    let dir = common::fresh_dir();
    let path = dir.path().join("labels.json");
    std::fs::write(&path, br#"{"1": {"name": "liver"}}"#).unwrap();
    let err = LabelTable::load_labels_json(&path).unwrap_err();
    assert!(
        matches!(err, LabelError::BadValue { path: ref p, .. } if p == &path),
        "{err}"
    );
    assert!(err.to_string().contains("labels.json"));
    let missing = dir.path().join("absent.json");
    let err = LabelTable::load_labels_json(&missing).unwrap_err();
    assert!(matches!(err, LabelError::Read { .. }));
    assert!(err.to_string().contains("absent.json"));
}
